"""The unit of work shared by the node, the tools and the engine: one RGB-D frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One synchronized RGB-D frame, in the engine's canonical encodings.

    :ivar rgb: ``(H, W, 3)`` uint8, RGB channel order.
    :ivar depth: ``(Hd, Wd)`` float32 metres; ``0`` or NaN mark invalid pixels. Its size
        may differ from the RGB size: each modality is sub-sampled at its native size.
    :ivar road_mask: optional ground truth, ``(H, W)`` uint8, 1 = road, 0 = not road.
    :ivar road_valid: optional ``(H, W)`` bool, the pixels the ground truth labels (KITTI's
        devkit: red channel > 0; the black void area is unlabelled). Metrics count only
        these; None = every pixel is labelled.
    :ivar stamp_ns: acquisition time in nanoseconds (ROS header stamp).
    :ivar frame_id: coordinate frame of the camera (ROS header frame_id).
    :ivar camera_matrix: optional 3x3 float64 intrinsics K of the RGB camera, pixels.
    :ivar name: a human-readable identifier (file stem, bag index), for reports.
    """

    rgb: np.ndarray
    depth: np.ndarray
    road_mask: np.ndarray | None = None
    road_valid: np.ndarray | None = None
    stamp_ns: int = 0
    frame_id: str = 'camera'
    camera_matrix: np.ndarray | None = None
    name: str = ''
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_rgb(self.rgb)
        validate_depth(self.depth)
        if self.road_mask is not None:
            if self.road_mask.shape != self.rgb.shape[:2]:
                raise ValueError(
                    f'road_mask shape {self.road_mask.shape} does not match the RGB size '
                    f'{self.rgb.shape[:2]}')
        if self.road_valid is not None:
            if self.road_mask is None or self.road_valid.shape != self.road_mask.shape:
                raise ValueError('road_valid needs a road_mask of its shape')
            if self.road_valid.dtype != bool:
                raise ValueError(f'road_valid must be bool, got {self.road_valid.dtype}')

    @property
    def rgb_size(self) -> tuple[int, int]:
        """``(height, width)`` of the RGB image in pixels."""
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def depth_size(self) -> tuple[int, int]:
        """``(height, width)`` of the depth image in pixels."""
        return self.depth.shape[0], self.depth.shape[1]


def validate_rgb(rgb: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``rgb`` is a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f'RGB image must be a numpy array, got {type(rgb).__name__}')
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f'RGB image must have shape (H, W, 3) with H, W > 0, got {rgb.shape}')
    if rgb.dtype != np.uint8:
        raise ValueError(f'RGB image must be uint8, got {rgb.dtype}')


def validate_depth(depth: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``depth`` is a non-empty ``(H, W)`` float32 array (metres)."""
    if not isinstance(depth, np.ndarray):
        raise ValueError(f'depth image must be a numpy array, got {type(depth).__name__}')
    if depth.ndim != 2 or depth.shape[0] == 0 or depth.shape[1] == 0:
        raise ValueError(f'depth image must have shape (H, W) with H, W > 0, got {depth.shape}')
    if depth.dtype != np.float32:
        raise ValueError(
            f'depth image must be float32 metres, got {depth.dtype} '
            '(convert millimetres with mmcert_ros.data.depth.millimetres_to_metres)')
