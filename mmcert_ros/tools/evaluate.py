"""Evaluate certified segmentation on a recorded rosbag2 / ROS 1 bag or a KITTI Road folder.

Replays the frames through the certification engine with the node's configuration and
writes metrics.json, frames.csv and curves.png (and, with --write-bag, an MCAP bag of the
inputs plus mmcert/segmentation, certification, certified_radius and overlay), e.g.

    mmcert-ros evaluate --bag drive_bag --rgb-topic /cam/rgb --depth-topic /cam/depth \\
        --gt-topic /cam/road_gt --config config/mmcert.yaml --seed 0 --out out/eval
    mmcert-ros evaluate --kitti data_road --seed 0 --out out/eval_kitti
    mmcert-ros evaluate --bag-dir drives --manifest more.txt --seed 0 --workers 8 --out out/fleet

Several inputs (or --workers / --ray-address) give one fleet report over all of them
(mmcert_ros.fleet), on a Ray runtime or cluster with --workers / --ray-address.

RGB and depth (and ground truth: mono8, non-zero = road) are paired by header stamp exactly
as the segmenter node pairs them (parameter sync.slop). A --depth-topic holding
ROS PointCloud2 (kitti2bag writes /points) is certified as LiDAR points, projected
with the CameraInfo beside the RGB topic and the bag's /tf_static (or --extrinsic). See
docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.errors import UserError, user_input
from mmcert_ros.fleet import DEFAULT_CHUNK_FRAMES
from mmcert_ros.tools.arguments import positive_float, positive_int
from mmcert_ros.tools.l2_options import add_l2_arguments, l2_overrides

_DEFAULT_TOPICS = FrameTopics()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group(
        'inputs (one or more of --bag, --bag-dir, --kitti, --manifest)')
    source.add_argument('--bag', action='extend', nargs='+', default=[], metavar='PATH',
                        help='rosbag2 folder (MCAP or sqlite3), .mcap/.db3 file or ROS 1 .bag; '
                             'several, or a quoted glob')
    source.add_argument('--bag-dir', action='extend', nargs='+', default=[], metavar='DIR',
                        help='every bag directly inside DIR')
    source.add_argument('--kitti', action='extend', nargs='+', default=[], metavar='DIR',
                        help='KITTI Road folder (the one holding training/ and testing/)')
    source.add_argument('--manifest', action='append', default=[], type=Path, metavar='FILE',
                        help='inputs, one per line: PATH [id=..] [kind=bag|kitti] [rgb=..] '
                             '[depth=..] [gt=..] [subset=..] [split=..] (docs/evaluation.md)')
    source.add_argument('--input-id', metavar='ID',
                        help='name of the one input (default: its last path component); '
                             'it names the results and enters the per-frame seeds')
    source.add_argument('--rgb-topic', default=_DEFAULT_TOPICS.rgb, metavar='T',
                        help=f'RGB image topic (default {_DEFAULT_TOPICS.rgb})')
    source.add_argument('--depth-topic', default=_DEFAULT_TOPICS.depth, metavar='T',
                        help='depth image topic, 16UC1 mm or 32FC1 m '
                             f'(default {_DEFAULT_TOPICS.depth})')
    source.add_argument('--extrinsic', type=float, nargs='+', metavar='V',
                        help="with a point-cloud depth topic: LiDAR-to-camera extrinsic, "
                             "'tx ty tz qx qy qz qw' or 16 values of a 4x4 matrix (default: "
                             "the config's depth.extrinsic, else the bag's /tf_static)")
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
    fleet = parser.add_argument_group(
        'fleet (several inputs, or any of these options: one fleet report)')
    fleet.add_argument('--workers', type=positive_int, metavar='N',
                       help='start a local Ray runtime with N workers (pip install ray)')
    fleet.add_argument('--ray-address', metavar='ADDR',
                       help="join a running Ray cluster ('auto': the one this machine is in)")
    fleet.add_argument('--gpus-per-worker', type=positive_float, metavar='G',
                       help='GPUs per Ray task (0.5: two tasks share a GPU; default none)')
    fleet.add_argument('--chunk-frames', type=positive_int, default=DEFAULT_CHUNK_FRAMES,
                       metavar='K', help='split inputs longer than K frames into chunks of K '
                                         f'(default {DEFAULT_CHUNK_FRAMES})')
    fleet.add_argument('--object-store-mb', type=positive_int, metavar='MB',
                       help="the local Ray runtime's object store size (default: Ray's)")
    output = parser.add_argument_group('output')
    output.add_argument('--out', type=Path, metavar='DIR',
                        help='output folder (default out/evaluate/<input name>, '
                             'out/evaluate/fleet for a fleet)')
    output.add_argument('--max-frames', type=positive_int, metavar='K',
                        help='stop after K frames (of each input)')
    output.add_argument('--write-bag', action='store_true',
                        help='also write DIR/bag: inputs plus the mmcert/* output topics '
                             '(MCAP; one input only)')
    output.add_argument('--force', action='store_true',
                        help='overwrite the outputs of an earlier run in DIR (a fleet: '
                             'recompute every input)')
    output.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from mmcert_ros.segmenter.settings import load_settings

    overrides = {'certify.seed': args.seed, 'model.device': args.device,
                 'sync.slop': args.slop, 'model.checkpoint': args.model, **l2_overrides(args)}
    with user_input('--config'):
        settings = load_settings(args.config, overrides)
    specs = input_specs(args, settings)
    fleet = (len(specs) > 1 or args.manifest or args.bag_dir or args.workers
             or args.ray_address)
    try:
        if fleet:
            return run_fleet_command(args, specs, settings)
        from mmcert_ros.fleet.work import evaluate_input

        out_dir = args.out or Path('out') / 'evaluate' / specs[0].id
        metrics = evaluate_input(specs[0], settings, out_dir, max_frames=args.max_frames,
                                 write_bag=args.write_bag, force=args.force,
                                 progress=not args.no_progress)
    except KeyboardInterrupt as interrupt:
        print(f'mmcert-ros evaluate: {interrupt}', file=sys.stderr)
        return 130
    print(summary_line(metrics, out_dir))
    return 0


def input_specs(args: argparse.Namespace, settings) -> list:
    """The inputs named on the command line, in order: --bag, --bag-dir, --kitti, --manifest.
    A point-cloud bag's extrinsic is --extrinsic, else the config's ``depth.extrinsic`` (as
    on the node), else the bag's ``/tf_static``.

    :raises UserError: no input, an input that does not exist, duplicate names, or
        ``--input-id`` with several inputs.
    """
    from mmcert_ros.evaluation.inputs import (InputSpec, bags_in, check_unique,
                                              expand_bag_paths, make_spec, read_manifest)

    if not (args.bag or args.bag_dir or args.kitti or args.manifest):
        raise UserError('give at least one input: --bag, --bag-dir, --kitti or --manifest')
    defaults = InputSpec(id='', kind='bag', path=Path(), rgb_topic=args.rgb_topic,
                         depth_topic=args.depth_topic, gt_topic=args.gt_topic or None,
                         extrinsic=(tuple(args.extrinsic) if args.extrinsic
                                    else settings.depth.extrinsic_values or None),
                         kitti_subset=args.kitti_subset, kitti_split=args.kitti_split)
    bags = [*expand_bag_paths(args.bag), *(bag for folder in args.bag_dir
                                           for bag in bags_in(folder))]
    specs = [make_spec(path, 'bag', defaults) for path in bags]
    for folder in args.kitti:
        specs.append(make_spec(Path(folder).expanduser(), 'kitti', defaults))
    for manifest in args.manifest:
        specs.extend(read_manifest(manifest, defaults))
    if args.input_id is not None:
        if len(specs) != 1:
            raise UserError(f'--input-id names one input; {len(specs)} are given (name them '
                            'with id= in a --manifest)')
        specs = [make_spec(specs[0].path, specs[0].kind, specs[0], id=args.input_id)]
    if args.extrinsic:
        from mmcert_ros.data.projection import Extrinsic
        with user_input('--extrinsic'):
            Extrinsic.from_values(args.extrinsic)
    check_unique(specs)
    return specs


def run_fleet_command(args: argparse.Namespace, specs: list, settings) -> int:
    """Evaluate ``specs`` as a fleet (in this process, or on Ray with --workers /
    --ray-address) and print one summary line; exit status 2 when an input failed."""
    from mmcert_ros.fleet.driver import run_fleet
    from mmcert_ros.fleet.local import LocalExecutor

    if args.write_bag:
        raise UserError('--write-bag writes the result bag of one input; evaluate that '
                        'input alone')
    if args.gpus_per_worker and not (args.workers or args.ray_address):
        raise UserError('--gpus-per-worker needs --workers or --ray-address')
    if args.workers or args.ray_address:
        from mmcert_ros.fleet.ray_cluster import RayExecutor
        executor = RayExecutor(args.workers, args.ray_address, args.gpus_per_worker or 0.0,
                               object_store_memory=args.object_store_mb and
                               args.object_store_mb * 1024 * 1024)
    else:
        executor = LocalExecutor()
    out_dir = args.out or Path('out') / 'evaluate' / 'fleet'
    report = run_fleet(specs, settings, out_dir, executor, chunk_frames=args.chunk_frames,
                       max_frames=args.max_frames, force=args.force,
                       progress=not args.no_progress)
    print(fleet_summary_line(report, out_dir))
    if report['failed']:
        names = ', '.join(f"{entry['id']} ({entry['error']})" for entry in report['failed'])
        print(f'mmcert-ros evaluate: {len(report["failed"])} of {report["inputs_total"]} '
              f'inputs failed or are incomplete: {names}', file=sys.stderr)
        return 2
    return 0


def fleet_summary_line(report: dict, out_dir: Path) -> str:
    """One line for the terminal: inputs, frames and the pooled certified figures."""
    pooled = report['pooled']
    parts = [f"{report['inputs_evaluated']} of {report['inputs_total']} inputs",
             f"{pooled['frames']} frames",
             f"certified fraction {pooled['certified_fraction']:.3f}"]
    if 'certified' in pooled:
        parts.append(f"certified IoU {pooled['certified']['iou']:.3f}, certified but wrong "
                     f"{pooled['certified']['wrong_fraction']:.2%}")
    return f"evaluate: {', '.join(parts)}; fleet report in {out_dir}"


def summary_line(metrics: dict, out_dir: Path) -> str:
    """One line for the terminal: frames, skips, certified fraction, certified IoU and the
    certified-but-wrong fraction."""
    parts = [f"{metrics['frames']} frames", f"{metrics['skipped']['total']} skipped messages",
             f"certified fraction {metrics['certified_fraction']:.3f}"]
    if 'certified' in metrics:
        parts.append(f"certified IoU {metrics['certified']['iou']:.3f} at r = "
                     f"({metrics['radius']['rgb']}, {metrics['radius']['depth']}), certified "
                     f"but wrong {metrics['certified']['wrong_fraction']:.2%}")
    if 'l2' in metrics:
        parts.append(f"l2 certified fraction {metrics['l2']['certified_fraction']:.3f} at "
                     f"radius {metrics['l2']['radius']:g} (sigma {metrics['l2']['sigma']:g}, "
                     f"mean FCSB {metrics['l2']['fcsb_mean']:.3f})")
    latency = metrics['latency_s'].get('total')
    if latency:
        parts.append(f"latency p50 {latency['p50'] * 1e3:.0f} ms")
    return f"evaluate: {', '.join(parts)}; reports in {out_dir}"
