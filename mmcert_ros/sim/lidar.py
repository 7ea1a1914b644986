"""A LiDAR-like sparse depth pattern: the beams of a spinning scanner projected into the image.

A Velodyne HDL-64E-like scanner (64 beams from +2.0 to -24.8 degrees elevation, 0.09 degree
azimuth steps, KITTI's sensor) is assumed to sit at the camera's optical centre, so each
return lands on the pixel whose ray it follows and its depth is the scene depth at that
pixel. Beams appear as gently bending rows of points, denser near the bottom of the image.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mmcert_ros.sim.camera import CameraModel


@dataclass(frozen=True)
class LidarConfig:
    """The scanner that produces ``depth='lidar'`` frames and the velodyne files.

    :ivar beams: number of laser beams, evenly spaced in elevation.
    :ivar elevation_range_deg: lowest and highest beam elevation, degrees (up positive).
    :ivar azimuth_step_deg: horizontal angle between two firings of a beam, degrees.
    :ivar max_range_m: returns beyond this Euclidean range are lost.
    :ivar dropout: probability that a return inside the range is lost anyway.
    :ivar range_noise_m: standard deviation of the Gaussian range noise, metres.
    """

    beams: int = 64
    elevation_range_deg: tuple[float, float] = (-24.8, 2.0)
    azimuth_step_deg: float = 0.09
    max_range_m: float = 120.0
    dropout: float = 0.05
    range_noise_m: float = 0.02

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.elevation_range_deg)
        object.__setattr__(self, 'elevation_range_deg', (lo, hi))
        if not isinstance(self.beams, (int, np.integer)) or self.beams < 1:
            raise ValueError(f'LidarConfig.beams must be a positive integer, got {self.beams!r}')
        if not -90 < lo <= hi < 90:
            raise ValueError('LidarConfig.elevation_range_deg must satisfy '
                             '-90 < low <= high < 90, '
                             f'got {self.elevation_range_deg!r}')
        if not self.azimuth_step_deg > 0 or not self.max_range_m > 0:
            raise ValueError('LidarConfig.azimuth_step_deg and max_range_m must be positive')
        if not 0 <= self.dropout < 1 or not self.range_noise_m >= 0:
            raise ValueError('LidarConfig.dropout must be in [0, 1) and range_noise_m >= 0, '
                             f'got {self.dropout!r}, {self.range_noise_m!r}')


@lru_cache(maxsize=8)
def beam_pixels(camera: CameraModel, lidar: LidarConfig) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Pixels hit by the scanner's beams: ``(rows, cols, range_per_depth)``, each unique.

    ``range_per_depth`` is the Euclidean length of the ray per metre of depth
    (``sqrt(1 + ((u-cx)/fx)**2 + ((v-cy)/fy)**2)``), to apply the range limit.
    The arrays are read-only and shared between calls.
    """
    elevations = np.radians(np.linspace(*lidar.elevation_range_deg, lidar.beams))
    half_fov = np.arctan(max(camera.cx + 0.5, camera.width - 0.5 - camera.cx) / camera.fx)
    step = np.radians(lidar.azimuth_step_deg)
    azimuths = np.arange(-np.floor(half_fov / step), np.floor(half_fov / step) + 1) * step
    el, az = np.meshgrid(elevations, azimuths, indexing='ij')
    u = camera.cx + camera.fx * np.tan(az)
    v = camera.cy - camera.fy * np.tan(el) / np.cos(az)
    cols = np.rint(u).astype(np.int64)
    rows = np.rint(v).astype(np.int64)
    inside = (cols >= 0) & (cols < camera.width) & (rows >= 0) & (rows < camera.height)
    flat = np.unique(rows[inside] * camera.width + cols[inside])
    rows, cols = np.divmod(flat, camera.width)
    ratio = np.sqrt(1 + ((cols - camera.cx) / camera.fx) ** 2
                    + ((rows - camera.cy) / camera.fy) ** 2)
    for array in (rows, cols, ratio):
        array.setflags(write=False)
    return rows, cols, ratio


def sparse_lidar_depth(dense_depth: np.ndarray, camera: CameraModel, lidar: LidarConfig,
                       rng: np.random.Generator) -> np.ndarray:
    """Sample ``dense_depth`` (float32 metres, NaN invalid) along the scanner's beams.

    Returns float32 metres of the same shape, NaN everywhere except at beam pixels with a
    valid return within ``max_range_m`` that survived ``dropout``; those carry the dense
    depth plus Gaussian range noise (``range_noise_m``, along the ray).
    """
    rows, cols, ratio = beam_pixels(camera, lidar)
    depth = dense_depth[rows, cols].astype(np.float64)
    keep = np.isfinite(depth) & (depth * ratio <= lidar.max_range_m)
    keep &= rng.uniform(size=depth.shape) >= lidar.dropout
    if lidar.range_noise_m > 0:
        depth = depth + rng.normal(0.0, lidar.range_noise_m, depth.shape) / ratio
    sparse = np.full(dense_depth.shape, np.nan, dtype=np.float32)
    sparse[rows[keep], cols[keep]] = np.maximum(depth[keep], 0.05).astype(np.float32)
    return sparse
