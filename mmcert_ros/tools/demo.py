"""Run the built-in demo: sim_drive -> segmenter (shipped model, CPU), overlays and a summary.

Starts the simulator and the segmenter as two separate processes on a private, machine-local
ROS graph, records the segmenter's outputs over DDS until `--frames` frames were certified,
saves their overlay PNGs (green: certified road, yellow: uncertified road, red: uncertified
non-road) and prints frames, certified fraction, latency percentiles, dropped pairs and the
plain and certified IoU against the simulator's ground truth.

The defaults keep the KITTI size the shipped model was trained at (1242x375; it loses most
of the road at smaller sizes) and lower N to 40 so that 20 frames take 40 s to 2.5 minutes on
a 2-core CPU (1.5 to 6 s per frame, depending on load). N = 40 is enough to certify here: with
alpha = 0.001 over 465,750 pixels a pixel needs 38 of 40 votes (37 once Holm has certified
nine tenths of the frame; N = 30 is the least that can certify anything).
`--num-samples 100` is MMCert's setting.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from mmcert_ros.errors import user_input
from mmcert_ros.tools.arguments import positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--frames', type=positive_int, default=20,
                        help='frames to certify (default 20)')
    parser.add_argument('--width', type=positive_int, default=1242,
                        help='image width (default 1242)')
    parser.add_argument('--height', type=positive_int, default=375,
                        help='image height (default 375)')
    parser.add_argument('--num-samples', type=positive_int, default=40, help='N (default 40)')
    parser.add_argument('--rate', type=positive_float, default=1.0,
                        help='simulator frames per second (default 1; pairs the engine cannot '
                             'keep up with are dropped and counted)')
    parser.add_argument('--checkpoint', default='', help="model checkpoint ('' = shipped default)")
    parser.add_argument('--device', default='cpu', help='engine device (default cpu)')
    parser.add_argument('--seed', type=int, default=0, help='simulated drive (default 0)')
    parser.add_argument('--out', type=Path, default=Path('demo_out'),
                        help='folder for overlays, logs and summary.json (default demo_out)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else 61)')
    parser.add_argument('--timeout', type=positive_float, default=900.0,
                        help='give up after SECONDS')


def run(args: argparse.Namespace) -> int:
    from mmcert_ros.device import resolve_device
    from mmcert_ros.models.checkpoint import read_checkpoint
    from mmcert_ros.ros.demo_run import run_pipeline

    # what the segmenter process would refuse, refused here in one line
    if args.checkpoint:
        read_checkpoint(args.checkpoint)
    with user_input('--device'):
        resolve_device(args.device)
    domain_id = args.domain_id if args.domain_id is not None else int(
        os.environ.get('ROS_DOMAIN_ID', 61))
    overlays = args.out / 'overlays'
    with user_input('--out'):
        overlays.mkdir(parents=True, exist_ok=True)
        for stale in overlays.glob('overlay_*.png'):
            stale.unlink()
    sim = {'width': args.width, 'height': args.height, 'rate_hz': float(args.rate),
           'seed': args.seed, 'rgb_encoding': 'bgr8', 'depth_encoding': '16UC1'}
    segmenter = {'model.checkpoint': args.checkpoint, 'model.device': args.device,
                 'certify.num_samples': args.num_samples, 'model.batch_size': 20,
                 'qos.reliability': 'reliable'}
    print(f'demo: sim_drive {args.width}x{args.height} at {args.rate} Hz -> segmenter '
          f'(N = {args.num_samples}, {args.device}) on ROS domain {domain_id}; '
          f'waiting for {args.frames} frames ...', flush=True)
    recording = run_pipeline(sim, segmenter, args.frames, args.out / 'logs', domain_id,
                             overlay_dir=overlays, timeout_s=args.timeout)
    summary = summarize(recording, args)
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(format_summary(summary))
    print(f'overlays: {overlays}/overlay_*.png; logs: {args.out / "logs"}; '
          f'summary: {args.out / "summary.json"}')
    return 0


def summarize(recording, args) -> dict:
    """The demo's figures as a JSON-ready dict."""
    fractions = recording.certified_fractions
    return {
        'command': 'mmcert-ros demo ' + ' '.join(
            f'--{key.replace("_", "-")} {value}' for key, value in vars(args).items()
            if key in ('frames', 'width', 'height', 'num_samples', 'rate', 'device', 'seed')),
        'frames': recording.frames,
        'certified_fraction_mean': sum(fractions) / len(fractions) if fractions else 0.0,
        'latency_ms': recording.latency_percentiles_ms(),
        'processing_ms': recording.stage_means_ms(),
        'dropped_pairs': recording.final_counter('dropped_pairs'),
        'unpaired': {'rgb': recording.final_counter('unpaired_rgb'),
                     'depth': recording.final_counter('unpaired_depth')},
        'errors': recording.final_counter('errors_total'),
        'frames_with_ground_truth': recording.frames_with_gt,
        'plain': recording.plain.as_dict(),
        'certified': recording.certified.as_dict(),
    }


def format_summary(summary: dict) -> str:
    latency = summary['latency_ms']
    stages = summary['processing_ms']
    lines = [
        f"frames certified      {summary['frames']}",
        f"certified fraction    {100 * summary['certified_fraction_mean']:.1f} % of pixels (mean)",
        'latency (stamp -> certification received) '
        + ', '.join(f'{name} {ms:.0f} ms' for name, ms in latency.items()),
        f"dropped pairs         {summary['dropped_pairs']} (engine busy; newest kept), unpaired "
        f"{summary['unpaired']['rgb']} RGB / {summary['unpaired']['depth']} depth, "
        f"errors {summary['errors']}",
    ]
    if stages:
        lines.append('processing per frame  ' + ', '.join(
            f'{stage} {ms:.0f} ms' for stage, ms in stages.items()))
    if summary['frames_with_ground_truth']:
        plain, certified = summary['plain'], summary['certified']
        lines.append(f"road IoU vs ground truth ({summary['frames_with_ground_truth']} frames): "
                     f"plain {plain['iou']:.3f}, certified {certified['iou']:.3f}; "
                     f"pixel accuracy plain {plain['pixel_accuracy']:.3f}, "
                     f"certified {certified['pixel_accuracy']:.3f}; certified but wrong "
                     f"{certified['wrong_fraction']:.2%} of the certified pixels")
    return '\n'.join(lines)
