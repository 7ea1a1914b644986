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
The activation ranges come from calibration inputs that are the engine's own, which the
engine hands over (:mod:`mmcert_ros.models.calibration`: fixed synthetic frames and seeds).

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

from mmcert_ros.models.packages import require_package


def quantize_int8(model, batches: list[list[torch.Tensor]]):
    """The int8 OpenVINO model of ``model`` (the OpenVINO model of a network's dense part,
    inputs ``level0..level3``), calibrated on ``batches``: per calibration input its four
    pyramid levels (the engine's own, :func:`mmcert_ros.models.calibration.calibration_levels`).
    Needs the ``nncf`` package; raises ``ValueError`` saying how to install it."""
    nncf = import_nncf()
    nncf.set_log_level(logging.ERROR)
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
