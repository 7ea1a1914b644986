"""Vote counting: per class and pixel, how many of the N samples predict it (int32).

Two counters give the same counts as ``predict_labels`` of the full-resolution logits:

- :class:`DenseVotes` for any model: labels of the ``(B, C, H, W)`` logits (uint8), then one
  int32 sum over the batch per class. No int64 tensors, no scatter.
- :class:`GridVotes` for a model whose logits are ``upsample_bilinear`` of grid logits
  (``model.logit_upsampling == 'bilinear'``, e.g. ``SparseRGBDNet``). On the CPU it counts
  on the grid: every pixel reads the same four cells as all pixels of its block (a pair of
  grid rows times a pair of grid columns). Where all four cells give one class a clear
  float32 margin over every other class, every pixel of the block takes that class (the
  weights are non-negative and rounding is monotone); only the other blocks (a few per cent)
  are computed per pixel, with exactly the operations of
  ``upsample_bilinear``, so the counts equal the full-resolution ones bit for bit,
  ties included. A cell is clear when its class beats every other class c by more than
  ``_MARGIN * (|v_label| + |v_c|)`` in float32: then any convex combination with another
  clear cell of the same label, rounded in float32, keeps that label. That pass is one
  compiled kernel (:mod:`mmcert_ros.cpu_kernels.votes`). On an accelerator it upsamples in
  full and counts as :class:`DenseVotes` (no host synchronisation; compacting the unclear
  entries would need one per batch).

Both keep the counts on the model's device until :meth:`counts` is called.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from mmcert_ros.certify.upsampling import BilinearTaps, upsample_bilinear
from mmcert_ros.cpu_kernels import votes as kernels

#: relative margin (2^-20, sixteen float32 unit roundoffs) that the roundings of the two
#: interpolation passes (about four unit roundoffs each) cannot flip
_MARGIN = 2.0 ** -20


def predict_labels(logits: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``logits.argmax(dim=1)`` (first class on ties), computed class by class.

    Same result as ``argmax`` for finite logits, but on the CPU ``argmax`` over the short,
    strided class axis of ``(B, C, H, W)`` logits is far slower than these C - 1 elementwise
    passes (about 90 ms against 1 ms per 1242x375 sample for C = 2 on two cores).

    :param logits: ``(B, C, ...)``, classes on axis 1.
    :param dtype: of the result (uint8 is enough for up to 256 classes).
    :returns: ``(B, ...)`` class ids.
    """
    best = logits[:, 0]
    labels = torch.zeros(best.shape, dtype=dtype, device=logits.device)
    for label in range(1, logits.shape[1]):
        better = logits[:, label] > best
        labels.masked_fill_(better, label)
        if label + 1 < logits.shape[1]:
            best = torch.where(better, logits[:, label], best)
    return labels


def _label_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int32


class DenseVotes:
    """Counts votes from full-resolution logits ``(B, C, H, W)``."""

    def __init__(self, num_classes: int, size: tuple[int, int], device: torch.device) -> None:
        self.num_classes = num_classes
        self._counts = torch.zeros(num_classes, *size, dtype=torch.int32, device=device)

    def add(self, logits: torch.Tensor) -> None:
        """Add one vote per sample and pixel for its ``predict_labels`` class."""
        labels = predict_labels(logits, _label_dtype(self.num_classes))
        for label in range(self.num_classes):
            self._counts[label] += (labels == label).sum(dim=0, dtype=torch.int32)

    def counts(self) -> torch.Tensor:
        """``(C, H, W)`` int32 votes so far, on the model's device."""
        return self._counts


class GridVotes:
    """Counts votes from grid logits ``(B, C, h, w)`` whose pixels' logits are
    ``upsample_bilinear(grid, size)`` (see the module docstring for why it is exact)."""

    def __init__(self, num_classes: int, size: tuple[int, int], grid: tuple[int, int],
                 device: torch.device, compact: bool | None = None) -> None:
        """:param compact: count on the grid and compute only unclear blocks per pixel
            (:mod:`mmcert_ros.cpu_kernels.votes`; the default on the CPU, and only there);
            False upsamples in full (the accelerator way)."""
        self.num_classes = num_classes
        self.size = size
        self.grid = grid
        self._sparse = device.type == 'cpu' if compact is None else compact
        if self._sparse and device.type != 'cpu':
            raise ValueError(f'compact grid vote counting runs on the CPU, not on {device}')
        if not self._sparse:
            self._dense = DenseVotes(num_classes, size, device)
            return
        self._rows = _AxisTaps.build(size[0], grid[0])
        self._cols = _AxisTaps.build(size[1], grid[1])
        # block votes by the block's low corner cell; single pixels' votes
        self._corner_counts = np.zeros((num_classes, *grid), dtype=np.int32)
        self._pixel_votes = np.zeros((num_classes, *size), dtype=np.int32)

    def add(self, grid_logits: torch.Tensor) -> None:
        """Add the votes of a batch of grid logits (any float dtype; counted in float32)."""
        grid_logits = grid_logits.float().contiguous()
        if not self._sparse:
            self._dense.add(upsample_bilinear(grid_logits, self.size))
            return
        if tuple(grid_logits.shape[1:]) != (self.num_classes, *self.grid):
            raise ValueError(f'grid logits of shape {tuple(grid_logits.shape)}, expected '
                             f'(B, {self.num_classes}, {self.grid[0]}, {self.grid[1]})')
        rows, cols = self._rows, self._cols
        kernels.add_votes(grid_logits.numpy(), np.float32(_MARGIN), *rows.arrays, *cols.arrays,
                          self._corner_counts, self._pixel_votes)

    def counts(self) -> torch.Tensor:
        """``(C, H, W)`` int32 votes so far, on the model's device."""
        if not self._sparse:
            return self._dense.counts()
        return torch.from_numpy(kernels.total_counts(self._corner_counts, self._pixel_votes,
                                                     self._rows.low, self._cols.low))

    @property
    def blocks_and_pixels(self) -> tuple[int, int]:
        """Votes counted so far for whole blocks and for single pixels (compact counting)."""
        return int(self._corner_counts.sum()), int(self._pixel_votes.sum())


@dataclass(frozen=True)
class _AxisTaps:
    """One axis's bilinear taps (:class:`~mmcert_ros.certify.upsampling.BilinearTaps`) as the
    kernel reads them, and per source cell the first output index whose low tap it is."""

    low: np.ndarray
    high: np.ndarray
    weight_low: np.ndarray
    weight_high: np.ndarray
    first: np.ndarray

    @classmethod
    @functools.lru_cache(maxsize=16)
    def build(cls, out_size: int, in_size: int) -> '_AxisTaps':
        """Built once per size (read only: a frame's counter then builds nothing)."""
        taps = BilinearTaps.build(out_size, in_size, 'cpu')
        first = torch.searchsorted(taps.low, torch.arange(in_size + 1))
        return cls(taps.low.numpy(), taps.high.numpy(), taps.weight_low.numpy(),
                   taps.weight_high.numpy(), first.numpy())

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.low, self.high, self.weight_low, self.weight_high, self.first
