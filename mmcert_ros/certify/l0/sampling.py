"""Exact-k independent sub-sampling of each modality (docs/certification.md section 2).

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

from mmcert_ros.cpu_kernels.draws import first_distinct

#: Above this fraction k/n the rejection sampler wastes draws; rank all n priorities instead.
_DENSE_FRACTION = 0.25
#: Every random integer is uniform on [0, 2^RANDOM_BITS): a power of two, so exact.
RANDOM_BITS = 62


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
    """``k = round(keep_fraction * n)``, at least 1 and at most n (docs/certification.md
    section 2)."""
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
    return _mask_of(draw_kept_indices(batch, n, k, generator, device), n, dtype)


def draw_kept_indices(batch: int, n: int, k: int | Sequence[int], generator: torch.Generator,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Indices of the k_b of n elements kept in row b, exactly uniform without replacement,
    ascending.

    Every random number is an integer drawn uniformly from ``[0, 2^RANDOM_BITS)`` (a power of
    two: torch's ``randint`` reduces its 64-bit generator output modulo the range, which is
    exact only for such ranges, on the CPU's Mersenne Twister and on CUDA's Philox alike), so
    no step rounds a probability:

    - sparse k (k/n <= 1/4): draw m > k indices with replacement, uniform on [0, n) by
      rejection (``v mod n`` for ``v`` below the largest multiple of n, other ``v`` discarded),
      and keep the first k distinct ones in draw order. The draw sequence is invariant under
      permutations of the n elements, so the set of its first k distinct values is a uniform
      k-subset. A row with fewer than k distinct accepted draws is redrawn. Only the m draws
      of a row are sorted, never all n elements.
    - dense k: rank n integer priorities; a row in which two priorities tie is redrawn, so
      the ranking is a uniform permutation (conditioning an exchangeable vector on having
      distinct entries keeps it exchangeable).

    Host synchronisation: one read of "all rows complete" per call (plus one per rare retry),
    so drawing a whole frame's rows in one call costs a single sync on an accelerator.

    :param k: elements to keep, one int for all rows or one per row, each in [1, n].
    :returns: ``(batch, max k)`` int64 tensor, each row sorted ascending; a row with fewer
        than max k elements repeats its largest index (so scattering it sets nothing extra).
    """
    device = torch.device(device) if device is not None else generator.device
    k_list = [k] * batch if isinstance(k, int) else [int(value) for value in k]
    if len(k_list) != batch:
        raise ValueError(f'need one k per row: {batch} rows, {len(k_list)} values of k')
    if batch and (min(k_list) < 1 or max(k_list) > n):
        raise ValueError(f'k must lie in [1, n={n}], got {min(k_list)}..{max(k_list)}')
    k_max = max(k_list) if batch else 0
    k_rows = torch.tensor(k_list, dtype=torch.long).to(device)
    draw_rows = _draw_dense if k_max > _DENSE_FRACTION * n else _draw_sparse
    kept, complete = draw_rows(n, k_rows, k_max, generator)
    pending = torch.arange(batch, device=device)
    while not bool(complete.all()):  # the one host read per round
        pending = pending[~complete]
        rows, complete = draw_rows(n, k_rows[pending], k_max, generator)
        kept[pending[complete]] = rows[complete]
    if k_max == min(k_list, default=0):
        return kept
    return torch.where(torch.arange(k_max, device=device)[None, :] < k_rows[:, None], kept,
                       kept.gather(1, (k_rows - 1)[:, None]))


def uniform_below(bound: int, shape: tuple[int, ...], generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly uniform integers on ``[0, bound)`` and which of them to keep.

    Draws ``v`` uniform on ``[0, 2^RANDOM_BITS)`` and returns ``v mod bound`` with the mask
    ``v < bound * floor(2^RANDOM_BITS / bound)``; the kept values are i.i.d. uniform on
    ``[0, bound)`` (for ``bound = 465,750`` a value is discarded with probability 5e-14).
    """
    span = 1 << RANDOM_BITS
    if not 1 <= bound <= span:
        raise ValueError(f'bound must lie in [1, 2^{RANDOM_BITS}], got {bound}')
    values = torch.randint(0, span, shape, generator=generator, device=generator.device)
    keep = values < span - span % bound
    return values.remainder_(bound), keep


def _draw_sparse(n: int, k_rows: torch.Tensor, k_max: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One rejection round: ``(rows, k_max)`` ascending first-distinct draws, and which rows
    are complete (in a complete row the first k entries are the kept indices; the rest is
    padding to be overwritten). The selection is one compiled kernel on the CPU
    (:func:`mmcert_ros.cpu_kernels.draws.first_distinct`), elsewhere
    :func:`first_distinct_by_sorting`: the same rows."""
    expected_repeats = k_max * k_max / n
    draws = k_max + math.ceil(2 * expected_repeats + 6 * math.sqrt(expected_repeats) + 8)
    rows = k_rows.numel()
    values, accepted = uniform_below(n, (rows, draws), generator)
    if values.device.type == 'cpu':
        kept, complete = first_distinct(values.numpy(), accepted.numpy(), k_rows.numpy(), n,
                                        k_max)
        return torch.from_numpy(kept), torch.from_numpy(complete)
    return first_distinct_by_sorting(values, accepted, k_rows, n, k_max)


def first_distinct_by_sorting(values: torch.Tensor, accepted: torch.Tensor,
                              k_rows: torch.Tensor, n: int, k_max: int
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mmcert_ros.cpu_kernels.draws.first_distinct` in torch operators (any device;
    ``values`` and ``accepted`` are overwritten): per row the first ``k_rows[r]`` distinct
    accepted values of ``values`` ``(R, D)``, ascending, and which rows have that many."""
    rows, draws = values.shape
    # one sort of keys (value, position in the draw sequence): discarded (= n) last, equal
    # values in draw order; keys are distinct, so any sort is the stable sort of the values
    shift = draws.bit_length()
    if n.bit_length() + shift > 62:
        raise ValueError(f'n = {n} is too large for the sparse sampler')
    keys = values.masked_fill_(accepted.logical_not_(), n).bitwise_left_shift_(shift)
    keys = keys.bitwise_or_(torch.arange(draws, device=values.device)).sort(dim=1).values
    ordered = keys >> shift
    position = keys.bitwise_and_((1 << shift) - 1)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= ordered < n
    # a distinct value ranks among the first k by first appearance in the draw sequence iff
    # its first position is at most that of the k-th first appearance (draws if none)
    appears_first = torch.zeros_like(first).scatter_(1, position, first)
    seen = appears_first.cumsum(dim=1, dtype=torch.int32)
    kth = torch.searchsorted(seen, k_rows[:, None].to(torch.int32))
    keep = first.logical_and_(position <= kth)
    slot = keep.cumsum(dim=1)
    complete = slot[:, -1] == k_rows
    column = slot.sub_(1).masked_fill_(keep.logical_not_(), k_max)
    kept = torch.zeros(rows, k_max + 1, dtype=torch.long, device=values.device)
    kept.scatter_(1, column, ordered)
    return kept[:, :k_max], complete


def _draw_dense(n: int, k_rows: torch.Tensor, k_max: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One ranking round: the k_max elements of smallest integer priority per row, ascending,
    and which rows have no tied priorities (only those are complete)."""
    priorities, _ = uniform_below(1 << RANDOM_BITS, (k_rows.numel(), n), generator)
    ordered, element = priorities.sort(dim=1)
    complete = (ordered[:, 1:] != ordered[:, :-1]).all(dim=1)
    chosen = torch.arange(k_max, device=element.device)[None, :] < k_rows[:, None]
    kept, _ = element[:, :k_max].masked_fill(~chosen, n).sort(dim=1)
    return kept, complete


def ablate(rgb: torch.Tensor, depth: torch.Tensor, rgb_indices: torch.Tensor,
           depth_indices: torch.Tensor) -> ModelInputs:
    """The sub-sampled batch of one frame from kept flat indices (:func:`draw_kept_indices`).

    :param rgb: ``(1, 3, H, W)``; ``depth``: ``(1, 1, Hd, Wd)``, invalid pixels already 0.
    :param rgb_indices: ``(B, k_rgb)`` kept indices into ``H * W``; ``depth_indices`` likewise.
    """
    batch = rgb_indices.shape[0]
    rgb_keep = _mask_of(rgb_indices, rgb[0, 0].numel(), rgb.dtype).view(batch, 1, *rgb.shape[-2:])
    depth_keep = _mask_of(depth_indices, depth[0, 0].numel(), depth.dtype).view(
        batch, 1, *depth.shape[-2:])
    return ModelInputs(rgb.expand(batch, -1, -1, -1) * rgb_keep, rgb_keep,
                       depth.expand(batch, -1, -1, -1) * depth_keep, depth_keep)


def _mask_of(indices: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, n)`` masks, 1 (True) at each row's ``indices``."""
    masks = torch.zeros(indices.shape[0], n, dtype=dtype, device=indices.device)
    return masks.scatter_(1, indices, 1)


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


def noisy_subsample(rgb: torch.Tensor, depth: torch.Tensor, sigma: float,
                    k_rgb: int | Sequence[int], k_depth: int | Sequence[int],
                    generator: torch.Generator) -> ModelInputs:
    """The l2 certificate's randomized input, made the same way in certification and in
    booster training: ``subsample(clamp(rgb + sigma * eps, 0, 1), depth, k_rgb, k_depth)``.

    ``eps ~ N(0, I)`` is drawn for every RGB pixel (one draw per element of ``rgb``) *before*
    the exact-k masks, from ``generator``, in that order; depth is not noised (the l2
    certificate covers RGB perturbations, RGB in [0, 1] units).

    :param rgb: ``(B, 3, H, W)`` float in [0, 1] (a single frame may be ``expand``-ed to B).
    :param depth: ``(B, 1, Hd, Wd)`` float metres, invalid pixels already 0.
    :param sigma: noise standard deviation, RGB in [0, 1] units.
    """
    noise = torch.randn(rgb.shape, generator=generator, device=rgb.device, dtype=rgb.dtype)
    return subsample((rgb + sigma * noise).clamp(0.0, 1.0), depth, k_rgb, k_depth, generator)
