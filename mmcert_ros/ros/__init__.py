"""The ROS 2 layer: the rclpy nodes, their parameter descriptors and diagnostics, and the
process glue. Everything the offline tools share with the nodes lives in
:mod:`mmcert_ros.segmenter`, which imports no ROS package.
"""
