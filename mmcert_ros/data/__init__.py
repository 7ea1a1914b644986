"""Frames without ROS: the Frame type, depth encodings, KITTI Road, point clouds and their
projection into the camera, and stamp pairing. The synthetic drives live in
:mod:`mmcert_ros.sim`.

``Frame`` and the depth helpers import with numpy alone; the KITTI reader (which needs
OpenCV) loads on first use of its name.
"""
from importlib import import_module

from mmcert_ros.data.depth import (clean_depth, invalid_depth_mask, metres_to_millimetres,
                                   millimetres_to_metres)
from mmcert_ros.data.frame import Frame

_LAZY = {'KittiRoad': 'mmcert_ros.data.kitti'}

__all__ = ['Frame', 'clean_depth', 'invalid_depth_mask', 'metres_to_millimetres',
           'millimetres_to_metres', *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
