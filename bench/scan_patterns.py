"""Road IoU of the shipped models under other LiDAR scan patterns and without depth.

Held-out synthetic drives (seeds 900000.. , no training run uses them), 1242x375. Per frame the
simulator's LiDAR (``mmcert_ros.sim.lidar``) scans with 16, 32, 64 (the pattern the points
model was trained on) and 128 beams; each scan is certified as points (``--keep-points`` kept
per sample) by both shipped models, and the same frame is also certified with the dense depth
image and with no depth at all (the node's RGB-only mode: depth all invalid). The figure is
the plain road IoU of the N-sample majority vote, pixel counts pooled over the frames
(docs/certification.md section 7), the same draws (``--seed``) for every case.

An *unseen scene* is drawn without the simulator (:func:`flat_world`: numpy alone, a flat
world seen from a camera 1.65 m up, an asphalt band, grass and sky with pixel noise, and a
sparse scan of every 5th row and 2nd column of its depth) and certified the same three ways.

    python bench/scan_patterns.py --json docs/figures/scan_patterns.json

What it does not cover: every simulated scan comes from the same simulated world, seen from
the camera's optical centre; a real sensor's mounting, beam layout and scene are other
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

from mmcert_ros.speed.machine import machine_line, machine_record
from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.projection import points_from_depth_image
from mmcert_ros.evaluation.metrics import Confusion, plain_confusion
from mmcert_ros.models import DEFAULT_CHECKPOINT, POINTS_CHECKPOINT, load_model
from mmcert_ros.sim.lidar import LidarConfig
from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive

HELD_OUT_FIRST_SEED = 900_000
DENSE, RGB_ONLY = 'dense depth image', 'RGB only'
UNSEEN = 'unseen scene: '


def flat_world(width: int = 1242, height: int = 375, seed: int = 1) -> tuple[Frame, np.ndarray]:
    """A scene the simulator did not make: a flat world (KITTI's intrinsics, camera 1.65 m
    above the ground), a 7 m asphalt band to 80 m, grass, sky, Gaussian pixel noise (8 grey
    levels); and its sparse scan (every 5th row, every 2nd column of the depth), NaN
    elsewhere. Returns the frame (dense depth, road ground truth) and the scan's depth."""
    fx = fy = 721.5
    cx, cy, camera_height = 609.6, 172.9, 1.65
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    below = v > cy + 1
    z = np.full(v.shape, np.inf)
    z[below] = camera_height * fy / (v[below] - cy)
    ground = below & (z < 80)
    road = ground & (np.abs((u - cx) / fx * z) < 3.5)
    rgb = np.empty((height, width, 3))
    rgb[:] = (120, 160, 220)
    rgb[ground] = (70, 120, 50)
    rgb[road] = (95, 95, 100)
    rgb += np.random.default_rng(seed).normal(0.0, 8.0, rgb.shape)
    depth = np.where(ground, z, np.nan).astype(np.float32)
    scan = np.full_like(depth, np.nan)
    scan[::5, ::2] = depth[::5, ::2]
    frame = Frame(rgb=np.clip(rgb, 0, 255).astype(np.uint8), depth=depth,
                  road_mask=road.astype(np.uint8), name='flat_world')
    return frame, scan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--drives', type=int, default=4)
    parser.add_argument('--frames', type=int, nargs='+', default=[0, 20, 40],
                        help='frame indices of each drive')
    parser.add_argument('--beams', type=int, nargs='+', default=[16, 32, 64, 128])
    parser.add_argument('--num-samples', type=int, default=16)
    parser.add_argument('--keep-points', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0, help='sampling seed')
    parser.add_argument('--points-checkpoint', default=str(POINTS_CHECKPOINT),
                        help='the points model to measure (default: the shipped one)')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()

    config = CertifyConfig(num_samples=args.num_samples, seed=args.seed, device='cpu',
                           keep_points=args.keep_points)
    models = {'points.pt': args.points_checkpoint, 'default.pt': DEFAULT_CHECKPOINT}
    segmenters = {name: CertifiedSegmenter(load_model(str(path), 'cpu'), config)
                  for name, path in models.items()}
    cases = ([f'{beams} beams' for beams in args.beams] + [DENSE, RGB_ONLY]
             + [UNSEEN + case for case in ('points', DENSE, RGB_ONLY)])
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
    frame, scan = flat_world()
    for name, segmenter in segmenters.items():
        for case, depth in (('points', points_from_depth_image(scan, frame.name)),
                            (DENSE, frame.depth), (RGB_ONLY, np.zeros_like(frame.depth))):
            labels = segmenter.certify(frame.rgb, depth).labels
            pooled[name][UNSEEN + case] += plain_confusion(labels, frame.road_mask)
    figures = {
        'machine': machine_record(), 'load_average_start': load,
        'load_average_end': os.getloadavg()[0], 'drives': args.drives, 'frames': args.frames,
        'num_samples': args.num_samples, 'keep_points': args.keep_points,
        'points_checkpoint': args.points_checkpoint,
        'sampling_seed': args.seed,
        'road_iou': {name: {case: pooled[name][case].iou for case in cases} for name in models}}
    print(machine_line())
    print(f"\nplain road IoU, majority of N = {args.num_samples}, "
          f"{args.drives * len(args.frames)} held-out frames:")
    print(f"{'input':>34} " + ' '.join(f'{name:>11}' for name in models))
    for case in cases:
        print(f'{case:>34} ' + ' '.join(f"{figures['road_iou'][name][case]:>11.3f}"
                                        for name in models))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
