"""ROS 2 node ``mmcert_segmenter``: synchronized RGB-D in, segmentation and certificate out.

Subscribes (relative, remappable) ``rgb/image``, ``depth/image`` and optionally
``rgb/camera_info``; publishes ``mmcert/segmentation``, ``mmcert/certification``,
``mmcert/certified_radius``, ``mmcert/overlay`` (see :mod:`mmcert_ros.ros.outputs`) with the
RGB header, and ``/diagnostics``.

Threading: the image callbacks only pair messages by stamp
(:class:`~mmcert_ros.data.pairing.StampPairer`) and put the newest pair into a drop-oldest
:class:`~mmcert_ros.data.pairing.LatestSlot`; one worker thread decodes, certifies and
publishes. No lock is held during inference, so the executor keeps serving parameters,
diagnostics and shutdown while the engine runs, and a slow engine drops old pairs (counted)
instead of falling behind.

A bad message never stops the node: it is logged (occurrences 1, 10, 100, ... of each kind),
counted, reported at ERROR in ``/diagnostics`` and nothing is published for it.
"""
from __future__ import annotations

import copy
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from mmcert_ros.certify import CertifiedSegmenter
from mmcert_ros.certify.engine import resolve_device
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.pairing import LatestSlot, Pair, StampPairer
from mmcert_ros.ros import outputs
from mmcert_ros.ros.diagnostics import PipelineStats, diagnostic_array, should_log
from mmcert_ros.ros.image_codec import ImageDecodeError, decode_depth, decode_rgb
from mmcert_ros.ros.parameters import PARAMETER_NAMES, PARAMETERS, NodeSettings
from mmcert_ros.ros.process import run_node

NODE_NAME = 'mmcert_segmenter'
#: output queue depth; outputs are reliable so any subscriber QoS can connect
OUTPUT_QOS = QoSProfile(depth=5)
#: an error triggers an immediate diagnostics report at most this often (seconds)
ERROR_REPORT_INTERVAL_S = 0.2


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class SegmenterNode(Node):
    """The certified segmentation node (see the module docstring for topics and threading).

    :param model: optional base model to use while ``model.checkpoint`` is ``''`` (embedding
        and tests); without it ``''`` loads the shipped default checkpoint.
    :param node_kwargs: passed to :class:`rclpy.node.Node` (``namespace``,
        ``parameter_overrides``, ``cli_args``, ...).
    :raises ValueError: if the initial parameter values are invalid (the reason names them).
    """

    def __init__(self, model=None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._given_model = model
        self._settings = NodeSettings.from_parameters(self._parameter_values())
        self._segmenter = self._build_segmenter(self._settings)
        self._pending: tuple[NodeSettings, CertifiedSegmenter | None] | None = None
        self._pending_lock = threading.Lock()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._stats = PipelineStats()
        self._pairer = StampPairer(self._settings.slop_s)
        self._unpaired_next_log = 1   # log unpaired totals at 1, 10, 100, ...
        self._slot: LatestSlot[Pair] = LatestSlot()
        self._camera_matrix: np.ndarray | None = None
        self._last_error_report = 0.0

        input_qos = (qos_profile_sensor_data if self._settings.reliability == 'best_effort'
                     else QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        inputs = MutuallyExclusiveCallbackGroup()  # the pairer is used by one callback at a time
        self.create_subscription(Image, 'rgb/image', self._on_rgb, input_qos,
                                 callback_group=inputs)
        self.create_subscription(Image, 'depth/image', self._on_depth, input_qos,
                                 callback_group=inputs)
        self.create_subscription(CameraInfo, 'rgb/camera_info', self._on_camera_info, input_qos,
                                 callback_group=inputs)
        self._publishers_by_topic = {topic: self.create_publisher(Image, topic, OUTPUT_QOS)
                                     for topic in outputs.OUTPUT_TOPICS}
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_lock = threading.Lock()
        self.create_timer(1.0, self.publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup())

        self._worker = threading.Thread(target=self._work, name='mmcert_worker', daemon=True)
        self._worker.start()
        config = self._settings.certify
        self.get_logger().info(
            f'ready on {self._segmenter.device}: N={config.num_samples}, alpha={config.alpha}, '
            f'radius=({config.radius_rgb}, {config.radius_depth}), '
            f'model={self._settings.checkpoint or "shipped default"}')

    # -- parameters ---------------------------------------------------------------------

    def _parameter_values(self, changes=()) -> dict:
        values = {name: self.get_parameter(name).value for name in PARAMETER_NAMES}
        values.update({param.name: param.value for param in changes})
        return values

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a change against all other parameters; a valid one applies from the next frame.

        A new checkpoint or device is loaded here, so a file that does not load is rejected
        with the loader's reason instead of failing later.
        """
        changed = ', '.join(f'{param.name}={param.value!r}' for param in params)
        try:
            settings = NodeSettings.from_parameters(self._parameter_values(params))
            segmenter = None
            current = self._pending[0] if self._pending else self._settings
            if (settings.checkpoint, settings.certify.device) != (
                    current.checkpoint, current.certify.device):
                segmenter = self._build_segmenter(settings)
        except Exception as error:  # any reason a value cannot be used is a rejection
            reason = f'rejected {changed}: {error}'
            self.get_logger().warning(reason)
            return SetParametersResult(successful=False, reason=reason)
        with self._pending_lock:
            if segmenter is None and self._pending is not None:
                segmenter = self._pending[1]
            self._pending = (settings, segmenter)
        self._pairer.slop_s = settings.slop_s
        self.get_logger().info(f'parameters changed: {changed} (applied from the next frame)')
        return SetParametersResult(successful=True)

    def _build_segmenter(self, settings: NodeSettings) -> CertifiedSegmenter:
        device = resolve_device(settings.certify.device)
        if not settings.checkpoint and self._given_model is not None:
            model = copy.deepcopy(self._given_model)
        else:
            from mmcert_ros.models import load_model
            model = load_model(settings.checkpoint or None, device)
        return CertifiedSegmenter(model, settings.certify)

    def _apply_pending_settings(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._settings, segmenter = pending
            if segmenter is not None:
                self._segmenter = segmenter
            self._segmenter.config = self._settings.certify

    # -- inputs (executor threads: cheap, never block) ----------------------------------

    def _on_rgb(self, msg: Image) -> None:
        self._offer('rgb', msg)

    def _on_depth(self, msg: Image) -> None:
        self._offer('depth', msg)

    def _offer(self, stream: str, msg: Image) -> None:
        self._stats.count_input(stream)
        pair = self._pairer.add(stream, stamp_to_ns(msg.header.stamp), msg)
        if pair is not None:
            self._slot.put(pair)
        unpaired = sum(self._pairer.unpaired.values())
        if unpaired >= self._unpaired_next_log:
            while self._unpaired_next_log <= unpaired:
                self._unpaired_next_log *= 10
            self.get_logger().warning(
                f'{unpaired} message(s) found no partner within sync.slop = '
                f'{self._pairer.slop_s} s so far ({self._pairer.counters()})')

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_matrix = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)

    # -- worker thread ------------------------------------------------------------------

    def _work(self) -> None:
        while (pair := self._slot.get()) is not None:
            try:
                self._process(pair)
            except Exception as error:  # the worker must survive anything one frame does
                if not self.context.ok():
                    return              # shutdown destroyed what the frame was using
                self._fail('internal', f'{type(error).__name__}: {error}')

    def _process(self, pair: Pair) -> None:
        self._apply_pending_settings()
        settings, segmenter = self._settings, self._segmenter
        stages: dict[str, float] = {}
        tic = time.perf_counter()
        try:
            rgb = decode_rgb(pair.rgb)
        except ImageDecodeError as error:
            return self._fail(error.kind, f'rgb/image: {error}')
        try:
            depth = decode_depth(pair.depth)
        except ImageDecodeError as error:
            return self._fail(error.kind, f'depth/image: {error}')
        frame = Frame(rgb=rgb, depth=depth, stamp_ns=pair.rgb_stamp_ns,
                      frame_id=pair.rgb.header.frame_id, camera_matrix=self._camera_matrix)
        stages['decode'] = time.perf_counter() - tic
        try:
            certificate = segmenter.certify_frame(frame)
        except Exception as error:  # a failing model or device must not stop the node
            return self._fail('engine', f'{type(error).__name__}: {error}')
        timings = certificate.timings
        stages['decode'] += timings.get('preprocess', 0.0)
        for stage in ('sampling', 'inference', 'certification'):
            stages[stage] = timings.get(stage, 0.0)

        tic = time.perf_counter()
        topics = {outputs.SEGMENTATION, outputs.CERTIFICATION}
        if settings.publish_radius:
            topics.add(outputs.CERTIFIED_RADIUS)
        overlay_pub = self._publishers_by_topic[outputs.OVERLAY]
        if settings.publish_overlay and overlay_pub.get_subscription_count():
            topics.add(outputs.OVERLAY)
        images = outputs.output_images(certificate, rgb, topics)
        messages = {topic: fields.copy_to(Image(header=pair.rgb.header))
                    for topic, fields in images.items()}
        stages['encode'] = time.perf_counter() - tic

        tic = time.perf_counter()
        for topic, msg in messages.items():
            if not self._publish(self._publishers_by_topic[topic], msg):
                return
        stages['publish'] = time.perf_counter() - tic
        latency_s = (self.get_clock().now().nanoseconds - pair.rgb_stamp_ns) / 1e9
        self._stats.record_frame(stages, latency_s, certificate.certified_fraction,
                                 certificate.delta)

    def _fail(self, kind: str, message: str) -> None:
        """Count, log (throttled per kind) and report an error; the frame publishes nothing."""
        count = self._stats.record_error(kind, message)
        if should_log(count):
            self.get_logger().error(f'{message} [{kind}, occurrence {count}]')
        if time.monotonic() - self._last_error_report >= ERROR_REPORT_INTERVAL_S:
            self.publish_diagnostics()

    def _publish(self, publisher, msg) -> bool:
        """Publish; ``False`` (nothing sent) once shutdown has destroyed the publisher."""
        try:
            publisher.publish(msg)
        except RuntimeError:  # rclpy's InvalidHandle after shutdown; anything else is a bug
            if self.context.ok():
                raise
            return False
        return True

    # -- diagnostics --------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        """Publish one ``DiagnosticArray`` summarizing the period since the previous one."""
        config = self._settings.certify
        settings = {
            'num_samples': str(config.num_samples),
            'radius': f'({config.radius_rgb}, {config.radius_depth})',
            'alpha': f'{config.alpha:g}',
            'seed': 'os-entropy' if config.seed is None else str(config.seed),
            'device': str(self._segmenter.device),
            'precision': config.precision,
        }
        with self._diagnostics_lock:
            self._last_error_report = time.monotonic()
            report = self._stats.report(self._pairer.counters(), self._slot.dropped, settings)
            self._publish(self._diagnostics_pub, diagnostic_array(
                report, f'{self.get_name()}: pipeline', self.get_fully_qualified_name(),
                self.get_clock().now().to_msg()))

    # -- lifecycle ----------------------------------------------------------------------

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after its current frame (waits at most ``timeout_s``)."""
        self._slot.close()
        self._worker.join(timeout_s)


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown (Ctrl-C, ``SIGTERM`` or ``rclpy.shutdown``); exit status."""
    return run_node(NODE_NAME, SegmenterNode, _spin, args)


def _spin(node: SegmenterNode) -> None:
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    executor.spin()


if __name__ == '__main__':
    raise SystemExit(main())
