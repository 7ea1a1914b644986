"""Header stamps and camera-info fields of ROS-shaped messages, with numpy only.

The node (messages of the ROS client library), the bag writer and the bag reader (``rosbags``
messages) share these: every function is duck-typed on the message fields, so no ROS package
is imported.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmcert_ros.data.projection import CameraIntrinsics

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


@dataclass(frozen=True)
class CameraInfoFields:
    """The fields of a ROS ``CameraInfo`` this package reads, without a header: accepted
    wherever a ``CameraInfo`` message is
    (:func:`~mmcert_ros.segmenter.pair_to_frame.frame_from_pair`,
    :meth:`~mmcert_ros.data.projection.CameraIntrinsics.from_camera_info`).

    :ivar width: :ivar height: image size, pixels.
    :ivar k: the 9 values of K, row-major. :ivar p: the 12 values of P = [K | 0], row-major.
    :ivar d: distortion coefficients. :ivar distortion_model: a key of
        :data:`~mmcert_ros.data.projection.DISTORTION_MODELS`.
    """

    width: int
    height: int
    k: tuple[float, ...]
    p: tuple[float, ...]
    d: tuple[float, ...] = ()
    distortion_model: str = 'none'


def _whole(value) -> bool:
    """Whether ``value`` is a whole number (an int, or a float without a fraction; no bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and float(value).is_integer())


def camera_info_from_k(k: Sequence[float], width: int, height: int) -> CameraInfoFields:
    """A distortion-free camera_info from K given as a parameter (9 values, row-major) and the
    image size in pixels, for a camera that publishes no ``CameraInfo``.

    Here, beside the other camera-info fields of ROS-shaped messages, rather than in
    :mod:`mmcert_ros.data.projection` (which knows cameras, not messages) or
    :mod:`mmcert_ros.segmenter.pair_to_frame` (which decodes what arrives): it builds a
    message-shaped value. K is checked by
    :class:`~mmcert_ros.data.projection.CameraIntrinsics`, the one place of those rules:
    9 finite values, fx, fy > 0, last row 0 0 1; the size must be whole pixels, positive.

    :raises ValueError: with a one-line reason.
    """
    if not (_whole(width) and _whole(height)):
        raise ValueError(f'camera image size must be whole pixels, got {width}x{height}')
    try:
        values = np.asarray(k, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'camera K needs 9 finite values, got {k!r}') from None
    camera = CameraIntrinsics(int(width), int(height), values)
    projection = projection_from_intrinsics(camera.k)
    return CameraInfoFields(width=camera.width, height=camera.height,
                            k=tuple(camera.k.reshape(-1).tolist()),
                            p=tuple(projection.reshape(-1).tolist()))
