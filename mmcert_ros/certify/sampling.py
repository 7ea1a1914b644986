"""Exact-k independent sub-sampling of each modality (CERTIFICATION.md section 2).

Each sample keeps exactly k of a modality's n elements, drawn uniformly without replacement,
independently per sample and per modality; every other element is set to 0 and the model also
receives the keep-mask. Masks are drawn in batches on the engine's device.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Above this fraction k/n the rejection sampler wastes draws; rank all n priorities instead.
_DENSE_FRACTION = 0.25


@dataclass(frozen=True)
class ModelInputs:
    """The four tensors a base model receives (the model contract of ``mmcert_ros.models``).

    :ivar rgb: ``(B, 3, H, W)`` float in [0, 1], dropped pixels 0.
    :ivar rgb_keep: ``(B, 1, H, W)`` float in {0, 1}.
    :ivar depth: ``(B, 1, Hd, Wd)`` float metres, dropped and invalid pixels 0.
    :ivar depth_keep: ``(B, 1, Hd, Wd)`` float in {0, 1}.
    """

    rgb: torch.Tensor
    rgb_keep: torch.Tensor
    depth: torch.Tensor
    depth_keep: torch.Tensor

    def as_args(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.rgb, self.rgb_keep, self.depth, self.depth_keep


def kept_count(keep_fraction: float, n: int) -> int:
    """``k = round(keep_fraction * n)``, at least 1 and at most n (CERTIFICATION.md section 2)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f'keep fraction must lie in (0, 1], got {keep_fraction}')
    return min(n, max(1, round(keep_fraction * n)))


def entropy_seed() -> int:
    """A fresh 63-bit seed from the OS entropy pool (for deployment: unpredictable masks)."""
    return int.from_bytes(os.urandom(8), 'little') >> 1


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``, or from OS entropy if None."""
    generator = torch.Generator(device=device)
    generator.manual_seed(entropy_seed() if seed is None else int(seed))
    return generator


def draw_keep_masks(batch: int, n: int, k: int | Sequence[int], generator: torch.Generator,
                    device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """Keep-masks with exactly k_b of n elements set in row b, uniform without replacement.

    The mask form of :func:`draw_kept_indices` (same random stream, same draws).

    :param k: elements to keep, one int for all rows or one per row, each in [1, n].
    :param dtype: of the mask: kept elements are True / 1, all others False / 0.
    :returns: ``(batch, n)`` tensor on ``device`` (default: the generator's device).
    """
    kept = draw_kept_indices(batch, n, k, generator, device)
    masks = torch.zeros(batch, n, dtype=dtype, device=kept.device)
    return masks.scatter_(1, kept, 1)


def draw_kept_indices(batch: int, n: int, k: int | Sequence[int], generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Indices of the k_b of n elements kept in row b, uniform without replacement, ascending.

    Sparse k (k/n <= 1/4) uses rejection: draw m > k indices with replacement, keep the
    distinct ones, redraw a row if it has fewer than k distinct, and keep the k distinct
    indices of smallest independent uniform priority. The distinct set is invariant under
    permutations of the n elements, hence uniform given its size; a uniform k-subset of it
    is a uniform k-subset of all n. Dense k ranks priorities of all n elements.

    :param k: elements to keep, one int for all rows or one per row, each in [1, n].
    :returns: ``(batch, max k)`` int64 tensor, each row sorted ascending; a row with fewer
        than max k elements repeats its largest index (so scattering it sets nothing extra).
    """
    device = torch.device(device) if device is not None else generator.device
    k_rows = torch.as_tensor([k] * batch if isinstance(k, int) else list(k), dtype=torch.long)
    if k_rows.numel() != batch:
        raise ValueError(f'need one k per row: {batch} rows, {k_rows.numel()} values of k')
    if batch and (int(k_rows.min()) < 1 or int(k_rows.max()) > n):
        raise ValueError(f'k must lie in [1, n={n}], got {k_rows.min()}..{k_rows.max()}')
    k_rows = k_rows.to(device)
    k_max = int(k_rows.max()) if batch else 0
    if k_max > _DENSE_FRACTION * n:
        priorities = torch.rand(batch, n, generator=generator, device=device)
        kept = priorities.argsort(dim=1)[:, :k_max]
    else:
        kept = torch.empty(batch, k_max, dtype=torch.long, device=device)
        pending = torch.arange(batch, device=device)
        while pending.numel():
            rows, complete = _draw_sparse(n, k_rows[pending], k_max, generator, device)
            kept[pending[complete]] = rows[complete]
            pending = pending[~complete]
    kept = torch.where(torch.arange(k_max, device=device)[None, :] < k_rows[:, None], kept, -1)
    kept, _ = kept.sort(dim=1)  # padding (-1) first, then the kept indices ascending
    return _pad_with_largest(kept, k_rows, k_max)


def _pad_with_largest(kept: torch.Tensor, k_rows: torch.Tensor, k_max: int) -> torch.Tensor:
    """Move each row's k kept indices to the front and repeat its largest in the tail."""
    if not kept.numel() or bool((k_rows == k_max).all()):
        return kept
    shift = (k_max - k_rows)[:, None]
    positions = torch.arange(k_max, device=kept.device)[None, :]
    source = torch.minimum(positions + shift, torch.full_like(shift, k_max - 1))
    return kept.gather(1, source)


def _draw_sparse(n: int, k_rows: torch.Tensor, k_max: int, generator: torch.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One rejection round: ``(rows, k_max)`` indices by priority, and which rows are complete.

    In a complete row (at least k distinct draws) the first k entries are the kept indices.
    """
    expected_repeats = k_max * k_max / n
    draws = min(n, k_max + math.ceil(2 * expected_repeats + 6 * math.sqrt(expected_repeats) + 8))
    rows = k_rows.numel()
    indices, _ = torch.randint(0, n, (rows, draws), generator=generator, device=device).sort(dim=1)
    first = torch.ones_like(indices, dtype=torch.bool)
    first[:, 1:] = indices[:, 1:] != indices[:, :-1]
    complete = first.sum(dim=1) >= k_rows
    priorities = torch.rand(rows, draws, generator=generator, device=device)
    priorities = priorities.masked_fill(~first, 2.0)  # repeats rank after every distinct index
    return indices.gather(1, priorities.argsort(dim=1)[:, :k_max]), complete


def subsample(rgb: torch.Tensor, depth: torch.Tensor, k_rgb: int | Sequence[int],
              k_depth: int | Sequence[int], generator: torch.Generator) -> ModelInputs:
    """Sub-sample each modality independently at its native resolution.

    The same function serves certification and training, so the model is trained on exactly
    the input distribution it is certified with.

    :param rgb: ``(B, 3, H, W)`` float in [0, 1] (a single frame may be ``expand``-ed to B).
    :param depth: ``(B, 1, Hd, Wd)`` float metres, invalid pixels already 0.
    :param k_rgb: RGB pixels kept per sample (one int, or one per sample).
    :param k_depth: depth pixels kept per sample (one int, or one per sample).
    """
    batch, _, height, width = rgb.shape
    depth_height, depth_width = depth.shape[-2:]
    if depth.shape[0] != batch:
        raise ValueError(f'rgb and depth batch sizes differ: {batch} vs {depth.shape[0]}')
    rgb_keep = draw_keep_masks(batch, height * width, k_rgb, generator, rgb.device, rgb.dtype)
    depth_keep = draw_keep_masks(batch, depth_height * depth_width, k_depth, generator,
                                 depth.device, depth.dtype)
    rgb_keep = rgb_keep.view(batch, 1, height, width)
    depth_keep = depth_keep.view(batch, 1, depth_height, depth_width)
    return ModelInputs(rgb * rgb_keep, rgb_keep, depth * depth_keep, depth_keep)
