"""The ROS 2 layer: nodes, parameters, diagnostics and the rclpy-free image codec.

This package imports nothing on purpose: :mod:`mmcert_ros.ros.image_codec` must stay
importable on a machine without rclpy, and only the node modules import rclpy.
"""
