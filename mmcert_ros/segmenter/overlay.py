"""Colour overlay of a certified segmentation on the camera image (numpy only, no ROS package).

Legend (each tint blended 50 % over the image):

* green  -- road, certified at the configured radius;
* yellow -- road, not certified;
* red    -- not road, not certified;
* untinted -- not road, certified.
"""
from __future__ import annotations

import numpy as np

from mmcert_ros.data.road import ROAD_CLASS

CERTIFIED_ROAD = (0, 255, 0)
UNCERTIFIED_ROAD = (255, 255, 0)
UNCERTIFIED_OTHER = (255, 0, 0)


def render_overlay(rgb: np.ndarray, labels: np.ndarray, certified: np.ndarray,
                   road_class: int = ROAD_CLASS) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 RGB image tinted by the legend above.

    :param rgb: ``(H, W, 3)`` uint8 RGB camera image.
    :param labels: ``(H, W)`` class ids; ``road_class`` is road.
    :param certified: ``(H, W)`` bool certification mask.
    """
    if labels.shape != rgb.shape[:2] or certified.shape != rgb.shape[:2]:
        raise ValueError(f'overlay: labels {labels.shape} and certified {certified.shape} '
                         f'must match the image size {rgb.shape[:2]}')
    road = labels == road_class
    certified = certified.astype(bool)
    out = rgb.copy()
    for mask, colour in ((road & certified, CERTIFIED_ROAD), (road & ~certified, UNCERTIFIED_ROAD),
                         (~road & ~certified, UNCERTIFIED_OTHER)):
        tinted = (rgb[mask].astype(np.uint16) + np.array(colour, np.uint16)) // 2
        out[mask] = tinted.astype(np.uint8)
    return out
