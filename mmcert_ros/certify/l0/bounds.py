"""MMCert's certification bounds (docs/certification.md sections 3 to 6).

Segmentation works on the *top count* of a pixel: the number of the N sub-sampled inputs
whose base prediction equals the pixel's majority label. The p-value of a pixel depends on
its top count only, so Holm-Bonferroni over m pixels runs on the histogram of top counts in
O(N) after one bincount, and the radius map is a lookup table indexed by top count.
Classification of one input (:func:`class_probability_bounds`, :func:`largest_ray_budget`)
uses simultaneous Clopper-Pearson intervals on all class probabilities instead
(docs/classification.md).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, binom

ArrayLike = np.ndarray | torch.Tensor


def delta(n: Sequence[int], k: Sequence[int], r: Sequence[int]) -> float:
    """Probability that some modality's sub-sample contains an element the attacker changed.

    ``delta(r) = 1 - prod_i C(n_i - r_i, k_i) / C(n_i, k_i)`` for any number of modalities,
    computed as ``-expm1(sum_i sum_{j<r_i} log1p(-k_i / (n_i - j)))``: exact up to float64
    rounding, no overflow for any n. A budget larger than ``n_i - k_i`` gives 1.

    :param n: elements per modality (pixels at native resolution), each >= 1.
    :param k: elements kept per sub-sample, ``1 <= k_i <= n_i``.
    :param r: elements the attacker may change per modality, ``r_i >= 0``.
    :returns: delta in [0, 1].
    """
    if not len(n) == len(k) == len(r):
        raise ValueError(f'n, k and r need one entry per modality, '
                         f'got {len(n)}, {len(k)}, {len(r)}')
    log_survival = 0.0
    for n_i, k_i, r_i in zip(n, k, r):
        n_i, k_i, r_i = int(n_i), int(k_i), int(r_i)
        if n_i < 1 or not 1 <= k_i <= n_i:
            raise ValueError(f'need 1 <= k <= n per modality, got n={n_i}, k={k_i}')
        if r_i < 0:
            raise ValueError(f'attack budget r must be >= 0, got {r_i}')
        if r_i > n_i - k_i:
            return 1.0
        if r_i:
            j = np.arange(r_i, dtype=np.float64)
            log_survival += float(np.sum(np.log1p(-k_i / (n_i - j))))
    return float(-np.expm1(log_survival))


@dataclass(frozen=True)
class ClassBounds:
    """Simultaneous confidence bounds on the class probabilities of one input's votes.

    With probability at least ``1 - alpha`` over the N samples: the probability p_A that a
    sample votes ``label`` is at least ``p_a_lower`` and every other class's probability is
    at most ``p_b_upper``.
    """

    label: int
    runner_up: int
    p_a_lower: float
    p_b_upper: float


def class_probability_bounds(counts: Sequence[int] | np.ndarray, alpha: float) -> ClassBounds:
    """Clopper-Pearson bounds on p_A and p_B for the top class A of ``counts``, Bonferroni.

    Every class c gets the exact two-sided Clopper-Pearson interval at level ``alpha / C``
    (``alpha / (2C)`` in each tail): all C intervals hold at once with probability at least
    ``1 - alpha``, so they also hold for A, which is picked from the same counts (ties go to
    the smallest class id). ``p_a_lower`` is A's lower end; ``p_b_upper`` is the largest upper
    end among the other classes, capped at ``1 - p_a_lower`` (the probabilities sum to 1).

    :param counts: votes per class, C >= 2 entries, each >= 0, not all 0.
    :param alpha: in (0, 1).
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size < 2 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f'counts must be one integer per class (C >= 2), got {counts!r}')
    if (counts < 0).any() or counts.sum() < 1:
        raise ValueError(f'counts must be >= 0 and not all 0, got {counts.tolist()}')
    if not 0.0 < alpha < 1.0:
        raise ValueError(f'alpha must lie in (0, 1), got {alpha}')
    total = int(counts.sum())
    tail = alpha / (2 * counts.size)
    with np.errstate(invalid='ignore'):
        lower = np.where(counts > 0, beta.ppf(tail, counts, total - counts + 1), 0.0)
        upper = np.where(counts < total, beta.ppf(1 - tail, counts + 1, total - counts), 1.0)
    label = int(np.argmax(counts))
    others = np.delete(np.arange(counts.size), label)
    runner_up = int(others[np.argmax(counts[others])])
    p_a_lower = float(lower[label])
    return ClassBounds(label, runner_up, p_a_lower,
                       float(min(upper[others].max(), 1.0 - p_a_lower)))


def largest_ray_budget(gap: float, n: Sequence[int], k: Sequence[int],
                       ray: Sequence[int]) -> int:
    """Largest t with ``gap > 2 delta(n, k, t * ray)``, or -1 if t = 0 already fails.

    ``gap = p_A_lower - p_B_upper`` (MMCert's classification condition): the label is
    certified against every attack changing at most ``t * ray[i]`` elements of modality i.
    delta does not decrease in t, so an exponential then a binary search finds t.

    :param ray: elements per modality per unit of t, non-negative, not all 0.
    """
    if len(ray) != len(n) or any(int(a) < 0 for a in ray) or not any(int(a) for a in ray):
        raise ValueError(f'the ray needs one non-negative step per modality, not all 0, got {ray}')

    def holds(t: int) -> bool:
        return gap > 2.0 * delta(n, k, [t * int(a) for a in ray])

    if not holds(0):
        return -1
    low, high = 0, 1  # holds(low); find a high that fails (delta = 1 past n - k)
    while holds(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def top_count_pvalues(num_samples: int, num_classes: int, delta_r: float) -> np.ndarray:
    """p-value of H0 "the top class's probability is <= 1/2 + delta" for every top count.

    The top class is selected from the same samples, so the test accounts for every class
    that could have been picked (docs/certification.md section 4). With ``q = 1/2 + delta`` and
    ``G(p) = P(Binomial(N, p) >= c)``:

    - ``c > N / 2`` (a strict majority): ``pvalues[c] = min(1, G(q) + G(1 - q))`` for any
      number of classes; at most one class can reach c votes, and the worst class
      probability vector under H0 is ``(q, 1 - q, 0, ...)`` (docs/certification.md proves it);
    - ``c <= N / 2``: the union bound ``min(1, C * G(q))``.

    If ``q >= 1`` nothing can be certified and every p-value is 1.

    :returns: float64 array of shape ``(N + 1,)``, non-increasing in c.
    """
    _check_counts_setup(num_samples, num_classes)
    if not 0.0 <= delta_r <= 1.0:
        raise ValueError(f'delta must lie in [0, 1], got {delta_r}')
    q = 0.5 + delta_r
    if q >= 1.0:
        return np.ones(num_samples + 1)
    counts = np.arange(num_samples + 1)
    tail = binom.sf(counts - 1, num_samples, q)  # P(X >= c)
    majority = 2 * counts > num_samples
    pvalues = np.where(majority, tail + binom.sf(counts - 1, num_samples, 1.0 - q),
                       num_classes * tail)
    return np.minimum(1.0, pvalues)


def holm_min_count(histogram: np.ndarray, pvalues: np.ndarray, alpha: float) -> int:
    """Smallest top count that Holm's step-down procedure rejects (certifies).

    ``histogram[c]`` is the number of pixels whose top count is c; ``pvalues[c]`` their common
    p-value, non-increasing in c. Holm visits p-values in ascending order, i.e. counts in
    descending order; a whole level of tied p-values is rejected iff its first rank passes,
    since the thresholds ``alpha / (m - rank + 1)`` only grow inside a level. The reject set
    is exactly that of ``statsmodels.stats.multitest.multipletests(..., method='holm')``.

    :returns: c* such that pixels with top count >= c* are certified; ``len(histogram)`` if none.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f'alpha must lie in (0, 1), got {alpha}')
    levels = np.flatnonzero(histogram[::-1])  # non-empty levels, highest count first
    if levels.size == 0:
        return len(histogram)
    counts_desc = len(histogram) - 1 - levels
    sizes = histogram[counts_desc].astype(np.int64)
    m = int(sizes.sum())
    first_rank = 1 + np.cumsum(sizes) - sizes
    passes = pvalues[counts_desc] <= alpha / (m - first_rank + 1)
    failed = np.flatnonzero(~passes)
    accepted = counts_desc[: failed[0]] if failed.size else counts_desc
    return int(accepted[-1]) if accepted.size else len(histogram)


def holm_certify(top_counts: ArrayLike, num_samples: int, num_classes: int, delta: float,
                 alpha: float) -> ArrayLike:
    """Pixels certified at one attack budget, with family-wise error rate alpha (Holm).

    With probability at least ``1 - alpha`` over the sub-sampling, every pixel in the returned
    mask keeps its majority label under every attack within the budget that ``delta`` was
    computed for (docs/certification.md sections 4 and 5).

    :param top_counts: integer array of any shape (numpy or torch, any device): for each pixel
        the number of samples that voted for its majority label, in ``[0, num_samples]``.
    :param delta: ``delta(n, k, r)`` of the budget r.
    :returns: bool mask of the same shape and array family (and device) as ``top_counts``.
    """
    _check_counts_setup(num_samples, num_classes)
    histogram = count_histogram(top_counts, num_samples)
    pvalues = top_count_pvalues(num_samples, num_classes, delta)
    return top_counts >= holm_min_count(histogram, pvalues, alpha)


def radius_table(num_samples: int, num_classes: int, n: Sequence[int], k: Sequence[int],
                 ray: Sequence[int], alpha: float, num_pixels: int) -> np.ndarray:
    """Certified radius t on the ray ``r(t) = t * ray`` for every possible top count.

    Bonferroni simultaneous one-sided tests: ``table[c]`` is the largest t with
    ``top_count_pvalues(N, C, delta(r(t)))[c] <= alpha / num_pixels``, or -1 if t = 0
    already fails (docs/certification.md section 6). With probability at least ``1 - alpha``
    every pixel's radius ``table[top_count]`` holds at once.

    :param ray: elements changed per modality per unit of t, e.g. ``(1, 2)`` for
        ``r_depth = 2 r_rgb``; at least one entry > 0.
    :returns: int16 array of shape ``(N + 1,)``, non-decreasing in c (read-only: it is
        cached, since a node certifies every frame with the same settings).
    """
    return _radius_table(int(num_samples), int(num_classes), tuple(int(v) for v in n),
                         tuple(int(v) for v in k), tuple(int(a) for a in ray), float(alpha),
                         int(num_pixels))


@functools.lru_cache(maxsize=64)
def _radius_table(num_samples: int, num_classes: int, n: tuple[int, ...], k: tuple[int, ...],
                  ray: tuple[int, ...], alpha: float, num_pixels: int) -> np.ndarray:
    if len(ray) != len(n) or any(int(a) < 0 for a in ray) or not any(int(a) for a in ray):
        raise ValueError(f'the ray needs one non-negative step per modality, not all 0, got {ray}')
    if num_pixels < 1:
        raise ValueError(f'num_pixels must be >= 1, got {num_pixels}')
    threshold = alpha / num_pixels
    table = np.full(num_samples + 1, -1, dtype=np.int64)
    t = 0
    while True:
        budget = [t * int(a) for a in ray]
        d = delta(n, k, budget)
        passing = top_count_pvalues(num_samples, num_classes, d) <= threshold
        if not passing.any():
            break
        table[passing] = t  # monotone in t: passing at t implies passing at every smaller t
        if d >= 1.0:
            break
        t += 1
    if table.max() > np.iinfo(np.int16).max - 1:
        raise ValueError('certified radius exceeds the int16 radius map; shorten the ray step')
    table = table.astype(np.int16)
    table.flags.writeable = False
    return table


def count_histogram(top_counts: ArrayLike, num_samples: int) -> np.ndarray:
    """Number of pixels per top count, ``(N + 1,)`` int64 on the CPU (one bincount)."""
    if isinstance(top_counts, torch.Tensor):
        if top_counts.dtype.is_floating_point or top_counts.dtype == torch.bool:
            raise ValueError(f'top_counts must be integers, got {top_counts.dtype}')
        flat = top_counts.reshape(-1).long()
        low, high = (int(v) for v in torch.aminmax(flat)) if flat.numel() else (0, 0)
        _check_count_range(low, high, num_samples)
        return torch.bincount(flat, minlength=num_samples + 1).cpu().numpy()
    top_counts = np.asarray(top_counts)
    if not np.issubdtype(top_counts.dtype, np.integer):
        raise ValueError(f'top_counts must be integers, got {top_counts.dtype}')
    flat = top_counts.ravel()
    if flat.size:
        _check_count_range(int(flat.min()), int(flat.max()), num_samples)
    return np.bincount(flat, minlength=num_samples + 1).astype(np.int64)


def _check_count_range(low: int, high: int, num_samples: int) -> None:
    if low < 0 or high > num_samples:
        raise ValueError(f'top counts must lie in [0, {num_samples}], got [{low}, {high}]')


def _check_counts_setup(num_samples: int, num_classes: int) -> None:
    if int(num_samples) < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    if int(num_classes) < 2:
        raise ValueError(f'num_classes must be >= 2, got {num_classes}')
