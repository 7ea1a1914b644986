"""Shared inputs of the fleet tests: small synthetic drives as real MCAP bags and KITTI folders,
and the settings they are evaluated with (the shipped model, small N)."""
from __future__ import annotations

import csv
from pathlib import Path

from mmcert_ros.bags.kitti_to_bag import kitti_to_bag
from mmcert_ros.evaluation.inputs import InputSpec, make_spec
from mmcert_ros.segmenter.settings import load_settings
from mmcert_ros.sim.synthetic import SceneConfig, export_kitti

GT_TOPIC = '/road_gt/image'
#: the smallest frames at which the shipped model certifies a good part of the road
SCENE = SceneConfig().with_image_size(248, 75)
#: columns of frames.csv that are timings (they differ from run to run)
TIMING_SUFFIX = '_s'


def fleet_settings(**overrides):
    """The node's defaults with a small N, a fixed seed and alpha 0.05 (a curve of a few
    points, a certified IoU near 0.45 on these frames)."""
    return load_settings(None, {'certify.num_samples': 24, 'certify.seed': 3,
                                'certify.alpha': 0.05, 'model.device': 'cpu', **overrides})


def make_drives(root: Path, frames: dict[str, int], kitti: dict[str, int] = {}) -> list[InputSpec]:
    """One bag per entry of ``frames`` (name -> frame count, kitti2bag of a synthetic drive)
    and one KITTI folder per entry of ``kitti``; their specs in that order."""
    specs = []
    defaults = InputSpec(id='', kind='bag', path=Path(), gt_topic=GT_TOPIC)
    for number, (name, count) in enumerate(frames.items()):
        folder = root / f'{name}_kitti'
        export_kitti(folder, seed=1 + number, num_frames=count, config=SCENE)
        kitti_to_bag(folder, root / name)
        specs.append(make_spec(root / name, 'bag', defaults))
    for number, (name, count) in enumerate(kitti.items()):
        export_kitti(root / name, seed=50 + number, num_frames=count, config=SCENE)
        specs.append(make_spec(root / name, 'kitti', defaults))
    return specs


def frame_rows(path: Path) -> list[dict]:
    """The rows of a frames.csv without the timing columns."""
    with path.open() as stream:
        return [{key: value for key, value in row.items() if not key.endswith(TIMING_SUFFIX)}
                for row in csv.DictReader(stream)]


def without_timings(metrics: dict) -> dict:
    """metrics.json without the latencies (they differ from run to run)."""
    return {key: value for key, value in metrics.items() if key != 'latency_s'}
