"""The engine's settings: :class:`CertifyConfig` (the l0 certificate, the model's forward
passes) and :class:`L2Settings` (the l2 certificate), plain validated dataclasses.

Each numeric field carries its :class:`Bounds` (``dataclasses.field`` metadata, read with
:func:`field_bounds`), the one statement of its range: construction checks it, and the
segmenter's parameter table (:mod:`mmcert_ros.segmenter.parameters`, which maps parameter
names such as ``certify.num_samples`` to these fields and reads the params files) announces
it. Nothing here knows parameter names or files, and importing this module loads neither
torch, nor the ROS client library, nor the simulator.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from mmcert_ros.device import check_device_name

PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
#: precisions each backend runs (``CertifyConfig.backend`` -> ``CertifyConfig.precision``;
#: :mod:`mmcert_ros.models.backends` runs them)
BACKEND_PRECISIONS = {'torch': ('fp32', 'bf16', 'fp16'), 'onnxruntime': ('fp32',),
                      'openvino': ('fp32', 'bf16', 'int8')}
#: what can run the forward passes (``CertifyConfig.backend``)
BACKENDS = tuple(BACKEND_PRECISIONS)
#: MMCert's KITTI keep fractions of RGB and depth pixels: the default of certification and of
#: training (base model and booster), and what a checkpoint that does not record the fractions
#: it was trained for is taken to have been trained at
KEEP_FRACTION_RGB = 0.0193
KEEP_FRACTION_DEPTH = 0.00214
_BOUNDS = 'bounds'


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: ``low`` to ``high`` (None = no upper bound),
    each end included unless ``open_low`` / ``open_high``; ``integer`` settings take whole
    numbers only (an integral float such as ``2.0`` is taken as 2).
    """

    low: float
    high: float | None = None
    integer: bool = False
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def __str__(self) -> str:
        """``'[1, 1000000]'``, ``'(0, 1]'`` or ``'>= 1'``."""
        if self.high is None:
            return f'{">" if self.open_low else ">="} {number_text(self.low)}'
        return (f'{"(" if self.open_low else "["}{number_text(self.low)}, {number_text(self.high)}'
                f'{")" if self.open_high else "]"}')

    def check(self, name: str, value: Any) -> int | float:
        """``value`` as an ``int`` (integer bounds) or ``float``, if it lies within.

        :raises ValueError: ``'<name> must be an integer, got ...'``, ``'<name> must be
            [1, 65536], got ...'`` (integers), ``'<name> must be a number, got ...'`` or
            ``'<name> must lie in (0, 1], got ...'`` (numbers).
        """
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) and not (
                    isinstance(value, float) and value.is_integer()):
                raise ValueError(f'{name} must be an integer, got {value!r}')
            value, verb = int(value), 'be'
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f'{name} must be a number, got {value!r}')
            value, verb = float(value), 'lie in'
        if value not in self:
            raise ValueError(f'{name} must {verb} {self}, got {value}')
        return value


def field_bounds(settings: type, name: str) -> Bounds | None:
    """The :class:`Bounds` of field ``name`` of ``settings`` (a class of this module), or None
    for a field that is not a number in a range (a name, a path, a flag, ``ray``)."""
    return next(field.metadata.get(_BOUNDS) for field in dataclasses.fields(settings)
                if field.name == name)


def _bounded(default: Any, low: float, high: float | None = None, **kind: bool) -> Any:
    """A dataclass field with ``default`` and its :class:`Bounds` (``kind``: ``integer``,
    ``open_low``, ``open_high``)."""
    return dataclasses.field(default=default, metadata={_BOUNDS: Bounds(low, high, **kind)})


def _check_bounds(settings: Any, prefix: str = '') -> None:
    """Check and normalise (int / float) every bounded field of ``settings`` in place; None
    stays None (an optional field, e.g. ``seed``). Messages name ``prefix`` + the field."""
    for field in dataclasses.fields(settings):
        bounds = field.metadata.get(_BOUNDS)
        value = getattr(settings, field.name)
        if bounds is not None and value is not None:
            object.__setattr__(settings, field.name, bounds.check(prefix + field.name, value))


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

    num_samples: int = _bounded(100, 1, 1_000_000, integer=True)
    keep_fraction_rgb: float = _bounded(KEEP_FRACTION_RGB, 0.0, 1.0, open_low=True)
    keep_fraction_depth: float = _bounded(KEEP_FRACTION_DEPTH, 0.0, 1.0, open_low=True)
    keep_points: int = _bounded(128, 1, integer=True)
    alpha: float = _bounded(0.001, 0.0, 1.0, open_low=True, open_high=True)
    radius_rgb: int = _bounded(0, 0, integer=True)
    radius_depth: int = _bounded(0, 0, integer=True)
    ray: tuple[int, int] = (1, 2)
    seed: int | None = _bounded(None, 0, integer=True)
    batch_size: int = _bounded(16, 1, 65536, integer=True)
    device: str = 'auto'
    precision: str = 'fp32'
    backend: str = 'torch'

    def __post_init__(self) -> None:
        _check_bounds(self)
        ray = tuple(self.ray) if isinstance(self.ray, (list, tuple)) else None
        if ray is None or len(ray) != 2:
            raise ValueError(f'ray must be two integers (a_rgb, a_depth), got {self.ray!r}')
        ray = tuple(Bounds(0, integer=True).check('ray', a) for a in ray)
        if not any(ray):
            raise ValueError('ray must have at least one positive step, got (0, 0)')
        object.__setattr__(self, 'ray', ray)
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')
        if self.backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {self.backend!r}')
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            runners = [name for name, runs in BACKEND_PRECISIONS.items() if self.precision in runs]
            raise ValueError(f'backend {self.backend!r} runs precision '
                             f'{either(BACKEND_PRECISIONS[self.backend])}, got '
                             f'{self.precision!r} (run by backend {either(runners)})')

    def replace(self, **changes: Any) -> 'CertifyConfig':
        """A validated copy with ``changes`` applied (field names)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class L2Settings:
    """Validated settings of the l2 certificate (:mod:`mmcert_ros.certify.l2.certifier`);
    construction raises ``ValueError`` naming the setting as ``fs.<field>`` (fs: feature
    smoothing).

    :ivar sigma: noise standard deviation, RGB in [0, 1] units, in [0, 10]; 0 = l2 certificate
        off.
    :ivar radius: l2 radius of the published ``mmcert/l2_certification`` mask, same units, in
        [0, 100].
    :ivar booster: booster checkpoint ('' = none).
    :ivar num_samples: estimation samples N, at most 1e6; 0 = the engine's
        ``CertifyConfig.num_samples``.
    :ivar joint: one ensemble for both certificates: the l0 votes are taken from the l2
        certificate's N noisy sub-sampled passes (``L2Certifier.certify_joint``), about
        half the forward passes, at the price of l0 votes on noisy inputs; False = two
        separate ensembles (the l0 one noise-free).
    """

    sigma: float = _bounded(0.0, 0.0, 10.0)
    radius: float = _bounded(0.0, 0.0, 100.0)
    booster: str = ''
    num_samples: int = _bounded(0, 0, 1_000_000, integer=True)
    joint: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self, prefix='fs.')
        if not isinstance(self.booster, str):
            raise ValueError(f'fs.booster must be a path string, got {self.booster!r}')
        if not isinstance(self.joint, bool):
            raise ValueError(f'fs.joint must be true or false, got {self.joint!r}')

    @property
    def enabled(self) -> bool:
        return self.sigma > 0

    def replace(self, **changes: Any) -> 'L2Settings':
        """A validated copy with ``changes`` (field names) applied."""
        return dataclasses.replace(self, **changes)

    def engine_config(self, config: CertifyConfig) -> CertifyConfig:
        """``config`` with ``num_samples`` replaced by this ``num_samples`` when that is set."""
        return config.replace(num_samples=self.num_samples) if self.num_samples else config


def either(names) -> str:
    """``'a, b or c'`` of a sequence of names (messages and help texts)."""
    names = list(names)
    return ' or '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)


def number_text(number: float) -> str:
    """An integer as it is, a float in its shortest form (``0.0`` -> ``'0'``): how bounds
    are written in messages and help texts."""
    return str(number) if isinstance(number, int) else f'{number:g}'
