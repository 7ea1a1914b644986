"""Latency of the ROS pipeline through real DDS: sim_drive -> segmenter -> subscriber.

Usage (from the repository root)::

    python bench/ros_latency.py                                   # 1242x375, N = 100, CPU
    python bench/ros_latency.py --device cuda --num-samples 100 --frames 60 --rate 30
    python bench/ros_latency.py --device cuda --num-samples 1000 --frames 30 --rate 30

Both nodes run as separate processes on a private, machine-local ROS domain; this process
subscribes to the outputs. Printed: the segmenter's processing time per frame split into
decode, sampling, inference, certification, encode and publish (means over the frames after
the first, from its diagnostics), the share of everything but inference (target < 15 % at
N = 100 on CPU), the latency from the RGB header stamp to the certification arriving here
(percentiles), and the frames per second the pipeline delivered (target >= 10 Hz at N = 100
at 1242x375 on a GPU). The simulator repeats its first ``--loop-frames`` frames so that
rendering neither limits the feed nor competes with the engine for the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from mmcert_ros.certify.config import BACKENDS, PRECISIONS
from mmcert_ros.ros.diagnostics import STAGES
from mmcert_ros.speed.machine import machine_line, machine_record
from mmcert_ros.ros.demo_run import run_pipeline

OVERHEAD_TARGET = 0.15


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--num-samples', type=int, default=100)
    parser.add_argument('--batch-size', type=int, default=20)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS)
    parser.add_argument('--backend', default='torch', choices=BACKENDS)
    parser.add_argument('--frames', type=int, default=4,
                        help='frames to record; the first is a warm-up and not counted')
    parser.add_argument('--rate', type=float, default=1.0, help='simulator frames per second')
    parser.add_argument('--loop-frames', type=int, default=3)
    parser.add_argument('--checkpoint', default='', help="'' = the shipped default model")
    parser.add_argument('--domain-id', type=int, default=int(os.environ.get('ROS_DOMAIN_ID', 62)))
    parser.add_argument('--json', type=Path, help='also write the figures to this file')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    if args.frames < 2:
        raise SystemExit('--frames must be at least 2 (the first is a warm-up)')
    sim = {'width': args.width, 'height': args.height, 'rate_hz': args.rate,
           'loop_frames': args.loop_frames, 'rgb_encoding': 'rgb8', 'depth_encoding': '32FC1'}
    segmenter = {'model.checkpoint': args.checkpoint, 'model.device': args.device,
                 'model.precision': args.precision, 'model.backend': args.backend,
                 'model.batch_size': args.batch_size,
                 'certify.num_samples': args.num_samples, 'qos.reliability': 'reliable',
                 'publish.overlay': False}
    with tempfile.TemporaryDirectory(prefix='ros_latency_') as logs:
        recording = run_pipeline(sim, segmenter, args.frames, Path(logs), args.domain_id)
    stages = recording.stage_means_ms(skip_frames=1)
    processing = stages.pop('processing_time')
    latency = {name: ms for name, ms in recording.latency_percentiles_ms().items()}
    figures = {
        'frame': f'{args.width}x{args.height}', 'num_samples': args.num_samples,
        'batch_size': args.batch_size, 'device': args.device, 'precision': args.precision,
        'backend': args.backend,
        'machine': machine_record(),
        'frames': recording.frames, 'stage_ms': stages, 'processing_ms': processing,
        'non_inference_share': (processing - stages['inference']) / processing,
        'latency_ms': latency, 'delivered_fps': recording.output_rate_hz(skip_frames=1),
        'engine_fps': 1000.0 / processing,
        'dropped_pairs': recording.final_counter('dropped_pairs'),
    }
    print(f"ros_latency: {figures['frame']}, N = {args.num_samples}, batch {args.batch_size}, "
          f"{args.device} {args.precision} {args.backend}, {recording.frames} frames "
          "(first not counted)")
    for stage in STAGES:
        share = stages[stage] / processing
        print(f'  {stage:<14}{stages[stage]:10.1f} ms  {100 * share:5.1f} %')
    print(f"  {'processing':<14}{processing:10.1f} ms")
    verdict = 'meets' if figures['non_inference_share'] < OVERHEAD_TARGET else 'misses'
    print(f"non-inference share {100 * figures['non_inference_share']:.1f} % "
          f"({verdict} the < {100 * OVERHEAD_TARGET:.0f} % target)")
    print('latency stamp -> certification received: '
          + ', '.join(f'{name} {ms:.0f} ms' for name, ms in latency.items()))
    print(f"throughput: engine {figures['engine_fps']:.2f} fps, delivered "
          f"{figures['delivered_fps']:.2f} fps at a {args.rate} Hz feed, "
          f"{figures['dropped_pairs']} pairs dropped")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
