"""Vote counting on the grid in one pass (:class:`mmcert_ros.certify.l0.votes.GridVotes`).

For every sample and every block of pixels that read the same four grid cells (low corner
``(i, j)``): when all four cells give one class a clear float32 margin over every other
class (``best - other > margin * (|best| + |other|)``), the block's vote goes to
``corner_counts[label, i, j]``; otherwise each pixel of the block is upsampled with exactly
the operations of :func:`mmcert_ros.certify.upsampling.upsample_bilinear` (columns, then
rows; one rounding per multiply and add) and votes in ``pixel_votes``.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _cell_codes(logits, b, margin, codes):
    """Per cell of sample ``b``: its first-max class if clear (see the module docstring),
    else -1, into ``codes`` ``(h, w)``."""
    num_classes, height, width = logits.shape[1:]
    for i in range(height):
        for j in range(width):
            label = 0
            best = logits[b, 0, i, j]
            for c in range(1, num_classes):
                if logits[b, c, i, j] > best:
                    best = logits[b, c, i, j]
                    label = c
            clear = True
            for c in range(num_classes):
                if c != label:
                    other = logits[b, c, i, j]
                    if not (best - other > margin * (abs(best) + abs(other))):
                        clear = False
            codes[i, j] = label if clear else -1


@numba.njit(cache=True, nogil=True)
def add_votes(logits, margin, row_low, row_high, row_weight_low, row_weight_high, row_first,
              col_low, col_high, col_weight_low, col_weight_high, col_first,
              corner_counts, pixel_votes):
    """Add the votes of a batch of grid logits.

    :param logits: ``(B, C, h, w)`` float32, C-contiguous.
    :param margin: float32, the relative margin of a clear cell.
    :param row_low, row_high: ``(H,)`` int64 source rows of each output row (bilinear taps,
        ``high = min(low + 1, h - 1)``); ``row_weight_low``, ``row_weight_high``: ``(H,)``
        float32 their weights; likewise for columns with ``(W,)`` arrays.
    :param row_first: ``(h + 1,)`` int64: the output rows whose low source row is ``i`` are
        ``row_first[i] .. row_first[i + 1] - 1`` (taps are monotone); likewise ``col_first``.
    :param corner_counts: ``(C, h, w)`` int32 block votes by low corner, updated in place.
    :param pixel_votes: ``(C, H, W)`` int32 votes of single pixels, updated in place.
    """
    batch, num_classes, height, width = logits.shape
    codes = np.empty((height, width), dtype=np.int64)
    low = np.empty(num_classes, dtype=np.float32)  # column pass of source row i, per class
    high = np.empty(num_classes, dtype=np.float32)  # and of row i_high
    for b in range(batch):
        _cell_codes(logits, b, margin, codes)
        for i in range(height):
            i_high = min(i + 1, height - 1)
            for j in range(width):
                j_high = min(j + 1, width - 1)
                code = codes[i, j]
                if code >= 0 and codes[i_high, j] == code and codes[i, j_high] == code \
                        and codes[i_high, j_high] == code:
                    corner_counts[code, i, j] += 1
                    continue
                # every pixel of the block reads source rows i and i_high: the column pass
                # of those two rows once per column, then the row pass per pixel
                for x in range(col_first[j], col_first[j + 1]):
                    x_low, x_high = col_low[x], col_high[x]
                    for c in range(num_classes):
                        low[c] = (logits[b, c, i, x_low] * col_weight_low[x]
                                  + logits[b, c, i, x_high] * col_weight_high[x])
                        high[c] = (logits[b, c, i_high, x_low] * col_weight_low[x]
                                   + logits[b, c, i_high, x_high] * col_weight_high[x])
                    for y in range(row_first[i], row_first[i + 1]):
                        label = 0
                        best = low[0] * row_weight_low[y] + high[0] * row_weight_high[y]
                        for c in range(1, num_classes):
                            value = low[c] * row_weight_low[y] + high[c] * row_weight_high[y]
                            if value > best:
                                best = value
                                label = c
                        pixel_votes[label, y, x] += 1


@numba.njit(cache=True, nogil=True)
def total_counts(corner_counts, pixel_votes, row_low, col_low):
    """``(C, H, W)`` int32: every pixel's block votes (its low corner's) plus its own."""
    num_classes, height, width = pixel_votes.shape
    counts = np.empty_like(pixel_votes)
    for c in range(num_classes):
        for y in range(height):
            for x in range(width):
                counts[c, y, x] = corner_counts[c, row_low[y], col_low[x]] + pixel_votes[c, y, x]
    return counts
