"""l2 attacks on the shipped model and booster: the smoothed label of the weakest certified pixels.

The shipped network with its sigma = 0.25 booster is certified on a held-out synthetic frame
(:class:`~mmcert_ros.certify.l2.L2Certifier`). For the road pixels and the other pixels with
the smallest certified radii, l2 PGD on the whole RGB image minimises the pixel's *smoothed
label margin* ``s_y sum_j a_pj <g_j(x'), a>`` for the antipodal head ``(-a, a)`` (``a_pj``
the bilinear weights of its cells, ``s_y = +1`` for road, -1 otherwise), the expectation
estimated on fresh noise and masks every step, at budgets of 1, 8 and 64 times the certified
radius; and a gradient-free *transplant* attack blends the 9 x 9-cell window around the
pixel's cell towards the same window around the most robust pixel of the other label,
``x + t (donor - x)``, for growing t. The margin at each attacked image is measured on fresh
samples with a Hoeffding upper bound. Within the certified radius the label must hold: a
pixel fails only if the certificate (probability <= alpha) or the measurement
(probability <= MEASURE_DELTA) is wrong. The smallest budget that flips each pixel's label is
printed next to its certified radius (``pytest -s``; the figures are in
docs/feature_smoothing.md).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mmcert_ros.certify import CertifyConfig
from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.tensors import frame_tensors
from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
from mmcert_ros.certify.l0.sampling import kept_count, make_generator
from mmcert_ros.models import load_model
from mmcert_ros.models.booster import BoostedModel, default_booster_path, load_booster
from mmcert_ros.certify.upsampling import BilinearTaps
from mmcert_ros.training.data import synthetic_frames

SIGMA = 0.25
ALPHA = 0.01
MEASURE_DELTA = 0.01
BUDGET_FACTORS = (1.0, 8.0, 64.0)
ROAD_PIXELS, OTHER_PIXELS = 4, 2


@pytest.fixture(scope='module')
def setup():
    torch.set_num_threads(1)
    frame = synthetic_frames(900_001, 1, 621, 188)[0][0]
    rgb, depth = frame.rgb[:, 240:400].copy(), frame.depth[:, 240:400].copy()   # 24 x 20 cells
    model = load_model(None)
    booster = load_booster(default_booster_path(SIGMA))[0]
    config = CertifyConfig(num_samples=1000, alpha=ALPHA, seed=0, batch_size=100)
    cert = L2Certifier(model, L2Settings(sigma=SIGMA), config, booster).certify(rgb, depth)
    network = BoostedModel(model, booster).eval()
    rgb_t, depth_t = frame_tensors(rgb, depth, torch.device('cpu'))
    encoder = fs.joint_rgbd_encoder(network.features, depth_t,
                                    kept_count(config.keep_fraction_rgb,
                                               rgb.shape[0] * rgb.shape[1]),
                                    kept_count(config.keep_fraction_depth, depth.size), SIGMA)
    return cert, network, encoder, rgb_t


def _weakest_pixels(cert):
    """Certified road pixels and other pixels with the smallest certified radii, one per cell."""
    chosen = []
    for label, count in ((1, ROAD_PIXELS), (0, OTHER_PIXELS)):
        candidates = np.argwhere((cert.labels == label) & (cert.radius > 0))
        order = np.argsort(cert.radius[tuple(candidates.T)])
        cells = set()
        for i in order:
            pixel = tuple(int(v) for v in candidates[i])
            if (pixel[0] // 8, pixel[1] // 8) not in cells and len(cells) < count:
                cells.add((pixel[0] // 8, pixel[1] // 8))
                chosen.append(pixel)
    return chosen


def _pixel_weights(pixels, grid, size):
    """``(P, h, w)`` bilinear weights of the cells in each pixel's upsampled logits."""
    rows = BilinearTaps.build(size[0], grid[0], 'cpu')
    cols = BilinearTaps.build(size[1], grid[1], 'cpu')
    weights = torch.zeros(len(pixels), *grid)
    for index, (row, col) in enumerate(pixels):
        for r, wr in ((rows.low[row], rows.weight_low[row]),
                      (rows.high[row], rows.weight_high[row])):
            for c, wc in ((cols.low[col], cols.weight_low[col]),
                          (cols.high[col], cols.weight_high[col])):
                weights[index, r, c] += wr * wc
    return weights


def _margins(encoder, images, weights, signs, axis, copies, generator):
    """Per image b, the Monte-Carlo mean of ``s_b sum_j a_bj <f_j(M(images_b + eps)), a>``
    (its pixel's bilinear weights ``a_bj``)."""
    batch = images.shape[0]
    copied = images.repeat_interleave(copies, dim=0)
    features = torch.nn.functional.normalize(encoder(copied, batch * copies, generator), dim=1)
    projections = torch.einsum('bdhw,d->bhw', features, axis)  # (B * copies, h, w)
    at_pixel = (projections * weights.repeat_interleave(copies, dim=0)).sum(dim=(1, 2))
    return (at_pixel * signs.repeat_interleave(copies)).view(batch, copies)


def _attack(encoder, rgb, weights, signs, axis, budget, steps=10, copies=8, seed=0):
    """l2 PGD (normalised gradient steps of 2.5 budget / steps, projection on the ball)."""
    generator = make_generator(seed, 'cpu')
    start = rgb.expand(len(weights), -1, -1, -1)
    offset = torch.zeros_like(start)
    for _ in range(steps):
        offset.requires_grad_(True)
        loss = _margins(encoder, start + offset, weights, signs, axis, copies, generator).sum()
        (gradient,) = torch.autograd.grad(loss, offset)
        with torch.no_grad():
            norm = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            offset = offset - 2.5 * budget[:, None, None, None] / steps * gradient / norm
            length = offset.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            offset = offset * torch.clamp(budget[:, None, None, None] / length.clamp_min(1e-12),
                                          max=1.0)
    return (start + offset).detach()


def _transplants(rgb, cert, pixels, steps=(0.125, 0.25, 0.5, 0.75, 1.0)):
    """Per pixel, images blending the 72 x 72-pixel window (9 x 9 cells) around its cell
    towards the same window around the cell of the most robust pixel of the other label, with
    their l2 distances from ``rgb``: ``(len(steps), pixels, 3, H, W)``."""
    labels = cert.labels
    height, width = rgb.shape[-2:]
    images, norms = [], []
    for pixel in pixels:
        others = np.argwhere(labels != labels[pixel])       # the most robust pixel of the other
        donor = others[np.argmax(cert.radius[tuple(others.T)])] // 8             # label's cell
        row, col = pixel[0] // 8, pixel[1] // 8
        shift = ((donor[0] - row) * 8, (donor[1] - col) * 8)
        top, left = max(0, row * 8 - 32), max(0, col * 8 - 32)
        bottom, right = min(height, row * 8 + 40), min(width, col * 8 + 40)
        top_d, left_d = top + shift[0], left + shift[1]
        if (top_d < 0 or left_d < 0 or top_d + bottom - top > height
                or left_d + right - left > width):
            top_d, left_d = (min(max(top_d, 0), height - (bottom - top)),
                             min(max(left_d, 0), width - (right - left)))
        target = rgb.clone()
        target[..., top:bottom, left:right] = rgb[..., top_d:top_d + bottom - top,
                                                  left_d:left_d + right - left]
        images.append(torch.stack([rgb + t * (target - rgb) for t in steps])[:, 0])
        norms.append([t * float((target - rgb).norm()) for t in steps])
    return torch.stack(images, dim=1), np.array(norms).T


@pytest.mark.slow
def test_no_attack_flips_a_weak_pixel_within_its_certified_radius(setup, capsys):
    cert, network, encoder, rgb = setup
    pixels = _weakest_pixels(cert)
    assert len(pixels) == ROAD_PIXELS + OTHER_PIXELS
    labels = np.array([cert.labels[p] for p in pixels])
    radii = np.array([cert.radius[p] for p in pixels], dtype=np.float64)
    weights = _pixel_weights(pixels, cert.cells.labels.shape, cert.labels.shape)
    signs = torch.tensor(np.where(labels == 1, 1.0, -1.0), dtype=torch.float32)
    axis = network.prototypes[1].detach()
    measure = 300
    slack = 2.0 * math.sqrt(math.log(1.0 / MEASURE_DELTA) / (2 * measure))   # values in [-1, 1]
    flipped_at = np.full(len(pixels), np.inf)
    failures = 0
    for factor in BUDGET_FACTORS:
        budget = torch.tensor(radii * factor, dtype=torch.float32)
        attacked = _attack(encoder, rgb, weights, signs, axis, budget)
        with torch.no_grad():
            margin = _margins(encoder, attacked, weights, signs, axis, measure,
                              make_generator(1, 'cpu')).mean(dim=1).numpy()
        if factor <= 1.0:
            failures += int(np.sum(margin + slack < 0))   # the label provably flipped
        flipped_at = np.where(np.isinf(flipped_at) & (margin < 0), factor, flipped_at)
    transplanted, norms = _transplants(rgb, cert, pixels)
    flipped_norm = np.full(len(pixels), np.inf)
    for images, norm in zip(transplanted, norms):
        with torch.no_grad():
            margin = _margins(encoder, images, weights, signs, axis, measure,
                              make_generator(2, 'cpu')).mean(dim=1).numpy()
        failures += int(np.sum((norm <= radii) & (margin + slack < 0)))
        flipped_norm = np.where(np.isinf(flipped_norm) & (margin < 0), norm, flipped_norm)
    with capsys.disabled():
        print('\npixel (row, col) | label | certified radius | smallest flipping PGD budget / '
              'radius | smallest flipping transplant, l2 (/ radius)')
        for index, (pixel, label, radius, flip, norm) in enumerate(
                zip(pixels, labels, radii, flipped_at, flipped_norm)):
            pgd = flip if np.isfinite(flip) else f'> {BUDGET_FACTORS[-1]}'
            blend = f'{norm:.3f} ({norm / radius:.0f}x)' if np.isfinite(norm) else \
                f'none up to {norms[-1][index]:.2f}'
            print(f'{pixel} | {"road" if label == 1 else "other"} | {radius:.4f} | {pgd} '
                  f'| {blend}')
    # a sound certificate fails a pixel with probability <= ALPHA + MEASURE_DELTA
    assert failures <= stats.binom.ppf(1 - 1e-6, len(pixels), ALPHA + MEASURE_DELTA)
