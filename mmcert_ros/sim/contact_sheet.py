"""Contact sheets: a grid of frames (RGB | depth | road ground truth) for a person to look at."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from mmcert_ros.data.frame import Frame

ROAD_TINT_RGB = (255, 0, 255)


def colorize_depth(depth_m: np.ndarray, max_depth_m: float = 80.0,
                   dilate_sparse: bool = True) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB picture of metric depth: near = red, far = blue, invalid = black.

    Colour follows inverse depth (``1 / depth`` from ``1 / max_depth_m`` to ``1 / 2 m``), as
    in KITTI's depth figures. Sparse depth (under 30 % valid) is dilated by 3x3 pixels when
    ``dilate_sparse`` so the LiDAR rows remain visible after downscaling.
    """
    valid = np.isfinite(depth_m) & (depth_m > 0)
    inverse = np.zeros(depth_m.shape, np.float32)
    inverse[valid] = 1.0 / np.maximum(depth_m[valid], 2.0)
    scaled = np.clip((inverse - 1.0 / max_depth_m) / (0.5 - 1.0 / max_depth_m), 0, 1)
    image = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[:, :, ::-1]
    image = np.where(valid[..., None], image, 0).astype(np.uint8)
    if dilate_sparse and valid.mean() < 0.3:
        image = cv2.dilate(image, np.ones((3, 3), np.uint8))
    return image


def overlay_road(rgb: np.ndarray, road_mask: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """The RGB image with road pixels tinted magenta (KITTI's road colour)."""
    if road_mask is None:
        return rgb.copy()
    tint = np.array(ROAD_TINT_RGB, np.float32)
    out = rgb.astype(np.float32)
    road = road_mask > 0
    out[road] = (1 - alpha) * out[road] + alpha * tint
    return out.astype(np.uint8)


def contact_sheet(frames: Iterable[Frame], panel_width: int = 414,
                  max_depth_m: float = 80.0) -> np.ndarray:
    """One row per frame: RGB, depth (:func:`colorize_depth`), RGB with the road tinted.

    Each panel is resized to ``panel_width`` pixels wide (depth to the RGB size first);
    the frame name is written in the top-left corner of the first panel.
    """
    rows = []
    for frame in frames:
        height, width = frame.rgb.shape[:2]
        depth = cv2.resize(colorize_depth(frame.depth, max_depth_m), (width, height),
                           interpolation=cv2.INTER_NEAREST)
        panels = [frame.rgb, depth, overlay_road(frame.rgb, frame.road_mask)]
        panel_height = int(round(height * panel_width / width))
        panels = [cv2.resize(p, (panel_width, panel_height), interpolation=cv2.INTER_AREA)
                  for p in panels]
        label = frame.name or f'stamp {frame.stamp_ns}'
        (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        cv2.rectangle(panels[0], (0, 0), (text_w + 8, text_h + 8), (0, 0, 0), -1)
        cv2.putText(panels[0], label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.hstack(panels))
    if not rows:
        raise ValueError('contact_sheet needs at least one frame')
    return np.vstack(rows)


def save_png(path: Path | str, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as a maximally compressed PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f'{path}: could not write PNG')
    return path
