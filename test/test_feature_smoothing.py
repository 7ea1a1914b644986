"""Feature-space smoothing (docs/certification.md section 8) against independent oracles.

Oracles: numerical quadrature and root finding for Phi and Phi^{-1} (FCSB), closed-form
smoothed values of 1-D encoders (Lipschitz property), Clopper-Pearson and the additive
Hoeffding bound (confidence bounds), simulation with a binomial tolerance (coverage),
statsmodels (Holm), brute-force sampling on the sphere (cosine-head margin rule).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special, stats
from statsmodels.stats.multitest import multipletests

from mmcert_ros.certify.l2 import confidence
from mmcert_ros.certify.l0 import sampling
from mmcert_ros.certify.l2 import feature_smoothing as fs

SIGMAS = (0.12, 0.25, 0.5)


# ----------------------------------------------------------------------------- FCSB formula
def _phi_quadrature(z: float) -> float:
    """Standard normal CDF by adaptive quadrature of the density (no special functions)."""
    density = lambda t: math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi)  # noqa: E731
    if z <= 0:
        return integrate.quad(density, -np.inf, z, epsabs=1e-14, epsrel=1e-12)[0]
    return 0.5 + integrate.quad(density, 0.0, z, epsabs=1e-14, epsrel=1e-12)[0]


def _phi_inverse_root(s: float) -> float:
    return optimize.brentq(lambda z: _phi_quadrature(z) - s, -12.0, 12.0, xtol=1e-13)


def _fcsb_direct(s: float, radius: float, sigma: float) -> float:
    return 2.0 * _phi_quadrature(_phi_inverse_root(s) - radius / sigma) - 1.0


@pytest.mark.parametrize('sigma', SIGMAS)
def test_fcsb_matches_direct_numeric_evaluation(sigma):
    scores = np.array([0.02, 0.3, 0.5, 0.62, 0.8, 0.95, 0.999, 0.999999])
    for radius in (0.0, 0.01, 0.1, 0.3, 1.0):
        expected = np.array([_fcsb_direct(s, radius, sigma) for s in scores])
        np.testing.assert_allclose(fs.fcsb(scores, radius, sigma), expected, atol=1e-9)
        as_torch = fs.fcsb(torch.tensor(scores, dtype=torch.float64), radius, sigma)
        assert isinstance(as_torch, torch.Tensor)
        np.testing.assert_allclose(as_torch.numpy(), expected, atol=1e-9)


def test_fcsb_at_radius_zero_is_twice_the_score_minus_one_and_handles_the_ends():
    scores = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(fs.fcsb(scores, 0.0, 0.25), 2 * scores - 1, atol=1e-12)
    assert fs.fcsb(np.array(1.0), 5.0, 0.25) == 1.0
    assert fs.fcsb(np.array(0.0), 0.0, 0.25) == -1.0


def test_fcsb_accepts_a_radius_array_and_float32_torch():
    radii = np.array([0.0, 0.1, 0.2])
    expected = [_fcsb_direct(0.9, r, 0.25) for r in radii]
    np.testing.assert_allclose(fs.fcsb(np.full(3, 0.9), radii, 0.25), expected, atol=1e-9)
    as_float32 = fs.fcsb(torch.full((3,), 0.9), torch.tensor(radii), 0.25)
    assert as_float32.dtype == torch.float32
    np.testing.assert_allclose(as_float32.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize('sigma', SIGMAS)
def test_certified_radius_inverts_fcsb(sigma):
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 0.9999, 200)
    cosines = rng.uniform(0.0, 0.99, 200)
    radius = fs.certified_l2_radius(scores, sigma, cosines)
    positive = radius > 0
    assert positive.any() and (~positive).any()
    np.testing.assert_allclose(fs.fcsb(scores[positive], radius[positive], sigma),
                               cosines[positive], atol=1e-9)
    # where no radius is certified, even R = 0 does not give FCSB > cosine
    assert np.all(fs.fcsb(scores[~positive], 0.0, sigma) <= cosines[~positive] + 1e-12)
    torch_radius = fs.certified_l2_radius(torch.tensor(scores), sigma, torch.tensor(cosines))
    np.testing.assert_allclose(torch_radius.numpy(), radius, rtol=1e-12, atol=1e-12)
    # required_score is the same inversion seen from the other side
    needed = fs.required_score(cosines, 0.05, sigma)
    np.testing.assert_allclose(fs.fcsb(needed, 0.05, sigma), cosines, atol=1e-9)


def test_certified_radius_edge_cases():
    assert fs.certified_l2_radius(np.array(1.0), 0.25, 1.0) == 0.0   # inf - inf
    assert fs.certified_l2_radius(np.array(0.5), 0.25) == 0.0         # FCSB(0) = 0, not > 0
    assert fs.certified_l2_radius(np.array(0.2), 0.25) == 0.0


def test_fcsb_is_monotone():
    scores = np.linspace(0.01, 0.99, 99)
    assert np.all(np.diff(fs.fcsb(scores, 0.1, 0.25)) > 0)
    radii = np.linspace(0, 1, 50)
    assert np.all(np.diff(fs.fcsb(np.full(50, 0.9), radii, 0.25)) < 0)
    assert fs.fcsb(np.array(0.9), 0.1, 0.5) > fs.fcsb(np.array(0.9), 0.1, 0.25)


@pytest.mark.parametrize('call, message', [
    (lambda: fs.fcsb(np.array([1.2]), 0.1, 0.25), r'\[0, 1\]'),
    (lambda: fs.fcsb(np.array([np.nan]), 0.1, 0.25), r'\[0, 1\]'),
    (lambda: fs.fcsb(np.array([0.9]), -0.1, 0.25), 'radius'),
    (lambda: fs.fcsb(np.array([0.9]), np.inf, 0.25), 'radius'),
    (lambda: fs.fcsb(np.array([0.9]), 0.1, 0.0), 'sigma'),
    (lambda: fs.certified_l2_radius(np.array([0.9]), 0.25, 1.5), 'cosine'),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------- Lipschitz property (1-D, closed form)
@pytest.mark.parametrize('sigma', SIGMAS)
def test_step_encoder_attains_the_lipschitz_bound_exactly(sigma):
    """f(z) = e1 if z > 0 else -e1 and u = e1: S(x) = Phi(x / sigma), <u, g(x)> = 2 S(x) - 1.

    ``Phi^{-1}(S)`` is exactly x / sigma, so FCSB equals the smoothed value at ``x - R`` (the
    bound is tight) and lies below it everywhere else in the ball."""
    for x in sigma * np.linspace(-4.0, 4.0, 17):  # scores from 3e-5 to 1 - 3e-5
        score = stats.norm.cdf(x / sigma)
        for radius in (0.0, 0.05, 0.2, 0.6):
            bound = fs.fcsb(np.array(score), radius, sigma)
            ball = np.linspace(x - radius, x + radius, 41)
            smoothed = 2 * stats.norm.cdf(ball / sigma) - 1
            assert np.all(smoothed >= bound - 1e-9)
            assert smoothed[0] == pytest.approx(float(bound), abs=1e-9)


@pytest.mark.parametrize('sigma', SIGMAS)
@pytest.mark.parametrize('omega', (0.5, 2.0, 6.0))
def test_rotating_encoder_respects_fcsb(sigma, omega):
    """f(z) = (cos wz, sin wz): g(x) = exp(-w^2 s^2 / 2) (cos wx, sin wx) in closed form.

    With u = f(x): S = (1 + exp(-w^2 s^2 / 2)) / 2, <u, g(x')> = exp(-w^2 s^2 / 2) cos(w r) and
    cos(g(x'), u) = cos(w r) for |x' - x| = r. Both must stay above FCSB (the cosine one where
    FCSB > 0)."""
    shrink = math.exp(-(omega * sigma) ** 2 / 2)
    score = (1 + shrink) / 2
    radii = np.linspace(0.0, 3.0, 301)
    bound = fs.fcsb(np.full(radii.shape, score), radii, sigma)
    assert np.all(shrink * np.cos(omega * radii) >= bound - 1e-12)
    positive = bound > 0
    assert np.all(np.cos(omega * radii[positive]) >= bound[positive] - 1e-12)


def test_monte_carlo_estimate_matches_the_closed_form_smoothed_encoder():
    sigma, omega, x0 = 0.25, 2.0, 0.3

    def encoder(z, generator):
        return torch.cat([torch.cos(omega * z), torch.sin(omega * z)], 1)
    smoother = fs.FeatureSmoother(encoder, sigma, batch_size=4096)
    x = torch.tensor([[x0]], dtype=torch.float64)
    reference = encoder(x, None)[0]
    num_samples = 20000
    smoothed = smoother.estimate(x, reference, num_samples, torch.Generator().manual_seed(3))
    shrink = math.exp(-(omega * sigma) ** 2 / 2)
    # Hoeffding at failure probability 1e-6 for each estimated quantity
    tolerance = math.sqrt(math.log(2 / 1e-6) / (2 * num_samples))
    assert smoothed.score_mean == pytest.approx((1 + shrink) / 2, abs=tolerance)
    expected_g = shrink * np.array([math.cos(omega * x0), math.sin(omega * x0)])
    np.testing.assert_allclose(smoothed.mean_feature, expected_g, atol=2 * tolerance)
    assert smoothed.score_lower(0.01) <= (1 + shrink) / 2


# ------------------------------------------------------------------------ confidence bounds
def test_hoeffding_bound_closed_form_at_mean_one():
    for n, delta in ((10, 0.05), (100, 1e-7), (1000, 1e-3)):
        bound = confidence.hoeffding_lower_bound(np.array(1.0), n, delta)
        assert bound == pytest.approx(delta ** (1 / n), rel=1e-9) and bound <= delta ** (1 / n)


@pytest.mark.parametrize('n, delta', [(1, 0.3), (40, 0.05), (100, 1e-8), (5000, 1e-9)])
def test_hoeffding_bound_is_the_root_of_the_kl_equation(n, delta):
    """Oracle: Brent's root finder on ``n kl(mean, s) = ln(1/delta)`` with SciPy's rel_entr."""
    means = np.array([1e-6, 0.01, 0.2, 0.5, 0.77, 0.95, 0.999, 1 - 1e-9])
    bounds = confidence.hoeffding_lower_bound(means, n, delta)
    for mean, bound in zip(means, bounds):
        def excess(s):
            kl = special.rel_entr(mean, s) + special.rel_entr(1 - mean, 1 - s)
            return n * kl - math.log(1 / delta)
        if excess(1e-300) <= 0:          # no root above 0: the bound is 0 up to underflow
            assert bound <= 1e-250
            continue
        root = optimize.brentq(excess, 1e-300, mean, xtol=1e-300, rtol=1e-14, maxiter=1000)
        assert bound <= root and bound == pytest.approx(root, rel=1e-8)


def test_hoeffding_bound_sits_between_additive_hoeffding_and_clopper_pearson():
    """Pinsker makes the KL form at least as tight as ``mean - sqrt(ln(1/d) / 2n)``; on Bernoulli
    data the exact Clopper-Pearson bound is at least as tight as any Chernoff bound."""
    for n in (20, 100, 1000):
        for delta in (0.05, 1e-4, 1e-8):
            successes = np.arange(n + 1)
            mean = successes / n
            bound = confidence.hoeffding_lower_bound(mean, n, delta)
            additive = np.maximum(mean - math.sqrt(math.log(1 / delta) / (2 * n)), 0)
            clopper_pearson = np.nan_to_num(stats.beta.ppf(delta, successes, n - successes + 1))
            assert np.all(bound >= additive - 1e-12)
            assert np.all(bound <= clopper_pearson + 1e-12)


@pytest.mark.parametrize('method', confidence.METHODS)
def test_pvalue_inverts_the_lower_bound(method):
    rng = np.random.default_rng(2)
    mean = rng.uniform(0.3, 1.0, 50)
    variance = rng.uniform(0.0, 0.05, 50)
    for delta in (0.1, 1e-3, 1e-7):
        bound = confidence.lower_bound(method, mean, variance, 200, delta)
        inside = bound > 0
        pvalues = confidence.pvalue(method, mean, variance, 200, bound)
        np.testing.assert_allclose(pvalues[inside], delta, rtol=1e-6)
    assert np.all(confidence.pvalue(method, mean, variance, 200, mean) == 1.0)


def _sample_scores(name: str, size: tuple[int, int], rng: np.random.Generator):
    """Draws on [0, 1] and their exact mean, for distributions a robustness score might have."""
    if name == 'beta_near_one':
        return rng.beta(30, 1.5, size), 30 / 31.5
    if name == 'bernoulli':
        return (rng.random(size) < 0.9).astype(float), 0.9
    if name == 'two_point':     # mostly 1, sometimes 0.2: skewed, the normal approximation fails
        return np.where(rng.random(size) < 0.95, 1.0, 0.2), 0.95 + 0.05 * 0.2
    if name == 'narrow_middle':  # tiny variance away from 0 and 1: where Bernstein wins
        return rng.uniform(0.45, 0.55, size), 0.5
    raise AssertionError(name)


def _coverage_failures(lower_bound, name: str, trials: int = 4000, n: int = 40, seed: int = 0):
    draws, true_mean = _sample_scores(name, (trials, n), np.random.default_rng(seed))
    bounds = lower_bound(draws.mean(axis=1), draws.var(axis=1, ddof=1), n)
    return int(np.sum(bounds > true_mean))


# Each check may fail by chance with probability at most 1e-6 if the bound is valid.
_DELTA = 0.05
_ALLOWED = int(stats.binom.ppf(1 - 1e-6, 4000, _DELTA))


@pytest.mark.parametrize('method', confidence.METHODS)
@pytest.mark.parametrize('distribution',
                         ['beta_near_one', 'bernoulli', 'two_point', 'narrow_middle'])
def test_lower_bound_coverage_by_simulation(method, distribution):
    """Over 4000 simulated runs of n = 40 draws, the bound exceeds the true mean in at most a
    fraction delta = 0.05 of runs; the check allows ``binom.ppf(1 - 1e-6, 4000, 0.05)``
    failures."""
    def bound(mean, variance, n):
        return confidence.lower_bound(method, mean, variance, n, _DELTA)
    assert _coverage_failures(bound, distribution) <= _ALLOWED


def test_coverage_check_catches_invalid_bounds():
    """The same harness flags the sample mean and a normal-approximation bound as invalid."""
    assert _coverage_failures(lambda m, v, n: m, 'beta_near_one') > _ALLOWED
    normal = lambda m, v, n: m - stats.norm.ppf(1 - _DELTA) * np.sqrt(v / n)  # noqa: E731
    assert _coverage_failures(normal, 'two_point') > _ALLOWED


@pytest.mark.parametrize('method', confidence.METHODS)
def test_pvalues_are_valid_at_the_null_boundary(method):
    """Under ``S = threshold``, ``P(p <= a) <= a`` for every level a (checked at a = 0.05, 0.2)."""
    draws, true_mean = _sample_scores('two_point', (4000, 40), np.random.default_rng(5))
    pvalues = confidence.pvalue(method, draws.mean(1), draws.var(1, ddof=1), 40,
                                np.full(4000, true_mean))
    for level in (0.05, 0.2):
        assert np.sum(pvalues <= level) <= stats.binom.ppf(1 - 1e-6, 4000, level)


def test_bounds_reject_bad_input():
    with pytest.raises(ValueError, match='method'):
        confidence.lower_bound('clopper', np.array([0.5]), None, 10, 0.1)
    with pytest.raises(ValueError, match='variance'):
        confidence.lower_bound('bernstein', np.array([0.5]), None, 10, 0.1)
    with pytest.raises(ValueError, match='delta'):
        confidence.hoeffding_lower_bound(np.array([0.5]), 10, 0.0)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        confidence.hoeffding_lower_bound(np.array([1.5]), 10, 0.1)
    with pytest.raises(ValueError, match='>= 2'):
        confidence.bernstein_lower_bound(np.array([0.5]), np.array([0.0]), 1, 0.1)


# -------------------------------------------------------------------------------- Holm
@pytest.mark.slow
def test_holm_matches_statsmodels_with_ties():
    rng = np.random.default_rng(7)
    for trial in range(20):
        m = int(rng.integers(1, 400))
        pvalues = rng.choice(np.concatenate([rng.uniform(0, 0.02, 5), rng.uniform(0, 1, 5)]), m)
        alpha = float(rng.choice([0.001, 0.05, 0.2]))
        expected = multipletests(pvalues, alpha=alpha, method='holm')[0]
        np.testing.assert_array_equal(confidence.holm_reject(pvalues, alpha), expected)
    assert confidence.holm_reject(np.zeros((2, 3)), 0.05).shape == (2, 3)


# ------------------------------------------------------------------- cosine-head certificate
def _unit(v, axis=-1):
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


def test_cosine_head_margin_matches_brute_force():
    rng = np.random.default_rng(8)
    reference = _unit(rng.normal(size=(5, 3, 4)), axis=0)
    prototypes = rng.normal(size=(4, 5))
    labels, margin = fs.cosine_head_margin(reference, prototypes)
    for i in range(3):
        for j in range(4):
            angles = [math.acos(np.clip(_unit(w) @ reference[:, i, j], -1, 1)) for w in prototypes]
            order = np.argsort(angles)
            assert labels[i, j] == order[0]
            assert margin[i, j] == pytest.approx(angles[order[1]] - angles[order[0]], abs=1e-12)


def test_margin_rule_keeps_the_label_for_every_vector_within_the_cosine_bound():
    """If cos(v, u) > cos(margin / 2), v's nearest prototype is u's. Checked on random vectors in
    the cap and on the worst case: u rotated towards the runner-up prototype."""
    rng = np.random.default_rng(9)
    for _ in range(300):
        dim = int(rng.integers(2, 6))
        prototypes = _unit(rng.normal(size=(int(rng.integers(2, 5)), dim)))
        u = _unit(rng.normal(size=dim))
        label, margin = fs.cosine_head_margin(u, prototypes)
        theta = math.acos(float(fs.margin_cosine(margin))) * (1 - 1e-6)
        runner_up = np.argsort(-(prototypes @ u))[1]
        tangent = _unit(prototypes[runner_up] - (prototypes[runner_up] @ u) * u)
        candidates = [math.cos(theta) * u + math.sin(theta) * tangent]
        for _ in range(50):
            direction = rng.normal(size=dim)
            direction = _unit(direction - (direction @ u) * u)
            angle = theta * rng.random()
            candidates.append(math.cos(angle) * u + math.sin(angle) * direction)
        for v in candidates:
            assert np.argmax(prototypes @ _unit(v)) == label


def _tiny_conv_encoder(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv2d(6, 4, 3, stride=2, padding=1)).double()


def test_estimate_streams_the_same_statistics_as_a_direct_computation():
    net = _tiny_conv_encoder()
    smoother = fs.FeatureSmoother(lambda z, g: net(z), sigma=0.25, batch_size=7)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    reference = smoother.select_reference(x, 10, torch.Generator().manual_seed(1))
    assert torch.allclose(reference.norm(dim=0), torch.ones(4, 4, dtype=torch.float64))
    recorded = []
    smoothed = smoother.estimate(x, reference, 30, torch.Generator().manual_seed(2),
                                 on_batch=recorded.append)
    features = torch.cat(recorded).numpy()
    assert features.shape == (30, 4, 4, 4)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-12)
    scores = (1 + np.einsum('ndhw,dhw->nhw', features, reference.numpy())) / 2
    np.testing.assert_allclose(smoothed.score_mean, scores.mean(0), atol=1e-12)
    # Maurer-Pontil's V_n: mean squared pairwise difference / 2
    pairwise = ((scores[:, None] - scores[None, :]) ** 2).sum((0, 1)) / (2 * 30 * 29)
    np.testing.assert_allclose(smoothed.score_variance, pairwise, atol=1e-12)
    np.testing.assert_allclose(smoothed.mean_feature, features.mean(0), atol=1e-12)
    again = smoother.estimate(x, reference, 30, torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(again.score_mean, smoothed.score_mean)


@pytest.mark.parametrize('method', confidence.METHODS)
def test_cosine_certificate_is_consistent_with_its_parts(method):
    net = _tiny_conv_encoder(1)
    smoother = fs.FeatureSmoother(lambda z, g: net(z), sigma=0.12, batch_size=64)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    prototypes = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))
    cert = smoother.certify(x, prototypes, radius=0.02, alpha=0.01, num_selection=16,
                            num_estimation=400, generator=torch.Generator().manual_seed(6),
                            method=method)
    smoothed = cert.smoothed
    labels, margin = fs.cosine_head_margin(smoothed.reference, prototypes.numpy())
    np.testing.assert_array_equal(cert.labels, labels)
    # Holm mask = statsmodels' Holm on the per-pixel p-values
    threshold = fs.required_score(np.cos(margin / 2), 0.02, 0.12)
    expected = multipletests(smoothed.score_pvalues(threshold, method).ravel(), 0.01, 'holm')[0]
    np.testing.assert_array_equal(cert.certified.ravel(), expected)
    np.testing.assert_array_equal(cert.certified_at(0.02), cert.certified)
    # the simultaneous radius map certifies a subset of Holm's pixels at every radius
    assert cert.certified.any() and cert.certified_radius.max() > 0
    for radius in np.linspace(0, cert.certified_radius.max(), 6):
        assert np.all(cert.certified_at(radius)[cert.certified_radius > radius])
    # and the Holm mask shrinks as the radius grows
    assert cert.certified_at(0.0).sum() >= cert.certified.sum() >= cert.certified_at(0.1).sum()
    np.testing.assert_allclose(cert.fcsb, fs.fcsb(smoothed.score_lower(0.01, method), 0.02, 0.12))
    assert 0.0 < cert.certified_fraction <= 1.0


def test_smoother_rejects_bad_input():
    net = _tiny_conv_encoder()
    smoother = fs.FeatureSmoother(lambda z, g: net(z), sigma=0.25)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match='batch dimension of 1'):
        smoother.select_reference(x, 4)
    with pytest.raises(ValueError, match='reference'):
        smoother.estimate(x[:1], torch.ones(4, 3, 3, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match='sigma'):
        fs.FeatureSmoother(lambda z, g: net(z), sigma=-1.0)
    with pytest.raises(ValueError, match='number of samples'):
        smoother.select_reference(x[:1], 0)


# ------------------------------------------------------------- joint ensemble (noise, then masks)
class _RecordingFeatures:
    """A model's ``features`` stand-in that records its inputs (the masks are what is tested)."""

    def __init__(self):
        self.calls = []
        self.embed = torch.nn.Conv2d(3, 4, 1).double()

    def __call__(self, rgb, rgb_keep, depth, depth_keep):
        self.calls.append((rgb, rgb_keep, depth, depth_keep))
        return self.embed(rgb) + depth.mean()


def test_joint_ensemble_adds_noise_to_the_full_input_then_masks():
    rgb = torch.rand(1, 3, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    depth = torch.rand(1, 1, 3, 4, dtype=torch.float64) * 50
    recorder = _RecordingFeatures()
    encoder = fs.joint_rgbd_encoder(recorder, depth, k_rgb=5, k_depth=2, sigma=0.25)
    smoother = fs.FeatureSmoother(encoder, sigma=0.25, batch_size=4, adds_noise=True)
    votes = fs.VoteCounter(lambda f: torch.einsum('bdhw,cd->bchw', f, torch.eye(2, 4).double()))
    smoother.estimate(rgb, torch.ones(4, 6, 8, dtype=torch.float64) / 2, 10,
                      torch.Generator().manual_seed(1), on_batch=votes)
    # Oracle: the same generator drawing noise for the full image, then masks, batch by batch.
    generator = torch.Generator().manual_seed(1)
    for (seen_rgb, seen_keep, seen_depth, seen_depth_keep), batch in zip(recorder.calls,
                                                                         (4, 4, 2)):
        noisy = rgb + 0.25 * torch.randn((batch, 3, 6, 8), generator=generator,
                                         dtype=torch.float64)
        expected = sampling.subsample(noisy.clamp(0, 1), depth.expand(batch, -1, -1, -1), 5, 2,
                                      generator)
        torch.testing.assert_close(seen_rgb, expected.rgb)
        torch.testing.assert_close(seen_keep, expected.rgb_keep)
        torch.testing.assert_close(seen_depth, expected.depth)
        assert seen_keep.sum(dim=(1, 2, 3)).tolist() == [5.0] * batch
        assert seen_depth_keep.sum(dim=(1, 2, 3)).tolist() == [2.0] * batch
    counts = votes.counts
    assert counts.shape == (2, 6, 8) and counts.dtype == torch.int32
    assert torch.all(counts.sum(dim=0) == 10)


def test_joint_encoder_rejects_a_batched_depth():
    with pytest.raises(ValueError, match='depth'):
        fs.joint_rgbd_encoder(_RecordingFeatures(), torch.zeros(2, 1, 3, 4), 1, 1, 0.25)
