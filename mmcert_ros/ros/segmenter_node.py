"""ROS 2 node ``mmcert_segmenter``: synchronized RGB-D in, segmentation and certificate out.

Subscribes (relative, remappable) ``rgb/image``, ``depth/image`` and optionally
``rgb/camera_info``; publishes ``mmcert/segmentation``, ``mmcert/certification``,
``mmcert/certified_radius``, ``mmcert/overlay`` and, while ``fs.sigma`` > 0, the l2
certificate ``mmcert/l2_certification`` (see :mod:`mmcert_ros.ros.outputs`) with the RGB
header, and ``/diagnostics``.

Threading: the image callbacks only pair messages by stamp
(:class:`~mmcert_ros.data.pairing.StampPairer`) and put the newest pair into a drop-oldest
:class:`~mmcert_ros.data.pairing.LatestSlot`; one worker thread decodes, certifies and
publishes: first the l0 outputs, then (while ``fs.sigma`` > 0) it runs the l2 certificate
(:func:`~mmcert_ros.certify.l2.certify_l2`) and publishes its mask. No lock is held during
inference, so the executor keeps serving parameters, diagnostics and shutdown while the
engine runs, and a slow engine drops old pairs (counted) instead of falling behind.

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
from mmcert_ros.certify.l2 import certify_l2
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.pairing import LatestSlot, Pair, StampPairer
from mmcert_ros.errors import UserError
from mmcert_ros.ros import outputs
from mmcert_ros.ros.diagnostics import (L2FrameStats, PipelineStats, diagnostic_array,
                                         should_log)
from mmcert_ros.ros.image_codec import ImageDecodeError, decode_depth, decode_rgb
from mmcert_ros.ros.parameters import (PARAMETER_NAMES, PARAMETERS, NodeSettings,
                                       declare_parameters)
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
    :raises UserError: if the initial parameter values cannot be used (the reason names them).
    """

    def __init__(self, model=None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        declare_parameters(self, PARAMETERS)
        self._given_model = model
        self._settings = NodeSettings.from_parameters(self._parameter_values())
        self._segmenter = self._build_segmenter(self._settings)
        self._booster = self._load_booster(self._settings, self._segmenter)
        #: (settings, segmenter, booster) accepted by the parameter callback, not yet in use
        self._pending: tuple[NodeSettings, CertifiedSegmenter, object] | None = None
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
        self._publishers_by_topic = {
            topic: self.create_publisher(Image, topic, OUTPUT_QOS)
            for topic in outputs.OUTPUT_TOPICS + (outputs.L2_CERTIFICATION,)}
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
            f'model={self._settings.checkpoint or "shipped default"}, '
            f'l2 certificate {_describe_l2(self._settings)}')

    # -- parameters ---------------------------------------------------------------------

    def _parameter_values(self, changes=()) -> dict:
        values = {name: self.get_parameter(name).value for name in PARAMETER_NAMES}
        values.update({param.name: param.value for param in changes})
        return values

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a change against all other parameters; a valid one applies from the next frame.

        A new checkpoint, booster (``fs.booster``) or device is loaded here, so a file that
        does not load, or a booster that does not fit the model, is rejected with the reason
        instead of failing later.
        """
        changed = ', '.join(f'{param.name}={param.value!r}' for param in params)
        with self._pending_lock:
            current, segmenter, booster = self._pending or (
                self._settings, self._segmenter, self._booster)
        try:
            settings = NodeSettings.from_parameters(self._parameter_values(params))
            device_changed = settings.certify.device != current.certify.device
            if device_changed or settings.checkpoint != current.checkpoint:
                segmenter = self._build_segmenter(settings)
            if device_changed or settings.checkpoint != current.checkpoint \
                    or settings.l2.booster != current.l2.booster:
                booster = self._load_booster(settings, segmenter)
        except Exception as error:  # any reason a value cannot be used is a rejection
            reason = f'rejected {changed}: {error}'
            self.get_logger().warning(reason)
            return SetParametersResult(successful=False, reason=reason)
        with self._pending_lock:
            self._pending = (settings, segmenter, booster)
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

    @staticmethod
    def _load_booster(settings: NodeSettings, segmenter: CertifiedSegmenter):
        """The ``fs.booster`` checkpoint on the segmenter's device, checked to fit its model
        (None when ``fs.booster`` is ''); loaded even while ``fs.sigma`` is 0, so that a bad
        file is refused when it is set.

        :raises UserError: missing, corrupt or incompatible booster (the message says which).
        """
        if not settings.l2.booster:
            return None
        from mmcert_ros.models.booster import BoostedModel, load_booster
        booster = load_booster(settings.l2.booster, segmenter.device)[0]
        try:
            BoostedModel(segmenter.model, booster)
        except ValueError as error:
            raise UserError(f'fs.booster {settings.l2.booster}: {error}') from error
        return booster

    def _apply_pending_settings(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._settings, self._segmenter, self._booster = pending
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
        settings, segmenter, booster = self._settings, self._segmenter, self._booster
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
        l2_stats = None
        if settings.l2.enabled:
            l2_stats = self._certify_l2(settings, segmenter, booster, frame,
                                        certificate.labels, pair.rgb.header, stages)
        self._stats.record_frame(stages, latency_s, certificate.certified_fraction,
                                 certificate.delta, l2_stats)

    def _certify_l2(self, settings: NodeSettings, segmenter: CertifiedSegmenter, booster,
                    frame: Frame, labels: np.ndarray, header, stages: dict[str, float]
                    ) -> L2FrameStats | None:
        """Certify ``frame`` against l2 perturbations and publish ``mmcert/l2_certification``
        (the l2 mask agreeing with the published ``labels``); adds its times to ``stages``.

        :returns: the frame's l2 figures, or None after a failure (reported as ``engine``;
            the frame's l0 outputs, already published, stand).
        """
        l2 = settings.l2
        tic = time.perf_counter()
        try:
            l2_certificate = certify_l2(segmenter.model, frame.rgb, frame.depth,
                                        l2.engine_config(settings.certify), l2.sigma,
                                        l2.radius, booster)
        except Exception as error:  # a failing model or device must not stop the node
            stages['l2'] = time.perf_counter() - tic
            self._fail('engine', f'l2 certificate: {type(error).__name__}: {error}')
            return None
        stages['l2'] = time.perf_counter() - tic
        tic = time.perf_counter()
        msg = outputs.l2_image(l2_certificate, labels).copy_to(Image(header=header))
        stages['encode'] += time.perf_counter() - tic
        tic = time.perf_counter()
        self._publish(self._publishers_by_topic[outputs.L2_CERTIFICATION], msg)
        stages['publish'] += time.perf_counter() - tic
        return L2FrameStats.of(l2_certificate, labels)

    def _fail(self, kind: str, message: str) -> None:
        """Count, log (throttled per kind) and report an error; the caller publishes nothing
        more for the frame."""
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
            'l2': _describe_l2(self._settings),
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


def _describe_l2(settings: NodeSettings) -> str:
    """One line of the l2 certificate's settings in force ('off' while ``fs.sigma`` is 0)."""
    l2 = settings.l2
    if not l2.enabled:
        return 'off'
    return (f'sigma={l2.sigma:g}, radius={l2.radius:g}, '
            f'N={l2.engine_config(settings.certify).num_samples}, '
            f'booster={l2.booster or "none"}')


def main(args: list[str] | None = None) -> int:
    """Run the node until shutdown (Ctrl-C, ``SIGTERM`` or ``rclpy.shutdown``); exit status."""
    return run_node(NODE_NAME, SegmenterNode, _spin, args)


def _spin(node: SegmenterNode) -> None:
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    executor.spin()


if __name__ == '__main__':
    raise SystemExit(main())
