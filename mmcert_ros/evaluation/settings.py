"""The segmenter node's settings, read from the same file the node is started with.

``load_settings`` accepts the node's ROS 2 parameter file (``config/mmcert.yaml``:
``mmcert_segmenter: ros__parameters: {certify.num_samples: ..., sync.slop: ...}``) or a plain
:class:`~mmcert_ros.certify.CertifyConfig` mapping, fills in the node's defaults and validates
the result with the node's own rules (:class:`~mmcert_ros.ros.parameters.NodeSettings`), so
an offline evaluation runs exactly the configuration the vehicle runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcert_ros.certify import CertifyConfig
from mmcert_ros.certify.config import read_parameters


@dataclass(frozen=True)
class EvaluationSettings:
    """What an evaluation needs from the node's configuration.

    :ivar certify: the engine configuration.
    :ivar checkpoint: model checkpoint path ('' = the shipped default model).
    :ivar slop_s: RGB/depth stamp pairing tolerance, seconds (the node's ``sync.slop``).
    """

    certify: CertifyConfig
    checkpoint: str
    slop_s: float


def load_settings(path: str | Path | None = None, *, seed: int | None = None,
                  device: str | None = None, slop_s: float | None = None) -> EvaluationSettings:
    """Settings from ``path`` (None = the node's defaults), then the given overrides.

    :param seed: overrides ``certify.seed``; ``-1`` means fresh OS entropy per frame.
    :param device: overrides ``model.device``.
    :param slop_s: overrides ``sync.slop`` (seconds, >= 0).
    :raises ValueError: a value is invalid or a key unknown (the message names it).
    :raises FileNotFoundError: ``path`` does not exist.
    """
    from mmcert_ros.ros.parameters import PARAMETERS, NodeSettings

    flat = read_parameters(path) if path is not None else {}
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update({name: value for name, value in flat.items() if name in values})
    values.update(CertifyConfig.from_dict(flat).to_parameters())  # plain field names too
    if seed is not None:
        values['certify.seed'] = seed
    if device is not None:
        values['model.device'] = device
    if slop_s is not None:
        values['sync.slop'] = slop_s
    node = NodeSettings.from_parameters(values)
    return EvaluationSettings(certify=node.certify, checkpoint=node.checkpoint,
                              slop_s=node.slop_s)
