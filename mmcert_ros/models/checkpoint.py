"""Checkpoints of the base network: weights plus the config and provenance to rebuild them.

A checkpoint is a ``torch.save`` dict read back with ``weights_only=True`` (no code is
executed on load)::

    format          'mmcert_ros.checkpoint'
    format_version  1
    architecture    'SparseRGBDNet'
    network         NetworkConfig as a dict (num_classes, width, feature_dim, ...)
    state_dict      the module's parameters and buffers
    provenance      dict: keep fractions, input size, classes, data, seed, commit, command, ...
                    keep_fraction_rgb / keep_fraction_depth: the fractions the model was
                    trained for (:class:`TrainedKeepFractions`; checkpoints written before
                    this record existed lack them and are taken to be trained at the
                    certification defaults)
    training        optional dict (optimizer state, epoch, ...) used to resume training

Loading fails with :class:`CheckpointError` (a :class:`~mmcert_ros.errors.UserError`) whose
message names the file and says whether it is *missing*, *corrupt* (not a readable torch
file), *refused* (a pickle that would run code when unpickled: anything but tensors and plain
data, which ``weights_only`` loading does not execute) or *incompatible* (another format,
version, architecture or a weight layout that does not fit), and why. Messages never suggest
turning the ``weights_only`` check off.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmcert_ros.device import resolve_device
from mmcert_ros.errors import UserError
from mmcert_ros.models.network import NetworkConfig, SparseRGBDNet

CHECKPOINT_FORMAT = 'mmcert_ros.checkpoint'
CHECKPOINT_VERSION = 1
ARCHITECTURE = 'SparseRGBDNet'
#: the default checkpoint shipped inside the package
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / 'weights' / 'default.pt'
#: the model shipped for LiDAR point-cloud depth (``depth.source: points``, docs/model.md)
POINTS_CHECKPOINT = DEFAULT_CHECKPOINT.with_name('points.pt')
#: the cheaper model (network width 16 against the default's 24: 0.25 against 0.54 GFLOP per
#: sample), for more samples per second at a small cost in accuracy (docs/model.md)
FAST_CHECKPOINT = DEFAULT_CHECKPOINT.with_name('fast.pt')


#: the reason given for a pickle that ``weights_only`` loading refuses
REFUSED_REASON = 'not a plain-tensor checkpoint (it would run code when unpickled)'
_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')


@dataclass(frozen=True)
class TrainedKeepFractions:
    """The keep fractions of RGB and depth pixels a checkpoint's model was trained for.

    ``None`` where the checkpoint does not record them (written before the record existed);
    the engine then takes the certification defaults and says so
    (:class:`~mmcert_ros.certify.CertifiedSegmenter`).
    """

    rgb: float | None
    depth: float | None

    @classmethod
    def of(cls, payload: dict[str, Any]) -> 'TrainedKeepFractions':
        """The record in a checkpoint dict's ``provenance``."""
        provenance = payload.get('provenance', {})
        return cls(_fraction(provenance.get('keep_fraction_rgb')),
                   _fraction(provenance.get('keep_fraction_depth')))


class CheckpointError(UserError):
    """A checkpoint cannot be used; ``kind`` is 'missing', 'corrupt', 'refused' or
    'incompatible'."""

    def __init__(self, path: str | Path, kind: str, reason: str) -> None:
        super().__init__(f'checkpoint {path} is {kind}: {reason}')
        self.path = str(path)
        self.kind = kind
        self.reason = reason


def save_checkpoint(path: str | Path, model: SparseRGBDNet, provenance: dict[str, Any],
                    training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` with its config and ``provenance`` (plus resume state) to ``path``.

    The file is written to a temporary name and renamed, so an interrupted save never leaves a
    truncated checkpoint under ``path``. Tensors are stored on the CPU.
    """
    payload = {
        'format': CHECKPOINT_FORMAT,
        'format_version': CHECKPOINT_VERSION,
        'architecture': ARCHITECTURE,
        'network': model.config.as_dict(),
        'state_dict': {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        'provenance': dict(provenance),
    }
    if training is not None:
        payload['training'] = training
    return write_payload(Path(path), payload)


def write_payload(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary name, then rename: ``path`` is never left truncated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + '.partial')
    torch.save(payload, partial)
    partial.replace(path)
    return path


def read_payload(path: str | Path, file_format: str, version: int,
                 description: str) -> dict[str, Any]:
    """The dict saved at ``path``, read with ``weights_only=True`` and checked to carry
    ``format == file_format`` and ``format_version == version``.

    :param description: what the file should be, for messages ('an mmcert_ros checkpoint').
    :raises CheckpointError: missing, corrupt, refused or incompatible file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, 'missing', 'no such file')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = _GLOBAL.search(str(error))
        if unsafe:
            raise CheckpointError(path, 'refused', f'{REFUSED_REASON}; it references '
                                                   f'{unsafe.group(1)}') from None
        raise CheckpointError(path, 'corrupt',
                              f'not a readable torch file ({_unpickler_reason(error)})') from None
    except Exception as error:  # torch.load fails on foreign bytes with almost any exception
        raise CheckpointError(path, 'corrupt',
                              f'not a readable torch file ({_describe(error)})') from None
    if not isinstance(payload, dict) or payload.get('format') != file_format:
        found = payload.get('format') if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(path, 'incompatible',
                              f'not {description} (format {found!r}, expected {file_format!r})')
    if payload.get('format_version') != version:
        raise CheckpointError(path, 'incompatible',
                              f"format version {payload.get('format_version')!r}, this package "
                              f'reads {version}')
    return payload


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked for format and version (weights not loaded).

    :raises CheckpointError: missing, corrupt, refused or incompatible file.
    """
    payload = read_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
                           'an mmcert_ros checkpoint')
    if payload.get('architecture') != ARCHITECTURE:
        raise CheckpointError(path, 'incompatible',
                              f'architecture {payload.get("architecture")!r}, '
                              f'this package builds {ARCHITECTURE!r}')
    for key, kind in (('network', dict), ('state_dict', dict), ('provenance', dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(path, 'incompatible',
                                  f'field {key!r} is missing or not a {kind.__name__}')
    return payload


def load_checkpoint(path: str | Path, device: str | torch.device = 'cpu'
                    ) -> tuple[SparseRGBDNet, dict[str, Any]]:
    """Rebuild the network stored at ``path`` on ``device``, in eval mode.

    ``device`` is a torch device or a name (:mod:`mmcert_ros.device`: 'auto', 'cpu', 'cuda',
    'cuda:N').

    :returns: ``(model, checkpoint dict)``; the dict carries ``provenance`` (and ``training``
        if the file was written during training). The model's ``trained_keep_fractions``
        attribute is the file's :class:`TrainedKeepFractions` (the engine warns when it
        certifies at others).
    :raises CheckpointError: missing, corrupt, refused or incompatible file (the message says why).
    """
    payload = read_checkpoint(path)
    try:
        config = NetworkConfig.from_dict(payload['network'])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, 'incompatible', f'bad network config: {error}') from error
    model = SparseRGBDNet(config)
    try:
        model.load_state_dict(payload['state_dict'])
    except RuntimeError as error:
        reason = ' '.join(str(error).split())
        raise CheckpointError(path, 'incompatible', f'weights do not fit the network: {reason}') \
            from error
    model.trained_keep_fractions = TrainedKeepFractions.of(payload)
    return model.to(resolve_device(device)).eval(), payload


def load_model(path: str | Path | None = None, device: str | torch.device = 'cpu'
               ) -> SparseRGBDNet:
    """The base model for certification, in eval mode on ``device``.

    :param path: a checkpoint file; ``None`` or ``''`` selects the default checkpoint shipped
        with the package (:data:`DEFAULT_CHECKPOINT`).
    :raises CheckpointError: missing, corrupt, refused or incompatible checkpoint.
    """
    model, _ = load_checkpoint(path or DEFAULT_CHECKPOINT, device)
    return model


def _fraction(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """What torch's ``weights_only`` unpickler found, without torch's advice around it."""
    detail = str(error).rpartition('WeightsUnpickler error:')[2]
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    reason = lines[0] if detail != str(error) and lines else ''
    return reason if reason and 'weights_only' not in reason else 'not a torch pickle'


def _describe(error: Exception) -> str:
    """``Type: first line of the message`` (torch's messages run to paragraphs)."""
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__
