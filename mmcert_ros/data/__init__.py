"""Frames without ROS: the Frame type, depth encodings, synthetic drives, KITTI Road."""

from mmcert_ros.data.frame import Frame

__all__ = ['Frame']
