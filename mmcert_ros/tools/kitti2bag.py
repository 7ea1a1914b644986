"""Convert a KITTI Road folder into a rosbag2 bag (MCAP or sqlite3) for replay and evaluation.

Topics (the segmenter node's inputs in the root namespace, so `ros2 bag play OUT` feeds it):
/rgb/image (rgb8), /depth/image (16UC1 millimetres, 0 = invalid), /rgb/camera_info (from
P2) and /road_gt/image (mono8, 255 = road), stamped 100 ms apart in frame-name order, e.g.

    mmcert-ros kitti2bag data_road kitti_road_bag --storage mcap
    mmcert-ros evaluate --bag kitti_road_bag --gt-topic /road_gt/image --seed 0
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcert_ros.errors import UserError, user_input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('kitti', type=Path, metavar='DIR',
                        help='KITTI Road folder (holding training/) or a subset folder')
    parser.add_argument('out', type=Path, metavar='OUT', help='bag folder to create')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='rosbag2 storage (default mcap; sqlite3 for Humble defaults)')
    parser.add_argument('--subset', choices=('training', 'testing'), default='training',
                        help='KITTI subset (default training; testing has no ground truth)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it is an existing bag')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from tqdm import tqdm

    from mmcert_ros.bags.kitti import kitti_to_bag
    from mmcert_ros.data.kitti import KittiRoad

    out = args.out
    if out.exists():
        if not args.force:
            raise UserError(f'{out} exists already; pass --force to replace it')
        if not (out / 'metadata.yaml').is_file():
            raise UserError(f'{out} exists and is not a rosbag2 bag; not removing it')
    with user_input('DIR'):
        total = len(KittiRoad(args.kitti, args.subset))
    with user_input('OUT'):
        out.parent.mkdir(parents=True, exist_ok=True)
        # write next to OUT and swap in only when complete: --force never loses the old bag
        staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
    try:
        with tqdm(total=total, unit='frame', desc='kitti2bag', disable=args.no_progress) as bar, \
                user_input():   # kitti_to_bag names the file of every read or write error
            counts = kitti_to_bag(args.kitti, staging / out.name, storage=args.storage,
                                  subset=args.subset, on_frame=lambda name: bar.update(1))
        if out.exists():
            shutil.rmtree(out)
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    listing = ', '.join(f'{topic} ({count})' for topic, count in counts.items())
    print(f'kitti2bag: wrote {out} ({args.storage}): {listing}')
    return 0
