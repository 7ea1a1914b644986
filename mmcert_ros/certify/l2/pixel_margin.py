"""The l2 certificate of a cosine head's labels at pixels, from each pixel's own margin.

The mathematical contract is docs/certification.md section 8 ("Pixels").

The network's pixel logits are the bilinear upsampling of its cells' logits
``<f_j, w_c>`` (unit prototypes w_c, cell features f_j): with the weights ``a_pj >= 0``,
``sum_j a_pj = 1`` of the upsampling (``align_corners=False``), pixel p's l2-smoothed label
is ``argmax_c sum_j a_pj <g_j(x), w_c>``, ``g_j = E[f_j]`` over noise and masks. For a label
y and a rival c != y the *pixel margin*

    h_pc(z) = sum_j a_pj <f_j(z), w_y - w_c> / ||w_y - w_c||

is one bounded function of the noisy, sub-sampled input, in [-1, 1] since ``||f_j|| <= 1``.
Its Gaussian smoothing is therefore covered by the Lipschitz bound of section 8 (the score
``(1 + h) / 2`` in [0, 1] with reference +1): the label y beats c at every x' within l2
distance R when ``Phi^{-1}(S_lower) > R / sigma``, i.e. the certified radius is
``sigma Phi^{-1}(S_lower)``. By linearity the sample mean of ``h_pc`` over the N estimation
samples is the upsampling of the cells' mean features, so the N samples never have to be
upsampled. This is tighter than certifying every contributing cell's cosine separately: a
pixel whose cells straddle a border, or whose cells point a little off their prototype, is
certified on what actually decides its label.

Only the Kullback-Leibler form of Hoeffding's bound is used here (it needs the sample means
alone; the pixels' sample variances would need every sample upsampled). Units: sigma and
radii are l2 norms of the RGB image in [0, 1] units. Nothing here imports the ROS client
library.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmcert_ros.certify.l2 import confidence
from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.upsampling import upsample_bilinear

#: a float32 vector normalized by ``F.normalize`` has norm at most 1 + 1e-6 (a few ulps);
#: margins are divided by this so every sample's margin provably lies in [-1, 1]
FEATURE_NORM_SLACK = 1e-6


@dataclass(frozen=True)
class PixelMargins:
    """Monte-Carlo estimate of every pixel's margins against its rivals (CPU numpy, float64).

    :ivar labels: ``(H, W)`` int64 label of the bilinearly upsampled *reference* logits
        (chosen on the selection samples, independent of the estimation samples).
    :ivar scores: ``(C - 1, H, W)`` sample-mean score ``(1 + h_pc / (1 + slack)) / 2`` of the
        margin of ``labels`` against each rival c (rivals in ascending class order, the label
        left out); 0.5 where two prototypes coincide (a tie is never certified).
    :ivar num_samples: N estimation samples behind the means.
    :ivar sigma: noise standard deviation, RGB in [0, 1] units.
    """

    labels: np.ndarray
    scores: np.ndarray
    num_samples: int
    sigma: float

    @property
    def num_hypotheses(self) -> int:
        """Pixels x rivals: the family every error rate is taken over."""
        return int(self.scores.size)

    def certified_at(self, radius: float, alpha: float) -> np.ndarray:
        """``(H, W)`` bool: pixels whose label is certified at l2 radius ``radius``, Holm over all
        pixels and rivals at family-wise level ``alpha``. Hypothesis (p, c):
        ``S_pc <= Phi(radius / sigma)``; a pixel is certified when all its rivals are rejected."""
        threshold = fs.required_score(0.0, radius, self.sigma)
        pvalues = confidence.hoeffding_pvalue(self.scores, self.num_samples,
                                              np.full(self.scores.shape, threshold))
        return confidence.holm_reject(pvalues, alpha).all(axis=0)

    def radius(self, alpha: float) -> np.ndarray:
        """``(H, W)`` float64 certified l2 radius per pixel, simultaneous over all pixels and
        rivals with probability ``1 - alpha`` (Bonferroni): the label holds at every image
        strictly closer than the value; 0 = none."""
        lower = confidence.hoeffding_lower_bound(self.scores, self.num_samples,
                                                 alpha / self.num_hypotheses)
        return fs.certified_l2_radius(lower, self.sigma).min(axis=0)


def pixel_margins(smoothed: fs.SmoothedFeatures, prototypes: np.ndarray | torch.Tensor,
                  size: tuple[int, int]) -> PixelMargins:
    """The pixel margins of a cosine head over a smoothed feature grid.

    :param smoothed: the cells' reference vectors and mean features, ``(D, h, w)``.
    :param prototypes: ``(C, D)`` class prototypes, C >= 2 (normalized here; the head's
        positive scale does not change any label).
    :param size: ``(H, W)`` of the pixel grid the network upsamples its logits to.
    """
    if isinstance(prototypes, torch.Tensor):
        prototypes = prototypes.detach().cpu().numpy()
    prototypes = np.asarray(prototypes, dtype=np.float64)
    if prototypes.ndim != 2 or prototypes.shape[0] < 2:
        raise ValueError(f'prototypes must have shape (C >= 2, D), got {prototypes.shape}')
    norms = np.linalg.norm(prototypes, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError('class prototypes must be non-zero')
    reference = np.asarray(smoothed.reference, dtype=np.float64)
    if reference.ndim != 3 or reference.shape[0] != prototypes.shape[1]:
        raise ValueError(f'smoothed features must have shape (D={prototypes.shape[1]}, h, w), '
                         f'got {reference.shape}')
    unit = prototypes / norms
    reference_logits = upsample_cells(np.tensordot(unit, reference, axes=(1, 0)), size)
    logits = upsample_cells(np.tensordot(unit, smoothed.mean_feature, axes=(1, 0)), size)
    labels = reference_logits.argmax(axis=0)
    classes = unit.shape[0]
    rivals = np.arange(classes - 1)[:, None, None]
    rivals = rivals + (rivals >= labels[None])                      # (C - 1, H, W), label skipped
    gaps = np.linalg.norm(unit[:, None] - unit[None], axis=2)       # (C, C) ||w_y - w_c||
    gap = gaps[labels[None], rivals]
    own = np.take_along_axis(logits, labels[None], axis=0)
    difference = own - np.take_along_axis(logits, rivals, axis=0)
    with np.errstate(divide='ignore', invalid='ignore'):
        margin = np.where(gap > 0, difference / (gap * (1.0 + FEATURE_NORM_SLACK)), 0.0)
    return PixelMargins(labels=labels, scores=np.clip((1.0 + margin) / 2.0, 0.0, 1.0),
                        num_samples=int(smoothed.num_samples), sigma=float(smoothed.sigma))


def upsample_cells(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(K, h, w) -> (K, H, W)`` float64 bilinear upsampling, ``align_corners=False``, as the
    network upsamples its logits (:func:`~mmcert_ros.models.network.upsample_bilinear`) but
    with float64 weights: each output is a convex combination of at most four cells."""
    grid = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    if grid.ndim != 3:
        raise ValueError(f'cell values must have shape (K, h, w), got {tuple(grid.shape)}')
    return upsample_bilinear(grid[None], size)[0].numpy()
