"""Pool per-frame l2 (feature-space smoothing) certificates into the evaluation figures.

The *published* l2 mask of a frame is ``certificate.agreeing(labels)``: pixels certified at
the configured l2 radius whose smoothed label equals the published (l0 majority-vote) label,
the mask the node publishes on ``mmcert/l2_certification``. Pixel counts are pooled over
frames (as the l0 figures); the FCSB and the robustness score are averaged over all feature
cells of all frames (per-frame sums added with :func:`math.fsum`, so the pooled means do
not depend on the order frames or merged accumulators come in).
"""
from __future__ import annotations

import math

import numpy as np

from mmcert_ros.evaluation.metrics import Confusion, certified_confusion, plain_confusion
from mmcert_ros.certify.l2.certifier import L2Certificate
from mmcert_ros.data.frame import Frame


class L2Accumulator:
    """Collects l2 certificates one frame at a time; :meth:`summary` gives the pooled figures."""

    def __init__(self) -> None:
        self.frames = 0
        self._pixels = self._published = self._certified = 0
        self._cells = 0
        self._fcsb_sums: list[float] = []
        self._score_sums: list[float] = []
        self._plain = Confusion()
        self._certified_confusion = Confusion()
        self._with_gt = 0
        self._latency: list[float] = []
        self._setup: tuple | None = None

    def add(self, frame: Frame, certificate: L2Certificate, published_labels: np.ndarray) -> dict:
        """Pool one frame; return its ``l2_*`` columns for ``frames.csv``.

        :raises ValueError: sigma, radius, N or booster differ from earlier frames.
        """
        setup = (certificate.sigma, certificate.l2_radius, certificate.num_samples,
                 certificate.alpha, certificate.boosted)
        if self._setup is None:
            self._setup = setup
        elif setup != self._setup:
            raise ValueError(f'frame {frame.name!r} has l2 settings (sigma, radius, N, alpha, '
                             f'boosted) = {setup}, earlier frames {self._setup}')
        published = certificate.agreeing(published_labels)
        fcsb = certificate.cells.fcsb
        score = certificate.cells.smoothed.score_mean
        self.frames += 1
        self._pixels += published.size
        self._published += int(published.sum())
        self._certified += int(certificate.certified.sum())
        self._cells += fcsb.size
        self._fcsb_sums.append(float(fcsb.sum()))
        self._score_sums.append(float(score.sum()))
        self._latency.append(certificate.timings['total'])
        row = {'l2_certified_fraction': float(published.mean()),
               'l2_fcsb_mean': float(fcsb.mean()), 'l2_score_mean': float(score.mean()),
               'l2_total_s': certificate.timings['total']}
        if frame.road_mask is not None:
            self._with_gt += 1
            plain = plain_confusion(certificate.labels, frame.road_mask, frame.road_valid)
            certified = certified_confusion(published_labels, published, frame.road_mask,
                                            frame.road_valid)
            self._plain += plain
            self._certified_confusion += certified
            row.update(l2_plain_iou=plain.iou, l2_certified_iou=certified.iou)
        return row

    def merge(self, other: 'L2Accumulator') -> None:
        """Pool the frames of ``other`` into this one (as if this one had been fed them).

        :raises ValueError: the two have different l2 settings.
        """
        if other._setup is None:
            return
        if self._setup is None:
            self._setup = other._setup
        elif other._setup != self._setup:
            raise ValueError(f'cannot pool l2 settings {other._setup} and {self._setup}')
        self.frames += other.frames
        self._pixels += other._pixels
        self._published += other._published
        self._certified += other._certified
        self._cells += other._cells
        self._fcsb_sums += other._fcsb_sums
        self._score_sums += other._score_sums
        self._plain += other._plain
        self._certified_confusion += other._certified_confusion
        self._with_gt += other._with_gt
        self._latency += other._latency

    def summary(self) -> dict:
        """JSON-ready pooled figures (the ``l2`` section of metrics.json)."""
        if self._setup is None:
            return {'frames': 0}
        sigma, radius, num_samples, alpha, boosted = self._setup
        latency = np.asarray(self._latency)
        result = {
            'frames': self.frames, 'sigma': sigma, 'radius': radius,
            'num_samples': num_samples, 'alpha': alpha, 'boosted': boosted,
            'certified_fraction': self._published / self._pixels,
            'certified_fraction_any_label': self._certified / self._pixels,
            'fcsb_mean': math.fsum(self._fcsb_sums) / self._cells,
            'score_mean': math.fsum(self._score_sums) / self._cells,
            'latency_s': {'p50': float(np.percentile(latency, 50)),
                          'p90': float(np.percentile(latency, 90)),
                          'mean': float(latency.mean()), 'max': float(latency.max())},
        }
        if self._with_gt:
            result['plain'] = self._plain.as_dict()
            result['certified'] = self._certified_confusion.as_dict()
        return result
