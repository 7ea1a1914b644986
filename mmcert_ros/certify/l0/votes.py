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
  ties included. On an accelerator it upsamples in full and counts as :class:`DenseVotes`
  (no host synchronisation; compacting the unclear entries would need one per batch).

Both keep the counts on the model's device until :meth:`counts` is called.
"""
from __future__ import annotations

import functools

import torch

from mmcert_ros.certify.upsampling import BilinearTaps, upsample_bilinear

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


#: output rows (columns) per block side: a pair of source cells covers about the upsampling
#: factor of outputs; splitting it into runs of at most this many wastes less padding
_BLOCK_SIDE = 4


class _Pairs:
    """Along one axis: runs of at most ``_BLOCK_SIDE`` consecutive output indices that read
    the same (low, high) source pair, each run's pair and its output indices (padded
    with -1); runs are in output order, so their low sources ascend."""

    def __init__(self, taps: BilinearTaps, in_size: int) -> None:
        code = taps.low * in_size + taps.high
        position = torch.arange(code.numel(), device=code.device)
        new_pair = torch.ones_like(code, dtype=torch.bool)
        new_pair[1:] = code[1:] != code[:-1]
        pair_start = torch.cummax(torch.where(new_pair, position, 0), 0).values
        new_run = new_pair | ((position - pair_start) % _BLOCK_SIDE == 0)
        of_index = torch.cumsum(new_run.long(), 0) - 1
        starts = position[new_run]
        self.low, self.high = taps.low[starts], taps.high[starts]
        count = torch.bincount(of_index, minlength=starts.numel())
        offsets = torch.arange(_BLOCK_SIDE, device=code.device)
        self.members = torch.where(offsets[None, :] < count[:, None],
                                   starts[:, None] + offsets[None, :], -1)
        self.taps = taps

    def runs_by_low(self, in_size: int) -> torch.Tensor:
        """``(in_size, P)``: per source index the runs whose low source it is (ascending),
        padded with -1."""
        per_low = torch.bincount(self.low, minlength=in_size)
        first_run = torch.cumsum(per_low, 0) - per_low
        run = torch.arange(self.low.numel(), device=self.low.device)
        table = torch.full((in_size, max(1, int(per_low.max()))), -1, dtype=torch.long,
                           device=self.low.device)
        table[self.low, run - first_run[self.low]] = run
        return table


@functools.lru_cache(maxsize=16)
def _axis_runs(out_size: int, in_size: int, device: torch.device) -> tuple[_Pairs, torch.Tensor]:
    """The runs of one axis and :meth:`_Pairs.runs_by_low`, built once per size and device
    (read only; a frame's counter then costs no host read)."""
    pairs = _Pairs(BilinearTaps.build(out_size, in_size, device), in_size)
    return pairs, pairs.runs_by_low(in_size)


class GridVotes:
    """Counts votes from grid logits ``(B, C, h, w)`` whose pixels' logits are
    ``upsample_bilinear(grid, size)`` (see the module docstring for why it is exact)."""

    def __init__(self, num_classes: int, size: tuple[int, int], grid: tuple[int, int],
                 device: torch.device, compact: bool | None = None) -> None:
        """:param compact: count on the grid and compute only unclear blocks per pixel
            (default: on the CPU); False upsamples in full (the accelerator way)."""
        self.num_classes = num_classes
        self.size = size
        self.grid = grid
        self._sparse = device.type == 'cpu' if compact is None else compact
        if not self._sparse:
            self._dense = DenseVotes(num_classes, size, device)
        else:
            # per-pixel votes of unclear blocks, class-major, plus one spare slot for padding
            self._num_classes_pixels = num_classes * size[0] * size[1]
            self._pixel_votes = torch.zeros(self._num_classes_pixels + 1, dtype=torch.int32,
                                            device=device)
            # a block's four corners are its grid cells (low, high) x (low, high); since
            # high = min(low + 1, size - 1) (BilinearTaps), a block is named by its low
            # corner, and all blocks are judged at once on the grid (see add); per grid row
            # (column) the runs whose low cell it is
            self._rows, self._row_runs = _axis_runs(size[0], grid[0], device)
            self._cols, self._col_runs = _axis_runs(size[1], grid[1], device)
            self._corner_counts = torch.zeros(num_classes, *grid, dtype=torch.int32,
                                              device=device)

    def add(self, grid_logits: torch.Tensor) -> None:
        """Add the votes of a batch of grid logits (any float dtype; counted in float32)."""
        grid_logits = grid_logits.float().contiguous()
        if not self._sparse:
            self._dense.add(upsample_bilinear(grid_logits, self.size))
            return
        labels, clear = _clear_label(grid_logits)  # per cell (B, h, w)
        code = torch.where(clear, labels, -1)  # -1 = unclear cell
        # the cell below and to the right of each cell (the last row / column repeated):
        # the high corners of the block whose low corner is that cell
        code = torch.cat([code, code[:, -1:]], dim=1)
        code = torch.cat([code, code[:, :, -1:]], dim=2)
        low = code[:, :-1, :-1]
        block_label = torch.where((low >= 0) & (code[:, 1:, :-1] == low)
                                  & (code[:, :-1, 1:] == low) & (code[:, 1:, 1:] == low),
                                  low, -1)  # (B, h, w) by low corner, -1 = unclear
        for label in range(self.num_classes):
            self._corner_counts[label] += (block_label == label).sum(0, dtype=torch.int32)
        # the unclear blocks: every run pair whose low corner is an unclear cell (the cells
        # are few, so this is far cheaper than judging every block of every sample)
        sample, cell_row, cell_col = torch.nonzero(block_label < 0, as_tuple=True)
        row_runs, col_runs = self._row_runs[cell_row], self._col_runs[cell_col]  # (U, P)
        cell, row_run, col_run = torch.nonzero((row_runs >= 0)[:, :, None]
                                               & (col_runs >= 0)[:, None, :], as_tuple=True)
        self._add_pixels(grid_logits, sample[cell], row_runs[cell, row_run],
                         col_runs[cell, col_run])

    def _add_pixels(self, grid_logits: torch.Tensor, sample: torch.Tensor,
                    row_pair: torch.Tensor, col_pair: torch.Tensor) -> None:
        """Per-pixel votes of the unclear blocks, with the operations of upsample_bilinear
        (laid out with the K blocks on the last axis, so every elementwise pass is long)."""
        rows, cols = self._rows, self._cols
        num_classes, height, width = grid_logits.shape[1:]
        planes = grid_logits.transpose(0, 1).reshape(num_classes, -1)  # (C, B * h * w)
        y = rows.members[row_pair].t()  # (R, K), -1 = padding
        x = cols.members[col_pair].t()  # (S, K)
        valid = (y >= 0)[:, None, :] & (x >= 0)[None, :, :]
        y, x = y.clamp(min=0), x.clamp(min=0)
        weight_low, weight_high = cols.taps.weight_low[x], cols.taps.weight_high[x]  # (S, K)
        cell = sample * (height * width)
        col_low, col_high = cell + cols.low[col_pair], cell + cols.high[col_pair]

        def column_pass(row: torch.Tensor) -> torch.Tensor:  # (C, S, K), as upsample_columns
            left = planes[:, col_low + row * width][:, None, :]  # (C, 1, K)
            right = planes[:, col_high + row * width][:, None, :]
            return left * weight_low + right * weight_high

        low, high = column_pass(rows.low[row_pair]), column_pass(rows.high[row_pair])
        # (C, R, S, K) = upsample_rows on these pixels
        values = (low[:, None] * rows.taps.weight_low[y][:, None, :]
                  + high[:, None] * rows.taps.weight_high[y][:, None, :])
        labels = predict_labels(values[None], torch.long)[0]  # (R, S, K)
        pixels = self.size[0] * self.size[1]
        target = labels * pixels + y[:, None, :] * self.size[1] + x[None, :, :]
        target = torch.where(valid, target, self._num_classes_pixels)  # padding: spare slot
        self._pixel_votes.scatter_add_(0, target.reshape(-1),
                                       torch.ones(target.numel(), dtype=torch.int32,
                                                  device=target.device))

    def counts(self) -> torch.Tensor:
        """``(C, H, W)`` int32 votes so far, on the model's device."""
        if not self._sparse:
            return self._dense.counts()
        blocks = self._corner_counts[:, self._rows.taps.low][:, :, self._cols.taps.low]
        pixels = self._pixel_votes[:-1].view(self.num_classes, *self.size)
        return blocks + pixels


def _clear_label(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per entry of ``(B, C, ...)``: the first-max class, and whether it beats every other
    class c by more than ``_MARGIN * (|v_label| + |v_c|)`` (then any convex combination with
    another clear entry of the same label, rounded in float32, keeps that label)."""
    labels = predict_labels(values, torch.long)
    best = values.gather(1, labels[:, None]).squeeze(1)
    clear = torch.ones_like(best, dtype=torch.bool)
    for label in range(values.shape[1]):
        other = values[:, label]
        clear &= (labels == label) | (best - other > _MARGIN * (best.abs() + other.abs()))
    return labels, clear
