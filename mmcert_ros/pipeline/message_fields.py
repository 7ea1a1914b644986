"""Header stamps and camera-info fields of ROS-shaped messages, with numpy only.

The node (messages of the ROS client library), the bag writer and the bag reader (``rosbags``
messages) share these: every function is duck-typed on the message fields, so no ROS package
is imported.
"""
from __future__ import annotations

from typing import Any

import numpy as np

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """A header stamp (``builtin_interfaces/Time``: ``sec``, ``nanosec``) in integer
    nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of a stamp in integer nanoseconds (must be >= 0)."""
    if stamp_ns < 0:
        raise ValueError(f'header stamp must be >= 0 ns, got {stamp_ns}')
    return stamp_ns // NS_PER_S, stamp_ns % NS_PER_S


def projection_from_intrinsics(camera_matrix: np.ndarray) -> np.ndarray:
    """The 3x4 projection matrix ``K [I | 0]`` of a camera with intrinsic matrix K (3x3)."""
    return np.hstack([np.asarray(camera_matrix, np.float64).reshape(3, 3), np.zeros((3, 1))])


def rectified_camera_info(projection: np.ndarray, width: int, height: int) -> dict[str, Any]:
    """The camera-info fields (size, ``distortion_model, d, k, r, p``) of a rectified camera
    from its 3x4 projection matrix, arrays as float64 numpy arrays.

    For a rectified camera (KITTI ``P2``) ``P = K [I | t]``, so ``k`` is P's left 3x3 block,
    ``r`` the identity and the ``plumb_bob`` distortion zero.

    :raises ValueError: a matrix of another shape.
    """
    projection = np.asarray(projection, dtype=np.float64)
    if projection.shape != (3, 4):
        raise ValueError(f'projection matrix must be 3x4, got shape {projection.shape}')
    return {'width': int(width), 'height': int(height), 'distortion_model': 'plumb_bob',
            'd': np.zeros(5), 'k': projection[:, :3].reshape(9).copy(),
            'r': np.eye(3).reshape(9), 'p': projection.reshape(12).copy()}
