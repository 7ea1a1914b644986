"""One-sided confidence bounds on the mean of a [0, 1]-valued variable, and Holm over p-values.

The feature-space (l2) certificate (docs/certification.md section 8) needs a *lower* confidence
bound on the Gaussian robustness score ``S = E[X]``, where ``X = (1 + <u, f(x + eps)>) / 2``
lies in [0, 1] and N i.i.d. Monte-Carlo draws of X are observed per pixel. Two bounds are
offered; both hold for *any* distribution on [0, 1] (no normality, no Bernoulli assumption):

``'hoeffding'`` (the default)
    Hoeffding's (1963) Theorem 1 in its Kullback-Leibler (Chernoff) form,
    ``P(mean <= S - t) <= exp(-N kl(S - t, S))`` with ``kl`` the Bernoulli relative entropy.
    By Pinsker (``kl(a, b) >= 2 (a - b)^2``) it is never looser than the familiar additive
    ``sqrt(ln(1/delta) / (2N))`` form, and far tighter when S is near 1, which is where
    useful certificates live (a cosine of 0.9 is a score of 0.95). Needs only the mean.
``'bernstein'``
    The empirical Bernstein bound of Maurer & Pontil (2009, Theorem 4),
    ``S >= mean - sqrt(2 V ln(2/delta) / N) - 7 ln(2/delta) / (3 (N - 1))`` with V the unbiased
    sample variance. Its second-order term makes it lose to ``'hoeffding'`` for N up to a few
    hundred; it wins for large N when the scores concentrate away from 0 and 1 (variance much
    smaller than ``S (1 - S)``).

Each bound comes with its p-value for ``H0: S <= threshold`` (the smallest delta at which the
lower bound reaches the threshold), so Holm's step-down procedure (:func:`holm_reject`) can
run over pixels. Every lower bound is rounded *down*, so floating-point error never makes a
bound optimistic.
"""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy

#: names accepted by :func:`lower_bound` and :func:`pvalue`
METHODS = ('hoeffding', 'bernstein')

_NEWTON_STEPS = 12  # quadratic convergence from the starting points below; checked in tests


def kl_bernoulli(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Relative entropy ``kl(p || q) = p ln(p/q) + (1-p) ln((1-p)/(1-q))`` in nats.

    Defined for p, q in [0, 1] with ``0 ln 0 = 0``; infinite where q is 0 or 1 and p is not.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        value = xlogy(p, p) - xlogy(p, q) + xlogy(1 - p, 1 - p) - xlogy(1 - p, 1 - q)
    return np.maximum(value, 0.0)


def hoeffding_lower_bound(mean: np.ndarray, num_samples: int, delta: float) -> np.ndarray:
    """Lower confidence bound on ``S = E[X]`` from N i.i.d. draws of X in [0, 1].

    ``LCB = inf {s in [0, mean] : N kl(mean, s) <= ln(1/delta)}``. With probability at least
    ``1 - delta``, ``S >= LCB`` (Hoeffding 1963, Theorem 1, applied to ``1 - X``).

    Solved by Newton's method in ``t = ln s`` on ``psi(t) = kl(mean, e^t) - ln(1/delta) / N``,
    which is convex and decreasing for ``s < mean``: started left of the root, every iterate
    stays left of it, so each one is already a valid (conservative) bound; a final relative
    step of 1e-10 to the left absorbs rounding.

    :param mean: sample means in [0, 1], any shape.
    :param delta: allowed failure probability in (0, 1).
    :returns: float64 array of the shape of ``mean``, each value in ``[0, mean]``.
    """
    mean = _check_means(mean)
    _check_num_samples(num_samples, minimum=1)
    budget = np.log(1.0 / _check_probability(delta, 'delta')) / num_samples
    interior = (mean > 0) & (mean < 1)
    p = np.where(interior, mean, 0.5)
    # Two starting points left of the root: Pinsker's additive bound, and the root of
    # p ln(p / s) + (1 - p) ln(1 - p) = budget (a lower bound on kl(p, s) for s <= p).
    additive = p - np.sqrt(budget / 2.0)
    with np.errstate(divide='ignore'):
        t = np.maximum(np.log(p) - (budget - xlogy(1 - p, 1 - p)) / p,
                       np.log(np.maximum(additive, 0.0)))
    with np.errstate(over='ignore'):
        for _ in range(_NEWTON_STEPS):
            value = (xlogy(p, p) - p * t + xlogy(1 - p, 1 - p) - (1 - p) * np.log1p(-np.exp(t))
                     - budget)
            if not np.any(value > 1e-13 * budget):
                break
            slope = -p + (1 - p) / np.expm1(-t)  # d/dt kl(p, e^t) < 0 left of the root
            t = np.where(value > 0, t - value / slope, t)
    bound = np.exp(t) * (1 - 1e-10)
    # closed forms at the ends: kl(1, s) = -ln s, and nothing below a mean of 0
    return np.where(interior, bound, np.where(mean == 1, np.exp(-budget) * (1 - 1e-10), 0.0))


def hoeffding_pvalue(mean: np.ndarray, num_samples: int, threshold: np.ndarray) -> np.ndarray:
    """p-value of ``H0: S <= threshold``: ``exp(-N kl(mean, threshold))`` if mean > threshold,
    else 1.

    Valid (``P(p <= a) <= a`` under H0 for every a) by the same Hoeffding bound, since
    ``kl(mean, s)`` grows as s falls below the mean.
    """
    mean = _check_means(mean)
    _check_num_samples(num_samples, minimum=1)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), mean.shape)
    exponent = num_samples * kl_bernoulli(mean, np.clip(threshold, 0.0, 1.0))
    return np.where(mean > threshold, np.exp(-exponent), 1.0)


def bernstein_lower_bound(mean: np.ndarray, variance: np.ndarray, num_samples: int,
                          delta: float) -> np.ndarray:
    """Empirical Bernstein lower confidence bound on ``S = E[X]`` (Maurer & Pontil 2009, Thm 4).

    ``LCB = mean - sqrt(2 V L / N) - 7 L / (3 (N - 1))`` with ``L = ln(2 / delta)``, clipped to
    [0, 1]. With probability at least ``1 - delta``, ``S >= LCB``.

    :param variance: unbiased sample variance of the N draws (divisor N - 1), same shape as mean.
    :param num_samples: N >= 2.
    """
    mean = _check_means(mean)
    variance = _check_variance(variance, mean.shape)
    _check_num_samples(num_samples, minimum=2)
    log_term = np.log(2.0 / _check_probability(delta, 'delta'))
    width = (np.sqrt(2.0 * variance * log_term / num_samples)
             + 7.0 * log_term / (3.0 * (num_samples - 1)))
    return np.clip(mean - width, 0.0, 1.0)


def bernstein_pvalue(mean: np.ndarray, variance: np.ndarray, num_samples: int,
                     threshold: np.ndarray) -> np.ndarray:
    """p-value of ``H0: S <= threshold`` for :func:`bernstein_lower_bound`.

    The bound's width is ``b sqrt(L) + a L`` in ``L = ln(2/delta)`` with ``a = 7 / (3 (N-1))``
    and ``b = sqrt(2 V / N)``; the largest L at which the bound still reaches the threshold
    solves ``a L + b sqrt(L) = mean - threshold``, and the p-value is ``min(1, 2 exp(-L))``.
    """
    mean = _check_means(mean)
    variance = _check_variance(variance, mean.shape)
    _check_num_samples(num_samples, minimum=2)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), mean.shape)
    gap = np.maximum(mean - threshold, 0.0)
    a = 7.0 / (3.0 * (num_samples - 1))
    b = np.sqrt(2.0 * variance / num_samples)
    root_log = (-b + np.sqrt(b * b + 4.0 * a * gap)) / (2.0 * a)
    pvalues = np.minimum(1.0, 2.0 * np.exp(-root_log ** 2))
    return np.where(gap > 0.0, pvalues, 1.0)


def lower_bound(method: str, mean: np.ndarray, variance: np.ndarray | None, num_samples: int,
                delta: float) -> np.ndarray:
    """The lower confidence bound named ``method`` (one of :data:`METHODS`) at level delta."""
    if check_method(method) == 'hoeffding':
        return hoeffding_lower_bound(mean, num_samples, delta)
    return bernstein_lower_bound(mean, variance, num_samples, delta)


def pvalue(method: str, mean: np.ndarray, variance: np.ndarray | None, num_samples: int,
           threshold: np.ndarray) -> np.ndarray:
    """The p-value of ``H0: S <= threshold`` matching :func:`lower_bound` with ``method``."""
    if check_method(method) == 'hoeffding':
        return hoeffding_pvalue(mean, num_samples, threshold)
    return bernstein_pvalue(mean, variance, num_samples, threshold)


def check_method(method: str) -> str:
    """Return ``method`` if it names a bound, else raise ``ValueError`` listing the choices."""
    if method not in METHODS:
        raise ValueError(f'confidence bound method must be one of {METHODS}, got {method!r}')
    return method


def holm_reject(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: which null hypotheses to reject at family-wise level alpha.

    Sort the m p-values ascending; reject rank i (1-based) while ``p_(i) <= alpha / (m - i + 1)``
    and stop at the first failure. Valid for arbitrarily dependent p-values. Same reject set as
    ``statsmodels.stats.multitest.multipletests(p, alpha, method='holm')``.

    :param pvalues: p-values of any shape.
    :returns: bool array of the same shape, True = rejected.
    """
    alpha = _check_probability(alpha, 'alpha')
    pvalues = np.asarray(pvalues, dtype=np.float64)
    if np.isnan(pvalues).any():
        raise ValueError('p-values must not be NaN')
    flat = pvalues.ravel()
    m = flat.size
    order = np.argsort(flat, kind='stable')
    passes = flat[order] <= alpha / (m - np.arange(m))
    accepted = m if passes.all() else int(np.argmin(passes))
    reject = np.zeros(m, dtype=bool)
    reject[order[:accepted]] = True
    return reject.reshape(pvalues.shape)


def round_down_float32(values: np.ndarray) -> np.ndarray:
    """``values`` as float32, each rounded toward -inf (never above the float64 value).

    A plain cast rounds to nearest and can exceed a certified supremum by half a float32 ulp
    (about 6e-8 relative); this steps such entries one ulp down with ``nextafter``.
    """
    values = np.asarray(values, dtype=np.float64)
    nearest = values.astype(np.float32)
    above = nearest.astype(np.float64) > values
    return np.where(above, np.nextafter(nearest, np.float32(-np.inf)), nearest)


def _check_means(mean: np.ndarray) -> np.ndarray:
    mean = np.asarray(mean, dtype=np.float64)
    if np.isnan(mean).any() or (mean < 0).any() or (mean > 1).any():
        raise ValueError('sample means of a [0, 1] variable must lie in [0, 1] (no NaN)')
    return mean


def _check_variance(variance: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if variance is None:
        raise ValueError("the 'bernstein' bound needs the sample variance")
    variance = np.asarray(variance, dtype=np.float64)
    if variance.shape != shape:
        raise ValueError(f'variance shape {variance.shape} does not match the means {shape}')
    if np.isnan(variance).any() or (variance < 0).any() or (variance > 0.5).any():
        raise ValueError('sample variances of a [0, 1] variable must lie in [0, 1/2] (no NaN)')
    return variance


def _check_num_samples(num_samples: int, minimum: int) -> None:
    if int(num_samples) != num_samples or num_samples < minimum:
        raise ValueError(f'number of samples must be an integer >= {minimum}, got {num_samples}')


def _check_probability(value: float, name: str) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f'{name} must lie in (0, 1), got {value}')
    return float(value)
