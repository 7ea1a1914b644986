"""Base segmentation networks for sub-sampled RGB-D input, their checkpoints and the shipped
default models (``default.pt``, ``fast.pt``, ``points.pt``).

Model contract (what :class:`mmcert_ros.certify.CertifiedSegmenter` calls)::

    logits = model(rgb, rgb_keep, depth, depth_keep)   # (B, C, H, W) at the RGB size
    model.num_classes

with ``rgb`` ``(B, 3, H, W)`` in [0, 1] (dropped pixels 0), ``rgb_keep`` ``(B, 1, H, W)`` in
{0, 1}, ``depth`` ``(B, 1, Hd, Wd)`` metres (dropped and invalid pixels 0) and ``depth_keep``
``(B, 1, Hd, Wd)`` in {0, 1}. ``load_model(None)`` returns the shipped default network.
"""

from mmcert_ros.models.checkpoint import (DEFAULT_CHECKPOINT, FAST_CHECKPOINT, POINTS_CHECKPOINT,
                                          CheckpointError, load_checkpoint, load_model,
                                          read_checkpoint, save_checkpoint)
from mmcert_ros.models.network import NetworkConfig, SparseRGBDNet, build_model

__all__ = [
    'DEFAULT_CHECKPOINT', 'FAST_CHECKPOINT', 'POINTS_CHECKPOINT', 'CheckpointError',
    'NetworkConfig', 'SparseRGBDNet', 'build_model', 'load_checkpoint', 'load_model',
    'read_checkpoint', 'save_checkpoint',
]
