"""Frames per second of the synthetic drive simulator on one CPU core.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python bench/synth_fps.py                  # 1242x375, dense + lidar
    OMP_NUM_THREADS=1 python bench/synth_fps.py --sizes 1242x375 621x188 160x48 --frames 40

The process pins itself to one CPU core and limits OpenCV to one thread. Each size is
timed over ``--frames`` consecutive frames of each of ``--seeds`` drives (after one
warm-up frame per drive, which builds the per-configuration tables). Both wall-clock
and CPU-time rates are printed: on a shared machine the CPU-time rate is the fairer one.
"""
from __future__ import annotations

import os

os.environ.setdefault('OMP_NUM_THREADS', '1')      # before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402

from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive  # noqa: E402
from mmcert_ros.speed.machine import machine_line  # noqa: E402


def measure(width: int, height: int, frames: int, seeds: int, depth: str) -> tuple[float, float]:
    """``(wall fps, cpu fps)`` rendering ``frames`` frames of each of ``seeds`` drives."""
    config = SceneConfig().with_image_size(width, height)
    wall = cpu = 0.0
    for seed in range(seeds):
        sim = SyntheticDrive(seed, config)
        sim.frame(0, depth)                                   # warm-up
        w0, c0 = time.perf_counter(), time.process_time()
        for index in range(1, frames + 1):
            sim.frame(index, depth)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
    count = frames * seeds
    return count / wall, count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', default=['1242x375'], help='WIDTHxHEIGHT ...')
    parser.add_argument('--frames', type=int, default=50, help='frames per drive (default 50)')
    parser.add_argument('--seeds', type=int, default=3, help='drives per size (default 3)')
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    print(f'one core (affinity {sorted(os.sched_getaffinity(0))}), '
          f'{args.frames} frames x {args.seeds} drives per row')
    print(f'{"size":>10} {"depth":>6} {"wall fps":>9} {"cpu fps":>8}')
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split('x'))
        for depth in ('dense', 'lidar'):
            wall, cpu = measure(width, height, args.frames, args.seeds, depth)
            print(f'{size:>10} {depth:>6} {wall:9.1f} {cpu:8.1f}')


if __name__ == '__main__':
    main()
