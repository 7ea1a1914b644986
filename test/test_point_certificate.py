"""The certificate in LiDAR points: bounds against exact rationals and brute force, the
point sampler, the engine on point input, and an injection attack on a target pixel."""
from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from mmcert_ros.certify.l0.bounds import delta
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.l0.engine import CertifiedSegmenter
from mmcert_ros.certify.l0.points import (certified_against_injection, injection_delta,
                                          kept_point_count, subsample_points)
from mmcert_ros.certify.l0.sampling import draw_keep_masks, draw_kept_indices, make_generator
from mmcert_ros.data.projection import ProjectedPoints


# --- formulas ------------------------------------------------------------------------------

def _survival(n: int, k: int, r: int) -> Fraction:
    return Fraction(comb(n - r, k), comb(n, k)) if r <= n - k else Fraction(0)


@pytest.mark.parametrize('n_rgb, k_rgb, r_rgb', [(50, 5, 0), (50, 5, 3), (200, 20, 7)])
def test_injection_delta_is_exact(n_rgb, k_rgb, r_rgb):
    for n, k, r in itertools.product((10, 37, 400), (1, 4, 9), (0, 1, 5, 60)):
        expected = 1 - _survival(n_rgb, k_rgb, r_rgb) * Fraction(comb(n, k), comb(n + r, k))
        got = injection_delta((n_rgb, n), (k_rgb, k), (r_rgb, r))
        assert got == pytest.approx(float(expected), rel=1e-12, abs=1e-15)
        # the move / edit bound is never smaller than the injection bound
        assert delta((n_rgb, n), (k_rgb, k), (r_rgb, r)) >= got - 1e-15


def test_injection_when_every_point_is_kept_certifies_nothing():
    assert injection_delta((100, 12), (10, 12), (0, 1)) == 1.0
    assert injection_delta((100, 12), (10, 12), (0, 0)) == 0.0


def _kept_set_law(cloud: tuple[int, ...], k: int) -> dict[frozenset, Fraction]:
    """Exact law of the kept set: uniform over the k-subsets of the cloud's points."""
    subsets = list(itertools.combinations(cloud, k))
    return {frozenset(s): Fraction(1, len(subsets)) for s in subsets}


def _total_variation(p: dict, q: dict) -> Fraction:
    keys = set(p) | set(q)
    return sum((abs(p.get(s, 0) - q.get(s, 0)) for s in keys), Fraction(0)) / 2


@pytest.mark.parametrize('n, k', [(4, 1), (5, 2), (6, 3), (7, 2)])
def test_brute_force_total_variation_on_tiny_clouds(n, k):
    """Every cloud within r removed and r added points of the observed one: the law of the
    kept set moves by at most delta(n, k, r) in total variation (what the certificate
    needs), with equality for a move of r points; pure injection moves it by exactly the
    injection bound; pure removal needs the full delta (the asymmetry)."""
    observed = tuple(range(n))
    extra = tuple(range(100, 100 + n))          # points the attacker can add
    law = _kept_set_law(observed, k)
    for r in range(0, n - k + 1):
        bound = Fraction(1) - _survival(n, k, r)
        for removed_count, added_count in itertools.product(range(r + 1), repeat=2):
            for removed in itertools.combinations(observed, removed_count):
                attacked = tuple(p for p in observed if p not in removed) + extra[:added_count]
                if len(attacked) < k:
                    continue
                tv = _total_variation(law, _kept_set_law(attacked, k))
                assert tv <= bound
                if removed_count == added_count == r:
                    assert tv == bound           # moving r points: the bound is exact
                if removed_count == 0:
                    assert tv == 1 - Fraction(comb(n, k), comb(n + added_count, k))
                    assert float(tv) == pytest.approx(
                        injection_delta((1, n), (1, k), (0, added_count)), abs=1e-12)
        if 0 < r <= n - k:
            # the observed cloud itself carries r injected points: the clean cloud is the
            # observed one minus r points, and the injection bound at n is too small for it
            clean = observed[r:]
            tv = _total_variation(law, _kept_set_law(clean, k))
            assert tv == bound
            assert tv > Fraction(injection_delta((1, n), (1, k), (0, r))) - Fraction(1, 10 ** 12)


# --- the sampler ---------------------------------------------------------------------------

def _points(pixels, depth, height=8, width=16) -> ProjectedPoints:
    return ProjectedPoints(np.asarray(pixels, np.int64), np.asarray(depth, np.float32),
                           height, width, len(pixels))


def test_subsample_keeps_exactly_k_points_and_zbuffers_them():
    rng = np.random.default_rng(0)
    count = 60
    pixels = rng.integers(0, 8 * 16, count)          # collisions on purpose
    depth = rng.uniform(1, 50, count).astype(np.float32)
    rgb = torch.rand(1, 3, 8, 16)
    inputs = subsample_points(_points(pixels, depth), rgb, 5, 9, 32, make_generator(7, 'cpu'))
    # the same draws, replayed: RGB masks first, then the point subsets
    generator = make_generator(7, 'cpu')
    rgb_keep = draw_keep_masks(32, 128, 5, generator, 'cpu', torch.float32)
    kept = draw_kept_indices(32, count, 9, generator)
    assert torch.equal(inputs.rgb_keep.view(32, -1), rgb_keep)
    for row in range(32):
        assert len(set(kept[row].tolist())) == 9
        expected = np.zeros(128, np.float32)
        for index in kept[row].tolist():
            pixel = pixels[index]
            expected[pixel] = depth[index] if expected[pixel] == 0 else min(expected[pixel],
                                                                            depth[index])
        np.testing.assert_array_equal(inputs.depth[row, 0].reshape(-1).numpy(), expected)
        np.testing.assert_array_equal(inputs.depth_keep[row, 0].reshape(-1).numpy(),
                                      (expected > 0).astype(np.float32))


def test_points_kept_uniformly_and_independently_of_the_rgb_mask():
    """Inclusion of every point is k / n (chi-square), and whether a point is kept does not
    depend on whether a given RGB pixel is kept (chi-square test of independence)."""
    from scipy.stats import chi2_contingency, chisquare

    n, k, batch = 40, 6, 4000
    points = _points(np.arange(n), np.full(n, 5.0), height=8, width=16)   # one per pixel
    inputs = subsample_points(points, torch.rand(1, 3, 8, 16), 20, k, batch,
                              make_generator(3, 'cpu'))
    kept = inputs.depth_keep.view(batch, -1)[:, :n] > 0
    assert (kept.sum(dim=1) == k).all()
    assert chisquare(kept.sum(dim=0).numpy()).pvalue > 1e-4
    rgb_kept = inputs.rgb_keep.view(batch, -1)[:, 77] > 0
    for point in (0, 13, 39):
        table = [[int((rgb_kept & kept[:, point]).sum()), int((rgb_kept & ~kept[:, point]).sum())],
                 [int((~rgb_kept & kept[:, point]).sum()),
                  int((~rgb_kept & ~kept[:, point]).sum())]]
        assert chi2_contingency(table).pvalue > 1e-4


def test_keep_points_fixed_and_capped_by_the_cloud():
    assert kept_point_count(20, 50) == 20 and kept_point_count(20, 5) == 5
    with pytest.raises(ValueError, match='positive integer'):
        kept_point_count(0, 5)
    # the engine takes k from certify.keep_points, never from the cloud's size
    segmenter = CertifiedSegmenter(NearObstacleModel(), CertifyConfig(
        num_samples=4, seed=0, keep_points=20, keep_fraction_rgb=0.05))
    rgb = np.zeros((16, 64, 3), np.uint8)
    for n in (30, 300):
        pixels, depth = _far_cloud(n, 16, 64, seed=n)
        assert segmenter.certify(rgb, _points(pixels, depth, 16, 64)).k[1] == 20


# --- an injection attack on a target pixel ---------------------------------------------------

BAND = 8          # the toy model decides per band of 8 columns
NEAR_M = 5.0


class NearObstacleModel(torch.nn.Module):
    """Toy base model of the package's contract: a band of 8 columns is 'obstacle' (1) iff a
    kept depth pixel in it is nearer than 5 m, else 0. An attacker flips a band by injecting
    near points into it; the sample reacts iff it keeps one of them, so the vote share of the
    flipped label is exactly the injection bound: the attack is the worst case."""

    num_classes = 2

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        near = (depth_keep > 0) & (depth < NEAR_M)
        batch, _, height, width = depth.shape
        bands = near.view(batch, height, width // BAND, BAND).any(dim=3).any(dim=1)
        obstacle = bands.repeat_interleave(BAND, dim=1)[:, None, :].expand(batch, height, width)
        logits = torch.stack([(~obstacle).float(), obstacle.float()], dim=1)
        return logits


def _far_cloud(count: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, height * width, count), rng.uniform(10, 60, count).astype(np.float32)


def test_injection_attack_flips_only_what_is_not_certified():
    height, width, n, keep = 16, 64, 400, 12
    pixels, depth = _far_cloud(n, height, width, seed=1)
    target_column = 3 * BAND + 2
    config = CertifyConfig(num_samples=200, alpha=0.001, seed=11, batch_size=50,
                           keep_fraction_rgb=0.05, keep_points=keep)
    segmenter = CertifiedSegmenter(NearObstacleModel(), config)
    rgb = np.zeros((height, width, 3), np.uint8)
    clean = segmenter.certify(rgb, _points(pixels, depth, height, width))
    assert (clean.labels == 0).all() and clean.n == (height * width, n)
    attacked_rate = []
    outcomes = {}
    for r in (2, 10, 40, 80):
        injected = (np.arange(r) % height) * width + target_column   # near points on the band
        attacked = _points(np.concatenate([pixels, injected]),
                           np.concatenate([depth, np.full(r, 1.0, np.float32)]), height, width)
        big = segmenter.config.replace(num_samples=1000, seed=5, batch_size=250)
        segmenter.config = big
        votes = segmenter.certify(rgb, attacked)
        segmenter.config = config
        share = votes.top_counts[0, target_column] / 1000
        flipped_share = share if votes.labels[0, target_column] == 1 else 1 - share
        bound = injection_delta(clean.n, clean.k, (0, r))
        # the attack is exactly as strong as the bound allows (binomial test, two-sided)
        assert binomtest(round(flipped_share * 1000), 1000, bound).pvalue > 1e-4
        attacked_rate.append(flipped_share)
        certified = certified_against_injection(clean, 0, r)[0, target_column]
        flipped = votes.labels[0, target_column] != clean.labels[0, target_column]
        outcomes[r] = (bool(certified), bool(flipped))
        if certified:
            assert not flipped and bound < 0.5
    assert outcomes[2] == (True, False)           # small budgets: certified, and it holds
    assert outcomes[80] == (False, True)          # a large injection flips the band
    assert attacked_rate == sorted(attacked_rate)


def test_observed_cloud_with_injected_points_certifies_the_clean_label():
    """Certifying the *attacked* observation at budget r with the published (edit) bound:
    a certified pixel's label is the clean cloud's label too."""
    height, width, n, keep, r = 16, 64, 400, 12, 3
    pixels, depth = _far_cloud(n, height, width, seed=2)
    target_column = 5 * BAND
    injected = (np.arange(r) % height) * width + target_column
    observed = _points(np.concatenate([pixels, injected]),
                       np.concatenate([depth, np.full(r, 1.0, np.float32)]), height, width)
    config = CertifyConfig(num_samples=200, alpha=0.001, seed=3, batch_size=100,
                           keep_fraction_rgb=0.05, keep_points=keep, radius_depth=r)
    segmenter = CertifiedSegmenter(NearObstacleModel(), config)
    rgb = np.zeros((height, width, 3), np.uint8)
    seen = segmenter.certify(rgb, observed)
    clean = segmenter.certify(rgb, _points(pixels, depth, height, width))
    assert seen.delta == pytest.approx(delta(seen.n, seen.k, (0, r)))
    assert seen.certified.any()
    assert (seen.labels[seen.certified] == clean.labels[seen.certified]).all()


def test_engine_certifies_point_input_with_the_shipped_model():
    from mmcert_ros.models import load_model
    height, width = 64, 160
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    pixels = rng.integers(0, height * width, 900)
    depth = rng.uniform(2, 40, 900).astype(np.float32)
    config = CertifyConfig(num_samples=8, seed=0, keep_points=64, radius_rgb=1, radius_depth=2)
    certificate = CertifiedSegmenter(load_model(None, 'cpu'), config).certify(
        rgb, _points(pixels, depth, height, width))
    assert certificate.n == (height * width, 900) and certificate.k[1] == 64
    assert certificate.delta == pytest.approx(delta(certificate.n, certificate.k, (1, 2)))
    assert certificate.labels.shape == (height, width)


class DenseOnly(torch.nn.Module):
    """The same network seen only through the dense model contract (no kept-index path)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.num_classes = model.num_classes

    def forward(self, *inputs):
        return self.inner(*inputs)


def test_kept_index_path_gives_the_dense_paths_votes():
    """Points through the model's kept-index path (one depth frame per sample, repeated
    pixels padded with a pixel no point reaches) vote as through the dense contract."""
    from mmcert_ros.certify.l0.points import free_pixel
    from mmcert_ros.models import POINTS_CHECKPOINT, load_model
    height, width = 48, 160
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    pixels = rng.integers(0, height * width // 2, 3000)      # many collisions, lower half free
    depth = rng.uniform(2, 40, 3000).astype(np.float32)
    points = _points(pixels, depth, height, width)
    assert free_pixel(points) is not None
    config = CertifyConfig(num_samples=24, seed=2, keep_points=300, batch_size=8)
    model = load_model(POINTS_CHECKPOINT)
    kept = CertifiedSegmenter(model, config).certify(rgb, points)
    dense = CertifiedSegmenter(DenseOnly(model), config).certify(rgb, points)
    assert kept.n == dense.n and kept.k == dense.k
    same = np.mean(kept.top_counts == dense.top_counts)
    assert same > 0.999, same          # float rounding of the folded batch norm only
    full = _points(np.arange(height * width), np.full(height * width, 5.0), height, width)
    assert free_pixel(full) is None     # every pixel hit: the engine uses the dense path
    assert CertifiedSegmenter(model, config).certify(rgb, full).n[1] == height * width
