"""The certification bounds against independent oracles (docs/certification.md sections 3 to 6)."""
import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln, xlogy
from scipy.stats import binom
from statsmodels.stats.multitest import multipletests

from mmcert_ros.certify import delta, holm_certify, radius_table, top_count_pvalues
from mmcert_ros.certify.l0.bounds import count_histogram


def exact_delta(n, k, r):
    survival = Fraction(1)
    for n_i, k_i, r_i in zip(n, k, r):
        survival *= Fraction(comb(n_i - r_i, k_i), comb(n_i, k_i))
    return 1 - survival


def exact_tail(c, num_samples, q):
    """P(Binomial(N, q) >= c) with rational arithmetic."""
    return sum(comb(num_samples, j) * q ** j * (1 - q) ** (num_samples - j)
               for j in range(c, num_samples + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
                min_size=1, max_size=3))
def test_delta_matches_exact_rationals(modalities):
    n = [m[0] for m in modalities]
    k = [max(1, round(m[1] * m[0])) for m in modalities]
    r = [round(m[2] * (n_i - k_i)) for m, n_i, k_i in zip(modalities, n, k)]
    expected = exact_delta(n, k, r)
    assert delta(n, k, r) == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_delta_at_kitti_size_matches_exact_rationals():
    n = (1242 * 375, 1242 * 375)
    k = (round(0.0193 * n[0]), round(0.00214 * n[1]))
    for r_rgb in (0, 1, 5, 10, 16):
        r = (r_rgb, 2 * r_rgb)
        assert delta(n, k, r) == pytest.approx(float(exact_delta(n, k, r)), rel=1e-12, abs=0)


def test_delta_edge_cases():
    assert delta((10, 10), (3, 3), (0, 0)) == 0.0
    assert delta((10, 10), (3, 3), (8, 0)) == 1.0  # r > n - k: every sample is touched
    assert delta((10,), (3,), (7,)) == pytest.approx(119 / 120)  # r = n - k: 1 - C(3,3)/C(10,3)
    with pytest.raises(ValueError, match='k <= n'):
        delta((10,), (11,), (0,))
    with pytest.raises(ValueError, match='>= 0'):
        delta((10,), (1,), (-1,))
    with pytest.raises(ValueError, match='one entry per modality'):
        delta((10, 10), (1,), (0, 0))


def exact_pvalue(c, num_samples, num_classes, q):
    """The selection bound with rational arithmetic: G(q) + G(1 - q) for a strict majority,
    else the union bound C G(q) (docs/certification.md)."""
    if 2 * c > num_samples:
        return min(1, exact_tail(c, num_samples, q) + exact_tail(c, num_samples, 1 - q))
    return min(1, num_classes * exact_tail(c, num_samples, q))


@pytest.mark.parametrize('num_samples,num_classes,d',
                         [(20, 2, 0.0), (30, 3, 0.125), (45, 2, 0.3), (21, 4, 0.05)])
def test_pvalues_match_exact_binomial_tails(num_samples, num_classes, d):
    q = Fraction(1, 2) + Fraction(d)
    pvalues = top_count_pvalues(num_samples, num_classes, d)
    for c in range(num_samples + 1):
        expected = float(exact_pvalue(c, num_samples, num_classes, q))
        assert pvalues[c] == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert np.all(np.diff(pvalues) <= 0)


def test_pvalues_match_scipy_pmf_sums_at_n_100():
    pvalues = top_count_pvalues(100, 3, 0.2)
    tails = {q: np.cumsum(binom.pmf(np.arange(101), 100, q)[::-1])[::-1] for q in (0.7, 0.3)}
    majority = np.arange(101) > 50
    expected = np.where(majority, tails[0.7] + tails[0.3], 3 * tails[0.7])
    np.testing.assert_allclose(pvalues, np.minimum(1.0, expected), rtol=1e-9)
    # the majority bound never exceeds the union bound, and is strictly tighter there
    union = np.minimum(1.0, 3 * binom.sf(np.arange(101) - 1, 100, 0.7))
    assert np.all(pvalues <= union) and np.all(pvalues[majority & (union < 1)]
                                               < union[majority & (union < 1)])


def compositions(total, parts):
    """Every vector of ``parts`` non-negative integers summing to ``total``, as rows."""
    if parts == 1:
        return np.array([[total]])
    return np.array([[first, *rest] for first in range(total + 1)
                     for rest in compositions(total - first, parts - 1)])


def simplex_grid(parts, steps, rng, q):
    """Class probability vectors: a regular grid of the simplex, random Dirichlet points and
    every permutation of the vertex (q, 1 - q, 0, ...)."""
    grid = compositions(steps, parts) / steps
    vertex = np.zeros(parts)
    vertex[:2] = q, 1 - q
    vertices = np.array(sorted(set(itertools.permutations(vertex))))
    return np.concatenate([grid, rng.dirichlet(np.ones(parts), 400),
                           rng.dirichlet(np.full(parts, 0.3), 400), vertices])


def worst_false_rejection(num_samples, num_classes, q, probabilities):
    """max over the probability vectors of P(top class has probability <= q and top count
    >= c), for every threshold c, by exact multinomial enumeration (ties: smallest class id)."""
    votes = compositions(num_samples, num_classes)  # (M, C)
    log_coef = gammaln(num_samples + 1) - gammaln(votes + 1).sum(axis=1)
    log_pmf = log_coef[:, None] + sum(xlogy(votes[:, j, None], probabilities[None, :, j])
                                      for j in range(num_classes))
    pmf = np.exp(log_pmf)  # (M, P)
    top = votes.argmax(axis=1)
    top_count = votes.max(axis=1)
    under_h0 = probabilities[:, top].T <= q + 1e-12  # (M, P): the picked class is in H0
    worst = np.empty(num_samples + 1)
    for c in range(num_samples + 1):
        worst[c] = (pmf * (under_h0 & (top_count >= c)[:, None])).sum(axis=0).max()
    return worst


@pytest.mark.parametrize('num_classes,num_samples,steps', [(2, 9, 200), (2, 14, 200),
                                                           (3, 10, 40), (3, 13, 40),
                                                           (4, 8, 16), (4, 11, 16)])
def test_pvalue_bounds_the_exact_worst_false_rejection(num_classes, num_samples, steps):
    """Under H0 the chance that the selected class is certified at level pvalues[c] never
    exceeds pvalues[c]; above N / 2 the bound is attained at the vertex (q, 1 - q, 0, ...)."""
    rng = np.random.default_rng(num_classes * 100 + num_samples)
    for q in (0.5, 0.55, 0.7, 0.85, 0.95):
        pvalues = top_count_pvalues(num_samples, num_classes, q - 0.5)
        probabilities = simplex_grid(num_classes, steps, rng, q)
        worst = worst_false_rejection(num_samples, num_classes, q, probabilities)
        assert np.all(worst <= pvalues * (1 + 1e-9) + 1e-15), (q, worst - pvalues)
        majority = 2 * np.arange(num_samples + 1) > num_samples
        attained = majority & (pvalues < 1)
        np.testing.assert_allclose(worst[attained], pvalues[attained], rtol=1e-9)


def test_majority_bound_holds_where_the_tail_is_not_convex_up_to_q():
    """c > N / 2 suffices: at N = 10, q = 0.9 the tail is not convex on [0, q] for c <= 9, and
    the exact worst case still equals G(q) + G(1 - q)."""
    num_samples, q = 10, 0.9
    pvalues = top_count_pvalues(num_samples, 3, q - 0.5)
    worst = worst_false_rejection(num_samples, 3, q,
                                  simplex_grid(3, 60, np.random.default_rng(5), q))
    for c in range(6, 10):
        assert c - 1 < q * (num_samples - 1)
        assert worst[c] <= pvalues[c] * (1 + 1e-9)
        assert pvalues[c] == pytest.approx(binom.sf(c - 1, 10, q) + binom.sf(c - 1, 10, 1 - q))


def test_nothing_certified_when_q_reaches_one():
    assert np.all(top_count_pvalues(50, 2, 0.5) == 1.0)
    counts = np.full((4, 4), 50)
    assert not holm_certify(counts, 50, 2, 0.5, 0.001).any()


def naive_holm(pvalues, alpha):
    """Holm's step-down procedure, written from its textbook definition."""
    order = np.argsort(pvalues, kind='stable')
    m = len(pvalues)
    reject = np.zeros(m, dtype=bool)
    for i, index in enumerate(order, start=1):
        if pvalues[index] > alpha / (m - i + 1):
            break
        reject[index] = True
    return reject


def random_top_counts(rng, shape, num_samples, num_classes):
    """Top counts concentrated near N (heavy ties), as a good model produces."""
    low = -(-num_samples // num_classes)
    near_top = num_samples - rng.geometric(0.3, size=shape) + 1
    anywhere = rng.integers(low, num_samples + 1, size=shape)
    return np.clip(np.where(rng.random(shape) < 0.7, near_top, anywhere), low, num_samples)


@pytest.mark.parametrize('seed', range(8))
def test_holm_matches_statsmodels_and_naive(seed):
    rng = np.random.default_rng(seed)
    num_samples = int(rng.choice([10, 40, 100]))
    num_classes = int(rng.choice([2, 3, 4]))
    counts = random_top_counts(rng, (int(rng.integers(1, 3000)),), num_samples, num_classes)
    d = float(rng.choice([0.0, 0.05, 0.15]))
    alpha = float(rng.choice([0.001, 0.05, 0.3]))
    pvalues = top_count_pvalues(num_samples, num_classes, d)[counts]
    expected = multipletests(pvalues, alpha=alpha, method='holm')[0]
    certified = holm_certify(counts, num_samples, num_classes, d, alpha)
    np.testing.assert_array_equal(certified, expected)
    np.testing.assert_array_equal(certified, naive_holm(pvalues, alpha))


def test_holm_matches_statsmodels_at_kitti_size():
    rng = np.random.default_rng(7)
    n = (1242 * 375, 1242 * 375)
    k = (round(0.0193 * n[0]), round(0.00214 * n[1]))
    counts = random_top_counts(rng, (375, 1242), 100, 2)
    for r_rgb in (0, 10, 15):
        d = delta(n, k, (r_rgb, 2 * r_rgb))
        pvalues = top_count_pvalues(100, 2, d)[counts.ravel()]
        expected = multipletests(pvalues, alpha=0.001, method='holm')[0].reshape(counts.shape)
        certified = holm_certify(counts, 100, 2, d, 0.001)
        assert certified.shape == counts.shape and certified.dtype == bool
        np.testing.assert_array_equal(certified, expected)
        assert 0 < certified.sum() < certified.size or r_rgb == 15


def test_holm_brute_force_on_tiny_cases():
    """Every vector of 3 top counts with N = 4, C = 2 against the textbook procedure."""
    for d in (0.0, 0.1):
        pvalues_by_count = top_count_pvalues(4, 2, d)
        for a in range(2, 5):
            for b in range(2, 5):
                for c in range(2, 5):
                    counts = np.array([a, b, c])
                    for alpha in (0.2, 0.5, 0.9):
                        expected = naive_holm(pvalues_by_count[counts], alpha)
                        np.testing.assert_array_equal(
                            holm_certify(counts, 4, 2, d, alpha), expected)


def test_holm_on_torch_keeps_type_and_shape():
    rng = np.random.default_rng(3)
    counts = random_top_counts(rng, (2, 30, 40), 60, 2)
    expected = holm_certify(counts, 60, 2, 0.05, 0.01)
    certified = holm_certify(torch.from_numpy(counts).int(), 60, 2, 0.05, 0.01)
    assert isinstance(certified, torch.Tensor) and certified.dtype == torch.bool
    assert certified.shape == counts.shape
    np.testing.assert_array_equal(certified.numpy(), expected)


def test_holm_rejects_bad_counts():
    with pytest.raises(ValueError, match=r'\[0, 10\]'):
        holm_certify(np.array([3, 11]), 10, 2, 0.0, 0.01)
    with pytest.raises(ValueError, match='integers'):
        holm_certify(np.array([3.0, 4.0]), 10, 2, 0.0, 0.01)
    with pytest.raises(ValueError, match='alpha'):
        holm_certify(np.array([3, 4]), 10, 2, 0.0, 1.5)
    assert count_histogram(np.zeros(0, dtype=int), 5).tolist() == [0] * 6


def test_radius_table_matches_brute_force():
    n, k, ray, alpha, m = (4000, 3000), (200, 30), (1, 2), 0.01, 500
    table = radius_table(60, 3, n, k, ray, alpha, m)
    for c in range(61):
        best = -1
        for t in range(0, 200):
            q = 0.5 + float(exact_delta(n, k, (t * ray[0], t * ray[1])))
            if q < 1 and exact_pvalue(c, 60, 3, Fraction(q)) <= alpha / m:
                best = t
        assert table[c] == best, c
    assert table[60] > 0 and table[0] == -1


def test_holm_at_a_ray_point_covers_the_radius_map():
    rng = np.random.default_rng(11)
    n, k = (9000, 9000), (180, 20)
    counts = random_top_counts(rng, (60, 150), 100, 2)
    radius = radius_table(100, 2, n, k, (1, 2), 0.001, counts.size)[counts]
    for t in range(0, int(radius.max()) + 2):
        holm = holm_certify(counts, 100, 2, delta(n, k, (t, 2 * t)), 0.001)
        assert np.all(holm[radius >= t])
        assert holm.sum() >= (radius >= t).sum()


def test_radius_table_validates_the_ray():
    with pytest.raises(ValueError, match='ray'):
        radius_table(10, 2, (10, 10), (1, 1), (0, 0), 0.01, 4)
    with pytest.raises(ValueError, match='ray'):
        radius_table(10, 2, (10, 10), (1, 1), (1,), 0.01, 4)


def test_radius_table_at_the_kitti_setting():
    """1242x375, N = 100, alpha = 0.001, keep 0.0193 / 0.00214, ray (1, 2): a unanimous vote is
    certified up to t = 16 (the union bound stopped at 15); with N = 1000, up to t = 27 (as
    with the union bound: there q = 1/2 + delta(28, 56) is too close to 1 for any vote)."""
    n = (1242 * 375, 1242 * 375)
    k = (round(0.0193 * n[0]), round(0.00214 * n[1]))
    table = radius_table(100, 2, n, k, (1, 2), 0.001, n[0])
    assert table.max() == table[100] == 16
    q = 0.5 + delta(n, k, (16, 32))
    assert 2 * binom.sf(99, 100, q) > 0.001 / n[0]  # the union bound fails at t = 16
    assert binom.sf(99, 100, q) + binom.sf(99, 100, 1 - q) <= 0.001 / n[0]
    assert radius_table(1000, 2, n, k, (1, 2), 0.001, n[0]).max() == 27
