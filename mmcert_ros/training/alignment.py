"""The prototype-alignment loss term shared by base-network and booster training.

The l2 certificate needs a wide angular margin between a cell's feature and the runner-up
prototype (FCSB > cos(margin / 2), docs/feature_smoothing.md), and a cosine head's
cross-entropy saturates long before features reach their prototype. The alignment term
``1 - class-balanced mean <f, w_y>`` pulls each cell's unit feature onto the prototype of its
cell's class (the class of most of the cell's pixels); the mean is taken per class and then
over the classes present, so a small class weighs as much as the rest.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmcert_ros.models.network import GRID_STRIDE


def cell_labels(target: torch.Tensor) -> torch.Tensor:
    """``(B, h, w)`` class of most pixels of each 1/8 cell, from ``(B, H, W)`` 0/1 labels."""
    height, width = target.shape[-2:]
    grid = (math.ceil(height / GRID_STRIDE), math.ceil(width / GRID_STRIDE))
    return (F.interpolate(target[:, None].float(), size=grid, mode='area')[:, 0] > 0.5).long()


def class_balanced_alignment(features: torch.Tensor, labels: torch.Tensor,
                             prototypes: torch.Tensor) -> torch.Tensor:
    """Mean over the classes present of the mean ``<f, w_y>`` over that class's cells.

    :param features: ``(B, D, h, w)`` unit features; ``labels`` ``(B, h, w)`` cell classes;
        ``prototypes`` ``(C, D)`` (normalised here).
    """
    targets = F.normalize(prototypes, dim=1)[labels].permute(0, 3, 1, 2)
    cosines = (features * targets).sum(dim=1)
    means = [cosines[labels == c].mean() for c in range(prototypes.shape[0])
             if bool((labels == c).any())]
    return torch.stack(means).mean()
