"""Synthetic RGB-D road drives: the public entry points of the simulator.

>>> from mmcert_ros.sim.synthetic import SceneConfig, drive
>>> config = SceneConfig().with_image_size(320, 96)
>>> for frame in drive(seed=7, num_frames=3, config=config, depth='lidar'):
...     print(frame.name, frame.rgb.shape, frame.stamp_ns)            # doctest: +SKIP

Every frame is a :class:`~mmcert_ros.data.frame.Frame` with ``rgb`` (uint8 RGB),
``depth`` (float32 metres: exact dense z-depth, or the sparse LiDAR-like pattern; invalid
= NaN, the sky is always invalid), ``road_mask`` (uint8, 1 = road), ``camera_matrix``,
``stamp_ns`` (``index * 1e9 / frame_rate_hz``, i.e. +100 ms per frame at 10 Hz) and
``frame_id``. A drive is a pure function of its seed: frame ``i`` is identical whether it
is rendered alone (:meth:`SyntheticDrive.rendering`) or in sequence.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmcert_ros.sim.camera import CameraModel
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.kitti import NAME_PATTERN, KittiCalibration, depth_to_velodyne, \
    lidar_calibration, write_kitti_frame
from mmcert_ros.sim.lidar import LidarConfig, sparse_lidar_depth
from mmcert_ros.sim.motion import Motion
from mmcert_ros.sim.render import Renderer, Rendering
from mmcert_ros.sim.scene import DISTRICT_NAMES, STREAM_FRAME, SceneConfig, World, \
    make_lighting, random_generator

__all__ = ['CameraModel', 'LidarConfig', 'SceneConfig', 'SyntheticDrive', 'drive',
           'render_frame', 'export_kitti', 'DEPTH_MODES']

DEPTH_MODES = ('dense', 'lidar')
FRAME_ID = 'camera'
#: frame indices drawn by :func:`render_frame` (about 30 minutes of driving at 10 Hz)
RANDOM_FRAME_RANGE = 18000


def _check_depth_mode(depth: str) -> None:
    if depth not in DEPTH_MODES:
        raise ValueError(f"depth must be one of {DEPTH_MODES}, got {depth!r}")


class SyntheticDrive:
    """One deterministic drive: world, motion, light and a renderer for ``config``.

    :param seed: non-negative integer; everything in the drive derives from it.
    :param config: the simulator knobs (default: KITTI geometry at 1242x375).
    """

    def __init__(self, seed: int, config: SceneConfig | None = None) -> None:
        self.config = config if config is not None else SceneConfig()
        if not isinstance(self.config, SceneConfig):
            raise ValueError(f'config must be a SceneConfig, got {type(self.config).__name__}')
        self.seed = seed
        self.world = World(seed, self.config)
        self.motion = Motion(self.world)
        self.lighting = make_lighting(seed, self.config)
        self.renderer = _renderer(self.config)

    def rendering(self, index: int) -> Rendering:
        """Render frame ``index`` (dense depth), independent of any other frame."""
        if index < 0:
            raise ValueError(f'frame index must be >= 0, got {index}')
        rng = random_generator(self.seed, STREAM_FRAME, index)
        return self.renderer.render(self.world, self.motion, self.lighting, index, rng)

    def lidar_depth(self, rendering: Rendering) -> np.ndarray:
        """The sparse LiDAR-like depth of a rendering (float32 metres, NaN = no return)."""
        rng = random_generator(self.seed, STREAM_FRAME, rendering.index + (1 << 40))
        return sparse_lidar_depth(rendering.depth, self.config.camera, self.config.lidar, rng)

    @property
    def lidar_calibration(self) -> KittiCalibration:
        """The scanner's KITTI-style calibration
        (:func:`~mmcert_ros.data.kitti.lidar_calibration`): ``calibration.camera_extrinsic()``
        is its LiDAR-to-camera extrinsic and the camera's K its intrinsics."""
        return lidar_calibration(self.config.camera.matrix)

    def lidar_scan(self, rendering: Rendering) -> np.ndarray:
        """The LiDAR scan of a rendering as a point cloud: ``(N, 4)`` float32 velodyne-frame
        x, y, z (metres) and reflectance (the pixel's brightness in [0, 1]), one point per
        return of :meth:`lidar_depth`; projected with :attr:`lidar_calibration` it lands on
        the same pixels and depths."""
        return depth_to_velodyne(self.lidar_depth(rendering), self.lidar_calibration,
                                 rendering.rgb.mean(axis=2) / 255.0)

    def frame(self, index: int, depth: str = 'dense') -> Frame:
        """Frame ``index`` of the drive with ``depth`` = ``'dense'`` or ``'lidar'``."""
        _check_depth_mode(depth)
        return self.to_frame(self.rendering(index), depth)

    def to_frame(self, rendering: Rendering, depth: str = 'dense') -> Frame:
        """Package a rendering of this drive as a :class:`Frame`."""
        _check_depth_mode(depth)
        depth_m = rendering.depth if depth == 'dense' else self.lidar_depth(rendering)
        stamp_ns = int(round(rendering.index * 1e9 / self.config.frame_rate_hz))
        return Frame(rgb=rendering.rgb, depth=depth_m, road_mask=rendering.road_mask,
                     stamp_ns=stamp_ns, frame_id=FRAME_ID,
                     camera_matrix=self.config.camera.matrix,
                     name=f'synthetic_{self.seed}_{rendering.index:06d}',
                     extras={'seed': self.seed, 'index': rendering.index,
                             'ego_s_m': rendering.ego.s, 'ego_speed_mps': rendering.ego.speed,
                             'district': DISTRICT_NAMES[self.world.district_at(
                                 rendering.ego.s).kind]})


_RENDERERS: dict[SceneConfig, Renderer] = {}


def _renderer(config: SceneConfig) -> Renderer:
    """One renderer (and its precomputed tables) per configuration, reused across drives."""
    if config not in _RENDERERS:
        if len(_RENDERERS) >= 8:
            _RENDERERS.pop(next(iter(_RENDERERS)))
        _RENDERERS[config] = Renderer(config)
    return _RENDERERS[config]


def drive(seed: int, num_frames: int | None = None, config: SceneConfig | None = None,
          depth: str = 'dense') -> Iterator[Frame]:
    """Frames of drive ``seed`` at ``config.frame_rate_hz`` (10 Hz), starting at index 0.

    :param num_frames: how many frames; ``None`` = an endless drive.
    :param depth: ``'dense'`` (exact z-depth everywhere but sky and beyond
        ``config.max_depth_m``) or ``'lidar'`` (sparse beam pattern, most pixels NaN).
    """
    _check_depth_mode(depth)
    if num_frames is not None and num_frames < 0:
        raise ValueError(f'num_frames must be >= 0 or None, got {num_frames}')
    sim = SyntheticDrive(seed, config)
    index = 0
    while num_frames is None or index < num_frames:
        yield sim.frame(index, depth)
        index += 1


def render_frame(rng_or_seed: int | np.random.Generator, config: SceneConfig | None = None,
                 depth: str = 'dense') -> Frame:
    """One frame from a random drive at a random time: for training on independent frames.

    :param rng_or_seed: a seed (same seed, same frame) or a ``numpy.random.Generator``
        from which the drive seed and the frame index are drawn.
    """
    _check_depth_mode(depth)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else \
        np.random.default_rng(rng_or_seed)
    seed = int(rng.integers(0, 2 ** 62))
    index = int(rng.integers(0, RANDOM_FRAME_RANGE))
    return SyntheticDrive(seed, config).frame(index, depth)


def export_kitti(out: Path | str, seed: int, num_frames: int, config: SceneConfig | None = None,
                 depth: str = 'dense', category: str = 'um', stride: int = 1) -> list[str]:
    """Write frames ``0, stride, 2 * stride, ...`` of drive ``seed`` in the KITTI Road layout.

    Files go to ``out/training/`` as ``<category>_<000000>.png`` etc. (see
    :mod:`mmcert_ros.data.kitti`): ``depth_u16`` holds the ``depth`` mode's depth, the
    ``velodyne`` scan always holds the LiDAR pattern (reflectance = pixel brightness), and
    the calibration is :func:`~mmcert_ros.data.kitti.lidar_calibration` of the camera.
    Returns the frame names written.
    """
    _check_depth_mode(depth)
    if num_frames < 1 or stride < 1:
        raise ValueError(f'num_frames and stride must be >= 1, got {num_frames}, {stride}')
    if NAME_PATTERN.match(f'{category}_000000') is None:
        raise ValueError(f'category must be lower-case letters, got {category!r}')
    sim = SyntheticDrive(seed, config)
    base = Path(out) / 'training'
    names = []
    for position in range(num_frames):
        rendering = sim.rendering(position * stride)
        frame = sim.to_frame(rendering, depth)
        name = f'{category}_{position:06d}'
        write_kitti_frame(base, name, frame, sim.lidar_calibration, sim.lidar_scan(rendering))
        names.append(name)
    return names
