"""l2 attacks on the shipped model and booster: the smoothed label of the weakest certified cells.

The shipped network with its sigma = 0.25 booster is certified on a held-out synthetic frame
(:class:`~mmcert_ros.certify.l2.L2Certifier`). For the road cells and the other cells with
the smallest certified radii, l2 PGD on the whole RGB image minimises the cell's *smoothed
label margin*,
``s_y <g(x'), a>`` for the antipodal head ``(-a, a)`` (``s_y = +1`` for road, -1 otherwise),
the expectation estimated on fresh noise and masks every step, at budgets of 1, 8 and 64
times the certified radius; and a gradient-free *transplant* attack blends the 9 x 9-cell
window around the cell towards the same window around the most robust cell of the other label,
``x + t (donor - x)``, for growing t. The margin at each attacked image is measured on fresh
samples with a Hoeffding upper bound. Within the certified radius the label must hold: a
cell fails only if the certificate (probability <= alpha) or the measurement
(probability <= MEASURE_DELTA) is wrong. The smallest budget that flips each cell's label is
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
from mmcert_ros.certify import feature_smoothing as fs
from mmcert_ros.certify.tensors import frame_tensors
from mmcert_ros.certify.l2 import L2Certifier, L2Settings
from mmcert_ros.certify.sampling import kept_count, make_generator
from mmcert_ros.models import load_model
from mmcert_ros.models.booster import BoostedModel, default_booster_path, load_booster
from mmcert_ros.training.data import synthetic_frames

SIGMA = 0.25
ALPHA = 0.01
MEASURE_DELTA = 0.01
BUDGET_FACTORS = (1.0, 8.0, 64.0)
ROAD_CELLS, OTHER_CELLS = 4, 2


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
                                    kept_count(config.keep_fraction_rgb, rgb.shape[0] * rgb.shape[1]),
                                    kept_count(config.keep_fraction_depth, depth.size), SIGMA)
    return cert, network, encoder, rgb_t


def _weakest_cells(cert):
    """The certified road cells and other cells with the smallest certified radii."""
    cells = cert.cells
    chosen = []
    for label, count in ((1, ROAD_CELLS), (0, OTHER_CELLS)):
        candidates = np.argwhere((cells.labels == label) & (cells.certified_radius > 0))
        order = np.argsort(cells.certified_radius[tuple(candidates.T)])
        chosen += [tuple(int(v) for v in candidates[i]) for i in order[:count]]
    return chosen


def _margins(encoder, images, cells, signs, axis, copies, generator):
    """Per image b, the Monte-Carlo mean of ``s_b <f(M(images_b + eps)), a>`` at its cell."""
    batch = images.shape[0]
    copied = images.repeat_interleave(copies, dim=0)
    features = torch.nn.functional.normalize(encoder(copied, batch * copies, generator), dim=1)
    rows = torch.tensor([c[0] for c in cells]).repeat_interleave(copies)
    cols = torch.tensor([c[1] for c in cells]).repeat_interleave(copies)
    at_cell = features[torch.arange(batch * copies), :, rows, cols]            # (B * copies, D)
    projections = (at_cell @ axis) * signs.repeat_interleave(copies)
    return projections.view(batch, copies)


def _attack(encoder, rgb, cells, signs, axis, budget, steps=10, copies=8, seed=0):
    """l2 PGD (normalised gradient steps of 2.5 budget / steps, projection on the ball)."""
    generator = make_generator(seed, 'cpu')
    start = rgb.expand(len(cells), -1, -1, -1)
    offset = torch.zeros_like(start)
    for _ in range(steps):
        offset.requires_grad_(True)
        loss = _margins(encoder, start + offset, cells, signs, axis, copies, generator).sum()
        (gradient,) = torch.autograd.grad(loss, offset)
        with torch.no_grad():
            norm = gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            offset = offset - 2.5 * budget[:, None, None, None] / steps * gradient / norm
            length = offset.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            offset = offset * torch.clamp(budget[:, None, None, None] / length.clamp_min(1e-12),
                                          max=1.0)
    return (start + offset).detach()


def _transplants(rgb, cert, cells, steps=(0.125, 0.25, 0.5, 0.75, 1.0)):
    """Per cell, images blending its 72 x 72-pixel window (9 x 9 cells) towards the same window
    around the most robust cell of the other label, with their l2 distances from ``rgb``:
    ``(len(steps), cells, 3, H, W)``."""
    labels = cert.cells.labels
    height, width = rgb.shape[-2:]
    images, norms = [], []
    for row, col in cells:
        others = np.argwhere(labels != labels[row, col])   # the most robust cell of the other
        donor = others[np.argmax(cert.cells.certified_radius[tuple(others.T)])]   # label
        shift = ((donor[0] - row) * 8, (donor[1] - col) * 8)
        top, left = max(0, row * 8 - 32), max(0, col * 8 - 32)
        bottom, right = min(height, row * 8 + 40), min(width, col * 8 + 40)
        top_d, left_d = top + shift[0], left + shift[1]
        if top_d < 0 or left_d < 0 or top_d + bottom - top > height or left_d + right - left > width:
            top_d, left_d = min(max(top_d, 0), height - (bottom - top)), min(max(left_d, 0), width - (right - left))
        target = rgb.clone()
        target[..., top:bottom, left:right] = rgb[..., top_d:top_d + bottom - top,
                                                  left_d:left_d + right - left]
        images.append(torch.stack([rgb + t * (target - rgb) for t in steps])[:, 0])
        norms.append([t * float((target - rgb).norm()) for t in steps])
    return torch.stack(images, dim=1), np.array(norms).T


@pytest.mark.slow
def test_no_attack_flips_a_weak_cell_within_its_certified_radius(setup, capsys):
    cert, network, encoder, rgb = setup
    cells = _weakest_cells(cert)
    assert len(cells) == ROAD_CELLS + OTHER_CELLS
    labels = np.array([cert.cells.labels[c] for c in cells])
    radii = np.array([cert.cells.certified_radius[c] for c in cells])
    signs = torch.tensor(np.where(labels == 1, 1.0, -1.0), dtype=torch.float32)
    axis = network.prototypes[1].detach()
    measure = 300
    slack = 2.0 * math.sqrt(math.log(1.0 / MEASURE_DELTA) / (2 * measure))   # values in [-1, 1]
    flipped_at = np.full(len(cells), np.inf)
    failures = 0
    for factor in BUDGET_FACTORS:
        budget = torch.tensor(radii * factor, dtype=torch.float32)
        attacked = _attack(encoder, rgb, cells, signs, axis, budget)
        with torch.no_grad():
            margin = _margins(encoder, attacked, cells, signs, axis, measure,
                              make_generator(1, 'cpu')).mean(dim=1).numpy()
        if factor <= 1.0:
            failures += int(np.sum(margin + slack < 0))   # the label provably flipped
        flipped_at = np.where(np.isinf(flipped_at) & (margin < 0), factor, flipped_at)
    transplanted, norms = _transplants(rgb, cert, cells)
    flipped_norm = np.full(len(cells), np.inf)
    for images, norm in zip(transplanted, norms):
        with torch.no_grad():
            margin = _margins(encoder, images, cells, signs, axis, measure,
                              make_generator(2, 'cpu')).mean(dim=1).numpy()
        failures += int(np.sum((norm <= radii) & (margin + slack < 0)))
        flipped_norm = np.where(np.isinf(flipped_norm) & (margin < 0), norm, flipped_norm)
    with capsys.disabled():
        print('\ncell (row, col) | label | certified radius | smallest flipping PGD budget / '
              'radius | smallest flipping transplant, l2 (/ radius)')
        for cell, label, radius, flip, norm in zip(cells, labels, radii, flipped_at,
                                                   flipped_norm):
            pgd = flip if np.isfinite(flip) else f'> {BUDGET_FACTORS[-1]}'
            blend = f'{norm:.3f} ({norm / radius:.0f}x)' if np.isfinite(norm) else \
                f'none up to {norms[-1][cells.index(cell)]:.2f}'
            print(f'{cell} | {"road" if label == 1 else "other"} | {radius:.4f} | {pgd} | {blend}')
    # a sound certificate fails a cell with probability <= ALPHA + MEASURE_DELTA
    assert failures <= stats.binom.ppf(1 - 1e-6, len(cells), ALPHA + MEASURE_DELTA)
