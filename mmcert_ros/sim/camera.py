"""Pinhole camera model (KITTI Road geometry by default) shared by the simulator and readers.

Conventions (KITTI rectified camera): x right, y down, z forward, metres. Pixel ``(u, v)``
integer coordinates are pixel *centres*; column ``u`` looks along the ray
``((u - cx) / fx, (v - cy) / fy, 1)``. Depth everywhere in this package is the z coordinate
(distance along the optical axis), not the Euclidean range.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: KITTI Road P2 intrinsics (image_2) and camera height above the road, as published.
KITTI_WIDTH = 1242
KITTI_HEIGHT = 375
KITTI_FX = 721.5377
KITTI_FY = 721.5377
KITTI_CX = 609.5593
KITTI_CY = 172.854
KITTI_CAMERA_HEIGHT_M = 1.65


@dataclass(frozen=True)
class CameraModel:
    """A level pinhole camera mounted ``mount_height_m`` above a flat road.

    :ivar width: image width in pixels.
    :ivar height: image height in pixels.
    :ivar fx: focal length along x, pixels.
    :ivar fy: focal length along y, pixels.
    :ivar cx: principal point x, pixels (pixel-centre convention).
    :ivar cy: principal point y, pixels; also the image row of the horizon.
    :ivar mount_height_m: optical centre above the road plane, metres.
    """

    width: int = KITTI_WIDTH
    height: int = KITTI_HEIGHT
    fx: float = KITTI_FX
    fy: float = KITTI_FY
    cx: float = KITTI_CX
    cy: float = KITTI_CY
    mount_height_m: float = KITTI_CAMERA_HEIGHT_M

    def __post_init__(self) -> None:
        for name in ('width', 'height'):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 8:
                raise ValueError(f'camera {name} must be an integer >= 8 pixels, got {value!r}')
        for name in ('fx', 'fy', 'mount_height_m'):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f'camera {name} must be positive, got {getattr(self, name)!r}')
        if not 0 < self.cy < self.height - 1:
            raise ValueError(
                f'camera cy={self.cy} puts the horizon outside the image (height {self.height})')
        if not np.isfinite(self.cx):
            raise ValueError(f'camera cx must be finite, got {self.cx!r}')

    @classmethod
    def kitti(cls, width: int = KITTI_WIDTH, height: int = KITTI_HEIGHT) -> CameraModel:
        """KITTI Road P2 geometry, scaled to ``width`` x ``height`` pixels."""
        return cls().scaled(width, height)

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same field of view rendered at ``width`` x ``height`` pixels.

        Focal lengths scale with the size; the principal point scales about pixel
        *edges* (``c' = (c + 0.5) * s - 0.5``) so that the image content maps exactly.
        """
        sx = width / self.width
        sy = height / self.height
        return replace(self, width=int(width), height=int(height),
                       fx=self.fx * sx, fy=self.fy * sy,
                       cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix K (float64)."""
        return np.array([[self.fx, 0.0, self.cx],
                         [0.0, self.fy, self.cy],
                         [0.0, 0.0, 1.0]])

    def column_slopes(self) -> np.ndarray:
        """``(W,)`` float64 ``(u - cx) / fx``: lateral metres per metre of depth per column."""
        return (np.arange(self.width) - self.cx) / self.fx

    def row_slopes(self) -> np.ndarray:
        """``(H,)`` float64 ``(v - cy) / fy``: downward metres per metre of depth per row."""
        return (np.arange(self.height) - self.cy) / self.fy

    def ground_depth(self, rows: np.ndarray | None = None,
                     plane_height_m: float = 0.0) -> np.ndarray:
        """Depth (z, metres) at which each image row meets a horizontal plane.

        The plane lies ``plane_height_m`` above the road (0 = the road itself), so its
        distance below the camera is ``mount_height_m - plane_height_m``; the depth is
        ``fy * (mount_height_m - plane_height_m) / (v - cy)``. Rows at or above the
        horizon (``v <= cy``) never meet the plane and get ``inf``.

        :param rows: row indices (default: every row of the image).
        """
        v = np.arange(self.height, dtype=np.float64) if rows is None else np.asarray(
            rows, dtype=np.float64)
        below = v - self.cy
        drop = self.mount_height_m - plane_height_m
        with np.errstate(divide='ignore'):
            return np.where(below > 0, self.fy * drop / np.where(below > 0, below, 1.0), np.inf)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project ``(N, 3)`` camera-frame points to ``(N, 2)`` float pixel coordinates (u, v)."""
        points = np.asarray(points, dtype=np.float64)
        z = points[:, 2]
        return np.stack([self.fx * points[:, 0] / z + self.cx,
                         self.fy * points[:, 1] / z + self.cy], axis=1)
