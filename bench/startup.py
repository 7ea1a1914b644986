"""Start-up of the segmenter node: seconds from process start to the first frame answered.

Usage (from the repository root)::

    python bench/startup.py                                  # int8 OpenVINO and fp32, 3 starts
    python bench/startup.py --modes openvino_int8 --starts 2 --json startup.json
    python bench/startup.py --isa-cap avx2                   # the libraries capped to AVX2

Each start runs ``mmcert-ros node segmenter`` as a fresh subprocess on a private,
machine-local ROS domain (N = ``--num-samples``, CPU, the mode's precision and backend);
this process publishes one synthetic RGB + depth pair (``--width`` x ``--height``, rgb8 and
32FC1) every ``--period`` seconds, the same pair with a new stamp, until the first
``mmcert/certification`` arrives. Printed per start: seconds from ``Popen`` to the node's
input subscriptions being matched here (``subscribed_s``) and to the first certification
received (``answered_s``, target < 10 s at N = 100 in the fastest mode); with the CPU model,
its ISA class and the load average before each start. Starts of all modes alternate, so a
change in the machine's load hits them alike.

The nodes keep their cache (``MMCERT_ROS_CACHE``, mmcert_ros.cache: int8 models and the
compiled CPU kernels) in a folder of this run, empty at the start. The kernels are compiled
into it first, as ``make setup`` does after installing (``--kernels first-start``: by the
first node instead). A mode's first start is then a cold start (int8: export and
quantization), its later starts are warm (int8: the quantized model read back), as on a
vehicle after its first boot. ``--cache off`` makes every start cold.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmcert_ros.speed.engine_speed import MODES
from mmcert_ros.speed.machine import (ISA_CAPS, active_cap, capped_environment,
                                      machine_line, machine_record)
from mmcert_ros.segmenter.outputs import CERTIFICATION
from mmcert_ros.ros.demo_run import NodeProcesses, ros_environment

TARGET_S = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--modes', default='openvino_int8,fp32',
                        help=f'comma-separated, of {", ".join(MODES)} (default '
                             'openvino_int8,fp32)')
    parser.add_argument('--starts', type=int, default=3, help='starts per mode (default 3)')
    parser.add_argument('--num-samples', type=int, default=100)
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--period', type=float, default=0.25,
                        help='seconds between the pairs published (default 0.25)')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds a start may take before it counts as failed')
    parser.add_argument('--params', default='',
                        help='extra segmenter parameters, e.g. "model.batch_size=20,..."')
    parser.add_argument('--isa-cap', choices=sorted(ISA_CAPS),
                        help='run the nodes with the libraries capped (mmcert-ros bench)')
    parser.add_argument('--cache', choices=('run', 'off'), default='run',
                        help="the nodes' cache (int8 models, CPU kernels): 'run' (default) a "
                             "folder of this run, empty at the start; 'off' none (every start "
                             "cold)")
    parser.add_argument('--kernels', choices=('setup', 'first-start'), default='setup',
                        help="when the CPU kernels are compiled: 'setup' (default) ahead, as "
                             "`make setup` does, or by the first start")
    parser.add_argument('--domain-id', type=int, default=int(os.environ.get('ROS_DOMAIN_ID', 63)))
    parser.add_argument('--json', type=Path, help='also write the figures to this file')
    args = parser.parse_args()
    args.modes = [mode for mode in args.modes.split(',') if mode]
    unknown = sorted(set(args.modes) - set(MODES))
    if unknown or not args.modes or args.starts < 1:
        parser.error(f'unknown mode(s) {unknown}' if unknown else 'need a mode and --starts >= 1')
    return args


def segmenter_params(mode: str, args: argparse.Namespace) -> dict:
    """The node's parameters for ``mode`` (a key of ``MODES``) and ``--params``."""
    precision, backend = MODES[mode]
    params = {'model.device': 'cpu', 'model.precision': precision, 'model.backend': backend,
              'certify.num_samples': args.num_samples, 'qos.reliability': 'reliable',
              'publish.overlay': False}
    for item in filter(None, args.params.split(',')):
        key, _, value = item.partition('=')
        params[key] = value
    return params


class PairPublisher:
    """An rclpy node publishing one RGB + depth pair and counting certifications."""

    def __init__(self, domain_id: int, width: int, height: int) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from mmcert_ros.segmenter.codec import encode_image
        from mmcert_ros.sim.synthetic import SceneConfig, drive

        frame = next(drive(seed=0, num_frames=1,
                           config=SceneConfig().with_image_size(width, height)))
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f'mmcert_startup_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.messages = {'rgb/image': encode_image(frame.rgb, 'rgb8').copy_to(Image()),
                         'depth/image': encode_image(frame.depth, '32FC1').copy_to(Image())}
        self.publishers = {topic: self.node.create_publisher(Image, topic, qos)
                           for topic in self.messages}
        self.answers = 0
        self.node.create_subscription(Image, CERTIFICATION, self._on_certification,
                                      QoSProfile(depth=5))

    def _on_certification(self, _msg) -> None:
        self.answers += 1

    def subscribed(self) -> bool:
        """Whether the node's subscriptions to both inputs are matched."""
        return all(pub.get_subscription_count() > 0 for pub in self.publishers.values())

    def publish(self) -> None:
        """The pair, stamped now (camera frame)."""
        stamp = self.node.get_clock().now().to_msg()
        for topic, msg in self.messages.items():
            msg.header.stamp, msg.header.frame_id = stamp, 'camera'
            self.publishers[topic].publish(msg)

    def spin(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def one_start(mode: str, args: argparse.Namespace, env: dict, logs: Path, number: int) -> dict:
    """Start the node in ``mode``, feed it until it answers; seconds from ``Popen``."""
    publisher = PairPublisher(args.domain_id, args.width, args.height)
    load = list(os.getloadavg())
    figures = {'mode': mode, 'load_average': load, 'subscribed_s': None, 'answered_s': None}
    try:
        with NodeProcesses(logs / f'{mode}_{number}', env) as nodes:
            start = time.monotonic()
            nodes.start('segmenter', segmenter_params(mode, args))
            while publisher.answers == 0:
                elapsed = time.monotonic() - start
                if elapsed > args.timeout:
                    raise TimeoutError(f'{mode}: no certification within {args.timeout:.0f} s')
                nodes.check_alive()
                if publisher.subscribed():
                    if figures['subscribed_s'] is None:
                        figures['subscribed_s'] = elapsed
                    publisher.publish()
                publisher.spin(args.period)
            figures['answered_s'] = time.monotonic() - start
    finally:
        publisher.close()
    return figures


def summary(runs: list[dict]) -> dict:
    """Per mode: the first start, the later starts' median, min and max, seconds."""
    out = {}
    for mode in dict.fromkeys(run['mode'] for run in runs):
        answered = [run['answered_s'] for run in runs if run['mode'] == mode]
        later = answered[1:] or answered
        out[mode] = {'first_s': answered[0], 'later_median_s': statistics.median(later),
                     'min_s': min(answered), 'max_s': max(answered)}
    return out


def main() -> int:
    args = parse_args()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env = ros_environment(args.domain_id)
    cap = args.isa_cap or active_cap()
    if cap:
        env = capped_environment(cap, env)
    machine = machine_record(cap)
    print(f'startup: segmenter, {args.width}x{args.height}, N = {args.num_samples}, CPU, '
          f'{args.starts} starts per mode')
    print(machine_line(machine), flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix='startup_') as logs:
        env['MMCERT_ROS_CACHE'] = str(Path(logs) / 'model_cache') if args.cache == 'run' \
            else 'off'
        kernels_s = None
        if args.kernels == 'setup':  # what `make setup` does once after installing
            tic = time.perf_counter()
            subprocess.run([sys.executable, '-m', 'mmcert_ros.cpu_kernels'], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            kernels_s = time.perf_counter() - tic
            print(f'  CPU kernels compiled ahead (python -m mmcert_ros.cpu_kernels): '
                  f'{kernels_s:.2f} s', flush=True)
        for number in range(args.starts):
            for mode in args.modes:
                run = one_start(mode, args, env, Path(logs), number)
                runs.append(run)
                print(f"  start {number + 1} {mode:<14} subscribed {run['subscribed_s']:6.2f} s"
                      f"  answered {run['answered_s']:6.2f} s"
                      f"  (load {run['load_average'][0]:.2f})", flush=True)
    figures = {'frame': f'{args.width}x{args.height}', 'num_samples': args.num_samples,
               'kernels': args.kernels, 'kernels_compile_s': kernels_s, 'machine': machine,
               'load_average_end': list(os.getloadavg()),
               'python': sys.version.split()[0], 'params': args.params,
               'int8_cache': args.cache, 'runs': runs,
               'summary': summary(runs), 'target_s': TARGET_S}
    for mode, row in figures['summary'].items():
        verdict = 'meets' if row['later_median_s'] < TARGET_S else 'misses'
        print(f"{mode:<14} first start {row['first_s']:.2f} s, later starts"
              f"{' (warm int8 cache)' if args.cache == 'run' and 'int8' in mode else ''} median "
              f"{row['later_median_s']:.2f} s ({verdict} the < {TARGET_S:.0f} s target)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
