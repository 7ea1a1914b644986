"""Depth encodings shared by every consumer: uint16 millimetres <-> float32 metres.

Two encodings exist on the wire and on disk (REP 118):

* ``16UC1`` / ``depth_u16`` PNG: uint16 **millimetres**, ``0`` = invalid (no return);
* ``32FC1``: float32 **metres**, NaN (or +-Inf) = invalid.

Inside the package depth is always float32 metres with NaN for invalid pixels; the
certification engine calls :func:`clean_depth` to turn every invalid value into ``0``,
which is what the base model sees. The converters refuse the wrong dtype instead of
guessing the unit, so millimetres are never silently read as metres.
"""
from __future__ import annotations

import numpy as np

#: Largest depth a uint16 millimetre image can hold, metres.
MAX_MILLIMETRE_DEPTH_M = 65.535


def millimetres_to_metres(depth_mm: np.ndarray, source: str = 'depth') -> np.ndarray:
    """Convert uint16 millimetres to float32 metres; ``0`` becomes NaN (invalid).

    :param depth_mm: uint16 array (any shape).
    :param source: what the array is (file name, topic), used in error messages.
    :raises ValueError: if ``depth_mm`` is not uint16.
    """
    depth_mm = np.asarray(depth_mm)
    if depth_mm.dtype != np.uint16:
        raise ValueError(
            f'{source}: millimetre depth must be uint16, got {depth_mm.dtype} '
            '(float depth is metres already; use clean_depth or the metres as they are)')
    metres = depth_mm.astype(np.float32) * np.float32(0.001)
    metres[depth_mm == 0] = np.nan
    return metres


def metres_to_millimetres(depth_m: np.ndarray, source: str = 'depth') -> np.ndarray:
    """Convert float metres to uint16 millimetres, rounding to the nearest millimetre.

    Invalid pixels (NaN, +-Inf, ``<= 0``), depths that round to 0 mm and depths beyond
    :data:`MAX_MILLIMETRE_DEPTH_M` (not representable) all become ``0``.

    :param depth_m: floating-point array of metres (any shape).
    :param source: what the array is, used in error messages.
    :raises ValueError: if ``depth_m`` is not a floating-point array.
    """
    depth_m = np.asarray(depth_m)
    if not np.issubdtype(depth_m.dtype, np.floating):
        raise ValueError(
            f'{source}: metric depth must be a float array of metres, got {depth_m.dtype} '
            '(integer depth is millimetres: use millimetres_to_metres)')
    with np.errstate(invalid='ignore'):
        millimetres = np.rint(depth_m.astype(np.float64) * 1000.0)
        representable = np.isfinite(millimetres) & (millimetres > 0) & (millimetres <= 65535)
    return np.where(representable, millimetres, 0).astype(np.uint16)


def invalid_depth_mask(depth_m: np.ndarray, source: str = 'depth') -> np.ndarray:
    """Boolean mask of invalid metric depth: NaN, +-Inf or ``<= 0``.

    :raises ValueError: if ``depth_m`` is not a floating-point array.
    """
    depth_m = np.asarray(depth_m)
    if not np.issubdtype(depth_m.dtype, np.floating):
        raise ValueError(f'{source}: metric depth must be a float array, got {depth_m.dtype}')
    with np.errstate(invalid='ignore'):
        return ~(np.isfinite(depth_m) & (depth_m > 0))


def clean_depth(depth_m: np.ndarray, source: str = 'depth') -> np.ndarray:
    """A float32 copy of metric depth with every invalid pixel set to ``0``.

    This is the encoding the base model receives (docs/certification.md section 2: invalid
    pixels enter as 0).

    :raises ValueError: if ``depth_m`` is not a floating-point array.
    """
    invalid = invalid_depth_mask(depth_m, source)
    cleaned = np.asarray(depth_m, dtype=np.float32).copy()
    cleaned[invalid] = 0.0
    return cleaned
