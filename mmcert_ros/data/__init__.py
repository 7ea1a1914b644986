"""Frames without ROS: the Frame type, depth encodings, synthetic drives, KITTI Road.

``Frame`` and the depth helpers import with numpy alone; the simulator and the KITTI
reader (which need OpenCV) load on first use of their names.
"""
from importlib import import_module

from mmcert_ros.data.depth import (clean_depth, invalid_depth_mask, metres_to_millimetres,
                                   millimetres_to_metres)
from mmcert_ros.data.frame import Frame

_LAZY = {
    'CameraModel': 'mmcert_ros.data.camera',
    'SceneConfig': 'mmcert_ros.data.scene',
    'LidarConfig': 'mmcert_ros.data.lidar',
    'SyntheticDrive': 'mmcert_ros.data.synthetic',
    'drive': 'mmcert_ros.data.synthetic',
    'render_frame': 'mmcert_ros.data.synthetic',
    'export_kitti': 'mmcert_ros.data.synthetic',
    'KittiRoad': 'mmcert_ros.data.kitti',
}

__all__ = ['Frame', 'clean_depth', 'invalid_depth_mask', 'metres_to_millimetres',
           'millimetres_to_metres', *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
