"""Run sim_drive and the segmenter as separate processes and record what comes out.

Shared by ``mmcert-ros demo`` and ``bench/ros_latency.py``: both nodes run as
``python -m mmcert_ros.tools.cli node ...`` subprocesses on a private ROS domain restricted to
this machine; :class:`OutputRecorder`, an rclpy node in this process, subscribes to the
outputs, the ground truth and ``/diagnostics`` over real DDS.

Latency is measured per frame as the receive time of ``mmcert/certification`` minus the RGB
header stamp (sim_drive stamps with the system clock at render time), so it covers
decoding, certification, encoding and both DDS hops.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmcert_ros.evaluation.metrics import Confusion, certified_confusion, plain_confusion
from mmcert_ros.ros.diagnostics import STAGES, values_of
from mmcert_ros.segmenter.codec import decode_mask, decode_rgb
from mmcert_ros.segmenter.message_fields import stamp_to_ns
from mmcert_ros.segmenter.outputs import CERTIFICATION, OVERLAY, SEGMENTATION


def node_command(name: str, params: dict) -> list[str]:
    """The command line starting node ``name`` with ``-p`` parameter overrides."""
    command = [sys.executable, '-m', 'mmcert_ros.tools.cli', 'node', name, '--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif value == '':
            value = "''"          # the YAML empty string; 'name:=' alone does not parse
        command += ['-p', f'{key}:={value}']
    return command


class NodeProcesses:
    """Context manager running nodes as subprocesses; logs go to ``log_dir/<name>.log``.

    On exit every node gets SIGTERM (then SIGKILL after ``grace_s``).
    """

    def __init__(self, log_dir: Path, env: dict[str, str], grace_s: float = 15.0) -> None:
        self.log_dir = Path(log_dir)
        self.env = env
        self.grace_s = grace_s
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs = []

    def start(self, name: str, params: dict) -> subprocess.Popen:
        log = open(self.log_dir / f'{name}.log', 'wb')
        self._logs.append(log)
        process = subprocess.Popen(node_command(name, params), env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` with the log tail if a node exited with an error."""
        for name, process in self.processes.items():
            if process.poll() not in (None, 0):
                tail = (self.log_dir / f'{name}.log').read_text(errors='replace')[-2000:]
                raise RuntimeError(f'{name} exited with status {process.returncode}:\n{tail}')

    def __enter__(self) -> 'NodeProcesses':
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


@dataclass
class Recording:
    """What the recorder saw, per processed frame and in total.

    :ivar latencies_s: per frame, certification receive time minus the RGB stamp.
    :ivar received_at: per frame, wall-clock receive time of the certification (seconds).
    :ivar certified_fractions: per frame, fraction of pixels certified.
    :ivar diagnostics: every ``/diagnostics`` status of the segmenter, as key -> value dicts.
    """

    latencies_s: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    certified_fractions: list[float] = field(default_factory=list)
    plain: Confusion = Confusion()
    certified: Confusion = Confusion()
    frames_with_gt: int = 0
    overlays: list[Path] = field(default_factory=list)
    diagnostics: list[dict[str, str]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.latencies_s)

    def latency_percentiles_ms(self, percentiles=(50, 90, 99)) -> dict[str, float]:
        """``{'p50': ms, ...}`` of the per-frame latencies, plus ``'max'``."""
        if not self.latencies_s:
            return {}
        values = 1000.0 * np.asarray(self.latencies_s)
        out = {f'p{p}': float(np.percentile(values, p)) for p in percentiles}
        out['max'] = float(values.max())
        return out

    def output_rate_hz(self, skip_frames: int = 1) -> float:
        """Frames per second delivered after the first ``skip_frames`` frames (0 if too few)."""
        times = self.received_at[skip_frames:]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def final_counter(self, key: str) -> int:
        """A running counter from the newest diagnostics (0 before any)."""
        return int(self.diagnostics[-1].get(key, 0)) if self.diagnostics else 0

    def stage_means_ms(self, skip_frames: int = 1) -> dict[str, float]:
        """Mean milliseconds per stage over frames after the first ``skip_frames`` (warm-up),
        from the per-period means in diagnostics weighted by the period's frame count."""
        totals = dict.fromkeys(STAGES + ('processing_time',), 0.0)
        frames = 0
        for values in self.diagnostics:
            count = int(values.get('frames_period', 0))
            if not count or int(values['frames_total']) - count < skip_frames:
                continue
            frames += count
            for stage in totals:
                totals[stage] += count * float(values[f'{stage}_ms'])
        return {stage: total / frames for stage, total in totals.items()} if frames else {}


class OutputRecorder:
    """An rclpy node recording the segmenter's outputs (see the module docstring).

    :param overlay_dir: where to save ``overlay_<n>.png`` files; ``None`` = do not subscribe
        to the overlay (the segmenter then skips rendering it).
    """

    def __init__(self, domain_id: int, overlay_dir: Path | None = None) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f'mmcert_recorder_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.recording = Recording()
        self.overlay_dir = overlay_dir
        self._pending: dict[int, dict[str, object]] = {}
        qos = QoSProfile(depth=10)
        for topic in (SEGMENTATION, CERTIFICATION, 'gt/road_mask'):
            self.node.create_subscription(Image, topic, self._collector(topic), qos)
        if overlay_dir is not None:
            self.node.create_subscription(Image, OVERLAY, self._save_overlay, qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)

    def _collector(self, topic: str):
        def collect(msg) -> None:
            stamp_ns = stamp_to_ns(msg.header.stamp)
            if topic == CERTIFICATION:
                now = time.time()
                self.recording.received_at.append(now)
                self.recording.latencies_s.append(now - stamp_ns / 1e9)
            parts = self._pending.setdefault(stamp_ns, {})
            parts[topic] = decode_mask(msg)
            if SEGMENTATION in parts and CERTIFICATION in parts:
                self._score(parts)
                # ground truth of frames older than this one will never be answered (dropped)
                for stamp in [stamp for stamp in self._pending if stamp <= stamp_ns]:
                    del self._pending[stamp]
        return collect

    def _score(self, parts: dict) -> None:
        """Certified fraction and (ground truth arrives long before the outputs) confusions."""
        labels, certified = parts[SEGMENTATION], parts[CERTIFICATION] == 255
        self.recording.certified_fractions.append(float(certified.mean()))
        if 'gt/road_mask' in parts:
            gt = parts['gt/road_mask'] != 0
            self.recording.plain += plain_confusion(labels, gt)
            self.recording.certified += certified_confusion(labels, certified, gt)
            self.recording.frames_with_gt += 1

    def _save_overlay(self, msg) -> None:
        import cv2
        path = self.overlay_dir / f'overlay_{len(self.recording.overlays):04d}.png'
        cv2.imwrite(str(path), cv2.cvtColor(decode_rgb(msg), cv2.COLOR_RGB2BGR))
        self.recording.overlays.append(path)

    def _on_diagnostics(self, array) -> None:
        if array.status and array.status[0].name.startswith('mmcert_segmenter'):
            self.recording.diagnostics.append(values_of(array))

    def spin_until(self, done, timeout_s: float, on_idle=None) -> None:
        """Process messages until ``done()``; ``on_idle()`` runs between waits (e.g. a health
        check). Raises ``TimeoutError`` after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f'no result after {timeout_s:.0f} s '
                                   f'({self.recording.frames} frames so far)')
            self.executor.spin_once(timeout_sec=0.1)
            if on_idle is not None:
                on_idle()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def ros_environment(domain_id: int) -> dict[str, str]:
    """This process's environment with a private, machine-local ROS graph."""
    repo_root = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
                ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1',
                PYTHONPATH=os.pathsep.join(
                    filter(None, [repo_root, os.environ.get('PYTHONPATH')])))


def run_pipeline(sim_params: dict, segmenter_params: dict, frames: int, log_dir: Path,
                 domain_id: int, overlay_dir: Path | None = None,
                 timeout_s: float = 900.0) -> Recording:
    """Start the segmenter and sim_drive, record until ``frames`` frames came out, stop both.

    sim_drive waits until the segmenter subscribes to its camera topics and the recorder to
    the ground truth, then publishes until stopped.

    :raises RuntimeError: a node died (its log tail is in the message).
    :raises TimeoutError: fewer than ``frames`` frames within ``timeout_s``.
    """
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    recorder = OutputRecorder(domain_id, overlay_dir)
    try:
        with NodeProcesses(log_dir, ros_environment(domain_id)) as nodes:
            nodes.start('segmenter', segmenter_params)
            nodes.start('sim_drive', dict(sim_params, wait_for_subscribers=1,
                                          wait_for_gt_subscribers=1))
            recorder.spin_until(lambda: recorder.recording.frames >= frames and (
                overlay_dir is None or len(recorder.recording.overlays) >= frames),
                timeout_s, on_idle=nodes.check_alive)
            # one more diagnostics report covering the last frames
            seen = len(recorder.recording.diagnostics)
            recorder.spin_until(lambda: len(recorder.recording.diagnostics) > seen, 30.0)
        return recorder.recording
    finally:
        recorder.close()
