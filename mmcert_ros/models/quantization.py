"""Post-training int8 quantization of the exported dense part (``precision: int8``, OpenVINO).

:func:`quantize_int8` quantizes the OpenVINO model of the dense part of a ``SparseRGBDNet``
(pyramid in, grid logits out; :func:`~mmcert_ros.models.backends.export_onnx`) with NNCF's
post-training quantization, default preset: int8 weights (per output channel) and int8
activations (per tensor, symmetric) at every convolution but the first, with a bias
correction. The first convolution reads the raw level-0 input, whose channels (mean colour,
log1p of kept-pixel counts, inverse depth, row coordinate) span very different ranges: one
int8 scale for all of them changed about four times as many labels as every other
convolution together, for 5 % to 10 % of the int8 trunk's speed. It and the ops between
convolutions (pooling, bilinear resizes, the feature normalization and the cosine head) run
in the backend's float precision (:class:`~mmcert_ros.models.backends.OpenVinoNet`).
The activation ranges come from calibration inputs that are the engine's own: the pyramid
inputs of :data:`CALIBRATION_SAMPLES_PER_FRAME` sub-sampled copies (kept at
``CertifyConfig``'s default keep fractions) of each of the synthetic frames
:data:`CALIBRATION_FRAMES` of drive :data:`CALIBRATION_DRIVE_SEED` (1242x375, dense and
LiDAR depth), drawn with fixed seeds.

The calibration is a pure function of the network's weights: the same network gives the same
int8 model, and the int8 model is a deterministic function of each sub-sampled input, so it
is a base model like any other and the certificate speaks about its ensemble.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os

import torch
from torch import nn

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
    from mmcert_ros.certify.config import CertifyConfig
    from mmcert_ros.certify.engine import frame_tensors
    from mmcert_ros.certify.sampling import draw_kept_indices, kept_count, make_generator
    from mmcert_ros.models.network import KeptPixels
    from mmcert_ros.sim.synthetic import SyntheticDrive

    defaults = CertifyConfig()
    drive = SyntheticDrive(CALIBRATION_DRIVE_SEED)
    batches = []
    for number, (index, depth_mode) in enumerate(CALIBRATION_FRAMES):
        frame = drive.frame(index, depth_mode)
        rgb, depth = frame_tensors(frame.rgb, frame.depth, torch.device('cpu'))
        generator = make_generator(number, 'cpu')
        kept = []
        for image, fraction in ((rgb, defaults.keep_fraction_rgb),
                                (depth, defaults.keep_fraction_depth)):
            n = image.shape[-2] * image.shape[-1]
            indices = draw_kept_indices(CALIBRATION_SAMPLES_PER_FRAME, n,
                                        kept_count(fraction, n), generator)
            kept.append(KeptPixels.from_indices(image, indices))
        with torch.inference_mode():
            batches.append([level.contiguous() for level in network.pyramid_inputs(*kept)])
    return batches


def quantize_int8(network: nn.Module, model):
    """The int8 OpenVINO model of ``model`` (the OpenVINO model of ``network``'s dense part,
    inputs ``level0..level3``), calibrated on :func:`calibration_levels` (module docstring).
    Needs the ``nncf`` package; raises ``ValueError`` saying how to install it."""
    nncf = import_nncf()
    nncf.set_log_level(logging.ERROR)
    batches = calibration_levels(network)
    dataset = nncf.Dataset(batches, lambda levels: {f'level{number}': level.numpy()
                                                    for number, level in enumerate(levels)})
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars, not a node's log
        return nncf.quantize(model, dataset, subset_size=len(batches),
                             ignored_scope=nncf.IgnoredScope(names=[first_convolution(model)]))


def import_nncf():
    """The ``nncf`` module, imported with its usage telemetry off: NNCF otherwise sends usage
    events to its developers unless the user opted out, which a node on a vehicle must not
    do behind its user's back. NNCF reads ``NNCF_CI`` once, when it is first imported (nothing
    else in it depends on that variable); the environment is restored afterwards.
    Raises ``ValueError`` saying how to install the package."""
    from mmcert_ros.models.backends import require_package

    saved = os.environ.get('NNCF_CI')
    os.environ['NNCF_CI'] = '1'
    try:
        return require_package('nncf', 'precision int8')
    finally:
        if saved is None:
            del os.environ['NNCF_CI']
        else:
            os.environ['NNCF_CI'] = saved


def first_convolution(model) -> str:
    """The name of the first convolution of an OpenVINO model in topological order: in the
    dense part the one that reads level 0 (every other convolution depends on its output)."""
    return next(op.get_friendly_name() for op in model.get_ordered_ops()
                if op.get_type_name() == 'Convolution')
