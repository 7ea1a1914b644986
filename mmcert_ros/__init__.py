"""mmcert_ros: certified-robust RGB-D road segmentation (MMCert) for ROS 2.

The certification engine (:mod:`mmcert_ros.certify`) is ROS-free; :mod:`mmcert_ros.ros`
is the only package that imports the ROS client library or ROS message packages.
"""

__version__ = '0.1.0'
