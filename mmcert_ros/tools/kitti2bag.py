"""Convert a KITTI Road folder into a rosbag2 bag (MCAP or sqlite3) for replay and evaluation.

Topics (the segmenter node's inputs in the root namespace, so `ros2 bag play OUT` feeds it):
/rgb/image (rgb8), /depth/image (16UC1 millimetres, 0 = invalid), /rgb/camera_info (from
P2) and /road_gt/image (mono8, 255 = road), stamped 100 ms apart in frame-name order from
--start-time (default: now, so `ros2 bag play` without sim time feeds current stamps; give a
fixed time, e.g. `--start-time 2011-09-26T13:02:25Z` or `--start-time 0`, for identical bags
from identical folders), e.g.

    mmcert-ros kitti2bag data_road kitti_road_bag --storage mcap
    mmcert-ros evaluate --bag kitti_road_bag --gt-topic /road_gt/image --seed 0
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from mmcert_ros.errors import UserError, user_input

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def start_time_ns(text: str) -> int:
    """Nanoseconds since the Unix epoch from 'now', seconds (``1317042145.5``) or an ISO 8601
    date-time (``2011-09-26T13:02:25Z``; without a zone it is UTC).

    :raises UserError: anything else, or a time before 1970.
    """
    if text == 'now':
        return time.time_ns()
    try:
        seconds = Decimal(text)
        if not seconds.is_finite():
            raise UserError(f'--start-time must be a finite time, got {text!r}')
        stamp_ns = int(seconds * 1_000_000_000)
    except InvalidOperation:
        try:
            moment = datetime.fromisoformat(text.replace('Z', '+00:00'))
        except ValueError:
            raise UserError(f"--start-time: expected 'now', seconds since 1970 or an ISO 8601 "
                            f'date-time, got {text!r}') from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        stamp_ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    if stamp_ns < 0:
        raise UserError(f'--start-time must not be before 1970, got {text!r}')
    return stamp_ns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('kitti', type=Path, metavar='DIR',
                        help='KITTI Road folder (holding training/) or a subset folder')
    parser.add_argument('out', type=Path, metavar='OUT', help='bag folder to create')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='rosbag2 storage (default mcap; sqlite3 for Humble defaults)')
    parser.add_argument('--subset', choices=('training', 'testing'), default='training',
                        help='KITTI subset (default training; testing has no ground truth)')
    parser.add_argument('--start-time', default='now', metavar='TIME',
                        help="stamp of the first frame: 'now' (default), seconds since 1970 or "
                             'an ISO 8601 date-time; frames follow 100 ms apart')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it is an existing bag')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from tqdm import tqdm

    from mmcert_ros.bags.kitti_to_bag import kitti_to_bag
    from mmcert_ros.data.kitti import KittiRoad

    out = args.out
    start_ns = start_time_ns(args.start_time)
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
                                  subset=args.subset, start_ns=start_ns,
                                  on_frame=lambda name: bar.update(1))
        if out.exists():
            shutil.rmtree(out)
        (staging / out.name).rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    listing = ', '.join(f'{topic} ({count})' for topic, count in counts.items())
    print(f'kitti2bag: wrote {out} ({args.storage}): {listing}')
    return 0
