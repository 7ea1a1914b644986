"""Training data: frame sources (synthetic drives, KITTI Road), an on-disk cache, batches.

Rendering a 1242x375 synthetic frame costs far more than a training step on two CPU cores,
so frames are rendered once into a :class:`FrameCache` (one ``.npz`` per frame plus
``source.json`` describing how they were made) and reused every epoch; each step draws fresh
sub-sampling masks, so the model still sees new inputs every time.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmcert_ros.data.frame import Frame
from mmcert_ros.sim.fingerprint import simulator_fingerprint


class FrameCache:
    """A directory of frames rendered once: ``frame_00000.npz``... and ``source.json``.

    ``source.json`` holds the description of the source (generator, seed, size, count); a
    cache is reused only if its description equals the requested one, so changing any
    setting renders afresh instead of silently training on stale frames.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def manifest(self) -> Path:
        return self.directory / 'source.json'

    def description(self) -> dict[str, Any] | None:
        """The stored source description, or None if the cache is absent or incomplete."""
        if not self.manifest.is_file():
            return None
        try:
            stored = json.loads(self.manifest.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f'frame cache manifest {self.manifest} is corrupt: {error}') from error
        count = stored.get('num_frames')
        if not isinstance(count, int) or not all(self._path(i).is_file() for i in range(count)):
            return None
        return stored

    def write(self, frames: Iterable[Frame], description: dict[str, Any]) -> list[Frame]:
        """Store ``frames`` (each needs a ``road_mask``) under ``description``; returns them."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest.unlink(missing_ok=True)  # incomplete until the manifest is written
        stored = []
        for index, frame in enumerate(frames):
            if frame.road_mask is None:
                raise ValueError(f'frame {index} ({frame.name!r}) has no road mask to train on')
            np.savez(self._path(index), rgb=frame.rgb, depth=frame.depth,
                     road_mask=frame.road_mask, name=np.array(frame.name))
            stored.append(frame)
        self.manifest.write_text(json.dumps(dict(description, num_frames=len(stored)), indent=1))
        return stored

    def read(self) -> list[Frame]:
        """All cached frames, in order."""
        description = self.description()
        if description is None:
            raise FileNotFoundError(f'no complete frame cache in {self.directory}')
        frames = []
        for index in range(description['num_frames']):
            path = self._path(index)
            try:
                with np.load(path) as data:
                    frames.append(Frame(rgb=data['rgb'], depth=data['depth'],
                                        road_mask=data['road_mask'], name=str(data['name'])))
            except (OSError, KeyError, ValueError) as error:
                raise ValueError(f'cached frame {path} is unreadable: {error}') from error
        return frames

    def _path(self, index: int) -> Path:
        return self.directory / f'frame_{index:05d}.npz'


def cached_frames(cache: FrameCache | None, description: dict[str, Any],
                  render: Callable[[], Iterable[Frame]]) -> list[Frame]:
    """Frames from ``cache`` if it holds exactly ``description``, else ``render()`` them
    (and store them in the cache when one is given)."""
    if cache is not None:
        stored = cache.description()
        if stored is not None and {k: v for k, v in stored.items()
                                   if k != 'num_frames'} == description:
            return cache.read()
        return cache.write(render(), description)
    return list(render())


def synthetic_frames(seed: int, num_frames: int, width: int, height: int,
                     depth: str = 'dense', frame_stride: int = 1,
                     cache_dir: str | Path | None = None) -> tuple[list[Frame], dict[str, Any]]:
    """Frames ``0, stride, 2 stride, ...`` of synthetic drive ``seed``, and their description.

    :param depth: 'dense' or 'lidar', passed to the simulator.
    :param frame_stride: frames skipped between kept ones (10 = one frame a second at 10 Hz),
        for more varied scenes per rendered frame.
    :param cache_dir: where to keep the rendered frames (None = render in memory only).
    """
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive

    if frame_stride < 1:
        raise ValueError(f'frame_stride must be >= 1, got {frame_stride}')
    description = {'source': 'synthetic', 'seed': int(seed), 'width': int(width),
                   'height': int(height), 'depth': depth, 'frames': int(num_frames),
                   'frame_stride': int(frame_stride), 'simulator': simulator_fingerprint()}

    def render() -> Iterator[Frame]:
        sim = SyntheticDrive(seed, SceneConfig().with_image_size(width, height))
        return (sim.frame(index * frame_stride, depth) for index in range(num_frames))

    cache = FrameCache(cache_dir) if cache_dir is not None else None
    return cached_frames(cache, description, render), description


def kitti_frames(root: str | Path, split: str, split_seed: int = 0, test_fraction: float = 0.25
                 ) -> tuple[list[Frame], dict[str, Any]]:
    """Frames of a KITTI Road folder (``mmcert_ros.data.kitti.KittiRoad``) and their description.

    :param split: 'train', 'test' or 'all' of the seeded split.
    """
    from mmcert_ros.data.kitti import KittiRoad

    frames = [frame for frame in KittiRoad(root).frames(split, seed=split_seed,
                                                        test_fraction=test_fraction)
              if frame.road_mask is not None]
    if not frames:
        raise ValueError(f'KITTI folder {root} has no {split} frames with ground truth')
    description = {'source': 'kitti', 'root': str(Path(root).resolve()), 'split': split,
                   'split_seed': split_seed, 'test_fraction': test_fraction,
                   'frames': len(frames)}
    return frames, description


@dataclass(frozen=True)
class Batch:
    """A training batch: ``rgb`` (B, 3, h, w) float in [0, 1], ``depth`` (B, 1, hd, wd)
    metres with invalid 0, ``target`` (B, h, w) int64 class ids."""

    rgb: torch.Tensor
    depth: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device) -> 'Batch':
        return Batch(self.rgb.to(device), self.depth.to(device), self.target.to(device))


class TrainingSet:
    """Frames held as tensors, served as randomly cropped and flipped batches.

    Crops keep the full image height (the network's row coordinate then still means "row of
    the image") and take ``crop_width`` columns; the depth crop covers the same part of the
    scene when the depth size differs from the RGB size. Sub-sampling happens later, on the
    crop, with the keep *fraction* of the full frame, so the density of kept pixels matches
    certification.
    """

    def __init__(self, frames: list[Frame], crop_width: int | None = None, flip: bool = True
                 ) -> None:
        if not frames:
            raise ValueError('no training frames')
        self.rgb = [torch.from_numpy(np.ascontiguousarray(f.rgb)).permute(2, 0, 1) for f in frames]
        self.depth = [torch.from_numpy(np.nan_to_num(f.depth, nan=0.0, posinf=0.0,
                                                     neginf=0.0).clip(min=0.0))[None]
                      for f in frames]
        self.target = []
        for frame in frames:
            if frame.road_mask is None:
                raise ValueError(f'frame {frame.name!r} has no road mask to train on')
            self.target.append(torch.from_numpy(np.ascontiguousarray(frame.road_mask, np.uint8)))
        self.height = min(f.rgb.shape[0] for f in frames)
        full_width = min(f.rgb.shape[1] for f in frames)
        self.crop_width = min(crop_width or full_width, full_width)
        #: share of the frame width a crop covers (scales the points kept per crop)
        self.crop_share = self.crop_width / full_width
        self.flip = flip

    def __len__(self) -> int:
        return len(self.rgb)

    def batch(self, indices: Iterable[int], rng: np.random.Generator) -> Batch:
        """Crops of the frames ``indices``, offsets and flips drawn from ``rng``."""
        rgbs, depths, targets = [], [], []
        for index in indices:
            rgb, depth, target = self.rgb[index], self.depth[index], self.target[index]
            height, width = rgb.shape[1:]
            top = int(rng.integers(0, height - self.height + 1))
            left = int(rng.integers(0, width - self.crop_width + 1))
            rows, cols = slice(top, top + self.height), slice(left, left + self.crop_width)
            rgb, target = rgb[:, rows, cols], target[rows, cols]
            depth = depth[:, _scaled(rows, depth.shape[1], height),
                          _scaled(cols, depth.shape[2], width)]
            if self.flip and rng.random() < 0.5:
                rgb, depth, target = rgb.flip(-1), depth.flip(-1), target.flip(-1)
            rgbs.append(rgb)
            depths.append(depth)
            targets.append(target)
        depth_size = min(d.shape[1] for d in depths), min(d.shape[2] for d in depths)
        depths = [d[:, :depth_size[0], :depth_size[1]] for d in depths]
        return Batch(torch.stack(rgbs).float().div_(255.0), torch.stack(depths),
                     torch.stack(targets).long())


def _scaled(span: slice, size: int, reference: int) -> slice:
    """``span`` of a ``reference``-long axis mapped onto an axis of ``size`` (same extent)."""
    if size == reference:
        return span
    return slice(span.start * size // reference, span.stop * size // reference)
