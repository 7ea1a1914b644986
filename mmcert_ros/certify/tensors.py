"""A frame's arrays as the engines' input tensors."""
from __future__ import annotations

import numpy as np
import torch

#: a frame on the engine's device, as :func:`frame_tensors` makes it: ``(1, 3, H, W)`` RGB in
#: [0, 1] and ``(1, 1, Hd, Wd)`` metres with invalid depth 0
FrameTensors = tuple[torch.Tensor, torch.Tensor]


def frame_tensors(rgb: np.ndarray, depth: np.ndarray, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, 3, H, W)`` float RGB in [0, 1] (channels-last memory, so that reading the kept
    pixels' values is one row gather) and ``(1, 1, Hd, Wd)`` metres with every invalid depth
    (NaN, Inf, <= 0) set to 0, on ``device``, from a frame's uint8 RGB and float depth."""
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    rgb_t = rgb_t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous(
        memory_format=torch.channels_last)
    depth_t = torch.from_numpy(np.ascontiguousarray(depth)).to(device)
    valid = torch.isfinite(depth_t) & (depth_t > 0)
    depth_t = torch.where(valid, depth_t, torch.zeros_like(depth_t))[None, None]
    return rgb_t, depth_t
