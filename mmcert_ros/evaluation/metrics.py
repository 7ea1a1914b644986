"""Evaluation metrics of MMCert (docs/certification.md section 7), pooled over frames.

A pixel is *certified-correct* if it is certified and its label equals the ground truth.
TP = road pixels certified-correct, TN = non-road pixels certified-correct,
FN = road pixels not certified-correct, FP = non-road pixels not certified-correct.
The plain (majority-vote) metrics use "label correct" in place of "certified-correct".

*Certified-but-wrong* (``wrong``) counts the pixels that are certified and whose label
differs from the ground truth: the certificate then protects a wrong label (it speaks about
the ensemble's label, not the truth). ``wrong_fraction`` is their share of the certified
pixels; for the plain metrics every pixel counts as certified, so it is the error rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.data.road import ROAD_CLASS


@dataclass(frozen=True)
class Confusion:
    """Pixel counts; add two to pool frames. Ratios are 0.0 where their denominator is 0.

    ``wrong`` is the part of ``fp + fn`` that is certified (certified-but-wrong pixels).
    """

    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0
    wrong: int = 0

    def __add__(self, other: 'Confusion') -> 'Confusion':
        return Confusion(self.tp + other.tp, self.tn + other.tn, self.fp + other.fp,
                         self.fn + other.fn, self.wrong + other.wrong)

    @property
    def total(self) -> int:
        return self.tp + self.tn + self.fp + self.fn

    @property
    def certified(self) -> int:
        """Pixels certified: certified-correct (TP + TN) and certified-but-wrong."""
        return self.tp + self.tn + self.wrong

    @property
    def wrong_fraction(self) -> float:
        """Certified-but-wrong share of the certified pixels: wrong / (TP + TN + wrong)."""
        return _ratio(self.wrong, self.certified)

    @property
    def pixel_accuracy(self) -> float:
        """(TP + TN) / all pixels."""
        return _ratio(self.tp + self.tn, self.total)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        """TP / (TP + FP + FN)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    def as_dict(self) -> dict[str, float | int]:
        return {'tp': self.tp, 'tn': self.tn, 'fp': self.fp, 'fn': self.fn,
                'wrong': self.wrong, 'pixel_accuracy': self.pixel_accuracy, 'f1': self.f1,
                'iou': self.iou, 'recall': self.recall, 'precision': self.precision,
                'wrong_fraction': self.wrong_fraction}


def plain_confusion(labels: np.ndarray, gt_road: np.ndarray,
                    valid: np.ndarray | None = None) -> Confusion:
    """Majority-vote metrics: a pixel counts as correct when its label equals the truth."""
    return certified_confusion(labels, np.ones(np.shape(labels), dtype=bool), gt_road, valid)


def certified_confusion(labels: np.ndarray, certified: np.ndarray, gt_road: np.ndarray,
                        valid: np.ndarray | None = None) -> Confusion:
    """MMCert's certified confusion counts of one frame.

    :param labels: ``(H, W)`` predicted class ids (road = 1).
    :param certified: ``(H, W)`` bool certification mask.
    :param gt_road: ``(H, W)`` ground truth, non-zero = road.
    :param valid: optional ``(H, W)`` bool, the pixels the ground truth labels
        (:attr:`~mmcert_ros.data.frame.Frame.road_valid`); only these are counted.
    """
    labels, certified, gt_road = np.asarray(labels), np.asarray(certified), np.asarray(gt_road)
    if not labels.shape == certified.shape == gt_road.shape:
        raise ValueError(f'labels {labels.shape}, certified {certified.shape} and ground truth '
                         f'{gt_road.shape} must have the same shape')
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != labels.shape:
            raise ValueError(f'valid area {valid.shape} and labels {labels.shape} must have '
                             'the same shape')
        labels, certified, gt_road = labels[valid], certified[valid], gt_road[valid]
    road = gt_road != 0
    certified = certified.astype(bool)
    right = (labels == ROAD_CLASS) == road
    correct = certified & right
    tp = int(np.count_nonzero(correct & road))
    tn = int(np.count_nonzero(correct & ~road))
    road_total = int(np.count_nonzero(road))
    return Confusion(tp=tp, tn=tn, fp=road.size - road_total - tn, fn=road_total - tp,
                     wrong=int(np.count_nonzero(certified & ~right)))


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
