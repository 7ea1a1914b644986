"""Evaluate certified segmentation on a recorded rosbag2 / ROS 1 bag or a KITTI Road folder.

Replays the frames through the certification engine with the node's configuration and
writes metrics.json, frames.csv and curves.png (and, with --write-bag, an MCAP bag of the
inputs plus mmcert/segmentation, certification, certified_radius and overlay), e.g.

    mmcert-ros evaluate --bag drive_bag --rgb-topic /cam/rgb --depth-topic /cam/depth \\
        --gt-topic /cam/road_gt --config config/mmcert.yaml --seed 0 --out out/eval
    mmcert-ros evaluate --kitti data_road --seed 0 --out out/eval_kitti

RGB and depth (and ground truth: mono8, non-zero = road) are paired by header stamp exactly
as the segmenter node pairs them (parameter sync.slop). A --depth-topic holding
sensor_msgs/PointCloud2 (kitti2bag writes /points) is certified as LiDAR points, projected
with the CameraInfo beside the RGB topic and the bag's /tf_static (or --extrinsic). See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.errors import user_input
from mmcert_ros.tools.arguments import positive_int
from mmcert_ros.tools.l2_options import add_l2_arguments, l2_overrides

_DEFAULT_TOPICS = FrameTopics()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group('input (one of --bag and --kitti)')
    choice = source.add_mutually_exclusive_group(required=True)
    choice.add_argument('--bag', type=Path, metavar='PATH',
                        help='rosbag2 folder (MCAP or sqlite3), .mcap/.db3 file or ROS 1 .bag')
    choice.add_argument('--kitti', type=Path, metavar='DIR',
                        help='KITTI Road folder (the one holding training/ and testing/)')
    source.add_argument('--rgb-topic', default=_DEFAULT_TOPICS.rgb, metavar='T',
                        help=f'RGB image topic (default {_DEFAULT_TOPICS.rgb})')
    source.add_argument('--depth-topic', default=_DEFAULT_TOPICS.depth, metavar='T',
                        help='depth image topic, 16UC1 mm or 32FC1 m '
                             f'(default {_DEFAULT_TOPICS.depth})')
    source.add_argument('--extrinsic', type=float, nargs='+', metavar='V',
                        help="with a point-cloud depth topic: LiDAR-to-camera extrinsic, "
                             "'tx ty tz qx qy qz qw' or 16 values of a 4x4 matrix (default: "
                             "the bag's /tf_static)")
    source.add_argument('--gt-topic', metavar='T',
                        help='ground-truth topic, mono8, non-zero = road (default: none)')
    source.add_argument('--kitti-subset', default='training', choices=('training', 'testing'),
                        help='KITTI subset folder (default training: it has ground truth)')
    source.add_argument('--kitti-split', default='all', choices=('all', 'train', 'test'),
                        help="all frames, or the part of the seeded split that 'mmcert-ros "
                             "train --data kitti' trains on / holds out (default all)")
    engine = parser.add_argument_group('engine')
    engine.add_argument('--config', type=Path, metavar='YAML',
                        help="the node's ROS parameter file (config/mmcert.yaml) or a plain "
                             'CertifyConfig mapping (default: built-in defaults)')
    engine.add_argument('--model', metavar='CKPT',
                        help="model checkpoint (default: the config's model.checkpoint, "
                             'else the shipped model)')
    engine.add_argument('--seed', type=int,
                        help='fixed sub-sampling seed for reproducible figures '
                             '(default: the config; -1 or none = fresh entropy per frame)')
    engine.add_argument('--device', help="torch device, overrides model.device ('auto', 'cuda')")
    engine.add_argument('--slop', type=float, metavar='SECONDS',
                        help="stamp pairing tolerance, overrides the config's sync.slop")
    add_l2_arguments(parser)
    output = parser.add_argument_group('output')
    output.add_argument('--out', type=Path, metavar='DIR',
                        help='output folder (default out/evaluate/<input name>)')
    output.add_argument('--max-frames', type=positive_int, metavar='K', help='stop after K frames')
    output.add_argument('--write-bag', action='store_true',
                        help='also write DIR/bag: inputs plus the mmcert/* output topics (MCAP)')
    output.add_argument('--force', action='store_true',
                        help='overwrite the outputs of an earlier run in DIR')
    output.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from mmcert_ros.data.projection import Extrinsic
    from mmcert_ros.evaluation import BagFrames, KittiFrames, evaluate
    from mmcert_ros.pipeline.engines import build_engines
    from mmcert_ros.pipeline.settings import load_settings

    overrides = {'certify.seed': args.seed, 'model.device': args.device,
                 'sync.slop': args.slop, 'model.checkpoint': args.model, **l2_overrides(args)}
    with user_input('--config'):
        settings = load_settings(args.config, overrides)
    if args.bag is not None:
        extrinsic = None
        if args.extrinsic:
            with user_input('--extrinsic'):
                extrinsic = Extrinsic.from_values(args.extrinsic)
        source = BagFrames(args.bag, args.rgb_topic, args.depth_topic, args.gt_topic,
                           slop_s=settings.slop_s, extrinsic=extrinsic)
    else:
        with user_input('--kitti'):
            source = KittiFrames(args.kitti, args.kitti_subset, args.kitti_split)
    engines = build_engines(settings)   # device checked by load_settings
    out_dir = args.out or Path('out') / 'evaluate' / (args.bag or args.kitti).resolve().name
    try:
        metrics = evaluate(source, engines.segmenter, out_dir, model=settings.checkpoint,
                           max_frames=args.max_frames, write_bag=args.write_bag,
                           force=args.force, progress=not args.no_progress, l2=engines.l2)
    except KeyboardInterrupt as interrupt:
        print(f'mmcert-ros evaluate: {interrupt}', file=sys.stderr)
        return 130
    print(summary_line(metrics, out_dir))
    return 0


def summary_line(metrics: dict, out_dir: Path) -> str:
    """One line for the terminal: frames, skips, certified fraction and certified IoU."""
    parts = [f"{metrics['frames']} frames", f"{metrics['skipped']['total']} skipped messages",
             f"certified fraction {metrics['certified_fraction']:.3f}"]
    if 'certified' in metrics:
        parts.append(f"certified IoU {metrics['certified']['iou']:.3f} at r = "
                     f"({metrics['radius']['rgb']}, {metrics['radius']['depth']})")
    if 'l2' in metrics:
        parts.append(f"l2 certified fraction {metrics['l2']['certified_fraction']:.3f} at "
                     f"radius {metrics['l2']['radius']:g} (sigma {metrics['l2']['sigma']:g}, "
                     f"mean FCSB {metrics['l2']['fcsb_mean']:.3f})")
    latency = metrics['latency_s'].get('total')
    if latency:
        parts.append(f"latency p50 {latency['p50'] * 1e3:.0f} ms")
    return f"evaluate: {', '.join(parts)}; reports in {out_dir}"
