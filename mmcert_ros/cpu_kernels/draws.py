"""The exact-k sampler's selection in one pass (the sparse branch of
:func:`mmcert_ros.certify.l0.sampling.draw_kept_indices`).

Per row: walk the draws in order, keep each accepted value not seen before until k are kept
(a bit per element of ``[0, n)`` marks the seen ones), then sort the kept values
(bucketed by their leading bits, then insertion-sorted). The same rows as the torch
formulation, from the same draws
(:func:`mmcert_ros.certify.l0.sampling.first_distinct_by_sorting`: one sort of
(value, position) keys).
"""
from __future__ import annotations

import numba
import numpy as np

#: bits of the leading digit the kept values are bucketed by (about k buckets)
_DIGIT_BITS = 13


@numba.njit(cache=True, nogil=True)
def _sort_ascending(values, count, scratch, histogram, value_bits):
    """Sort ``values[:count]`` (non-negative, below ``2^value_bits``) ascending in place:
    one counting-sort pass on the leading ``_DIGIT_BITS`` bits into ``scratch``, then an
    insertion sort, which only moves values within their bucket (a few per bucket for the
    sampler's uniform draws: O(count) expected, correct for any input)."""
    shift = max(0, value_bits - _DIGIT_BITS)
    histogram[:] = 0
    for i in range(count):
        histogram[values[i] >> shift] += 1
    total = 0
    for digit in range(histogram.shape[0]):
        size = histogram[digit]
        histogram[digit] = total
        total += size
    for i in range(count):
        digit = values[i] >> shift
        scratch[histogram[digit]] = values[i]
        histogram[digit] += 1
    for i in range(count):
        value = scratch[i]
        j = i
        while j > 0 and values[j - 1] > value:
            values[j] = values[j - 1]
            j -= 1
        values[j] = value


@numba.njit(cache=True, nogil=True)
def first_distinct(values, accepted, k_rows, n, k_max):
    """The first ``k_rows[r]`` distinct accepted draws of each row, ascending.

    :param values: ``(R, D)`` int64 draws in ``[0, n)``; ``accepted``: ``(R, D)`` bool, which
        draws count (the others are skipped).
    :param k_rows: ``(R,)`` int64 elements to keep per row, each in [1, k_max].
    :returns: ``kept`` ``(R, k_max)`` int64 (a complete row's first k entries are its kept
        values ascending, the rest 0) and ``complete`` ``(R,)`` bool (the row had at least k
        distinct accepted draws; an incomplete row's entries are meaningless).
    """
    rows, draws = values.shape
    kept = np.zeros((rows, k_max), dtype=np.int64)
    complete = np.zeros(rows, dtype=np.bool_)
    seen = np.zeros((n + 63) >> 6, dtype=np.uint64)
    scratch = np.empty(k_max, dtype=np.int64)
    histogram = np.empty(1 << _DIGIT_BITS, dtype=np.int64)
    value_bits = 1
    while (n - 1) >> value_bits:
        value_bits += 1
    one = np.uint64(1)
    for r in range(rows):
        row = kept[r]
        need = k_rows[r]
        found = 0
        for d in range(draws):
            if found == need:
                break
            if not accepted[r, d]:
                continue
            value = values[r, d]
            bit = one << np.uint64(value & 63)
            if seen[value >> 6] & bit:
                continue
            seen[value >> 6] |= bit
            row[found] = value
            found += 1
        for i in range(found):  # clear only what was set
            seen[row[i] >> 6] = 0
        complete[r] = found == need
        _sort_ascending(row, found, scratch, histogram, value_bits)
    return kept, complete
