"""Road IoU of the shipped models under other LiDAR scan patterns and without depth.

Held-out synthetic drives (seeds 900000.. , no training run uses them), 1242x375. Per frame the
simulator's LiDAR (``mmcert_ros.sim.lidar``) scans with 16, 32, 64 (the pattern the points
model was trained on) and 128 beams; each scan is certified as points (``--keep-points`` kept
per sample) by both shipped models, and the same frame is also certified with the dense depth
image and with no depth at all (the node's RGB-only mode: depth all invalid). The figure is
the plain road IoU of the N-sample majority vote, pixel counts pooled over the frames
(docs/certification.md section 7), the same draws (``--seed``) for every case.

    python bench/scan_patterns.py --json docs/figures/scan_patterns.json

What it does not cover: every scan comes from the same simulated world, seen from the
camera's optical centre; a real sensor's mounting, beam layout and scene are other
distributions.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.data.projection import points_from_depth_image
from mmcert_ros.evaluation.metrics import Confusion, plain_confusion
from mmcert_ros.models import DEFAULT_CHECKPOINT, POINTS_CHECKPOINT, load_model
from mmcert_ros.sim.lidar import LidarConfig
from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
from mmcert_ros.tools.bench import cpu_features, cpu_model, isa_class

HELD_OUT_FIRST_SEED = 900_000
DENSE, RGB_ONLY = 'dense depth image', 'RGB only'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--drives', type=int, default=4)
    parser.add_argument('--frames', type=int, nargs='+', default=[0, 20, 40],
                        help='frame indices of each drive')
    parser.add_argument('--beams', type=int, nargs='+', default=[16, 32, 64, 128])
    parser.add_argument('--num-samples', type=int, default=16)
    parser.add_argument('--keep-points', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0, help='sampling seed')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()

    config = CertifyConfig(num_samples=args.num_samples, seed=args.seed, device='cpu',
                           keep_points=args.keep_points)
    models = {'points.pt': POINTS_CHECKPOINT, 'default.pt': DEFAULT_CHECKPOINT}
    segmenters = {name: CertifiedSegmenter(load_model(str(path), 'cpu'), config)
                  for name, path in models.items()}
    cases = [f'{beams} beams' for beams in args.beams] + [DENSE, RGB_ONLY]
    pooled = {name: {case: Confusion() for case in cases} for name in models}
    started, load = time.perf_counter(), os.getloadavg()[0]
    scene = SceneConfig().with_image_size(1242, 375)
    for seed in range(HELD_OUT_FIRST_SEED, HELD_OUT_FIRST_SEED + args.drives):
        for index in args.frames:
            inputs = {}
            for beams in args.beams:
                drive = SyntheticDrive(seed, dataclasses.replace(
                    scene, lidar=LidarConfig(beams=beams)))
                frame = drive.frame(index, 'lidar')
                inputs[f'{beams} beams'] = (frame, points_from_depth_image(frame.depth,
                                                                           frame.name))
            frame = SyntheticDrive(seed, scene).frame(index, 'dense')
            inputs[DENSE] = (frame, frame.depth)
            inputs[RGB_ONLY] = (frame, np.zeros_like(frame.depth))
            for name, segmenter in segmenters.items():
                for case, (frame, depth) in inputs.items():
                    labels = segmenter.certify(frame.rgb, depth).labels
                    pooled[name][case] += plain_confusion(labels, frame.road_mask)
            print(f'drive {seed} frame {index} done, {time.perf_counter() - started:.0f} s',
                  flush=True)
    figures = {
        'cpu': cpu_model(), 'isa': isa_class(cpu_features()), 'load_average_start': load,
        'load_average_end': os.getloadavg()[0], 'drives': args.drives, 'frames': args.frames,
        'num_samples': args.num_samples, 'keep_points': args.keep_points,
        'sampling_seed': args.seed,
        'road_iou': {name: {case: pooled[name][case].iou for case in cases} for name in models}}
    print(f"\nplain road IoU, majority of N = {args.num_samples}, "
          f"{args.drives * len(args.frames)} held-out frames:")
    print(f"{'input':>20} " + ' '.join(f'{name:>11}' for name in models))
    for case in cases:
        print(f'{case:>20} ' + ' '.join(f"{figures['road_iou'][name][case]:>11.3f}"
                                        for name in models))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
