"""The base network's densified pyramid in one pass
(:meth:`mmcert_ros.models.network.SparseRGBDNet.pyramid_inputs`).

Per sample and cell of the finest grid, the kept RGB pixels' centred colours and count and
the kept depth pixels' inverse depth and valid count are summed in the kept pixels' order;
each coarser level sums 2x2 cells (rounding up, row-major order); every level then holds
``sum / max(1, weight)`` and ``log1p(weight)`` per modality. The float32 operations and
their order are those of the torch formulation (``encode_rgb``, ``encode_depth``,
``index_add_``, ``avg_pool2d`` with ``divisor_override=1``), so the result is bit-identical;
``log1p`` of the integer weights is read from a table that torch computed.
"""
from __future__ import annotations

import numba
import numpy as np

#: channels per level: 3 mean colours, log1p(RGB count), mean inverse depth, log1p(valid count)
LEVEL_CHANNELS = 6


@numba.njit(cache=True, nogil=True)
def _finest_sums(rgb_sample, rgb_pixel, rgb_cell, rgb_values, depth_sample, depth_pixel,
                 depth_cell, depth_values, near, sums):
    """Sum the encoded kept pixels into ``sums`` ``(B, h, w, 6)`` (zeroed) per finest cell."""
    cells_per_sample = sums.shape[1] * sums.shape[2]
    flat = sums.reshape(sums.shape[0] * cells_per_sample, LEVEL_CHANNELS)
    half = np.float32(0.5)
    one = np.float32(1.0)
    for p in range(rgb_pixel.shape[0]):
        cell = rgb_sample[p] * cells_per_sample + rgb_cell[rgb_pixel[p]]
        for c in range(3):
            flat[cell, c] += rgb_values[p, c] - half
        flat[cell, 3] += one
    for p in range(depth_pixel.shape[0]):
        value = depth_values[p, 0]
        if value > 0:  # NaN and <= 0: invalid, weight 0 (adds +0.0: sums stay as they are)
            cell = depth_sample[p] * cells_per_sample + depth_cell[depth_pixel[p]]
            flat[cell, 4] += one / max(value, near) * near
            flat[cell, 5] += one


@numba.njit(cache=True, nogil=True)
def _pool(sums):
    """2x2 sums of ``(B, h, w, 6)`` cells, rounding up (a last odd row or column alone),
    each window summed row-major: ``(B, ceil(h / 2), ceil(w / 2), 6)``."""
    batch, height, width, _ = sums.shape
    out = np.zeros((batch, (height + 1) // 2, (width + 1) // 2, LEVEL_CHANNELS),
                   dtype=np.float32)
    for b in range(batch):
        for y in range(height):
            i = y // 2
            for x in range(width):
                target = out[b, i, x // 2]
                source = sums[b, y, x]
                for c in range(LEVEL_CHANNELS):
                    target[c] += source[c]
    return out


@numba.njit(cache=True, nogil=True)
def _normalize(sums, log1p_table, out):
    """``out[..., :6]`` = per modality the means ``sum / max(1, weight)`` and
    ``log1p(weight)`` of ``sums`` ``(B, h, w, 6)``."""
    one = np.float32(1.0)
    batch, height, width, _ = sums.shape
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                weight = sums[b, i, j, 3]
                divisor = max(weight, one)
                for c in range(3):
                    out[b, i, j, c] = sums[b, i, j, c] / divisor
                out[b, i, j, 3] = log1p_table[int(weight)]
                weight = sums[b, i, j, 5]
                out[b, i, j, 4] = sums[b, i, j, 4] / max(weight, one)
                out[b, i, j, 5] = log1p_table[int(weight)]


@numba.njit(cache=True, nogil=True)
def pyramid(batch, rows, cols, levels, rgb_sample, rgb_pixel, rgb_cell, rgb_values,
            depth_sample, depth_pixel, depth_cell, depth_values, near, log1p_table,
            row_coordinate):
    """The densified pyramid of a batch.

    :param batch: samples B; ``rows``, ``cols``: the finest grid; ``levels``: its levels.
    :param rgb_sample, rgb_pixel: ``(K,)`` int32 sample and flat pixel index of each kept RGB
        pixel, batch-major in kept order; ``rgb_cell``: int32 finest cell (``row * cols +
        col``) of every pixel of the image; ``rgb_values``: ``(K, 3)`` float32 in [0, 1];
        likewise ``depth_*`` with ``(K_d, 1)`` float32 metres.
    :param near: float32 metres at which the inverse depth ``min(1, near / depth)`` saturates.
    :param log1p_table: float32 ``log1p(w)`` for every integer weight w up to the largest
        kept count of a sample.
    :param row_coordinate: ``(rows,)`` float32, the finest level's last channel.
    :returns: per level ``(B, h, w, 6)`` float32 (the finest ``(B, rows, cols, 7)``).
    """
    sums = np.zeros((batch, rows, cols, LEVEL_CHANNELS), dtype=np.float32)
    _finest_sums(rgb_sample, rgb_pixel, rgb_cell, rgb_values, depth_sample, depth_pixel,
                 depth_cell, depth_values, near, sums)
    finest = np.empty((batch, rows, cols, LEVEL_CHANNELS + 1), dtype=np.float32)
    _normalize(sums, log1p_table, finest)
    for b in range(batch):
        for i in range(rows):
            for j in range(cols):
                finest[b, i, j, LEVEL_CHANNELS] = row_coordinate[i]
    out = [finest]
    for _ in range(1, levels):
        sums = _pool(sums)
        level = np.empty(sums.shape, dtype=np.float32)
        _normalize(sums, log1p_table, level)
        out.append(level)
    return out
