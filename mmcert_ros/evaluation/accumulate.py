"""Pool per-frame certificates into the evaluation figures (docs/certification.md section 7).

Pixel counts are pooled over frames (MMCert's definition), never averaged per frame. The
*curve* evaluates the Holm certificate of every frame at each point ``r(t) = t * ray`` of the
configured ray, from ``t = 0`` up to and including the first ``t`` at which no pixel of any
frame is certified. Holm's reject set only shrinks when every p-value grows, and delta grows
with t, so the certified pixels, and with them every certified metric, never increase along
the curve, and every later ``t`` certifies nothing. The curve is finite: once ``t * a_i``
exceeds ``n_i - k_i`` for a modality with ``a_i > 0``, delta is 1 and nothing is certified.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from mmcert_ros.certify import Certificate
from mmcert_ros.evaluation.metrics import Confusion, certified_confusion, plain_confusion
from mmcert_ros.data.frame import Frame

#: metrics of :class:`~mmcert_ros.evaluation.metrics.Confusion` shown in curves and rows
#: (``wrong_fraction``: the certified-but-wrong share of the certified pixels)
CURVE_METRICS = ('pixel_accuracy', 'f1', 'iou', 'recall', 'wrong_fraction')
#: timing stages of a certificate reported as latency percentiles
LATENCY_STAGES = ('total', 'sampling', 'inference', 'certification')
#: latency percentiles reported, in percent
PERCENTILES = (50, 90, 99)


@dataclass
class _CurvePoint:
    """Pooled counts of one point of the ray."""

    certified_pixels: int = 0
    confusion: Confusion = field(default_factory=Confusion)


class MetricsAccumulator:
    """Collects frames one at a time; :meth:`summary` gives the pooled figures."""

    def __init__(self) -> None:
        self.frames = 0
        self.frames_with_ground_truth = 0
        self._pixels = 0
        self._certified_pixels = 0
        self._plain = Confusion()
        self._certified = Confusion()
        self._curve: list[_CurvePoint] = []
        # pooled confusion of all frames so far with no pixel certified: the value of every
        # curve point past the end of each frame's own curve
        self._nothing_certified = Confusion()
        self._latencies: dict[str, list[float]] = defaultdict(list)
        self._sizes: dict[str, set[int]] = {'n_rgb': set(), 'n_depth': set(),
                                            'k_rgb': set(), 'k_depth': set()}
        self._certificate_setup: tuple | None = None

    def add(self, frame: Frame, certificate: Certificate) -> dict:
        """Pool one frame; return its row for ``frames.csv``.

        :raises ValueError: the certificate's N, alpha, radius or ray differ from earlier frames
            (the pooled figures would mix two configurations).
        """
        setup = (certificate.num_samples, certificate.alpha, certificate.radius_budget,
                 certificate.ray)
        if self._certificate_setup is None:
            self._certificate_setup = setup
        elif setup != self._certificate_setup:
            raise ValueError(f'frame {frame.name!r} was certified with (N, alpha, radius, ray) = '
                             f'{setup}, earlier frames with {self._certificate_setup}')
        self.frames += 1
        self._pixels += certificate.certified.size
        self._certified_pixels += int(np.count_nonzero(certificate.certified))
        for name, value in zip(('n_rgb', 'n_depth', 'k_rgb', 'k_depth'),
                               certificate.n + certificate.k):
            self._sizes[name].add(int(value))
        for stage in LATENCY_STAGES:
            self._latencies[stage].append(float(certificate.timings[stage]))

        row = {'index': self.frames - 1, 'name': frame.name, 'stamp_ns': frame.stamp_ns,
               **{f'{stage}_s': certificate.timings[stage] for stage in LATENCY_STAGES},
               'certified_fraction': certificate.certified_fraction}
        gt, valid = frame.road_mask, frame.road_valid
        if gt is not None:
            self.frames_with_ground_truth += 1
            plain = plain_confusion(certificate.labels, gt, valid)
            certified = certified_confusion(certificate.labels, certificate.certified, gt,
                                            valid)
            self._plain += plain
            self._certified += certified
            row.update({f'plain_{name}': getattr(plain, name) for name in CURVE_METRICS})
            row.update({f'certified_{name}': getattr(certified, name) for name in CURVE_METRICS})
        self._add_curve(certificate, gt, valid)
        return row

    def _add_curve(self, certificate: Certificate, gt: np.ndarray | None,
                   valid: np.ndarray | None) -> None:
        nothing = (certified_confusion(certificate.labels,
                                       np.zeros_like(certificate.certified), gt, valid)
                   if gt is not None else Confusion())
        t = 0
        while True:
            budget = (t * certificate.ray[0], t * certificate.ray[1])
            mask = certificate.certified_at(*budget)
            count = int(np.count_nonzero(mask))
            if count == 0:
                break
            if t == len(self._curve):
                self._curve.append(_CurvePoint(confusion=self._nothing_certified))
            point = self._curve[t]
            point.certified_pixels += count
            if gt is not None:
                point.confusion += certified_confusion(certificate.labels, mask, gt, valid)
            t += 1
        for point in self._curve[t:]:  # this frame certifies nothing from t on
            point.confusion += nothing
        self._nothing_certified += nothing

    def merge(self, other: 'MetricsAccumulator') -> None:
        """Pool the frames of ``other`` into this one: afterwards :meth:`summary` is that of
        one accumulator fed both sets of frames (every count is an integer, so the order of
        frames and merges does not change any figure; the latencies are concatenated).

        :raises ValueError: the two were certified with different (N, alpha, radius, ray).
        """
        setup = other._certificate_setup
        if setup is None:
            return
        if self._certificate_setup is None:
            self._certificate_setup = setup
        elif setup != self._certificate_setup:
            raise ValueError(f'cannot pool frames certified with (N, alpha, radius, ray) = '
                             f'{setup} and {self._certificate_setup}')
        self.frames += other.frames
        self.frames_with_ground_truth += other.frames_with_ground_truth
        self._pixels += other._pixels
        self._certified_pixels += other._certified_pixels
        self._plain += other._plain
        self._certified += other._certified
        mine, theirs = self._curve, other._curve
        self._curve = [_CurvePoint(a.certified_pixels + b.certified_pixels,
                                   a.confusion + b.confusion)
                       for a, b in zip(self._points(len(theirs)), other._points(len(mine)))]
        self._nothing_certified += other._nothing_certified
        for stage, values in other._latencies.items():
            self._latencies[stage].extend(values)
        for name, values in other._sizes.items():
            self._sizes[name] |= values

    def _points(self, length: int) -> list[_CurvePoint]:
        """The curve's points, padded to at least ``length`` with nothing certified."""
        padding = max(0, length - len(self._curve))
        return [*self._curve, *(_CurvePoint(confusion=self._nothing_certified)
                                for _ in range(padding))]

    def summary(self) -> dict:
        """The pooled figures as a JSON-ready dict (see docs/evaluation.md for the fields)."""
        setup = self._certificate_setup
        result = {
            'frames': self.frames,
            'frames_with_ground_truth': self.frames_with_ground_truth,
            'num_samples': setup[0] if setup else None,
            'alpha': setup[1] if setup else None,
            'n': {'rgb': sorted(self._sizes['n_rgb']), 'depth': sorted(self._sizes['n_depth'])},
            'k': {'rgb': sorted(self._sizes['k_rgb']), 'depth': sorted(self._sizes['k_depth'])},
            'radius': ({'rgb': setup[2][0], 'depth': setup[2][1]} if setup else None),
            'ray': list(setup[3]) if setup else None,
            'certified_fraction': _ratio(self._certified_pixels, self._pixels),
            'latency_s': {stage: _percentiles(values)
                          for stage, values in self._latencies.items()},
        }
        if self.frames_with_ground_truth:
            result['plain'] = self._plain.as_dict()
            result['certified'] = self._certified.as_dict()
        result['curve'] = self.curve()
        return result

    def curve(self) -> list[dict]:
        """Points ``t = 0 ..`` up to the first t where nothing is certified (included)."""
        if setup := self._certificate_setup:
            ray = setup[3]
        else:
            return []
        points = [*self._curve, _CurvePoint(confusion=self._nothing_certified)]
        curve = []
        for t, point in enumerate(points):
            entry = {'t': t, 'r_rgb': t * ray[0], 'r_depth': t * ray[1],
                     'certified_fraction': _ratio(point.certified_pixels, self._pixels)}
            if self.frames_with_ground_truth:
                entry.update({name: getattr(point.confusion, name) for name in CURVE_METRICS})
            curve.append(entry)
        return curve


def _percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    figures = {f'p{p}': float(np.percentile(array, p)) for p in PERCENTILES}
    figures.update(mean=float(array.mean()), max=float(array.max()))
    return figures


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
