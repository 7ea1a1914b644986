"""The driving simulator: procedural road scenes, their camera and LiDAR renderings, and
drives of :class:`~mmcert_ros.data.Frame` with ground truth (no ROS; OpenCV and numpy).

The names below load their module on first use, so ``import mmcert_ros.sim`` is cheap.
"""
from importlib import import_module

_LAZY = {
    'CameraModel': 'mmcert_ros.sim.camera',
    'SceneConfig': 'mmcert_ros.sim.scene',
    'LidarConfig': 'mmcert_ros.sim.lidar',
    'SyntheticDrive': 'mmcert_ros.sim.synthetic',
    'drive': 'mmcert_ros.sim.synthetic',
    'render_frame': 'mmcert_ros.sim.synthetic',
    'export_kitti': 'mmcert_ros.sim.synthetic',
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
