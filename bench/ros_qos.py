"""Full-size images delivered to the segmenter on one host, per rate and QoS.

Usage (from the repository root)::

    python bench/ros_qos.py                       # 1242x375, 10 and 30 Hz, 10 s each
    python bench/ros_qos.py --rates 5 --seconds 20 --width 621 --height 188
    python bench/ros_qos.py --depth points       # LiDAR clouds (depth/points) beside the images

For each rate and each (publisher, subscriber) reliability pair of :data:`QOS_PAIRS` (a
camera driver's best-effort sensor-data profile into the presets' best-effort
subscriptions; a reliable source, CARLA's bridge or a bag, into reliable ones; a reliable
source into best-effort ones), sim_drive publishes ``rate * seconds`` frames (the first 10
rendered once and repeated, so the feed keeps its rate) and the segmenter (N = 8) takes
them; both run as separate processes on a private, machine-local ROS domain. Printed, side
by side: the RGB and depth images that reached the segmenter's pairer (its ``received_*``
counters, from ``/diagnostics`` after the drive) and the pairs it made, in per cent of the
frames sent, with Fast DDS's default transports and with ``config/fastdds_large_images.xml``
(a 32 MB shared-memory segment) loaded by both processes; then the CPU model and the load.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from mmcert_ros.speed.machine import machine_line
from mmcert_ros.segmenter.presets import config_dir
from mmcert_ros.ros.demo_run import NodeProcesses, OutputRecorder, ros_environment

#: (sim_drive's publishers, the segmenter's subscriptions)
QOS_PAIRS = (('best_effort', 'best_effort'), ('reliable', 'reliable'),
             ('reliable', 'best_effort'))
#: transports of both processes: Fast DDS's defaults, or the package's large-image profile
TRANSPORTS = {'default': None, 'large shm': 'fastdds_large_images.xml'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--depth', choices=('image', 'points'), default='image',
                        help='depth as 32FC1 images, or as the simulated LiDAR scan '
                             '(PointCloud2 on depth/points, certified as points)')
    parser.add_argument('--domain-id', type=int, default=90 + os.getpid() % 40)
    return parser.parse_args()


def depth_parameters(args: argparse.Namespace) -> dict:
    """The segmenter's depth parameters: clouds with sim_drive's LiDAR extrinsic."""
    if args.depth == 'image':
        return {}
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
    drive = SyntheticDrive(0, SceneConfig().with_image_size(args.width, args.height))
    extrinsic = drive.lidar_calibration.camera_extrinsic().to_values()
    return {'depth.source': 'points', 'depth.extrinsic': ' '.join(f'{v:.9g}' for v in extrinsic)}


def received(publisher: str, subscriber: str, rate: float, frames: int, profile: str | None,
             args: argparse.Namespace, log_dir: Path) -> dict[str, int]:
    """The segmenter's final ``received_rgb``, ``received_depth`` and ``paired`` counters."""
    recorder = OutputRecorder(args.domain_id)
    env = ros_environment(args.domain_id)
    env.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    if profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(config_dir() / profile)
    try:
        with NodeProcesses(log_dir, env) as nodes:
            nodes.start('segmenter', {'model.device': 'cpu', 'certify.num_samples': 8,
                                      'model.batch_size': 8, 'qos.reliability': subscriber,
                                      'publish.overlay': False, 'publish.views': False,
                                      **depth_parameters(args)})
            sim = nodes.start('sim_drive', {'width': args.width, 'height': args.height,
                                            'rate_hz': rate, 'num_frames': frames,
                                            'loop_frames': 10, 'qos.reliability': publisher,
                                            'wait_for_subscribers': 1,
                                            'depth_mode': 'points' if args.depth == 'points'
                                            else 'dense'})
            recorder.spin_until(lambda: sim.poll() is not None, 60 + 3 * frames / rate,
                                on_idle=nodes.check_alive)
            seen = len(recorder.recording.diagnostics)    # two more reports: all counted
            recorder.spin_until(lambda: len(recorder.recording.diagnostics) > seen + 1, 30.0)
        return {key: recorder.recording.final_counter(key)
                for key in ('received_rgb', 'received_depth', 'paired')}
    finally:
        recorder.close()


def main() -> None:
    args = parse_args()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    print(f'ros_qos: sim_drive {args.width}x{args.height}, depth {args.depth}, '
          f'{args.seconds:g} s per run -> segmenter; per cent of the frames sent that reached '
          f'its pairer')
    print(f'  {"rate":>6}  {"publisher":<12}{"subscriber":<12}{"transports":<11}{"sent":>6}'
          f'{"rgb":>8}{"depth":>8}{"pairs":>8}')
    with tempfile.TemporaryDirectory() as log_dir:
        for rate in args.rates:
            frames = max(1, round(rate * args.seconds))
            for index, (publisher, subscriber) in enumerate(QOS_PAIRS):
                for transports, profile in TRANSPORTS.items():
                    counts = received(publisher, subscriber, rate, frames, profile, args,
                                      Path(log_dir) / f'{rate:g}_{index}_{transports}')
                    share = {key: 100.0 * value / frames for key, value in counts.items()}
                    print(f'  {rate:>4g} Hz  {publisher:<12}{subscriber:<12}{transports:<11}'
                          f'{frames:>6}{share["received_rgb"]:>7.0f}%'
                          f'{share["received_depth"]:>7.0f}%{share["paired"]:>7.0f}%',
                          flush=True)
    print(machine_line(), '(at the end)')


if __name__ == '__main__':
    main()
