"""Pipeline statistics of the segmenter and their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`PipelineStats` is fed by the subscription callbacks (inputs), the worker (frames and
errors) and read by the 1 Hz diagnostics timer; a lock guards it, held only to update or
snapshot numbers. There is no ``diagnostic_updater`` in a pip install, so the node publishes
the array itself: once a second and right after an error.

Levels: ERROR if a message was rejected or the engine failed since the last report, or if
inputs arrived but nothing could be paired; WARN if pairs were dropped (the engine is slower
than the input) or messages stayed unpaired; OK otherwise.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: per-frame stages timed by the node, in pipeline order (seconds in, milliseconds out);
#: 'l2' is the whole l2 certificate (noise, masks, forward passes, certification), 0 when off
STAGES = ('decode', 'sampling', 'inference', 'certification', 'l2', 'encode', 'publish')


@dataclass(frozen=True)
class L2FrameStats:
    """Figures of one frame's l2 certificate for ``/diagnostics``.

    :ivar certified_fraction: share of pixels in the published ``mmcert/l2_certification``
        mask (l2-certified and agreeing with the published segmentation).
    :ivar fcsb_mean: mean over feature cells of the FCSB at ``fs.radius``.
    :ivar fcsb_min: smallest FCSB over the cells.
    :ivar score_mean: mean Gaussian robustness score over the cells.
    """

    certified_fraction: float
    fcsb_mean: float
    fcsb_min: float
    score_mean: float

    @classmethod
    def of(cls, l2_certificate, labels) -> 'L2FrameStats':
        """From an :class:`~mmcert_ros.certify.l2.L2Certificate` and the published labels."""
        summary = l2_certificate.summary()
        return cls(certified_fraction=float(l2_certificate.agreeing(labels).mean()),
                   fcsb_mean=summary['fcsb']['mean'], fcsb_min=summary['fcsb']['min'],
                   score_mean=summary['score_mean'])


def should_log(count: int) -> bool:
    """Throttle rule for repeated errors of one kind: log occurrences 1, 10, 100, 1000, ..."""
    if count < 1:
        return False
    while count % 10 == 0:
        count //= 10
    return count == 1


@dataclass
class Report:
    """What happened since the previous report, plus running totals.

    Rates are per second of the period; times are means over the period's frames in ms.
    """

    period_s: float
    rgb_rate_hz: float
    depth_rate_hz: float
    frame_rate_hz: float
    frames_period: int
    frames_total: int
    stage_ms: dict[str, float]
    processing_ms: float
    latency_ms_mean: float
    latency_ms_max: float
    certified_fraction: float
    delta: float
    l2: L2FrameStats | None
    pairing: dict[str, int]
    dropped_pairs: int
    errors_period: int
    errors_total: dict[str, int]
    last_error: str
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> bytes:
        """``DiagnosticStatus`` level byte (OK, WARN or ERROR) by the rule in the module doc."""
        unpaired = (self.pairing.get('unpaired_rgb_period', 0)
                    + self.pairing.get('unpaired_depth_period', 0))
        starving = unpaired > 0 and self.pairing.get('paired_period', 0) == 0
        if self.errors_period or starving:
            return DiagnosticStatus.ERROR
        if self.pairing.get('dropped_period', 0) or unpaired:
            return DiagnosticStatus.WARN
        return DiagnosticStatus.OK

    @property
    def summary(self) -> str:
        """One line for ``DiagnosticStatus.message``."""
        if self.errors_period:
            return f'{self.errors_period} error(s): {self.last_error}'
        level = self.level
        if level == DiagnosticStatus.ERROR:
            return f'no RGB/depth pair within the slop ({self.pairing})'
        text = (f'{self.frame_rate_hz:.1f} Hz, {self.processing_ms:.0f} ms/frame, '
                f'certified {100 * self.certified_fraction:.1f} %')
        if level == DiagnosticStatus.WARN:
            text += (f'; dropped {self.pairing.get("dropped_period", 0)} pair(s), unpaired '
                     f'{self.pairing.get("unpaired_rgb_period", 0)} RGB / '
                     f'{self.pairing.get("unpaired_depth_period", 0)} depth')
        return text


class PipelineStats:
    """Thread-safe counters of one segmenter; :meth:`report` closes a period.

    :param clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._period_start = clock()
        self._inputs = {'rgb': 0, 'depth': 0}
        self._frames_total = 0
        self._errors_total: dict[str, int] = {}
        self._last_error = ''
        self._certified_fraction = float('nan')
        self._delta = float('nan')
        self._l2: L2FrameStats | None = None
        self._previous_pairing: dict[str, int] = {}
        self._reset_period()

    def _reset_period(self) -> None:
        self._inputs = {'rgb': 0, 'depth': 0}
        self._frames = 0
        self._stage_sums = dict.fromkeys(STAGES, 0.0)
        self._processing_sum = 0.0
        self._latency_sum = 0.0
        self._latency_max = 0.0
        self._errors_period = 0

    def count_input(self, stream: str) -> None:
        """Count one received message of ``stream`` ('rgb' or 'depth')."""
        with self._lock:
            self._inputs[stream] += 1

    def record_frame(self, stage_s: Mapping[str, float], latency_s: float,
                     certified_fraction: float, delta: float,
                     l2: L2FrameStats | None = None) -> None:
        """Record one published frame.

        :param stage_s: seconds per stage of :data:`STAGES` (missing stages count as 0).
        :param latency_s: publish time minus the RGB header stamp, seconds.
        :param l2: the frame's l2 figures; None when it has no l2 certificate.
        """
        with self._lock:
            self._frames += 1
            self._frames_total += 1
            for stage in STAGES:
                self._stage_sums[stage] += stage_s.get(stage, 0.0)
            self._processing_sum += sum(stage_s.get(stage, 0.0) for stage in STAGES)
            self._latency_sum += latency_s
            self._latency_max = max(self._latency_max, latency_s)
            self._certified_fraction = certified_fraction
            self._delta = delta
            self._l2 = l2

    def record_error(self, kind: str, message: str) -> int:
        """Count an error of ``kind``; return how many of that kind there have been so far."""
        with self._lock:
            self._errors_period += 1
            self._errors_total[kind] = self._errors_total.get(kind, 0) + 1
            self._last_error = f'{kind}: {message}'
            return self._errors_total[kind]

    def report(self, pairing: Mapping[str, int], dropped_pairs: int,
               settings: Mapping[str, str] | None = None) -> Report:
        """Close the current period and summarize it.

        :param pairing: the pairer's running counters (``StampPairer.counters()``).
        :param dropped_pairs: running count of pairs displaced from the hand-over slot.
        """
        with self._lock:
            now = self._clock()
            period = max(now - self._period_start, 1e-9)
            frames = self._frames
            running = dict(pairing, dropped=dropped_pairs)
            pairing_out = dict(running)
            for key in ('unpaired_rgb', 'unpaired_depth', 'paired', 'dropped'):
                pairing_out[f'{key}_period'] = running[key] - self._previous_pairing.get(key, 0)
            self._previous_pairing = running
            mean = (lambda total: 1000.0 * total / frames) if frames else (lambda total: 0.0)
            report = Report(
                period_s=period,
                rgb_rate_hz=self._inputs['rgb'] / period,
                depth_rate_hz=self._inputs['depth'] / period,
                frame_rate_hz=frames / period,
                frames_period=frames,
                frames_total=self._frames_total,
                stage_ms={stage: mean(self._stage_sums[stage]) for stage in STAGES},
                processing_ms=mean(self._processing_sum),
                latency_ms_mean=mean(self._latency_sum),
                latency_ms_max=1000.0 * self._latency_max,
                certified_fraction=self._certified_fraction,
                delta=self._delta,
                l2=self._l2,
                pairing=pairing_out,
                dropped_pairs=dropped_pairs,
                errors_period=self._errors_period,
                errors_total=dict(self._errors_total),
                last_error=self._last_error,
                settings=dict(settings or {}))
            self._period_start = now
            self._reset_period()
            return report


def diagnostic_array(report: Report, name: str, hardware_id: str, stamp) -> DiagnosticArray:
    """The ``DiagnosticArray`` (one status) of ``report``.

    :param stamp: a ``builtin_interfaces/Time`` for the header.
    """
    values = {
        'input_rate_rgb_hz': f'{report.rgb_rate_hz:.2f}',
        'input_rate_depth_hz': f'{report.depth_rate_hz:.2f}',
        'frame_rate_hz': f'{report.frame_rate_hz:.2f}',
        'frames_period': str(report.frames_period),
        'frames_total': str(report.frames_total),
        'processing_time_ms': f'{report.processing_ms:.2f}',
        **{f'{stage}_ms': f'{ms:.2f}' for stage, ms in report.stage_ms.items()},
        'pipeline_latency_ms_mean': f'{report.latency_ms_mean:.2f}',
        'pipeline_latency_ms_max': f'{report.latency_ms_max:.2f}',
        'certified_fraction': f'{report.certified_fraction:.4f}',
        'delta': f'{report.delta + 0.0:.6g}',  # + 0.0: no '-0'
        **_l2_values(report.l2),
        'dropped_pairs': str(report.dropped_pairs),
        **{key: str(value) for key, value in report.pairing.items() if key != 'dropped'},
        'errors_total': str(sum(report.errors_total.values())),
        **{f'errors.{kind}': str(count) for kind, count in sorted(report.errors_total.items())},
        'last_error': report.last_error,
        **report.settings,
    }
    status = DiagnosticStatus(level=report.level, name=name, message=report.summary,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def _l2_values(l2: L2FrameStats | None) -> dict[str, str]:
    """The l2 certificate's diagnostic values of the last frame (none when it had none)."""
    if l2 is None:
        return {}
    return {'l2_certified_fraction': f'{l2.certified_fraction:.4f}',
            'l2_fcsb_mean': f'{l2.fcsb_mean:.6g}', 'l2_fcsb_min': f'{l2.fcsb_min:.6g}',
            'l2_score_mean': f'{l2.score_mean:.6g}'}


def values_of(array: DiagnosticArray) -> dict[str, str]:
    """``{key: value}`` of the first status of a received ``DiagnosticArray``."""
    return {item.key: item.value for item in array.status[0].values} if array.status else {}
