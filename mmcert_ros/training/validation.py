"""Validation of a base network the way certification uses it: majority votes over sub-samples."""
from __future__ import annotations

import numpy as np
import torch

from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.l0.engine import CertifiedSegmenter
from mmcert_ros.evaluation.metrics import Confusion, plain_confusion
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.projection import points_from_depth_image


def validate(model: torch.nn.Module, frames: list[Frame], keep_fraction_rgb: float,
             keep_fraction_depth: float, num_samples: int, seed: int,
             device: torch.device | str = 'cpu', keep_points: int | None = None
             ) -> dict[str, float]:
    """Majority-vote metrics of ``model`` on full ``frames`` with ``num_samples`` sub-samples.

    The masks are drawn from ``seed`` (the same masks at every call), so numbers from
    successive epochs are comparable. Leaves the model in eval mode. With ``keep_points``
    the valid pixels of each frame's (sparse LiDAR) depth are certified as points, keeping
    that many per sample.

    :returns: ``vote_iou`` / ``vote_accuracy``: road IoU and pixel accuracy of the majority
        vote, pooled over frames; ``agreement``: mean share of samples voting for the
        majority label (1.0 = unanimous everywhere; certification needs it near 1).
    """
    config = CertifyConfig(num_samples=num_samples, keep_fraction_rgb=keep_fraction_rgb,
                           keep_fraction_depth=keep_fraction_depth, seed=seed,
                           batch_size=min(num_samples, 16), device=str(device),
                           keep_points=keep_points or CertifyConfig.keep_points)
    segmenter = CertifiedSegmenter(model, config)
    confusion, agreement = Confusion(), []
    for frame in frames:
        depth = frame.depth if keep_points is None else points_from_depth_image(frame.depth,
                                                                                frame.name)
        certificate = segmenter.certify(frame.rgb, depth)
        confusion = confusion + plain_confusion(certificate.labels, frame.road_mask,
                                                frame.road_valid)
        agreement.append(float(np.mean(certificate.top_counts)) / num_samples)
    return {'vote_iou': confusion.iou, 'vote_accuracy': confusion.pixel_accuracy,
            'agreement': float(np.mean(agreement))}
