"""Full-size images delivered to the segmenter on one host: best-effort vs reliable inputs.

Usage (from the repository root)::

    python bench/ros_qos.py                      # 1242x375 at 2 Hz, 30 frames, both QoS

For each ``qos.reliability`` of the segmenter's subscriptions, sim_drive (reliable
publishers, its default) publishes ``--frames`` frames; both nodes run as separate processes
on a private, machine-local ROS domain. Printed, side by side: the RGB and depth images the
segmenter received (its ``received_*`` counters, read from ``/diagnostics`` after the drive)
and the pairs it made, out of the frames sent.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from mmcert_ros.ros.pipeline_run import NodeProcesses, OutputRecorder, ros_environment
from mmcert_ros.pipeline.parameters import RELIABILITIES


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--rate', type=float, default=2.0)
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--domain-id', type=int, default=90 + os.getpid() % 40)
    return parser.parse_args()


def received(reliability: str, args: argparse.Namespace, log_dir: Path) -> dict[str, int]:
    """The segmenter's final ``received_rgb``, ``received_depth`` and ``paired`` counters."""
    recorder = OutputRecorder(args.domain_id)
    try:
        with NodeProcesses(log_dir / reliability, ros_environment(args.domain_id)) as nodes:
            nodes.start('segmenter', {'model.device': 'cpu', 'certify.num_samples': 8,
                                      'model.batch_size': 8, 'qos.reliability': reliability,
                                      'publish.overlay': False})
            sim = nodes.start('sim_drive', {'width': args.width, 'height': args.height,
                                            'rate_hz': args.rate, 'num_frames': args.frames,
                                            'wait_for_subscribers': 1})
            recorder.spin_until(lambda: sim.poll() is not None,
                                60 + 10 * args.frames / args.rate, on_idle=nodes.check_alive)
            seen = len(recorder.recording.diagnostics)    # two more reports: all counted
            recorder.spin_until(lambda: len(recorder.recording.diagnostics) > seen + 1, 30.0)
        return {key: recorder.recording.final_counter(key)
                for key in ('received_rgb', 'received_depth', 'paired')}
    finally:
        recorder.close()


def main() -> None:
    args = parse_args()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    print(f'ros_qos: sim_drive {args.width}x{args.height} at {args.rate:g} Hz, {args.frames} '
          f'frames (reliable publishers) -> segmenter subscriptions:')
    with tempfile.TemporaryDirectory() as log_dir:
        for reliability in RELIABILITIES:
            counts = received(reliability, args, Path(log_dir))
            print(f'  {reliability:<12} received {counts["received_rgb"]}/{args.frames} RGB, '
                  f'{counts["received_depth"]}/{args.frames} depth, {counts["paired"]} pairs',
                  flush=True)


if __name__ == '__main__':
    main()
