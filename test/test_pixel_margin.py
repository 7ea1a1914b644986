"""The pixel-margin l2 certificate (docs/certification.md section 8, "Pixels") against oracles:
per-sample upsampling by torch's own bilinear interpolation, SciPy root finding for the
Kullback-Leibler bound, statsmodels for Holm, and a step encoder whose smoothed margin and
smallest label-flipping perturbation are closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, special
from statsmodels.stats.multitest import multipletests

from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l2.pixel_margin import FEATURE_NORM_SLACK, pixel_margins, upsample_cells

torch.set_num_threads(1)


def _recorded(classes: int, grid: tuple[int, int], num_samples: int, seed: int,
              spread: float = 0.8):
    """N unit features per cell near random prototypes, their SmoothedFeatures and prototypes."""
    rng = np.random.default_rng(seed)
    dim = 5
    prototypes = rng.normal(size=(classes, dim))
    centre = prototypes[rng.integers(0, classes, grid)].transpose(2, 0, 1)      # (D, h, w)
    samples = centre[None] + rng.normal(scale=spread, size=(num_samples, dim, *grid))
    samples /= np.linalg.norm(samples, axis=1, keepdims=True)
    reference = centre + rng.normal(scale=0.5, size=centre.shape)
    reference /= np.linalg.norm(reference, axis=0, keepdims=True)
    smoothed = fs.SmoothedFeatures(reference=reference, mean_feature=samples.mean(axis=0),
                                   score_mean=np.ones(grid), score_variance=np.zeros(grid),
                                   num_samples=num_samples, sigma=0.25)
    return samples, smoothed, prototypes


def _interpolate(cells: np.ndarray, size) -> np.ndarray:
    """Oracle upsampling: torch's F.interpolate, float64, half-pixel centres."""
    return F.interpolate(torch.from_numpy(cells), size=size, mode='bilinear',
                         align_corners=False).numpy()


@pytest.mark.parametrize('classes, grid, size', [(2, (4, 6), (32, 48)), (3, (5, 7), (37, 53)),
                                                 (2, (3, 3), (3, 3)), (4, (6, 5), (44, 9))])
def test_scores_are_the_means_of_every_samples_upsampled_margin(classes, grid, size):
    samples, smoothed, prototypes = _recorded(classes, grid, 40, seed=classes)
    margins = pixel_margins(smoothed, prototypes, size)
    unit = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    labels = _interpolate(np.tensordot(unit, smoothed.reference, axes=(1, 0))[None], size)[0]
    labels = labels.argmax(axis=0)
    np.testing.assert_array_equal(margins.labels, labels)
    logits = _interpolate(np.einsum('cd,ndhw->nchw', unit, samples), size)  # (N, C, H, W)
    assert margins.scores.shape == (classes - 1, *size)
    for k in range(classes - 1):
        rival = k + (k >= labels)
        own = np.take_along_axis(logits, labels[None, None], axis=1)[:, 0]
        other = np.take_along_axis(logits, rival[None, None], axis=1)[:, 0]
        gap = np.linalg.norm(unit[labels] - unit[rival], axis=-1)
        per_sample = (own - other) / gap                      # every sample's margin
        assert np.abs(per_sample).max() <= 1 + 1e-12
        np.testing.assert_allclose(margins.scores[k],
                                   (1 + per_sample.mean(axis=0) / (1 + FEATURE_NORM_SLACK)) / 2,
                                   rtol=0, atol=1e-12)


def test_upsample_cells_is_torch_bilinear_interpolation_in_float64():
    values = np.random.default_rng(3).normal(size=(2, 5, 8))
    for size in ((40, 64), (37, 53), (5, 8), (3, 4)):
        np.testing.assert_allclose(upsample_cells(values, size), _interpolate(values[None],
                                                                              size)[0],
                                   rtol=0, atol=1e-13)


def test_radius_is_sigma_times_the_probit_of_the_kl_bound_at_alpha_over_m():
    samples, smoothed, prototypes = _recorded(3, (4, 6), 200, seed=7)
    margins = pixel_margins(smoothed, prototypes, (16, 24))
    alpha, n = 0.01, 200
    m = margins.scores.size
    budget = math.log(m / alpha) / n
    expected = np.zeros(margins.labels.shape)
    for index in np.ndindex(*margins.labels.shape):
        radii = []
        for k in range(2):
            mean = margins.scores[(k, *index)]

            def kl(s, mean=mean):
                return special.rel_entr(mean, s) + special.rel_entr(1 - mean, 1 - s) - budget

            lower = 0.0 if kl(1e-300) <= 0 else optimize.brentq(kl, 1e-300, mean, xtol=1e-15)
            radii.append(max(0.0, 0.25 * special.ndtri(lower)))
        expected[index] = min(radii)
    radius = margins.radius(alpha)
    assert (radius > 0).mean() > 0.2 and (radius == 0).any()
    np.testing.assert_allclose(radius, expected, rtol=1e-7, atol=1e-9)
    assert np.all(radius <= expected + 1e-12)        # never above the exact bound


def test_holm_mask_is_statsmodels_holm_over_every_pixel_and_rival():
    samples, smoothed, prototypes = _recorded(3, (4, 6), 300, seed=8, spread=0.4)
    margins = pixel_margins(smoothed, prototypes, (16, 24))
    for radius in (0.0, 0.02, 0.1):
        threshold = special.ndtr(radius / 0.25)
        scores = margins.scores.ravel()
        kl = special.rel_entr(scores, threshold) + special.rel_entr(1 - scores, 1 - threshold)
        pvalues = np.where(scores > threshold, np.exp(-300 * kl), 1.0)
        reject = multipletests(pvalues, 0.01, method='holm')[0].reshape(margins.scores.shape)
        mask = margins.certified_at(radius, 0.01)
        np.testing.assert_array_equal(mask, reject.all(axis=0))
        assert 0 < mask.mean() < 1
        # the Holm mask contains every pixel the simultaneous radius map certifies
        assert not ((margins.radius(0.01) > radius) & ~mask).any()


def test_coinciding_prototypes_are_never_certified():
    _, smoothed, prototypes = _recorded(3, (2, 2), 50, seed=9)
    prototypes[2] = prototypes[1] * 3.0
    margins = pixel_margins(smoothed, prototypes, (8, 8))
    tied = margins.labels != 0
    assert tied.any()
    assert not margins.certified_at(0.0, 0.5)[tied].any()
    assert (margins.radius(0.5)[tied] == 0).all()


def test_bad_shapes_are_refused():
    _, smoothed, prototypes = _recorded(2, (2, 2), 10, seed=1)
    with pytest.raises(ValueError, match='prototypes'):
        pixel_margins(smoothed, prototypes[:1], (8, 8))
    with pytest.raises(ValueError, match='non-zero'):
        pixel_margins(smoothed, np.zeros_like(prototypes), (8, 8))
    with pytest.raises(ValueError, match='shape'):
        pixel_margins(smoothed, prototypes[:, :3], (8, 8))


# ----------------------------------------------------- a step encoder: the exact smallest attack
SIGMA = 0.2
GRID, SIZE = (3, 4), (12, 16)


def _step_encoder(x: torch.Tensor, generator) -> torch.Tensor:
    """Cell j's feature is +e1 (class 1) where the input value ``x_j`` exceeds 1/2, else -e1:
    the smoothed margin of a pixel is ``sum_j a_pj (2 Phi((x_j - 1/2) / sigma) - 1)``."""
    sign = torch.where(x[:, 0] > 0.5, 1.0, -1.0)
    return torch.stack([sign, torch.zeros_like(sign)], dim=1)


def _smallest_flip(x: np.ndarray, weights: np.ndarray, label: int) -> float:
    """The exact smallest l2 change of the cell values that makes the pixel's smoothed
    margin ``sum_j a_j (2 Phi((x_j - 1/2) / sigma) - 1)`` reach 0 (SciPy SLSQP from several
    starts): the strongest possible attack on this encoder."""
    sign = 1.0 if label == 1 else -1.0
    x, weights = x.ravel(), weights.ravel()

    def margin(z):
        return sign * np.sum(weights * (2 * special.ndtr((z - 0.5) / SIGMA) - 1))

    best = np.inf
    for scale in (0.5, 1.0, 2.0):
        start = x - sign * scale * (weights > 0) * abs(x - 0.5)
        result = optimize.minimize(lambda z: np.sum((z - x) ** 2), start, method='SLSQP',
                                   constraints=[{'type': 'ineq', 'fun': lambda z: -margin(z)}],
                                   options={'ftol': 1e-14, 'maxiter': 500})
        if result.success and margin(result.x) <= 1e-9:
            best = min(best, float(np.linalg.norm(result.x - x)))
    return best


@pytest.mark.slow
def test_certified_radius_never_exceeds_the_smallest_flipping_attack_and_comes_close():
    rng = np.random.default_rng(5)
    x = rng.uniform(0.1, 0.9, GRID)
    x[0, 0], x[2, 3] = 0.52, 0.48           # cells close to the decision value
    smoother = fs.FeatureSmoother(_step_encoder, SIGMA, batch_size=5000)
    generator = torch.Generator().manual_seed(0)
    tensor = torch.from_numpy(x)[None, None]
    reference = smoother.select_reference(tensor, 64, generator)
    smoothed = smoother.estimate(tensor, reference, 20_000, generator)
    prototypes = np.array([[-1.0, 0.0], [1.0, 0.0]])
    margins = pixel_margins(smoothed, prototypes, SIZE)
    radius = margins.radius(0.01)
    deltas = np.eye(GRID[0] * GRID[1]).reshape(-1, *GRID)
    weights = upsample_cells(deltas, SIZE).reshape(*GRID, *SIZE)        # (h, w, H, W)
    exact_labels = (np.tensordot(2 * special.ndtr((x - 0.5) / SIGMA) - 1, weights,
                                 axes=((0, 1), (0, 1))) > 0).astype(int)
    certified = radius > 0
    assert certified.mean() > 0.5
    np.testing.assert_array_equal(margins.labels[certified], exact_labels[certified])
    ratios = []
    for row, col in zip(*np.nonzero(certified)):
        attack = _smallest_flip(x, weights[:, :, row, col], exact_labels[row, col])
        assert radius[row, col] <= attack       # a sound certificate (its own error <= 0.01)
        ratios.append(radius[row, col] / attack)
    # pixels of one cell (weight 1) are certified within a few per cent of the exact bound:
    # the Lipschitz bound is attained by a step encoder; the rest is Monte-Carlo confidence
    assert np.max(ratios) > 0.9
    print(f'\ncertified radius / smallest flipping attack over {len(ratios)} pixels: '
          f'median {np.median(ratios):.3f}, max {np.max(ratios):.3f}')


def test_the_step_encoder_oracle_is_its_closed_form():
    """The smoothed margin of the step encoder is what _smallest_flip assumes."""
    x = np.array([[0.45, 0.7]])
    smoother = fs.FeatureSmoother(_step_encoder, SIGMA, batch_size=4000)
    generator = torch.Generator().manual_seed(1)
    tensor = torch.from_numpy(x)[None, None]
    smoothed = smoother.estimate(tensor, smoother.select_reference(tensor, 8, generator),
                                 40_000, generator)
    expected = 2 * special.ndtr((x - 0.5) / SIGMA) - 1
    tolerance = 4 * math.sqrt(1 / 40_000)
    np.testing.assert_allclose(smoothed.mean_feature[0], expected, atol=tolerance)
