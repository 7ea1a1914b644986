"""Shared inputs of the evaluation and fleet tests: small synthetic frames, the topics they are
written on, a deterministic vote model and the engine settings they are certified with."""
import numpy as np
import torch
import torch.nn.functional as F

from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.certify import CertifyConfig
from mmcert_ros.data import Frame
from mmcert_ros.data.depth import millimetres_to_metres

S = 1_000_000_000
MS = 1_000_000
TOPICS = FrameTopics(rgb='/cam/rgb', depth='/cam/depth', camera_info=None, gt='/cam/gt')
CONFIG = CertifyConfig(num_samples=60, keep_fraction_rgb=0.1, keep_fraction_depth=0.02,
                       alpha=0.001, radius_rgb=1, radius_depth=2, ray=(1, 2), seed=11,
                       batch_size=30)


class LocalBrightness(torch.nn.Module):
    """Road where the kept pixels in a 9x9 window are mostly bright; no kept pixel: not road.

    Deterministic given the keep masks, and its votes vary with them, so top counts spread
    over many values and the certified curve has several points."""

    num_classes = 2

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        total = F.avg_pool2d(rgb.mean(1, keepdim=True) * rgb_keep, 9, 1, 4)
        weight = F.avg_pool2d(rgb_keep, 9, 1, 4)
        road = ((total > 0.5 * weight) & (weight > 0))[:, 0]
        return F.one_hot(road.long(), 2).permute(0, 3, 1, 2).float()


def make_frames(count=4, seed=0, height=16, width=24):
    """Road in the lower half, bright; 10 % of pixels flipped in brightness; 10 Hz stamps."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        gt = np.zeros((height, width), np.uint8)
        gt[height // 2:] = 1
        rgb = rng.integers(0, 100, (height, width, 3), dtype=np.uint8)
        rgb[gt == 1] += 120
        flip = rng.random((height, width)) < 0.1
        rgb[flip] = 255 - rgb[flip]
        depth = millimetres_to_metres(rng.integers(0, 30000, (height // 2, width // 2),
                                                   dtype=np.uint16))
        frames.append(Frame(rgb=rgb, depth=depth, road_mask=gt, stamp_ns=5 * S + index * 100 * MS,
                            frame_id='cam', name=f'f{index}'))
    return frames
