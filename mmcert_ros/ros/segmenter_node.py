"""ROS 2 node ``mmcert_segmenter``: synchronized RGB-D in, segmentation and certificate out.

Subscribes (relative, remappable) ``rgb/image``, the depth input (``depth/image``, or
``depth/points`` with ``depth.source: points``, then also tf for the camera <- cloud chain
(:mod:`mmcert_ros.ros.extrinsics`) unless ``depth.extrinsic`` is given) and
``rgb/camera_info`` (optional with depth images); publishes ``mmcert/segmentation``,
``mmcert/certification``, ``mmcert/certified_radius``, ``mmcert/overlay`` and, while
``fs.sigma`` > 0, the l2 certificate ``mmcert/l2_certification`` (see
:mod:`mmcert_ros.segmenter.outputs`) with the RGB header, each frame's mode on ``mmcert/status``
and ``/diagnostics``.

Every pair is decoded by :func:`~mmcert_ros.segmenter.pair_to_frame.frame_from_pair`, the function
offline bag evaluation uses. With ``depth.timeout_s`` > 0, once no depth message has arrived
for that long (:class:`~mmcert_ros.segmenter.depth_watch.DepthWatch`) RGB messages skip
pairing and are certified alone, depth all invalid (``degraded: rgb-only``, WARN in
``/diagnostics`` and on ``mmcert/status``), until depth arrives again.

Threading: the image callbacks only pair messages by stamp
(:class:`~mmcert_ros.segmenter.input_pairing.InputPairing`) and put the newest pair into a
drop-oldest slot; one worker thread decodes, certifies and
publishes: first the l0 outputs, then (while ``fs.sigma`` > 0) the l2 certificate's mask,
then the frame's times on ``mmcert/debug/frame_times``. The engines come from
:func:`~mmcert_ros.segmenter.engines.build_engines` and a frame runs through them as
:class:`~mmcert_ros.certify.l2.FrameCertification` (``run.l0()``, publish, ``run.l2()``;
with ``fs.joint`` one ensemble gives both, so the l0 outputs then wait for it).
No lock is held during inference, so the executor (single-threaded: every callback
is cheap) keeps serving inputs, parameters, diagnostics and shutdown while the engine runs,
and a slow engine drops old pairs (counted) instead of falling behind. Accepted ``sync.*``
values apply from the next message paired.

Parameter changes go through :class:`~mmcert_ros.segmenter.engine_swap.EngineSwap`: every
frame runs under a :class:`~mmcert_ros.certify.cancel.CancelToken` with the deadline
``certify.time_budget``; a parameter change that replaces the engine configuration and
shutdown cancel it, so the frame in flight stops within one micro-batch and publishes nothing
(counted as abandoned, except at shutdown).

A bad message never stops the node: it is logged (occurrences 1, 10, 100, ... of each kind),
counted, reported at ERROR in ``/diagnostics`` and nothing is published for it.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import NoReturn

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType, JumpThreshold
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from mmcert_ros.certify import CancelToken, FrameCancelled
from mmcert_ros.certify.l2.certifier import FrameCertification
from mmcert_ros.data.pairing import Pair, TimeJump
from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.data.road import ROAD_CLASS
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter import outputs
from mmcert_ros.segmenter.engine_swap import SHUTDOWN, EngineSwap
from mmcert_ros.segmenter.pair_to_frame import FrameDecodeError, frame_from_pair
from mmcert_ros.segmenter.input_pairing import InputPairing
from mmcert_ros.segmenter.labelled_points import LABELLED_POINTS, labelled_cloud
from mmcert_ros.segmenter.message_fields import stamp_to_ns
from mmcert_ros.segmenter.parameters import (PARAMETER_NAMES, PARAMETERS, NodeSettings,
                                             RuntimeSettings)
from mmcert_ros.segmenter.presets import COMPRESSED_RGB
from mmcert_ros.segmenter.views import VIEW_TOPICS, view_images
from mmcert_ros.ros.diagnostics import (HealthLimits, L2FrameStats, PipelineStats,
                                        diagnostic_array, frame_times_array, mode_status_array,
                                        should_log)
from mmcert_ros.ros.extrinsics import CloudExtrinsics
from mmcert_ros.ros.launch_support import LIFECYCLE_FLAG
from mmcert_ros.ros.parameter_descriptors import declare_parameters
from mmcert_ros.ros.process import exit_process, run_node

NODE_NAME = 'mmcert_segmenter'
#: output queue depth; outputs are reliable so any subscriber QoS can connect
OUTPUT_QOS = QoSProfile(depth=5)
#: an error triggers an immediate diagnostics report at most this often (seconds)
ERROR_REPORT_INTERVAL_S = 0.2
#: how often pending messages are checked against ``sync.max_age`` (seconds)
EXPIRY_INTERVAL_S = 0.25
#: the subscribed name of each input stream, by ``depth.source`` (for logs and errors)
INPUT_TOPICS = {'image': {'rgb': 'rgb/image', 'depth': 'depth/image',
                          'camera_info': 'rgb/camera_info'},
                'points': {'rgb': 'rgb/image', 'depth': 'depth/points',
                           'camera_info': 'rgb/camera_info'}}
#: what ``model.checkpoint: ''`` loads, by ``depth.source`` (for the start-up line)
_SHIPPED = {'image': 'shipped default', 'points': 'shipped points model'}


class _Segmenter:
    """What the plain and the lifecycle segmenter share (mixed into an rclpy node class):
    :meth:`_declare` (parameters), :meth:`_configure` (engines, model, publishers, worker),
    :meth:`_activate` / :meth:`_deactivate` (the input subscriptions) and :meth:`_cleanup`.

    Call :meth:`close` before destroying the node (:func:`~mmcert_ros.ros.process.run_node`
    does): its worker thread is not a daemon, so the process cannot exit while it runs.
    """

    def _declare(self, model) -> None:
        """Declare every parameter; nothing is loaded yet."""
        declare_parameters(self, PARAMETERS)
        self._given_model = model
        self._diagnostics_lock = threading.Lock()
        #: name of this node's statuses in /diagnostics and mmcert/status: the fully qualified
        #: name without its leading '/', so segmenters in two namespaces stay apart
        self._hardware_id = self.get_fully_qualified_name()
        self._status_name = self._hardware_id.lstrip('/')
        # steady clocks: under use_sim_time a stopped /clock must not stop expiry or reports
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._worker: threading.Thread | None = None
        self._inputs: list = []        # the input subscriptions and the age timer, while active
        self._configured: list = []    # what _configure created and _cleanup destroys

    def _configure(self) -> None:
        """Build the engines (load the model), the publishers and the worker.

        :raises UserError: the parameter values cannot be used (the reason names them).
        """
        #: the engines in use (``.engines``, whose settings are :attr:`_settings`) and those
        #: a parameter change accepted
        self._swap = EngineSwap(NodeSettings.from_parameters(self._parameter_values()),
                                self._given_model, warn=self.get_logger().warning)
        runtime = self._settings.runtime
        self._stats = PipelineStats(limits=_health_limits(runtime), watch_inputs=True)
        self._pairing = InputPairing(self._settings, on_jump=self._on_time_jump,
                                     on_reject=self._on_stamp_rejected,
                                     on_unpaired=self._on_unpaired,
                                     on_depth_lost=self._on_depth_lost)
        self._camera_info: CameraInfo | None = None
        compressed = self._settings.rgb_transport == 'compressed'
        self._topics = dict(INPUT_TOPICS[self._settings.depth.source],
                            **({'rgb': COMPRESSED_RGB} if compressed else {}))
        self._last_error_report = 0.0
        #: camera <- cloud transforms from tf (clouds only; None with depth images)
        self._extrinsics = (CloudExtrinsics(self, self._bad_transform)
                            if self._settings.depth.source == 'points' else None)
        self._check_extrinsic_source(self._settings)
        self._clock_jumps = self._watch_clock_jumps(runtime.jump_back_s)
        self._publishers_by_topic = {
            topic: self.create_publisher(Image, topic, OUTPUT_QOS)
            for topic in outputs.OUTPUT_TOPICS + (outputs.L2_CERTIFICATION,) + VIEW_TOPICS}
        self._publishers_by_topic[outputs.OVERLAY_COMPRESSED] = self.create_publisher(
            CompressedImage, outputs.OVERLAY_COMPRESSED, OUTPUT_QOS)
        if self._settings.depth.source == 'points':
            self._publishers_by_topic[LABELLED_POINTS] = self.create_publisher(
                PointCloud2, LABELLED_POINTS, OUTPUT_QOS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._frame_times_pub = self.create_publisher(DiagnosticArray, outputs.FRAME_TIMES,
                                                      OUTPUT_QOS)
        self._status_pub = self.create_publisher(DiagnosticArray, outputs.STATUS, OUTPUT_QOS)
        self._configured = [*self._publishers_by_topic.values(), self._diagnostics_pub,
                            self._frame_times_pub, self._status_pub,
                            self.create_timer(1.0, self.publish_diagnostics, clock=self._steady)]
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # not a daemon: the interpreter never exits while the worker is inside torch
        self._worker = threading.Thread(target=self._work, name='mmcert_worker')
        self._worker.start()

    def _summary(self) -> str:
        """The settings in force, for the start-up line."""
        config = self._settings.certify
        return (f'{self._engines.device}: N={config.num_samples}, alpha={config.alpha}, '
                f'radius=({config.radius_rgb}, {config.radius_depth}), '
                f'model={self._settings.checkpoint or _SHIPPED[self._settings.depth.source]}, '
                f'depth from {self._topics["depth"]}{_describe_timeout(self._settings)}, '
                f'l2 certificate {_describe_l2(self._settings)}')

    def _activate(self) -> None:
        """Subscribe to the inputs (and start the age timer)."""
        compressed = self._settings.rgb_transport == 'compressed'
        input_qos = (qos_profile_sensor_data if self._settings.reliability == 'best_effort'
                     else QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        depth_type = PointCloud2 if self._settings.depth.source == 'points' else Image
        self._inputs = [
            self.create_subscription(CompressedImage if compressed else Image,
                                     self._topics['rgb'], self._on_rgb, input_qos),
            self.create_subscription(depth_type, self._topics['depth'], self._on_depth,
                                     input_qos),
            self.create_subscription(CameraInfo, 'rgb/camera_info', self._on_camera_info,
                                     input_qos),
            self.create_timer(EXPIRY_INTERVAL_S, self._expire_pending, clock=self._steady)]

    def _deactivate(self) -> None:
        """Unsubscribe from the inputs; a frame in flight is finished and published."""
        for entity in self._inputs:
            (self.destroy_timer if isinstance(entity, Timer) else self.destroy_subscription)(
                entity)
        self._inputs = []

    def _cleanup(self) -> None:
        """Stop the worker and release the engines, publishers and parameter callback."""
        self.close()
        self._clock_jumps.unregister()
        if self._extrinsics is not None:
            self._extrinsics.close()
        self.remove_on_set_parameters_callback(self._on_set_parameters)
        for entity in self._configured:
            (self.destroy_timer if isinstance(entity, Timer) else self.destroy_publisher)(entity)
        self._configured = []
        self._worker = None
        del self._swap

    # -- parameters ---------------------------------------------------------------------

    @property
    def _engines(self):
        """The engines in use (accepted changes take over at the next frame)."""
        return self._swap.engines

    @property
    def _settings(self) -> NodeSettings:
        """The settings of the engines in use (accepted changes apply at the next frame)."""
        return self._swap.engines.settings

    def _parameter_values(self, changes=()) -> dict:
        values = {name: self.get_parameter(name).value for name in PARAMETER_NAMES}
        values.update({param.name: param.value for param in changes})
        return values

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a change against all other parameters; a valid one applies from the next frame.

        The engines are rebuilt here (:func:`~mmcert_ros.segmenter.engines.build_engines`,
        reusing what did not change), so a checkpoint, booster (``fs.booster``) or device
        that does not load, or a booster that does not fit the model, is rejected with the
        reason instead of failing later.
        """
        changed = ', '.join(f'{param.name}={param.value!r}' for param in params)
        current = self._swap.latest
        try:
            settings = NodeSettings.from_parameters(self._parameter_values(params))
            self._check_extrinsic_source(settings)
            replaced = self._swap.propose(settings)
        except Exception as error:  # any reason a value cannot be used is a rejection
            reason = f'rejected {changed}: {error}'
            self.get_logger().warning(reason)
            return SetParametersResult(successful=False, reason=reason)
        self._pairing.update(settings)
        runtime = settings.runtime
        self._stats.limits = _health_limits(runtime)
        if runtime.jump_back_s != current.runtime.jump_back_s:
            self._clock_jumps.unregister()
            self._clock_jumps = self._watch_clock_jumps(runtime.jump_back_s)
        self.get_logger().info(f'parameters changed: {changed} (applied from the next frame'
                               f'{"; the frame in flight is cancelled" if replaced else ""})')
        return SetParametersResult(successful=True)

    # -- inputs (executor threads: cheap, never block) ----------------------------------

    def _on_rgb(self, msg: Image | CompressedImage) -> None:
        self._offer('rgb', msg)

    def _on_depth(self, msg: Image | PointCloud2) -> None:
        if self._pairing.depth_arrived():
            self.get_logger().info(f'{self._topics["depth"]} is back: RGB-D certification '
                                   'resumed (RGB-only mode left)')
        self._offer('depth', msg)

    def _offer(self, stream: str, msg: Image | PointCloud2) -> None:
        self._stats.count_input(stream)
        self._pairing.offer(stream, msg, stamp_to_ns(msg.header.stamp),
                            self.get_clock().now().nanoseconds)

    def _expire_pending(self) -> None:
        """Timer: expire unpaired messages, enter the RGB-only mode when depth went silent."""
        self._pairing.expire()

    def _on_depth_lost(self) -> None:
        """Pairing callback: WARN once on entering the RGB-only mode."""
        watch = self._pairing.depth_watch
        self.get_logger().warning(
            f'no {self._topics["depth"]} message for {watch.silence_s():.1f} s '
            f'(depth.timeout_s = {watch.timeout_s:g}): degraded: rgb-only, '
            'certifying RGB alone (depth all invalid) until depth returns')
        self.publish_diagnostics()

    def _on_unpaired(self, unpaired: int, counters: dict, slop_s: float) -> None:
        """Pairing callback: unpaired totals at 1, 10, 100, ..."""
        self.get_logger().warning(
            f'{unpaired} message(s) found no partner within sync.slop = '
            f'{slop_s} s so far ({counters})')

    def _on_stamp_rejected(self, kind: str, stream: str, stamp_ns: int, count: int) -> None:
        """Pairing callback: log occurrences 1, 10, 100, ... per kind."""
        if should_log(count):
            self.get_logger().warning(
                f'{self._topics[stream]} stamped {stamp_ns / 1e9:.3f} s rejected: {kind} '
                f'(node clock {self.get_clock().now().nanoseconds / 1e9:.3f} s) '
                f'[{kind}, occurrence {count}]')

    def _on_time_jump(self, jump: TimeJump) -> None:
        """Pairer callback: the one warning of a time jump."""
        self.get_logger().warning(jump.describe())

    def _watch_clock_jumps(self, jump_back_s: float):
        """Reset pairing when the node's ROS clock (``use_sim_time``) jumps back."""
        threshold = JumpThreshold(min_forward=None,
                                  min_backward=Duration(nanoseconds=-round(jump_back_s * 1e9)),
                                  on_clock_change=False)
        return self.get_clock().create_jump_callback(threshold,
                                                     post_callback=self._on_clock_jump)

    def _on_clock_jump(self, jump) -> None:
        now_ns = self.get_clock().now().nanoseconds
        self._pairing.reset_to(now_ns, now_ns - jump.delta.nanoseconds)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _check_extrinsic_source(self, settings: NodeSettings) -> None:
        """:raises UserError: clouds without ``depth.extrinsic`` where tf cannot be
        read (at start-up: exit 2; at run time: the change is rejected)."""
        if settings.depth.source == 'points' and settings.depth.extrinsic is None \
                and not (self._extrinsics and self._extrinsics.available):
            raise UserError("depth.extrinsic is '' (take the transform from tf), but neither "
                            'tf2_ros nor tf2_msgs is installed here; give depth.extrinsic')

    def _bad_transform(self, reason: str) -> None:
        self._fail('bad_extrinsic', reason)

    # -- worker thread ------------------------------------------------------------------

    def _work(self) -> None:
        while (pair := self._pairing.next_pair()) is not None:
            token = self._swap.start_frame()
            if token is None:
                return
            try:
                self._process(pair, token)
            except FrameCancelled as cancelled:
                self._abandoned(pair, cancelled.reason)
            except Exception as error:  # the worker must survive anything one frame does
                if not self.context.ok():
                    return              # shutdown destroyed what the frame was using
                self._fail('internal', f'{type(error).__name__}: {error}')
            finally:
                self._swap.end_frame()

    def _abandoned(self, pair: Pair, reason: str) -> None:
        """Count and log a frame given up before its certificate was complete."""
        if reason == SHUTDOWN:
            return
        kind = 'time_budget' if reason == 'time budget exceeded' else 'parameter_change'
        count = self._stats.record_abandoned(kind)
        if should_log(count):
            self.get_logger().warning(
                f'frame stamped {pair.rgb_stamp_ns / 1e9:.3f} s abandoned: {reason} '
                f'(certify.time_budget = {self._settings.runtime.time_budget_s:g} s) '
                f'[{kind}, occurrence {count}]')

    def _process(self, pair: Pair, token: CancelToken) -> None:
        """Decode, certify and publish one pair; :class:`FrameCancelled` when ``token`` is
        cancelled or runs out (nothing more is published for the frame)."""
        settings, engines = self._settings, self._engines
        stages: dict[str, float] = {}
        tic = time.perf_counter()
        try:
            frame = frame_from_pair(pair, settings.depth.source, self._camera_info,
                                    self._extrinsic_for(pair, settings),
                                    camera_k=settings.camera_k)
        except FrameDecodeError as error:
            return self._fail(error.kind, f'{self._topics[error.stream]}: {error}')
        rgb = frame.rgb
        stages['decode'] = time.perf_counter() - tic
        run = engines.start(frame, token)
        try:
            certificate = run.l0()
        except FrameCancelled:
            raise
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
        if settings.publish_overlay:
            topics |= self._subscribed({outputs.OVERLAY})
        images = outputs.output_images(certificate, rgb, topics)
        if settings.publish_views:
            images.update(view_images(certificate, self._subscribed(VIEW_TOPICS),
                                      settings.view_max_radius))
        messages = {topic: fields.copy_to(Image(header=pair.rgb.header))
                    for topic, fields in images.items()}
        messages.update(self._viewer_messages(settings, certificate, frame, pair,
                                              images.get(outputs.OVERLAY)))
        stages['encode'] = time.perf_counter() - tic

        tic = time.perf_counter()
        self._publish(self._status_pub, mode_status_array(
            pair.depth is not None, settings.depth.source, f'{self._status_name}: mode',
            pair.rgb.header, self._hardware_id))
        for topic, msg in messages.items():
            if not self._publish(self._publishers_by_topic[topic], msg):
                return
        stages['publish'] = time.perf_counter() - tic
        latency_s = (self.get_clock().now().nanoseconds - pair.rgb_stamp_ns) / 1e9
        l2_stats = None
        if settings.l2.enabled:
            l2_stats = self._certify_l2(run, certificate.labels, pair.rgb.header, stages)
        self._stats.record_frame(stages, latency_s, certificate.certified_fraction,
                                 certificate.delta, l2_stats)
        if settings.log_frames:
            self.get_logger().info(
                f'frame {pair.rgb_stamp_ns / 1e9:.3f} s: '
                f'{certificate.certified_fraction:.1%} certified, '
                f'road {float(np.mean(certificate.labels == ROAD_CLASS)):.1%}, '
                f'{1000 * sum(stages.values()):.0f} ms '
                f'({"rgb-d" if pair.depth is not None else "rgb-only"})')
        self._publish(self._frame_times_pub, frame_times_array(
            stages, latency_s, f'{self._status_name}: frame', pair.rgb.header,
            self._hardware_id))

    def _subscribed(self, topics) -> set[str]:
        """Those of ``topics`` someone subscribes to (viewer topics cost nothing unwatched)."""
        return {topic for topic in topics
                if self._publishers_by_topic[topic].get_subscription_count()}

    def _viewer_messages(self, settings: NodeSettings, certificate, frame, pair: Pair,
                         overlay=None) -> dict:
        """The compressed overlay (RGB header; ``overlay``: the frame's ``mmcert/overlay``
        image when it was rendered) and the labelled points (the cloud's header) of one
        frame, for the topics someone subscribes to."""
        messages = {}
        if settings.publish_overlay and self._subscribed({outputs.OVERLAY_COMPRESSED}):
            fmt, data = outputs.compressed_overlay(certificate, frame.rgb, overlay)
            messages[outputs.OVERLAY_COMPRESSED] = CompressedImage(
                header=pair.rgb.header, format=fmt, data=data)
        if (settings.publish_views and 'points' in frame.extras and pair.depth is not None
                and self._subscribed({LABELLED_POINTS})):
            messages[LABELLED_POINTS] = labelled_cloud(frame.extras['points'], certificate) \
                .copy_to(PointCloud2(header=pair.depth.header), PointField)
        return messages

    def _extrinsic_for(self, pair: Pair, settings: NodeSettings) -> Extrinsic | None:
        """The LiDAR-to-camera extrinsic of the pair's cloud: ``depth.extrinsic``, else the
        transform from tf between the RGB image's frame and the cloud's (chains composed; None:
        no chain yet, or depth images)."""
        if settings.depth.source != 'points' or pair.depth is None:
            return None
        return settings.depth.extrinsic or self._extrinsics.lookup(pair.rgb.header.frame_id,
                                                                   pair.depth.header.frame_id)

    def _certify_l2(self, run: FrameCertification, labels: np.ndarray, header,
                    stages: dict[str, float]) -> L2FrameStats | None:
        """The l2 certificate of ``run``'s frame; publish ``mmcert/l2_certification`` (the
        l2 mask agreeing with the published ``labels``) and add its times to ``stages``
        (with ``fs.joint`` the ensemble ran in ``run.l0()``: 'l2' is then only the wait for
        its result, about 0).
        :raises FrameCancelled: the frame's token was cancelled or ran out (the l0 outputs
            stand).

        :returns: the frame's l2 figures, or None after a failure (reported as ``engine``;
            the frame's l0 outputs, already published, stand).
        """
        tic = time.perf_counter()
        try:
            l2_certificate = run.l2()
        except FrameCancelled:
            raise
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
            'device': str(self._engines.device),
            'precision': config.precision,
            'l2': _describe_l2(self._settings),
            'depth_source': self._settings.depth.source,
        }
        counters = self._pairing.counters()
        rgb_only_s = self._pairing.rgb_only_silence_s()
        with self._diagnostics_lock:
            self._last_error_report = time.monotonic()
            warning = self._engines.segmenter.keep_fraction_warning
            report = self._stats.report(counters, self._pairing.slot.dropped, settings,
                                        [warning] if warning else [], rgb_only_s)
            self._publish(self._diagnostics_pub, diagnostic_array(
                report, f'{self._status_name}: pipeline', self._hardware_id,
                self.get_clock().now().to_msg()))

    # -- lifecycle ----------------------------------------------------------------------

    def close(self, timeout_s: float = 30.0) -> None:
        """Cancel the frame in flight and stop the worker; it stops within one micro-batch
        (waits at most ``timeout_s``; the interpreter waits for it in any case). Nothing to
        do before :meth:`_configure` or after :meth:`_cleanup`."""
        if self._worker is None:
            return
        tic = time.monotonic()
        in_flight = self._swap.close()
        self._pairing.close()
        self._worker.join(timeout_s)
        if in_flight:
            self.get_logger().info(f'shutdown cancelled the frame in flight; the worker '
                                   f'stopped after {time.monotonic() - tic:.2f} s')


class SegmenterNode(_Segmenter, Node):
    """The certified segmentation node (see the module docstring for topics and threading),
    serving from construction: parameters declared, engines built, inputs subscribed.

    :param model: optional base model to use while ``model.checkpoint`` is ``''`` (embedding
        and tests); without it ``''`` loads the shipped default checkpoint.
    :param node_kwargs: passed to :class:`rclpy.node.Node` (``namespace``,
        ``parameter_overrides``, ``cli_args``, ...).
    :raises UserError: if the initial parameter values cannot be used (the reason names them).
    """

    def __init__(self, model=None, **node_kwargs) -> None:
        Node.__init__(self, NODE_NAME, **node_kwargs)
        self._declare(model)
        self._configure()
        self._activate()
        self.get_logger().info(f'ready on {self._summary()}')


class LifecycleSegmenterNode(_Segmenter, LifecycleNode):
    """The segmenter as a managed (lifecycle) node: constructed *unconfigured* (parameters
    declared, nothing loaded); ``configure`` builds the engines and loads the model (a value
    that cannot be used fails the transition with the reason, the node stays unconfigured),
    ``activate`` subscribes to the inputs, ``deactivate`` unsubscribes (diagnostics go on),
    ``cleanup`` stops the worker and releases the engines; ``shutdown`` from any state."""

    def __init__(self, model=None, **node_kwargs) -> None:
        LifecycleNode.__init__(self, NODE_NAME, **node_kwargs)
        self._declare(model)
        self.get_logger().info('unconfigured: `ros2 lifecycle set <node> configure` loads '
                               'the model')

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except UserError as error:
            self.get_logger().error(f'configure failed: {error}')
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'configured on {self._summary()}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._activate()
        self.get_logger().info(f'active: subscribed to {", ".join(self._topics.values())}')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info('inactive: input subscriptions closed')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        self.get_logger().info('unconfigured: engines released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        self.close()
        return TransitionCallbackReturn.SUCCESS


def _health_limits(runtime: RuntimeSettings) -> HealthLimits:
    """The diagnostics thresholds of the ``diagnostics.*`` parameters (0 ms = off)."""
    return HealthLimits(stale_warn_s=runtime.stale_warn_s, stale_error_s=runtime.stale_error_s,
                        processing_warn_ms=runtime.processing_warn_ms or None,
                        processing_error_ms=runtime.processing_error_ms or None)


def _describe_timeout(settings: NodeSettings) -> str:
    """How the RGB-only mode is set, for the start-up line."""
    timeout_s = settings.depth.timeout_s
    return (f', RGB alone after {timeout_s:g} s without depth' if timeout_s
            else ', no RGB-only mode')


def _describe_l2(settings: NodeSettings) -> str:
    """One line of the l2 certificate's settings in force ('off' while ``fs.sigma`` is 0)."""
    l2 = settings.l2
    if not l2.enabled:
        return 'off'
    return (f'sigma={l2.sigma:g}, radius={l2.radius:g}, '
            f'N={l2.engine_config(settings.certify).num_samples}, '
            f'booster={l2.booster or "none"}{", joint ensemble" if l2.joint else ""}')


def main(args: list[str] | None = None) -> NoReturn:
    """Run the node until shutdown (Ctrl-C, ``SIGTERM`` or ``rclpy.shutdown``), then end the
    process with its exit status (:func:`~mmcert_ros.ros.process.exit_process`).

    ``--lifecycle`` before the ROS arguments runs :class:`LifecycleSegmenterNode` instead."""
    args = list(sys.argv if args is None else args)
    ros_start = args.index('--ros-args') if '--ros-args' in args else len(args)
    lifecycle = LIFECYCLE_FLAG in args[:ros_start]
    if lifecycle:
        args.remove(LIFECYCLE_FLAG)
    node_class = LifecycleSegmenterNode if lifecycle else SegmenterNode
    exit_process(run_node(NODE_NAME, node_class, _spin, args))


def _spin(node: SegmenterNode) -> None:
    # one thread for every callback: they are cheap, and rclpy's MultiThreadedExecutor
    # (rclpy 9, Fast DDS 3) delivered reliable 1.5 Hz images to them seconds late, losing some
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.spin()


if __name__ == '__main__':
    main()
