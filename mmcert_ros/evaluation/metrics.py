"""Evaluation metrics of MMCert (docs/certification.md section 7), pooled over frames.

A pixel is *certified-correct* if it is certified and its label equals the ground truth.
TP = road pixels certified-correct, TN = non-road pixels certified-correct,
FN = road pixels not certified-correct, FP = non-road pixels not certified-correct.
The plain (majority-vote) metrics use "label correct" in place of "certified-correct".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.data.road import ROAD_CLASS


@dataclass(frozen=True)
class Confusion:
    """Pixel counts; add two to pool frames. Ratios are 0.0 where their denominator is 0."""

    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: 'Confusion') -> 'Confusion':
        return Confusion(self.tp + other.tp, self.tn + other.tn, self.fp + other.fp,
                         self.fn + other.fn)

    @property
    def total(self) -> int:
        return self.tp + self.tn + self.fp + self.fn

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
                'pixel_accuracy': self.pixel_accuracy, 'f1': self.f1, 'iou': self.iou,
                'recall': self.recall, 'precision': self.precision}


def plain_confusion(labels: np.ndarray, gt_road: np.ndarray) -> Confusion:
    """Majority-vote metrics: a pixel counts as correct when its label equals the truth."""
    return certified_confusion(labels, np.ones(np.shape(labels), dtype=bool), gt_road)


def certified_confusion(labels: np.ndarray, certified: np.ndarray,
                        gt_road: np.ndarray) -> Confusion:
    """MMCert's certified confusion counts of one frame.

    :param labels: ``(H, W)`` predicted class ids (road = 1).
    :param certified: ``(H, W)`` bool certification mask.
    :param gt_road: ``(H, W)`` ground truth, non-zero = road.
    """
    labels, certified, gt_road = np.asarray(labels), np.asarray(certified), np.asarray(gt_road)
    if not labels.shape == certified.shape == gt_road.shape:
        raise ValueError(f'labels {labels.shape}, certified {certified.shape} and ground truth '
                         f'{gt_road.shape} must have the same shape')
    road = gt_road != 0
    correct = certified.astype(bool) & ((labels == ROAD_CLASS) == road)
    tp = int(np.count_nonzero(correct & road))
    tn = int(np.count_nonzero(correct & ~road))
    road_total = int(np.count_nonzero(road))
    return Confusion(tp=tp, tn=tn, fp=road.size - road_total - tn, fn=road_total - tp)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
