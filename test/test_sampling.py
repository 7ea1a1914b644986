"""Exact-k independent sub-sampling (docs/certification.md section 2)."""
import itertools

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, chi2_contingency, chisquare

from mmcert_ros.certify.l0 import sampling
from mmcert_ros.certify.l0.sampling import (RANDOM_BITS, draw_keep_masks, draw_kept_indices,
                                            kept_count, make_generator, subsample,
                                            uniform_below)


@pytest.mark.parametrize('n,k', [(1000, 20), (5000, 11), (30, 29), (50, 1), (200, 200),
                                 (997, 240)])
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
    assert chisquare(counts, np.full(n, draws * k / n)).pvalue > 1e-4
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


def _subset_counts(masks: torch.Tensor) -> np.ndarray:
    """How often each k-subset of the n columns was drawn (rows of ``masks``), in a fixed
    order of all C(n, k) subsets."""
    n = masks.shape[1]
    codes = (masks.long() << torch.arange(n)).sum(dim=1).numpy()
    k = int(masks[0].sum())
    subsets = [sum(1 << i for i in c) for c in itertools.combinations(range(n), k)]
    index = {code: i for i, code in enumerate(subsets)}
    assert set(np.unique(codes)) <= set(index)  # every row is a k-subset
    return np.bincount([index[c] for c in codes], minlength=len(subsets))


@pytest.mark.parametrize('bits', [RANDOM_BITS, 3])  # 3 bits: many discarded draws and ties
@pytest.mark.parametrize('n,k', [(7, 1), (8, 2), (6, 3), (7, 5)])  # sparse and dense paths
def test_every_subset_is_equally_likely(n, k, bits, monkeypatch):
    monkeypatch.setattr(sampling, 'RANDOM_BITS', bits)
    draws = 12000
    counts = _subset_counts(draw_keep_masks(draws, n, k, make_generator(11 + n + k, 'cpu')))
    assert counts.sum() == draws
    assert chisquare(counts).pvalue > 1e-4


def test_forced_ties_are_redrawn_not_resolved_by_position(monkeypatch):
    """With 2-bit priorities most dense rows tie; keeping the lower index on a tie would
    favour element 0 (the float32 priority flaw). Its inclusion rate must stay k/n."""
    monkeypatch.setattr(sampling, 'RANDOM_BITS', 2)
    n, k, draws = 4, 2, 8000
    masks = draw_keep_masks(draws, n, k, make_generator(12, 'cpu'))
    assert chisquare(masks.sum(dim=0).numpy()).pvalue > 1e-4
    assert binomtest(int(masks[:, 0].sum()), draws, k / n).pvalue > 1e-4


def test_per_row_k_subsets_are_uniform():
    ks = [1, 2, 3] * 4000
    masks = draw_keep_masks(len(ks), 8, ks, make_generator(13, 'cpu'))
    for k in (1, 2, 3):
        rows = masks[[i for i, value in enumerate(ks) if value == k]]
        assert torch.all(rows.sum(dim=1) == k)
        assert chisquare(_subset_counts(rows)).pvalue > 1e-4


def test_rows_are_independent():
    masks = draw_keep_masks(12000, 8, 2, make_generator(14, 'cpu'))
    a, b = masks[0::2, 0].numpy(), masks[1::2, 0].numpy()  # neighbouring rows of one call
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert chi2_contingency(table).pvalue > 1e-4


def test_uniform_below_is_exact_by_rejection(monkeypatch):
    monkeypatch.setattr(sampling, 'RANDOM_BITS', 3)  # 8 raw values, bound 6: 2 of 8 discarded
    values, keep = uniform_below(6, (40000,), make_generator(15, 'cpu'))
    assert binomtest(int(keep.sum()), 40000, 6 / 8).pvalue > 1e-4
    assert chisquare(np.bincount(values[keep].numpy(), minlength=6)).pvalue > 1e-4
