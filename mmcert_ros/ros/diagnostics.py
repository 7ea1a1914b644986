"""Pipeline statistics of the segmenter and their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`PipelineStats` is fed by the subscription callbacks (inputs), the worker (frames and
errors) and read by the 1 Hz diagnostics timer; a lock guards it, held only to update or
snapshot numbers. There is no ``diagnostic_updater`` in a pip install, so the node publishes
the array itself: once a second and right after an error.

Levels (:attr:`Report.level`, with every reason in :attr:`Report.problems`):

* ERROR: a message was rejected or the engine failed since the last report; inputs arrived
  but nothing could be paired (outside the RGB-only mode); an input has been silent for
  ``stale_error_s``; a frame took longer than ``processing_error_ms``.
* WARN: the node certifies RGB alone because depth has been silent for ``depth.timeout_s``
  (``degraded: rgb-only``; the depth input's staleness is then reported as this, not as
  ERROR); pairs were dropped (the engine is slower than the input); messages stayed unpaired;
  stamps were rejected (zero, duplicate, in the future) or jumped back; a frame was abandoned
  (time budget, parameter change); an input has never sent anything or has been silent for
  ``stale_warn_s``; a frame took longer than ``processing_warn_ms``; a standing condition of
  the configuration, such as certifying at other keep fractions than the model was trained
  for (:attr:`Report.standing_warnings`).
* OK otherwise. Input loss the node can see (rates, silence, pairing failures) is never OK.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from mmcert_ros.segmenter.depth_watch import RGB_ONLY, RGBD

#: pairing counters reported per period (``<key>_period``) besides their running totals
PERIOD_COUNTERS = ('unpaired_rgb', 'unpaired_depth', 'paired', 'dropped', 'stamp_zero',
                   'stamp_duplicate', 'stamp_in_future', 'time_jumps')
#: input streams whose silence is watched
INPUTS = ('rgb', 'depth')


@dataclass(frozen=True)
class HealthLimits:
    """Thresholds of the input-health and processing-time checks; None = that check is off.

    :ivar stale_warn_s: seconds without a message on an input before WARN.
    :ivar stale_error_s: seconds without a message on an input before ERROR.
    :ivar processing_warn_ms: processing time of a frame above which WARN.
    :ivar processing_error_ms: processing time of a frame above which ERROR.
    """

    stale_warn_s: float | None = None
    stale_error_s: float | None = None
    processing_warn_ms: float | None = None
    processing_error_ms: float | None = None


#: per-frame stages timed by the node, in pipeline order (seconds in, milliseconds out);
#: 'l2' is the whole l2 certificate (noise, masks, forward passes, certification), 0 when off
STAGES = ('decode', 'sampling', 'inference', 'certification', 'l2', 'encode', 'publish')


@dataclass(frozen=True)
class L2FrameStats:
    """Figures of one frame's l2 certificate for ``/diagnostics``.

    :ivar certified_fraction: share of pixels in the published ``mmcert/l2_certification``
        mask (l2-certified and agreeing with the published label at the clean input).
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
    #: per input, seconds since its newest message arrived (None: nothing yet)
    input_age_s: dict[str, float | None] = field(default_factory=dict)
    processing_ms_max: float = 0.0
    #: frames abandoned before their certificate was complete, by reason (running totals)
    abandoned_total: dict[str, int] = field(default_factory=dict)
    abandoned_period: int = 0
    limits: HealthLimits = HealthLimits()
    #: warnings that hold as long as the configuration does (reported at WARN every period)
    standing_warnings: tuple[str, ...] = ()
    #: seconds depth has been silent while the node certifies RGB alone; None = RGB-D mode
    rgb_only_s: float | None = None

    @property
    def problems(self) -> list[tuple[bytes, str]]:
        """Every reason for a level above OK, ``(level, text)``, most severe first."""
        error, warn = DiagnosticStatus.ERROR, DiagnosticStatus.WARN
        period = self.pairing.get
        found = []
        if self.errors_period:
            found.append((error, f'{self.errors_period} error(s): {self.last_error}'))
        unpaired = period('unpaired_rgb_period', 0) + period('unpaired_depth_period', 0)
        if unpaired and not period('paired_period', 0) and self.rgb_only_s is None:
            found.append((error, f'no RGB/depth pair within the slop ({unpaired} unpaired)'))
        limits = self.limits
        if self.rgb_only_s is not None:
            found.append((warn, f'{RGB_ONLY} (no depth for {self.rgb_only_s:.1f} s)'))
        for stream, age in self.input_age_s.items():
            if stream == 'depth' and self.rgb_only_s is not None:
                continue                        # reported as the RGB-only mode above
            if age is None:
                found.append((warn, f'no {stream} message received yet'))
            elif limits.stale_error_s is not None and age >= limits.stale_error_s:
                found.append((error, f'{stream} input stale: no message for {age:.1f} s'))
            elif limits.stale_warn_s is not None and age >= limits.stale_warn_s:
                found.append((warn, f'{stream} input stale: no message for {age:.1f} s'))
        if self.frames_period and limits.processing_error_ms \
                and self.processing_ms_max > limits.processing_error_ms:
            found.append((error, f'processing {self.processing_ms_max:.0f} ms > '
                                 f'{limits.processing_error_ms:g} ms'))
        elif self.frames_period and limits.processing_warn_ms \
                and self.processing_ms_max > limits.processing_warn_ms:
            found.append((warn, f'processing {self.processing_ms_max:.0f} ms > '
                                f'{limits.processing_warn_ms:g} ms'))
        if period('dropped_period', 0) or unpaired:
            found.append((warn, f'dropped {period("dropped_period", 0)} pair(s), unpaired '
                                f'{period("unpaired_rgb_period", 0)} RGB / '
                                f'{period("unpaired_depth_period", 0)} depth'))
        faults = {kind: period(f'{kind}_period', 0) for kind in
                  ('stamp_zero', 'stamp_duplicate', 'stamp_in_future', 'time_jumps')}
        if any(faults.values()):
            found.append((warn, 'stamp faults ' + ', '.join(
                f'{kind} {count}' for kind, count in faults.items() if count)))
        found.extend((warn, text) for text in self.standing_warnings)
        if self.abandoned_period:
            found.append((warn, f'{self.abandoned_period} frame(s) abandoned '
                                '('
                                f'{", ".join(f"{k} {v}" for k, v in self.abandoned_total.items())}'
                                ' so far)'))
        return sorted(found, key=lambda problem: -problem[0][0])

    @property
    def level(self) -> bytes:
        """``DiagnosticStatus`` level byte (OK, WARN or ERROR) by the rule in the module doc."""
        problems = self.problems
        return problems[0][0] if problems else DiagnosticStatus.OK

    @property
    def summary(self) -> str:
        """One line for ``DiagnosticStatus.message``: at ERROR the problems, most severe
        first; otherwise the frame figures followed by any warnings."""
        problems = [text for _, text in self.problems]
        if self.level == DiagnosticStatus.ERROR:
            return '; '.join(problems)
        figures = (f'{self.frame_rate_hz:.1f} Hz, {self.processing_ms:.0f} ms/frame, '
                   f'certified {100 * self.certified_fraction:.1f} %')
        return '; '.join([figures] + problems)


class PipelineStats:
    """Thread-safe counters of one segmenter; :meth:`report` closes a period.

    :param clock: monotonic seconds (injectable for tests).
    :param limits: thresholds of the health checks (default: all off).
    :param watch_inputs: report each input's silence (the node: yes; offline: no).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 limits: HealthLimits | None = None, watch_inputs: bool = False) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._period_start = clock()
        #: thresholds of the health checks; may be replaced at any time
        self.limits = limits or HealthLimits()
        self._watch_inputs = watch_inputs
        self._last_arrival: dict[str, float | None] = dict.fromkeys(INPUTS)
        self._abandoned: dict[str, int] = {}
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
        self._processing_max = 0.0
        self._abandoned_period = 0
        self._latency_sum = 0.0
        self._latency_max = 0.0
        self._errors_period = 0

    def count_input(self, stream: str) -> None:
        """Count one received message of ``stream`` ('rgb' or 'depth')."""
        with self._lock:
            self._inputs[stream] += 1
            self._last_arrival[stream] = self._clock()

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
            processing = sum(stage_s.get(stage, 0.0) for stage in STAGES)
            self._processing_sum += processing
            self._processing_max = max(self._processing_max, processing)
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

    def record_abandoned(self, reason: str) -> int:
        """Count a frame abandoned before its certificate was complete (``time_budget``,
        ``parameter_change``); return how many for that reason so far."""
        with self._lock:
            self._abandoned_period += 1
            self._abandoned[reason] = self._abandoned.get(reason, 0) + 1
            return self._abandoned[reason]

    def report(self, pairing: Mapping[str, int], dropped_pairs: int,
               settings: Mapping[str, str] | None = None,
               standing_warnings: Sequence[str] = (),
               rgb_only_s: float | None = None) -> Report:
        """Close the current period and summarize it.

        :param pairing: the pairer's running counters (``StampPairer.counters()``).
        :param dropped_pairs: running count of pairs displaced from the hand-over slot.
        :param standing_warnings: :attr:`Report.standing_warnings`.
        :param rgb_only_s: seconds of depth silence while in the RGB-only mode; None = RGB-D.
        """
        with self._lock:
            now = self._clock()
            period = max(now - self._period_start, 1e-9)
            frames = self._frames
            running = dict(pairing, dropped=dropped_pairs)
            pairing_out = dict(running)
            for key in PERIOD_COUNTERS:
                if key in running:
                    pairing_out[f'{key}_period'] = (running[key]
                                                    - self._previous_pairing.get(key, 0))
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
                settings=dict(settings or {}),
                input_age_s={stream: None if arrival is None else now - arrival
                             for stream, arrival in self._last_arrival.items()}
                if self._watch_inputs else {},
                processing_ms_max=1000.0 * self._processing_max,
                abandoned_total=dict(self._abandoned),
                abandoned_period=self._abandoned_period,
                limits=self.limits,
                standing_warnings=tuple(standing_warnings), rgb_only_s=rgb_only_s)
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
        'processing_time_ms_max': f'{report.processing_ms_max:.2f}',
        **{f'{stage}_ms': f'{ms:.2f}' for stage, ms in report.stage_ms.items()},
        'pipeline_latency_ms_mean': f'{report.latency_ms_mean:.2f}',
        'pipeline_latency_ms_max': f'{report.latency_ms_max:.2f}',
        'certified_fraction': f'{report.certified_fraction:.4f}',
        'delta': f'{report.delta + 0.0:.6g}',  # + 0.0: no '-0'
        **_l2_values(report.l2),
        'dropped_pairs': str(report.dropped_pairs),
        'mode': RGBD if report.rgb_only_s is None else RGB_ONLY,
        **{f'input_age_{stream}_s': 'never' if age is None else f'{age:.2f}'
           for stream, age in report.input_age_s.items()},
        'frames_abandoned': str(sum(report.abandoned_total.values())),
        **{f'frames_abandoned.{reason}': str(count)
           for reason, count in sorted(report.abandoned_total.items())},
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


def frame_times_array(stage_s: Mapping[str, float], latency_s: float, name: str,
                      header, hardware_id: str) -> DiagnosticArray:
    """One frame's times as a ``DiagnosticArray`` stamped with the frame's RGB ``header``
    (``mmcert/debug/frame_times``): ``processing_time_ms`` (the sum of the stages),
    ``pipeline_latency_ms`` (l0 publication minus the RGB stamp) and ``<stage>_ms``."""
    values = {'processing_time_ms': 1000.0 * sum(stage_s.get(stage, 0.0) for stage in STAGES),
              'pipeline_latency_ms': 1000.0 * latency_s,
              **{f'{stage}_ms': 1000.0 * stage_s.get(stage, 0.0) for stage in STAGES}}
    status = DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message='frame times',
                              hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=f'{v:.3f}')
                                      for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header = header
    return array


def mode_status_array(with_depth: bool, depth_source: str, name: str,
                      header, hardware_id: str) -> DiagnosticArray:
    """The ``mmcert/status`` message of one published frame, stamped with its RGB ``header``:
    one status, OK with message ``rgb-d`` when the frame was certified with its depth, WARN
    with message ``degraded: rgb-only`` when it was certified from RGB alone (depth all
    invalid); values ``mode`` (the same text) and ``depth_source`` (``image`` / ``points``).
    ``hardware_id``: the node's fully qualified name, as in ``/diagnostics``."""
    mode = RGBD if with_depth else RGB_ONLY
    status = DiagnosticStatus(level=DiagnosticStatus.OK if with_depth else DiagnosticStatus.WARN,
                              name=name, message=mode, hardware_id=hardware_id,
                              values=[KeyValue(key='mode', value=mode),
                                      KeyValue(key='depth_source', value=depth_source)])
    array = DiagnosticArray(status=[status])
    array.header = header
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
