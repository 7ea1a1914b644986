"""What the node and the offline tools share, without ROS: the codec of ROS-shaped image
messages, the output images and overlay, their colour views and the labelled LiDAR points
(:mod:`~mmcert_ros.pipeline.views`, :mod:`~mmcert_ros.pipeline.labelled_points`), the source
presets, the parameter table and its validator
(:class:`~mmcert_ros.pipeline.parameters.NodeSettings`) and the one loader of settings files.
Nothing here imports the ROS client library or a ROS message package.
"""
