"""CertifyConfig: the one validated configuration of the engine, from YAML or ROS parameters.

The node, the offline evaluator and the CLI tools read the same file (``config/mmcert.yaml``,
a ROS 2 parameter file), so what is measured offline is what runs on the vehicle.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmcert_ros.device import check_device_name
from mmcert_ros.models.backends import BACKEND_PRECISIONS, BACKENDS

PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
#: MMCert's KITTI keep fractions of RGB and depth pixels: the default of certification and of
#: training (base model and booster), and what a checkpoint that does not record the fractions
#: it was trained for is taken to have been trained at
KEEP_FRACTION_RGB = 0.0193
KEEP_FRACTION_DEPTH = 0.00214

#: ROS parameter name -> CertifyConfig field (the node's ``certify.*`` / ``model.*`` names).
PARAMETER_FIELDS = {
    'certify.num_samples': 'num_samples',
    'certify.keep_fraction_rgb': 'keep_fraction_rgb',
    'certify.keep_fraction_depth': 'keep_fraction_depth',
    'certify.keep_points': 'keep_points',
    'certify.alpha': 'alpha',
    'certify.radius_rgb': 'radius_rgb',
    'certify.radius_depth': 'radius_depth',
    'certify.ray': 'ray',
    'certify.seed': 'seed',
    'model.batch_size': 'batch_size',
    'model.device': 'device',
    'model.precision': 'precision',
    'model.backend': 'backend',
}
#: Node whose section of a ROS parameter file is read when a file holds several nodes.
DEFAULT_NODE = 'mmcert_segmenter'


@dataclasses.dataclass(frozen=True)
class CertifyConfig:
    """Validated engine settings; construction raises ``ValueError`` naming the bad field.

    :ivar num_samples: N, sub-sampled inputs per frame.
    :ivar keep_fraction_rgb: fraction of RGB pixels kept per sample (k = round(f n) >= 1).
    :ivar keep_fraction_depth: fraction of depth pixels kept per sample.
    :ivar keep_points: LiDAR points kept per sample when depth comes as a point cloud (a
        fixed count, never a fraction: the attacker controls how many points there are).
    :ivar alpha: family-wise error rate over all pixels of a frame.
    :ivar radius_rgb: attack budget r_rgb (pixels) of the published certification mask.
    :ivar radius_depth: attack budget r_depth (pixels) of the published certification mask.
    :ivar ray: (a_rgb, a_depth); the radius map reports t on r(t) = (t a_rgb, t a_depth).
    :ivar seed: fixed seed for reproducible evaluation, or None for fresh OS entropy per frame.
    :ivar batch_size: samples per forward pass (bounds memory whatever N is).
    :ivar device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
    :ivar precision: of the forward passes: 'fp32' (exact mode), 'bf16' (CPUs with AVX-512
        BF16 / AMX), 'fp16' (GPUs) or 'int8' (backend 'openvino' only: post-training
        quantized convolutions, the fastest CPU mode). With backend 'torch'
        ``SparseRGBDNet`` runs with its weights in that dtype (batch norm folded); other
        models under autocast.
    :ivar backend: 'torch' (fp32, bf16, fp16), 'onnxruntime' (the model's dense part exported
        to ONNX, CPU, fp32) or 'openvino' (the same export, CPU, fp32, bf16 or int8); see
        :mod:`mmcert_ros.models.backends`.
    """

    num_samples: int = 100
    keep_fraction_rgb: float = KEEP_FRACTION_RGB
    keep_fraction_depth: float = KEEP_FRACTION_DEPTH
    keep_points: int = 128
    alpha: float = 0.001
    radius_rgb: int = 0
    radius_depth: int = 0
    ray: tuple[int, int] = (1, 2)
    seed: int | None = None
    batch_size: int = 16
    device: str = 'auto'
    precision: str = 'fp32'
    backend: str = 'torch'

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, 'num_samples', _integer('num_samples', self.num_samples, 1, 1_000_000))
        for name in ('keep_fraction_rgb', 'keep_fraction_depth'):
            value = _number(name, getattr(self, name))
            if not 0.0 < value <= 1.0:
                raise ValueError(f'{name} must lie in (0, 1], got {value}')
            set_(self, name, value)
        set_(self, 'keep_points', _integer('keep_points', self.keep_points, 1))
        alpha = _number('alpha', self.alpha)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f'alpha must lie in (0, 1), got {alpha}')
        set_(self, 'alpha', alpha)
        set_(self, 'radius_rgb', _integer('radius_rgb', self.radius_rgb, 0))
        set_(self, 'radius_depth', _integer('radius_depth', self.radius_depth, 0))
        ray = tuple(self.ray) if isinstance(self.ray, (list, tuple)) else None
        if ray is None or len(ray) != 2:
            raise ValueError(f'ray must be two integers (a_rgb, a_depth), got {self.ray!r}')
        ray = tuple(_integer('ray', a, 0) for a in ray)
        if not any(ray):
            raise ValueError('ray must have at least one positive step, got (0, 0)')
        set_(self, 'ray', ray)
        if self.seed is not None:
            set_(self, 'seed', _integer('seed', self.seed, 0))
        set_(self, 'batch_size', _integer('batch_size', self.batch_size, 1, 65536))
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')
        if self.backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {self.backend!r}')
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            runners = [name for name, runs in BACKEND_PRECISIONS.items() if self.precision in runs]
            raise ValueError(f'backend {self.backend!r} runs precision '
                             f'{_either(BACKEND_PRECISIONS[self.backend])}, got '
                             f'{self.precision!r} (run by backend {_either(runners)})')

    def replace(self, **changes: Any) -> 'CertifyConfig':
        """A validated copy with ``changes`` applied (field names)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'CertifyConfig':
        """Build from ROS parameter names (the keys of :data:`PARAMETER_FIELDS`, e.g.
        ``certify.num_samples``), the inverse of :meth:`to_parameters`; other keys are
        ignored, missing ones take the defaults. ``certify.seed: -1`` means fresh OS entropy
        per frame (seed None). Files are read by
        :func:`mmcert_ros.pipeline.settings.load_settings`, which also takes field names.
        """
        chosen = {name: values[key] for key, name in PARAMETER_FIELDS.items() if key in values}
        if chosen.get('seed') == -1:
            chosen['seed'] = None
        return cls(**chosen)

    def to_parameters(self) -> dict[str, Any]:
        """The ROS parameter names and values of this config (seed None -> -1)."""
        values = dataclasses.asdict(self)
        params = {key: values[name] for key, name in PARAMETER_FIELDS.items()}
        params['certify.ray'] = list(self.ray)
        params['certify.seed'] = -1 if self.seed is None else self.seed
        return params


def read_parameters(path: str | Path, node: str = DEFAULT_NODE) -> dict[str, Any]:
    """Flat ``{dotted.name: value}`` of a YAML config file: plain mapping or ROS params file
    (the section of ``node``, else ``/**``, else the only one). Only
    :func:`mmcert_ros.pipeline.settings.load_settings` reads config files with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f'config file {path} is not valid YAML: {error}') from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f'config file {path} must hold a mapping, got {type(document).__name__}')
    sections = {name: body['ros__parameters'] for name, body in document.items()
                if isinstance(body, dict) and 'ros__parameters' in body}
    if not sections:
        return _flatten(document)
    for candidate in (node, f'/{node}', '/**'):
        if candidate in sections:
            return _flatten(sections[candidate] or {})
    if len(sections) == 1:
        return _flatten(next(iter(sections.values())) or {})
    raise ValueError(f'config file {path} has parameters for {sorted(sections)}, none for {node}')


def _flatten(values: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f'{name}.'))
        else:
            flat[name] = value
    return flat


def _either(names) -> str:
    """``'a, b or c'`` of a sequence of names."""
    names = list(names)
    return ' or '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) and not (
            isinstance(value, float) and value.is_integer()):
        raise ValueError(f'{name} must be an integer, got {value!r}')
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f'[{low}, {high}]' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be {bound}, got {value}')
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f'{name} must be a number, got {value!r}')
    return float(value)
