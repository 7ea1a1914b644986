"""The compiled CPU kernels give the bits of the torch formulations they replace on the CPU
(which run on accelerators and under autograd): same draws, same densified pyramid. The vote
counter's kernel is checked against brute-force full-resolution counting in test_votes.py."""
import math

import numpy as np
import pytest
import torch

from mmcert_ros.certify.kept_pixels import KeptPixels
from mmcert_ros.certify.l0.sampling import first_distinct_by_sorting, uniform_below
from mmcert_ros.cpu_kernels.draws import first_distinct
from mmcert_ros.models.network import (GRID_STRIDE, PYRAMID_LEVELS, densify, encode_depth,
                                       encode_rgb)


@pytest.mark.parametrize('n,draws,k', [(20, 30, [5, 12, 20, 1]),    # many repeats, k = n
                                       (1000, 60, [50, 55, 3, 58]),
                                       (130, 140, [129, 130, 64, 1]),  # incomplete rows
                                       (465750, 400, [380, 390, 1, 399])])
def test_first_distinct_kernel_equals_the_sorting_formulation(n, draws, k):
    generator = torch.Generator().manual_seed(n + draws)
    values, accepted = uniform_below(n, (len(k), draws), generator)
    accepted &= torch.rand(values.shape, generator=generator) > 0.1  # rejected draws too
    k_rows = torch.tensor(k)
    kept, complete = first_distinct(values.numpy(), accepted.numpy(), k_rows.numpy(), n,
                                    max(k))
    expected, expected_complete = first_distinct_by_sorting(values.clone(), accepted.clone(),
                                                            k_rows, n, max(k))
    np.testing.assert_array_equal(complete, expected_complete.numpy())
    assert complete.any()
    for row in np.flatnonzero(complete):
        np.testing.assert_array_equal(kept[row, :k[row]], expected[row, :k[row]].numpy())
        # brute force: the first k distinct accepted draws, ascending
        firsts = list(dict.fromkeys(values[row][accepted[row]].tolist()))[:k[row]]
        assert kept[row, :k[row]].tolist() == sorted(firsts)


@pytest.mark.parametrize('size,depth_size,kept,batch', [
    ((61, 99), (30, 49), (900, 300), 3),     # odd sizes, depth smaller; many pixels per cell
    ((8, 8), (8, 8), (64, 64), 2),           # one cell, every pixel kept
    ((17, 9), (40, 23), (1, 1), 4),          # one kept pixel, depth larger than RGB
    ((130, 70), (130, 70), (9100, 9100), 1),  # everything kept: weights up to the whole cell
])
def test_densify_kernel_equals_the_torch_formulation(size, depth_size, kept, batch):
    generator = torch.Generator().manual_seed(sum(size) + kept[0])
    (height, width), (depth_height, depth_width) = size, depth_size
    rgb = torch.rand(1, 3, height, width, generator=generator).contiguous(
        memory_format=torch.channels_last)
    depth = torch.rand(1, 1, depth_height, depth_width, generator=generator) * 40
    depth[0, 0, :, ::4] = 0.0
    depth[0, 0, ::3, 1::4] = float('nan')  # invalid: weight 0
    depth[0, 0, 1::3, 2::4] = -2.0
    depth[0, 0, 2::5, 3::4] = 0.5  # nearer than the 3 m saturation
    rgb_indices = torch.stack([torch.randperm(height * width, generator=generator)[:kept[0]]
                               .sort().values for _ in range(batch)])
    depth_indices = torch.stack([torch.randperm(depth_height * depth_width,
                                                generator=generator)[:kept[1]].sort().values
                                 for _ in range(batch)])
    pixels = (KeptPixels.from_indices(rgb, rgb_indices),
              KeptPixels.from_indices(depth, depth_indices))
    from mmcert_ros.models.network import SparseRGBDNet

    with torch.no_grad():
        ours = SparseRGBDNet().pyramid_inputs(*pixels)  # the CPU kernel
    grid = (math.ceil(height / GRID_STRIDE), math.ceil(width / GRID_STRIDE))
    expected = densify([(pixels[0], encode_rgb), (pixels[1], encode_depth)], grid,
                       PYRAMID_LEVELS, extra=1)
    expected[0][:, -1] = torch.linspace(-1.0, 1.0, grid[0]).view(1, grid[0], 1)
    assert [level.shape[1] for level in ours] == [7, 6, 6, 6]
    for got, want in zip(ours, expected):
        assert got.shape == want.shape and got.dtype == torch.float32
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(got, want)
    assert ours[0][:, 3].max() > 0 and ours[0][:, 5].max() > 0  # both modalities landed
