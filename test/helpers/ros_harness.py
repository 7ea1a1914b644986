"""Shared harness of the ROS tests: nodes in subprocesses, a real rclpy client in the test.

Every process runs with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a ``ROS_DOMAIN_ID`` of
its test alone (handed out by ``conftest.py`` from :data:`FIRST_TEST_DOMAIN` ..
:data:`LAST_TEST_DOMAIN`). Waits have generous ceilings so a loaded machine is slow,
not flaky; nothing asserts on wall-clock durations.
"""
from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 90.0  # ceiling for anything to happen over DDS on a loaded 2-core machine
SETTLE_S = 1.0  # after both ends of a connection are seen here, for the far end's discovery
_client_numbers = itertools.count()   # a unique node name for every client of this process
# Added to every test domain id, so two checkouts can run their ROS tests at once on one
# machine without hearing each other (ids must stay within Fast DDS's 0..232).
DOMAIN_SHIFT = int(os.environ.get('MMCERT_TEST_DOMAIN_SHIFT', '0'))
#: the nominal test domains (before the shift); each is given to one test module or test
FIRST_TEST_DOMAIN, LAST_TEST_DOMAIN = 100, 199


def shifted_domain(domain_id: int) -> int:
    """The ROS_DOMAIN_ID a test module's nominal ``domain_id`` runs on."""
    shifted = domain_id + DOMAIN_SHIFT
    if not 0 <= shifted <= 232:
        raise ValueError(f'test domain {domain_id} + shift {DOMAIN_SHIFT} is outside 0..232')
    return shifted


def ros_env(domain_id: int) -> dict[str, str]:
    """Environment of a test-private ROS graph."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(shifted_domain(domain_id)),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')])))
    return env


def tiny_checkpoint(path: Path, constant: bool = False, seed: int = 0) -> Path:
    """Save a small SparseRGBDNet. ``constant``: head temperature 0, so every logit is 0, every
    logit ties and every sample votes class 0 (a model whose certificate is known in closed
    form)."""
    from mmcert_ros.models import NetworkConfig, build_model, save_checkpoint
    torch.manual_seed(seed)
    model = build_model(NetworkConfig(width=4, feature_dim=4))
    if constant:
        with torch.no_grad():
            model.log_scale.fill_(-math.inf)
    return save_checkpoint(path, model, {'purpose': 'ROS tests'})


class NodeProcess:
    """``python -m mmcert_ros.tools.cli node <name> --ros-args ...`` in its own process
    (``env``: variables added to the test graph's environment)."""

    def __init__(self, name: str, domain_id: int, log_path: Path, params: dict | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        args = [sys.executable, '-m', 'mmcert_ros.tools.cli', 'node', name, '--ros-args',
                *(extra_args or [])]           # before the -p values, which then override them
        for key, value in (params or {}).items():
            if isinstance(value, bool):
                value = str(value).lower()
            args += ['-p', f'{key}:={value}']
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.process = subprocess.Popen(args, cwd=REPO,
                                        env=dict(ros_env(domain_id), **(env or {})),
                                        stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the node process from ``/proc``."""
        for line in Path(f'/proc/{self.pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
        raise RuntimeError('no VmRSS line')

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = 'camera',
              override: dict | None = None):
    """A ``sensor_msgs/Image``; ``override`` replaces raw fields to build malformed messages."""
    from sensor_msgs.msg import Image

    from mmcert_ros.segmenter.codec import encode_image
    msg = encode_image(array, encoding).copy_to(Image())
    msg.header.stamp = stamp(stamp_ns)
    msg.header.frame_id = frame_id
    for key, value in (override or {}).items():
        setattr(msg, key, value)
    return msg


class RosClient:
    """An rclpy node in the test process that feeds a node under test and records its outputs.

    Output messages are kept per topic, keyed by header stamp in nanoseconds.
    """

    OUTPUTS = ('mmcert/segmentation', 'mmcert/certification', 'mmcert/certified_radius',
               'mmcert/overlay')

    def __init__(self, domain_id: int, reliable: bool = True, inputs: bool = True,
                 extra_subscriptions: dict | None = None) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=shifted_domain(domain_id))
        self.node = rclpy.create_node(f'test_client_{os.getpid()}_{next(_client_numbers)}',
                                      context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.publishers = {}
        if inputs:
            self.publishers = {
                'rgb': self.node.create_publisher(Image, 'rgb/image', qos),
                'depth': self.node.create_publisher(Image, 'depth/image', qos),
                'camera_info': self.node.create_publisher(CameraInfo, 'rgb/camera_info', qos),
            }
        self.received: dict[str, dict[int, object]] = defaultdict(dict)
        self.arrival_order: dict[str, list[int]] = defaultdict(list)
        self.diagnostics: list = []
        out_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.subscriptions = {
            topic: self.node.create_subscription(msg_type, topic, self._recorder(topic), out_qos)
            for topic, msg_type in {**dict.fromkeys(self.OUTPUTS, Image),
                                    **(extra_subscriptions or {})}.items()}
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      self.diagnostics.append, 50)

    def _recorder(self, topic):
        def record(msg):
            key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.received[topic][key] = msg
            self.arrival_order[topic].append(key)
        return record

    def spin_until(self, predicate, timeout_s: float = WAIT_S, what: str = 'condition') -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_node(self, topics=OUTPUTS[:2]) -> None:
        """Until the node under test subscribes to our inputs and publishes to us, as far as
        this process sees the matches (our writers' matched readers, our readers' matched
        writers), then :data:`SETTLE_S` more: the node's side of each match completes
        discovery a moment later, and DDS never delivers to a volatile reader what was
        written before it matched."""
        self.spin_until(lambda: all(pub.get_subscription_count() > 0
                                    for pub in self.publishers.values())
                        and all(self.subscriptions[topic].get_publisher_count() > 0
                                for topic in topics),
                        what='the node under test to connect')
        self.spin_for(SETTLE_S)

    def send_pair(self, rgb_msg, depth_msg) -> None:
        self.publishers['rgb'].publish(rgb_msg)
        self.publishers['depth'].publish(depth_msg)

    def latest_diagnostics(self) -> dict[str, str]:
        from mmcert_ros.ros.diagnostics import values_of
        return values_of(self.diagnostics[-1]) if self.diagnostics else {}

    def set_parameters(self, node_name: str, values: dict) -> list:
        """Call ``<node>/set_parameters``; returns the ``SetParametersResult`` list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        client = self.node.create_client(SetParameters, f'/{node_name}/set_parameters')
        self.spin_until(lambda: client.service_is_ready(), what='the parameter service')
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()
                        for name, value in values.items()])
        future = client.call_async(request)
        self.spin_until(future.done, what='set_parameters')
        self.node.destroy_client(client)
        return future.result().results

    def close(self) -> None:
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


#: PointField datatype -> numpy type (sensor_msgs/PointField constants INT8 = 1 ... FLOAT64 = 8)
_POINT_FIELD_TYPES = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}


def cloud_fields(cloud, names) -> dict[str, np.ndarray]:
    """``{name: values}`` of a ``PointCloud2`` read here from its own field table (offsets,
    datatypes, point step, endianness): a reader independent of the package's."""
    order = '>' if cloud.is_bigendian else '<'
    fields = {field.name: field for field in cloud.fields}
    dtype = np.dtype({'names': list(names),
                      'formats': [order + _POINT_FIELD_TYPES[fields[name].datatype]
                                  for name in names],
                      'offsets': [fields[name].offset for name in names],
                      'itemsize': cloud.point_step})
    records = np.frombuffer(bytes(cloud.data), dtype=dtype,
                            count=cloud.width * cloud.height)
    return {name: records[name] for name in names}
