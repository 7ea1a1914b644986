"""The engine's previous hot path, kept only as the benchmark's reference.

``mmcert-ros bench`` runs it side by side with the engine on the same frame: its sampler
(float32 priorities, three sorts per row), its densification (each modality on its own, then
concatenated), the unfolded NCHW float32 model with
``F.interpolate`` to full resolution, int64 labels and ``scatter_add`` votes, and a device
synchronize per micro-batch. Given the same draws and the model's own upsampling rule
(``upsample=upsample_bilinear``) its votes are the engine's fp32 votes (test_engine checks);
with ``F.interpolate`` (as before) they differ only where two logits are within float32
rounding of each other.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mmcert_ros.certify.kept_pixels import KeptPixels
from mmcert_ros.certify.l0.votes import predict_labels
from mmcert_ros.models.network import GRID_STRIDE, PYRAMID_LEVELS, encode_depth, encode_rgb


def reference_kept_indices(batch: int, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """The previous sparse sampler (k/n <= 1/4): ``m > k`` draws with replacement, the
    distinct ones ranked by float32 priorities (ties at the k-th rank keep the lower index),
    sorted ascending: ``(batch, k)``."""
    device = generator.device
    kept = torch.empty(batch, k, dtype=torch.long, device=device)
    pending = torch.arange(batch, device=device)
    expected_repeats = k * k / n
    draws = min(n, k + math.ceil(2 * expected_repeats + 6 * math.sqrt(expected_repeats) + 8))
    while pending.numel():
        rows = pending.numel()
        indices, _ = torch.randint(0, n, (rows, draws), generator=generator,
                                   device=device).sort(dim=1)
        first = torch.ones_like(indices, dtype=torch.bool)
        first[:, 1:] = indices[:, 1:] != indices[:, :-1]
        complete = first.sum(dim=1) >= k
        priorities = torch.rand(rows, draws, generator=generator, device=device)
        priorities = priorities.masked_fill(~first, 2.0)
        chosen = indices.gather(1, priorities.argsort(dim=1)[:, :k])
        kept[pending[complete]] = chosen[complete]
        pending = pending[~complete]
    return kept.sort(dim=1).values


def reference_cell_sums(kept: KeptPixels, grid: tuple[int, int],
                        encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The previous cell sums: each kept pixel's cell ``(floor(y rows / H), floor(x cols / W))``
    computed by integer division per pixel, its encoded values ``index_add_``-ed in the order
    of the kept pixels: ``(B, F, rows, cols)``, channels-last."""
    rows, cols = grid
    y, x = kept.y, kept.x
    cell = kept.b.long() * (rows * cols) \
        + torch.div(y * rows, kept.height, rounding_mode='floor') * cols \
        + torch.div(x * cols, kept.width, rounding_mode='floor')
    part = encode(kept.values.float())
    sums = torch.zeros(kept.batch * rows * cols, part.shape[1], dtype=torch.float32,
                       device=part.device).index_add_(0, cell, part)
    return sums.view(kept.batch, rows, cols, -1).permute(0, 3, 1, 2)


def reference_pyramid_inputs(rgb: KeptPixels, depth: KeptPixels) -> list[torch.Tensor]:
    """The previous densification: each modality on its own (:func:`reference_cell_sums`,
    pooling, means and ``log1p`` weight concatenated), the modalities concatenated level by
    level, then the row coordinate; the same values as ``SparseRGBDNet.pyramid_inputs``."""
    grid = (math.ceil(rgb.height / GRID_STRIDE), math.ceil(rgb.width / GRID_STRIDE))
    pyramids = []
    for kept, encode in ((rgb, encode_rgb), (depth, encode_depth)):
        sums, pyramid = reference_cell_sums(kept, grid, encode), []
        for level in range(PYRAMID_LEVELS):
            if level:
                sums = F.avg_pool2d(sums, 2, ceil_mode=True, divisor_override=1)
            weight = sums[:, -1:]
            pyramid.append(torch.cat([sums[:, :-1] / weight.clamp(min=1.0),
                                      torch.log1p(weight)], dim=1))
        pyramids.append(pyramid)
    inputs = [torch.cat(pair, dim=1) for pair in zip(*pyramids)]
    rows = torch.linspace(-1.0, 1.0, grid[0], device=inputs[0].device, dtype=inputs[0].dtype)
    rows = rows.view(1, 1, grid[0], 1).expand(rgb.batch, 1, *grid)
    inputs[0] = torch.cat([inputs[0], rows], dim=1)
    return inputs


class ReferenceVotes:
    """The previous vote counting: grid logits upsampled to full resolution, int64 labels,
    ``scatter_add`` into int32 counts, a synchronize per batch on CUDA.

    :param upsample: grid logits -> full-resolution logits; default ``F.interpolate``
        (bilinear, ``align_corners=False``), the previous rule.
    """

    def __init__(self, size: tuple[int, int],
                 upsample: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None = None
                 ) -> None:
        self.size = tuple(size)
        self.upsample = upsample or (lambda grid, size: F.interpolate(
            grid, size=size, mode='bilinear', align_corners=False))
        self._counts: torch.Tensor | None = None

    def add(self, grid_logits: torch.Tensor) -> None:
        logits = self.upsample(grid_logits, self.size)
        votes = predict_labels(logits).view(logits.shape[0], -1)
        if self._counts is None:
            self._counts = torch.zeros(logits.shape[1], votes.shape[1], dtype=torch.int32,
                                       device=votes.device)
        self._counts.scatter_add_(0, votes, torch.ones_like(votes, dtype=torch.int32))
        if self._counts.device.type == 'cuda':
            torch.cuda.synchronize(self._counts.device)

    def counts(self) -> torch.Tensor:
        return self._counts.view(-1, *self.size)


def reference_l2_smoother(model: torch.nn.Module, depth: torch.Tensor, k: tuple[int, int],
                          sigma: float, batch_size: int):
    """The previous l2 recipe: Gaussian noise on every RGB pixel, then dense exact-k masks,
    then ``model.features`` of the masked batch."""
    from mmcert_ros.certify.l2 import feature_smoothing as fs

    encoder = fs.joint_rgbd_encoder(model.features, depth, k[0], k[1], sigma)
    return fs.FeatureSmoother(encoder, sigma, batch_size, adds_noise=True)
