"""Exact-k independent sub-sampling (CERTIFICATION.md section 2)."""
import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency, chisquare

from mmcert_ros.certify.sampling import (draw_keep_masks, draw_kept_indices, kept_count,
                                         make_generator, subsample)


@pytest.mark.parametrize('n,k', [(1000, 20), (5000, 11), (30, 29), (50, 1), (200, 200), (997, 240)])
def test_every_row_keeps_exactly_k(n, k):
    masks = draw_keep_masks(64, n, k, make_generator(0, 'cpu'))
    assert masks.shape == (64, n) and masks.dtype == torch.bool
    assert torch.all(masks.sum(dim=1) == k)


def test_per_row_k():
    ks = [1, 5, 17, 40, 3]
    masks = draw_keep_masks(5, 400, ks, make_generator(1, 'cpu'))
    assert masks.sum(dim=1).tolist() == ks


@pytest.mark.parametrize('n,k', [(60, 4), (60, 40)])  # the rejection and the ranking paths
def test_inclusion_frequencies_are_uniform(n, k):
    draws = 6000
    masks = draw_keep_masks(draws, n, k, make_generator(2, 'cpu'))
    counts = masks.sum(dim=0).numpy()
    assert chisquare(counts, np.full(n, draws * k / n) ).pvalue > 1e-4
    # pairs are included uniformly too: each pair with probability k(k-1)/(n(n-1))
    first_two = (masks[:, 0] & masks[:, 1]).sum().item()
    expected = draws * k * (k - 1) / (n * (n - 1))
    assert abs(first_two - expected) < 5 * np.sqrt(expected) + 1


def test_modalities_are_independent():
    gen = make_generator(3, 'cpu')
    rgb = torch.ones(4000, 3, 4, 5)
    depth = torch.ones(4000, 1, 2, 3)
    inputs = subsample(rgb, depth, 4, 2, gen)
    a = inputs.rgb_keep[:, 0, 0, 0].bool().numpy()
    b = inputs.depth_keep[:, 0, 0, 0].bool().numpy()
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert chi2_contingency(table).pvalue > 1e-4


def test_subsample_zeroes_dropped_pixels_and_keeps_values():
    gen = make_generator(4, 'cpu')
    rgb = torch.rand(3, 3, 6, 7) + 0.1
    depth = torch.rand(3, 1, 4, 4) + 1.0
    inputs = subsample(rgb, depth, 10, 3, gen)
    assert torch.equal(inputs.rgb, rgb * inputs.rgb_keep)
    assert torch.equal(inputs.depth, depth * inputs.depth_keep)
    assert inputs.rgb_keep.sum(dim=(1, 2, 3)).tolist() == [10.0] * 3
    assert inputs.depth_keep.sum(dim=(1, 2, 3)).tolist() == [3.0] * 3


def test_seeded_draws_reproduce_and_entropy_draws_differ():
    a = draw_keep_masks(8, 5000, 100, make_generator(9, 'cpu'))
    b = draw_keep_masks(8, 5000, 100, make_generator(9, 'cpu'))
    c = draw_keep_masks(8, 5000, 100, make_generator(None, 'cpu'))
    d = draw_keep_masks(8, 5000, 100, make_generator(None, 'cpu'))
    assert torch.equal(a, b)
    assert not torch.equal(c, d)


def test_kept_count():
    assert kept_count(0.0193, 1242 * 375) == round(0.0193 * 1242 * 375)
    assert kept_count(1e-9, 100) == 1
    assert kept_count(1.0, 100) == 100
    with pytest.raises(ValueError):
        kept_count(0.0, 100)
    with pytest.raises(ValueError, match=r'\[1, n=10\]'):
        draw_keep_masks(2, 10, 11, make_generator(0, 'cpu'))


def test_kept_indices_are_the_masks_drawn_from_the_same_stream():
    indices = draw_kept_indices(6, 700, 25, make_generator(5, 'cpu'))
    masks = draw_keep_masks(6, 700, 25, make_generator(5, 'cpu'))
    assert indices.shape == (6, 25)
    assert torch.all(indices[:, 1:] > indices[:, :-1])  # ascending, hence distinct
    assert torch.equal(torch.zeros(6, 700, dtype=torch.bool).scatter_(1, indices, True), masks)


def test_kept_indices_with_per_row_k_pad_with_the_largest():
    ks = [3, 7, 1]
    indices = draw_kept_indices(3, 50, ks, make_generator(6, 'cpu'))
    for row, k in zip(indices.tolist(), ks):
        assert len(set(row)) == k and row[:k] == sorted(set(row))
        assert all(value == row[k - 1] for value in row[k:])
