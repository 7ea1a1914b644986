"""Materials of the synthetic scenes: ids (palette rows) and their colours.

Rendering is deferred: every pixel stores a material id and a shade factor, and the
final colour is ``palette[id] * shade``. The base palette holds fixed colours; each frame
adds its asphalt colours (one per visible chunk) and its sky shades.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcert_ros.sim.scene import Lighting

# material ids (rows of the palette)
CURB, SIDEWALK, PAVING, GRASS, DIRT, GRAVEL, SHOULDER, ASPHALT_WALK = range(1, 9)
FOLIAGE, TRUNK, POLE, GLASS, TIRE, TAILLIGHT, HEADLIGHT, HILL, TREELINE = range(9, 18)
BUILDING0 = 32   # 16 facade colours
VEHICLE0 = 64    # 32 vehicle colours
ROAD0 = 128      # one asphalt colour per visible chunk
SKY0 = 192       # 16 gradient levels x 4 cloud levels
VERGE_MATERIAL = np.array([PAVING, GRASS, DIRT, GRAVEL], np.uint8)
GROUND_MATERIALS = [CURB, SIDEWALK, PAVING, GRASS, DIRT, GRAVEL, SHOULDER, ASPHALT_WALK]

_VEHICLE_COLOURS = np.array([
    (0.85, 0.85, 0.85), (0.92, 0.92, 0.9), (0.55, 0.56, 0.58), (0.1, 0.1, 0.11),
    (0.2, 0.2, 0.22), (0.6, 0.08, 0.07), (0.1, 0.18, 0.45), (0.7, 0.7, 0.72),
    (0.35, 0.36, 0.38), (0.05, 0.25, 0.12), (0.75, 0.6, 0.35), (0.8, 0.78, 0.7),
], dtype=np.float32)
_BUILDING_COLOURS = np.array([
    (0.78, 0.74, 0.66), (0.7, 0.62, 0.52), (0.62, 0.6, 0.58), (0.85, 0.82, 0.76),
    (0.66, 0.45, 0.36), (0.55, 0.5, 0.45), (0.8, 0.76, 0.62), (0.5, 0.52, 0.55),
], dtype=np.float32)


def base_palette() -> np.ndarray:
    """The fixed part of the palette, ``(256, 3)`` float32 linear RGB in [0, 1]."""
    palette = np.zeros((256, 3), np.float32)
    palette[CURB] = (0.62, 0.61, 0.58)
    palette[SIDEWALK] = (0.5, 0.49, 0.47)
    palette[ASPHALT_WALK] = (0.4, 0.4, 0.39)
    palette[PAVING] = (0.55, 0.52, 0.48)
    palette[GRASS] = (0.25, 0.38, 0.13)
    palette[DIRT] = (0.42, 0.35, 0.25)
    palette[GRAVEL] = (0.5, 0.48, 0.44)
    palette[SHOULDER] = (0.45, 0.42, 0.36)
    palette[FOLIAGE] = (0.16, 0.28, 0.1)
    palette[TREELINE] = (0.14, 0.24, 0.1)
    palette[HILL] = (0.35, 0.42, 0.28)
    palette[TRUNK] = (0.3, 0.24, 0.18)
    palette[POLE] = (0.55, 0.56, 0.55)
    palette[GLASS] = (0.12, 0.15, 0.19)
    palette[TIRE] = (0.06, 0.06, 0.06)
    palette[TAILLIGHT] = (0.7, 0.05, 0.05)
    palette[HEADLIGHT] = (0.85, 0.85, 0.8)
    tint = np.where(np.arange(16) < len(_BUILDING_COLOURS), 1.0, 0.82)[:, None]
    palette[BUILDING0:BUILDING0 + 16] = _BUILDING_COLOURS[np.arange(16) % len(_BUILDING_COLOURS)] \
        * tint
    palette[VEHICLE0:VEHICLE0 + 32] = _VEHICLE_COLOURS[np.arange(32) % len(_VEHICLE_COLOURS)]
    return palette


def frame_palette(base: np.ndarray, asphalt_rgb: Sequence[tuple[float, float, float]],
                  lighting: Lighting) -> np.ndarray:
    """``base`` plus one asphalt colour per visible chunk (``ROAD0 + i``) and the 64 sky
    shades (``SKY0 + 4 * gradient level + cloud level``) of this frame's light."""
    palette = base.copy()
    palette[ROAD0:ROAD0 + len(asphalt_rgb)] = asphalt_rgb
    level = (np.arange(16) / 15.0)[:, None, None]
    cover = (np.arange(4) / 6.0)[None, :, None]
    horizon = np.asarray(lighting.sky_horizon_rgb)
    zenith = np.asarray(lighting.sky_zenith_rgb)
    sky = (horizon * (1 - level) + zenith * level) * (1 - cover) + 0.95 * cover
    palette[SKY0:SKY0 + 64] = sky.reshape(64, 3)
    return palette
