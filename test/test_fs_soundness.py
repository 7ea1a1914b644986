"""Soundness of the feature-space (l2) certificate under attack (docs/certification.md section 8).

A PGD attack within the certified l2 radius minimizes the smoothed encoder's ``<u, g(x')>``
(the expectation estimated on fresh noise every step). The attacked value is then measured on
many fresh samples with an upper confidence bound (additive Hoeffding, independent of the code
under test) and compared with the certified FCSB. The certificate guarantees
``<u, g(x')> >= FCSB`` (hence ``cos(g(x'), u) >= FCSB`` where positive).

How often may a trial fail? Only if the certificate's own confidence bound failed (probability
<= ALPHA) or the measurement's upper bound failed (probability <= MEASURE_DELTA), whatever the
attack does: at most ``ALPHA + MEASURE_DELTA = 0.02`` per trial. Each test allows
``binom.ppf(1 - 1e-6, trials, 0.02)`` failing trials, so a sound certificate fails the test
with probability below 1e-6. The first test also shows that the same harness rejects an
unsound bound, and that the attack reaches the known optimum.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l0.sampling import draw_keep_masks

pytestmark = pytest.mark.slow   # statistical oracles over many noisy passes

ALPHA = 0.01
MEASURE_DELTA = 0.01
FAILURE_RATE = ALPHA + MEASURE_DELTA


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: one torch thread is faster than several on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def allowed_failures(trials: int) -> int:
    return int(stats.binom.ppf(1 - 1e-6, trials, FAILURE_RATE))


def pgd_minimize(objective, start: torch.Tensor, radius: float, steps: int) -> torch.Tensor:
    """l2 PGD on copies: minimize ``objective(x) -> (P,)`` over ``||x_p - start_p|| <= R``.

    Normalized-gradient steps of 2.5 R / steps, each followed by projection onto the ball.
    """
    offset = torch.zeros_like(start)
    step_size = 2.5 * radius / steps
    dims = tuple(range(1, start.ndim))
    for _ in range(steps):
        offset.requires_grad_(True)
        loss = objective(start + offset).sum()
        (gradient,) = torch.autograd.grad(loss, offset)
        with torch.no_grad():
            norm = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * len(dims))
            offset = offset - step_size * gradient / norm
            length = offset.flatten(1).norm(dim=1).view(-1, *[1] * len(dims))
            offset = offset * torch.clamp(radius / length.clamp_min(1e-12), max=1.0)
    return (start + offset).detach()


def upper_bound_on_inner_product(values: torch.Tensor, delta: float) -> torch.Tensor:
    """Hoeffding upper confidence bound on ``E<u, f>`` from draws in [-1, 1] along dim 0."""
    return values.mean(dim=0) + 2.0 * math.sqrt(math.log(1.0 / delta) / (2.0 * values.shape[0]))


# ------------------------------------------------------------------ tight 1-location encoder
class ProbitEncoder:
    """``f(z) = (2h - 1, 2 sqrt(h (1 - h)))`` with ``h(z) = Phi(-<a, z> / tau)``, a unit vector.

    With u = e1 the per-sample score is h, and ``S(x) = Phi(-<a, x> / sqrt(tau^2 + sigma^2))``:
    ``Phi^{-1}(S)`` has Lipschitz constant ``1 / sqrt(tau^2 + sigma^2)``, just below FS's
    ``1 / sigma``, so the certificate is nearly tight and the attack's optimum ``x + R a`` is
    known.
    """

    def __init__(self, direction: torch.Tensor, tau: float):
        self.direction, self.tau = direction, tau

    def __call__(self, z: torch.Tensor, generator=None) -> torch.Tensor:
        h = torch.special.ndtr(-(z @ self.direction) / self.tau)
        return torch.stack([2 * h - 1, 2 * torch.sqrt((h * (1 - h)).clamp_min(1e-300))], dim=1)


def test_pgd_never_beats_the_certificate_on_a_nearly_tight_encoder():
    trials, dim, tau = 20, 16, 0.01
    rng = np.random.default_rng(0)
    torch_rng = torch.Generator().manual_seed(0)
    sound_failures = unsound_failures = 0
    for trial in range(trials):
        sigma = (0.12, 0.25, 0.5)[trial % 3]
        direction = torch.nn.functional.normalize(torch.randn(dim, generator=torch_rng,
                                                              dtype=torch.float64), dim=0)
        encoder = ProbitEncoder(direction, tau)
        spread = math.hypot(tau, sigma)
        z0 = rng.uniform(1.0, 2.0)                       # true score Phi(z0)
        x = torch.randn(dim, generator=torch_rng, dtype=torch.float64)
        x = (x - (x @ direction) * direction - z0 * spread * direction)[None]
        radius = rng.uniform(0.6, 1.2) * sigma
        reference = torch.tensor([1.0, 0.0], dtype=torch.float64)

        smoother = fs.FeatureSmoother(encoder, sigma, batch_size=1024)
        smoothed = smoother.estimate(x, reference, 5000, torch_rng)
        certified = float(smoothed.fcsb(radius, ALPHA))
        unsound = float(fs.fcsb(smoothed.score_mean, radius / 1.5, sigma))  # wrong on purpose

        def objective(points):  # Monte-Carlo <u, g(x')> on 512 fresh noise draws per step
            noise = torch.randn((512, dim), generator=torch_rng, dtype=torch.float64)
            return encoder(points + sigma * noise)[:, 0].mean()[None]

        attacked = pgd_minimize(objective, x, radius, steps=40)
        assert (attacked - x).norm() <= radius * (1 + 1e-9)
        draws = encoder(attacked + sigma * torch.randn((20000, dim), generator=torch_rng,
                                                       dtype=torch.float64))[:, 0]
        measured_upper = float(upper_bound_on_inner_product(draws, MEASURE_DELTA))
        sound_failures += measured_upper < certified
        unsound_failures += measured_upper < unsound
        # the attack reaches the known optimum x + R a (within the measurement's own error)
        optimum = 2 * stats.norm.cdf(z0 - radius / spread) - 1
        tolerance = 2 * math.sqrt(math.log(2 / 1e-6) / (2 * 20000)) + 0.01
        assert float(draws.mean()) == pytest.approx(optimum, abs=tolerance)
    assert sound_failures <= allowed_failures(trials)
    assert unsound_failures > allowed_failures(trials)


# ---------------------------------------- per-pixel conv encoder, with and without masks
def _conv_encoder(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(),
                               torch.nn.Conv2d(8, 4, 3, stride=2, padding=1)).double()


def _make_encoder(net, masked: bool):
    """Plain conv encoder, or the joint-ensemble form: keep 32 of 64 pixels after the noise."""
    def encoder(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if masked:
            keep = draw_keep_masks(z.shape[0], 64, 32, generator).view(-1, 1, 8, 8)
            z = z * keep.to(z.dtype)
        return net(z)
    return encoder


@pytest.mark.parametrize('masked', [False, True], ids=['plain', 'noise_then_mask'])
def test_pgd_never_beats_the_per_pixel_certificate_of_a_conv_encoder(masked):
    """Every pixel of a 4x4 feature map attacked separately; the simultaneous (Bonferroni)
    certificate covers all 16 at once, so a trial fails if any pixel's bound is beaten."""
    trials, sigma, pixels = 3, 0.25, 16
    generator = torch.Generator().manual_seed(10 + masked)
    failures = 0
    drops = []
    for trial in range(trials):
        encoder = _make_encoder(_conv_encoder(trial), masked)
        smoother = fs.FeatureSmoother(encoder, sigma, batch_size=256)
        x = torch.rand(1, 3, 8, 8, generator=generator, dtype=torch.float64)
        reference = smoother.select_reference(x, 32, generator)
        smoothed = smoother.estimate(x, reference, 200, generator)
        radius = 0.3 * sigma
        certified = torch.from_numpy(smoothed.fcsb(radius, ALPHA)).reshape(pixels)
        unit_reference = reference.reshape(4, pixels)

        def inner_products(points, samples):  # <u_p, f_p(x'_p + eps)>: copy p, pixel p
            noisy = points.repeat_interleave(samples, 0) + sigma * torch.randn(
                (pixels * samples, 3, 8, 8), generator=generator, dtype=torch.float64)
            features = torch.nn.functional.normalize(encoder(noisy, generator), dim=1)
            features = features.reshape(pixels, samples, 4, pixels)
            own_pixel = features[torch.arange(pixels), :, :, torch.arange(pixels)]  # (P, S, 4)
            return (own_pixel * unit_reference.T[:, None, :]).sum(-1)             # (P, S)

        attacked = pgd_minimize(lambda p: inner_products(p, 32).mean(1), x.repeat(pixels, 1, 1, 1),
                                radius, steps=20)
        with torch.no_grad():
            draws = torch.cat([inner_products(attacked, 250) for _ in range(8)], dim=1)
        measured_upper = upper_bound_on_inner_product(draws.T, MEASURE_DELTA / pixels)
        failures += bool((measured_upper < certified).any())
        drops.append(2 * smoothed.score_mean.reshape(pixels) - 1 - draws.mean(1).numpy())
    assert failures <= allowed_failures(trials)
    # the attack is real: it lowers the smoothed inner product of most pixels
    assert np.mean(np.concatenate(drops) > 0) > 0.8
