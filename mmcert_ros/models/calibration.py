"""The calibration inputs of the int8 base model (``precision: int8``,
:func:`mmcert_ros.models.quantization.quantize_int8`): the engine's own pyramid inputs of
:data:`CALIBRATION_SAMPLES_PER_FRAME` sub-sampled copies (kept at the default keep fractions)
of each of the synthetic frames :data:`CALIBRATION_FRAMES` of drive
:data:`CALIBRATION_DRIVE_SEED` (1242x375, dense and LiDAR depth), drawn with fixed seeds: a
pure function of the network's weights, so the same network always gives the same int8 model.
"""
from __future__ import annotations

import torch
from torch import nn

from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB
from mmcert_ros.certify.l0.sampling import draw_kept_indices, kept_count, make_generator
from mmcert_ros.certify.tensors import frame_tensors
from mmcert_ros.certify.kept_pixels import KeptPixels

#: synthetic drive whose frames calibrate the int8 ranges (not a seed of the default training
#: and validation drives, 0.. and 100000.., nor of the held-out evaluation drives, 900000..)
CALIBRATION_DRIVE_SEED = 800_000
#: (frame index, depth mode) of the calibration frames of that drive
CALIBRATION_FRAMES = ((0, 'dense'), (40, 'dense'), (20, 'lidar'), (60, 'lidar'))
#: sub-sampled copies of each calibration frame (one micro-batch)
CALIBRATION_SAMPLES_PER_FRAME = 16


def calibration_levels(network: nn.Module) -> list[list[torch.Tensor]]:
    """Per calibration frame the four pyramid levels (``network.pyramid_inputs``, float32,
    NCHW-contiguous) of its :data:`CALIBRATION_SAMPLES_PER_FRAME` sub-sampled copies."""
    from mmcert_ros.sim.synthetic import SyntheticDrive

    drive = SyntheticDrive(CALIBRATION_DRIVE_SEED)
    batches = []
    for number, (index, depth_mode) in enumerate(CALIBRATION_FRAMES):
        frame = drive.frame(index, depth_mode)
        rgb, depth = frame_tensors(frame.rgb, frame.depth, torch.device('cpu'))
        generator = make_generator(number, 'cpu')
        kept = []
        for image, fraction in ((rgb, KEEP_FRACTION_RGB),
                                (depth, KEEP_FRACTION_DEPTH)):
            n = image.shape[-2] * image.shape[-1]
            indices = draw_kept_indices(CALIBRATION_SAMPLES_PER_FRAME, n,
                                        kept_count(fraction, n), generator)
            kept.append(KeptPixels.from_indices(image, indices))
        with torch.inference_mode():
            batches.append([level.contiguous() for level in network.pyramid_inputs(*kept)])
    return batches
