"""The straightforward ways the fast paths replace, kept only to measure the speed-ups.

Both compute the same result as their fast counterparts (the tests check that), so a ratio
between them is a like-for-like comparison.
"""
from __future__ import annotations

import numpy as np

from mmcert_ros.certify.l0.bounds import top_count_pvalues


def sorted_holm_certify(top_counts: np.ndarray, num_samples: int, num_classes: int,
                        delta: float, alpha: float) -> np.ndarray:
    """Holm by sorting one p-value per pixel (what a textbook implementation does); the
    p-values are those of :func:`mmcert_ros.certify.l0.bounds.top_count_pvalues`."""
    flat = top_counts.ravel()
    pvalues = top_count_pvalues(num_samples, num_classes, delta)[flat]
    order = np.argsort(pvalues, kind='stable')
    m = flat.size
    passes = pvalues[order] <= alpha / (m - np.arange(m))
    failed = np.flatnonzero(~passes)
    rejected = order[: failed[0]] if failed.size else order
    certified = np.zeros(m, dtype=bool)
    certified[rejected] = True
    return certified.reshape(top_counts.shape)


def choice_keep_masks(num_samples: int, n: int, k: int, rng: np.random.Generator | None = None
                      ) -> np.ndarray:
    """Keep-masks the way the MMCert reference code ablates: for every sample, choose the
    ``n - k`` elements to zero with ``numpy.random.choice(n, n - k, replace=False)``."""
    masks = np.ones((num_samples, n), dtype=bool)
    for row in masks:
        row[np.random.choice(n, n - k, replace=False)] = False
    return masks
