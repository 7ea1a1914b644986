"""Seamless procedural noise tiles shared by every renderer in the process.

The tiles are generated once from a fixed seed (so rendering stays deterministic) and
sampled in world coordinates with ``cv2.remap`` (bilinear, wrapping), which is what keeps
textures attached to the road and buildings as the camera moves.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_TEXTURE_SEED = 20240611
#: Every pattern laid out in world arc length (tiles times texel sizes, dash periods, window
#: pitch, paving) repeats with a period dividing this, so renderers may subtract a multiple
#: of it from arc lengths and keep float32 coordinates precise on arbitrarily long drives.
WORLD_PERIOD_M = 9216.0
FINE_TEXEL_M = 1.0 / 32.0     # fine tile: 512 texels = 16 m
COARSE_TEXEL_M = 0.25         # coarse tile: 256 texels = 64 m
FOLIAGE_TEXEL_M = 0.125       # foliage tile: 256 texels = 32 m
RIDGE_TEXEL_M = 0.25          # ridge profile: 4096 texels = 1024 m
_REMAP_MAX_SIDE = 32767   # cv2.remap limit on each side of the map
_REMAP_ROW = 1024


def periodic_noise(shape: tuple[int, ...], sigma_px: float, rng: np.random.Generator,
                   ) -> np.ndarray:
    """Gaussian-filtered white noise that tiles seamlessly, float32, mean 0, std 1.

    The filter is applied in the Fourier domain, so the result is exactly periodic.
    """
    white = rng.standard_normal(shape)
    spectrum = np.fft.fftn(white)
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing='ij')
    squared = sum(g ** 2 for g in grids)
    smooth = np.fft.ifftn(spectrum * np.exp(-2 * np.pi ** 2 * sigma_px ** 2 * squared)).real
    smooth -= smooth.mean()
    return (smooth / smooth.std()).astype(np.float32)


@dataclass(frozen=True)
class Textures:
    """The tiles: ``fine`` (grain), ``coarse`` (patches), ``foliage`` (leaf clumps) are
    square float32 tiles with std 1; ``ridge`` is a 1-D profile for jagged skylines."""

    fine: np.ndarray
    coarse: np.ndarray
    foliage: np.ndarray
    ridge: np.ndarray


@lru_cache(maxsize=1)
def textures() -> Textures:
    """The process-wide tiles (about 2 MB, built once in well under a second)."""
    rng = np.random.default_rng(_TEXTURE_SEED)
    fine = periodic_noise((512, 512), 0.8, rng)
    coarse = periodic_noise((256, 256), 5.0, rng)
    foliage = 0.6 * periodic_noise((256, 256), 1.5, rng) + 0.8 * periodic_noise(
        (256, 256), 5.0, rng)
    ridge = 0.7 * periodic_noise((4096,), 4.0, rng) + 0.5 * periodic_noise((4096,), 20.0, rng)
    for tile in (fine, coarse, foliage, ridge):
        tile.setflags(write=False)
    return Textures(fine=fine, coarse=coarse, foliage=foliage.astype(np.float32),
                    ridge=ridge.astype(np.float32))


def sample(tile: np.ndarray, x: np.ndarray, y: np.ndarray, texel_m: float) -> np.ndarray:
    """Bilinear samples of a wrapping ``tile`` at world coordinates ``(x, y)`` metres.

    ``x`` indexes tile columns and ``y`` rows, one texel per ``texel_m`` metres. Any array
    shape works; the result is float32 of the same shape. Coordinates are used in float32:
    keep them within a few kilometres (see :data:`WORLD_PERIOD_M`).
    """
    map_x = _fold(np.asarray(x, dtype=np.float32) * np.float32(1.0 / texel_m), tile.shape[1])
    map_y = _fold(np.asarray(y, dtype=np.float32) * np.float32(1.0 / texel_m), tile.shape[0])
    shape = map_x.shape
    if map_x.size == 0:
        return np.zeros(shape, np.float32)
    if map_x.ndim == 1 and map_x.size < _REMAP_MAX_SIDE:
        return cv2.remap(tile, map_x[None, :], map_y[None, :], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_WRAP)[0]
    if map_x.ndim != 2 or max(shape) >= _REMAP_MAX_SIDE:
        # cv2.remap wants a 2-D map with sides below 32767: fold the samples into rows
        count = map_x.size
        rows = -(-count // _REMAP_ROW)
        pad = rows * _REMAP_ROW - count
        map_x = np.pad(map_x.ravel(), (0, pad)).reshape(rows, _REMAP_ROW)
        map_y = np.pad(map_y.ravel(), (0, pad)).reshape(rows, _REMAP_ROW)
        out = cv2.remap(tile, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        return out.ravel()[:count].reshape(shape)
    return cv2.remap(tile, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def _fold(texels: np.ndarray, size: int) -> np.ndarray:
    """Texel coordinates folded into ``[0, size)`` (cv2.remap is several times faster on
    in-range coordinates; floor is much cheaper than np.mod)."""
    return texels - np.floor(texels * np.float32(1.0 / size)) * np.float32(size)


def sample_1d(profile: np.ndarray, x: np.ndarray, texel_m: float) -> np.ndarray:
    """Linear interpolation of the wrapping 1-D ``profile`` at ``x`` metres."""
    position = np.mod(np.asarray(x, dtype=np.float64) / texel_m, profile.size)
    i = np.floor(position).astype(np.int64)
    f = (position - i).astype(np.float32)
    return profile[i] * (1 - f) + profile[(i + 1) % profile.size] * f
