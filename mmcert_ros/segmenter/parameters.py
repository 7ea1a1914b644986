"""The segmenter's parameters without ROS: one table, :data:`PARAMETERS`, and the settings
objects it fills.

Each :class:`ParameterSpec` row states a parameter once: name, type (that of its default),
default, range, read-only, description and the settings field it feeds (``feeds``). A
parameter that feeds the engine (:class:`~mmcert_ros.certify.CertifyConfig`,
:class:`~mmcert_ros.certify.config.L2Settings`) takes its default and range from that field
(:func:`~mmcert_ros.certify.config.field_bounds`); the engine checks its own fields. Every
other row carries its default and range itself, and :meth:`ParameterSpec.check` checks them.

Everything else is derived from the table: the node's ``ParameterDescriptor``s
(:mod:`mmcert_ros.ros.parameter_descriptors`), :meth:`NodeSettings.from_parameters` (the node and
:func:`mmcert_ros.segmenter.settings.load_settings`, the offline tools' reader of the same
params file), :func:`settings_from_parameters` and :func:`parameters_of` (one settings object
from its parameters and back), and the parameter table of docs/ros.md
(:func:`markdown_table`; ``python -m mmcert_ros.segmenter.parameters --markdown`` prints it).
Tests hold ``config/mmcert.yaml`` and docs/ros.md to the table.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmcert_ros.certify.config import (CertifyConfig, L2Settings, either, field_bounds,
                                       number_text)
from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.device import resolve_device
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.pair_to_frame import DEPTH_SOURCES
from mmcert_ros.segmenter.message_fields import camera_info_from_k

RELIABILITIES = ('best_effort', 'reliable')
#: how RGB images arrive: sensor_msgs/Image on rgb/image, or image_transport's compressed
#: sensor_msgs/CompressedImage on rgb/image/compressed
RGB_TRANSPORTS = ('raw', 'compressed')
#: the engine's settings: they check their own fields (ranges from their field metadata)
ENGINE_SETTINGS = (CertifyConfig, L2Settings)
_INT64_MAX = 2 ** 63 - 1
#: ROS's name of each parameter type, by the type of the default
_TYPE_NAMES = {bool: 'bool', int: 'integer', float: 'double', str: 'string',
               list: 'integer array'}


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter (a row of the table).

    :ivar name: the parameter name (``certify.num_samples``).
    :ivar default: the default value; its type is the parameter's (bool, int, float, str or
        a list of ints).
    :ivar description: the help text (``ros2 param describe``, docs/ros.md).
    :ivar low: smallest value of a numeric parameter (inclusive), None = no range.
    :ivar high: largest value (inclusive); set together with ``low``.
    :ivar constraints: what else the value must be, in words; '' where the range or
        ``choices`` say it all (then derived from ``choices``).
    :ivar read_only: fixed at start-up.
    :ivar feeds: ``(settings class, field)`` this parameter sets; None for parameters that
        fill no settings object (the simulator's).
    :ivar choices: the values a string parameter may take; () = any.
    :ivar parse: ``parse(name, value)`` turns a value into its field's (``camera.k`` into 9
        floats) and checks it whole, raising :class:`UserError` naming the parameter.
    :ivar none_as: the parameter value that stands for the field's None
        (``certify.seed: -1`` = seed None).
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    constraints: str = ''
    read_only: bool = False
    feeds: tuple[type, str] | None = None
    choices: tuple[str, ...] = ()
    parse: Callable[[str, Any], Any] | None = None
    none_as: Any = None

    def __post_init__(self) -> None:
        if self.choices and not self.constraints:
            object.__setattr__(self, 'constraints', either(self.choices))

    @classmethod
    def engine(cls, name: str, feeds: tuple[type, str], description: str, *,
               constraints: str = '', none_as: Any = None) -> 'ParameterSpec':
        """The row of a parameter that feeds an engine field: default and range are the
        field's (no upper bound = the int64 maximum; ``none_as`` extends the range down to
        itself), ``constraints`` defaults to the range of a field with an open end."""
        target, field = feeds
        default = next(item.default for item in dataclasses.fields(target) if item.name == field)
        bounds = field_bounds(target, field)
        low = high = None
        if bounds is not None:
            low = bounds.low if none_as is None else min(bounds.low, none_as)
            high = _INT64_MAX if bounds.high is None else bounds.high
            if not constraints and (bounds.open_low or bounds.open_high):
                constraints = str(bounds)
        return cls(name, _parameter_value(default, none_as), description, low, high,
                   constraints, feeds=feeds, none_as=none_as)

    @property
    def type_name(self) -> str:
        """ROS's name of the parameter's type (``'double'``, ``'integer array'``...)."""
        return _TYPE_NAMES[type(self.default)]

    def conform(self, value: Any) -> Any:
        """``value`` (a start-up override) in this parameter's type, checked against its range.

        An integer given for a floating-point parameter is taken as that number
        (``-p fs.sigma:=1`` means 1.0); every other type mismatch is refused.

        :raises UserError: ``'<name>: expected <type>, got <value>'`` or ``'<name>: <value> is
            outside [<low>, <high>]'``.
        """
        ok, kind, typed = self._typed(value)
        if not ok:
            raise UserError(f'{self.name}: expected {kind}, got {value!r}')
        if self.low is not None and not self.low <= typed <= self.high:
            raise UserError(f'{self.name}: {typed!r} is outside [{self.low!r}, {self.high!r}]')
        return typed

    def check(self, value: Any) -> Any:
        """``value`` checked against ``choices``, or against the type and range (an integer
        taken for a float, as :meth:`conform` does).

        :raises UserError: ``'<name> must be one of (...), got <value>'`` or ``'<name> must
            be <type> in [<low>, <high>], got <value>'``.
        """
        if self.choices:
            if value not in self.choices:
                raise UserError(f'{self.name} must be one of {self.choices}, got {value!r}')
            return value
        ok, kind, typed = self._typed(value)
        if ok and (self.low is None or self.low <= typed <= self.high):
            return typed
        span = f' in [{self.low:g}, {self.high:g}]' if self.low is not None else ''
        raise UserError(f'{self.name} must be {kind}{span}, got {value!r}')

    def field_value(self, value: Any) -> Any:
        """What the field this parameter feeds is given for ``value``: parsed by ``parse``,
        ``none_as`` turned into None, checked (:meth:`check`) unless the field is the
        engine's (which checks it itself).

        :raises UserError: a value :meth:`check` or ``parse`` refuses.
        """
        if self.parse is not None:
            return self.parse(self.name, value)
        if self.feeds[0] in ENGINE_SETTINGS:
            return None if self.none_as is not None and value == self.none_as else value
        return self.check(value)

    def _typed(self, value: Any) -> tuple[bool, str, Any]:
        """Whether ``value`` has this parameter's type, that type in words, and ``value`` in
        it (an int as a float for a float parameter, a tuple of ints as a list)."""
        expected = self.default
        if isinstance(expected, bool):
            return isinstance(value, bool), 'true or false', value
        if isinstance(expected, int):
            return (isinstance(value, int) and not isinstance(value, bool)), 'an integer', value
        if isinstance(expected, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return ok, 'a number', float(value) if ok else value
        if isinstance(expected, str):
            return isinstance(value, str), 'a string', value
        ok = isinstance(value, (list, tuple)) and all(   # an integer list, e.g. certify.ray
            isinstance(item, int) and not isinstance(item, bool) for item in value)
        return ok, 'a list of integers', list(value) if ok else value


def _parameter_value(value: Any, none_as: Any) -> Any:
    """A field's value as a parameter value: None as ``none_as``, a tuple as a list."""
    if value is None:
        return none_as
    return list(value) if isinstance(value, tuple) else value


def _existing_file(name: str, value: Any) -> str:
    """``value``, a path of an existing file with ``~`` expanded, or ''."""
    if not isinstance(value, str):
        raise UserError(f'{name} must be a path string, got {value!r}')
    if not value:
        return ''
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f'{name}: no such file: {value}')
    return str(path)


def _camera_k(name: str, value: Any) -> tuple[float, ...] | None:
    """``camera.k`` as 9 floats (checked as a camera matrix), or None for ''."""
    if not isinstance(value, str):
        raise UserError(f'{name} must be a string of 9 numbers, got {value!r}')
    if not value.strip():
        return None
    try:
        numbers = tuple(float(v) for v in value.split())
    except ValueError:
        raise UserError(f'{name} must be 9 numbers separated by spaces, got {value!r}') from None
    try:
        camera_info_from_k(numbers, 1, 1)
    except ValueError as error:
        raise UserError(f'{name}: {error}') from None
    return numbers


def _extrinsic_values(name: str, value: Any) -> tuple[float, ...]:
    """``depth.extrinsic`` as its 7 or 16 numbers (checked as a transform), () for ''."""
    if not isinstance(value, str):
        raise UserError(f'{name} must be a string of 7 or 16 numbers, got {value!r}')
    try:
        numbers = tuple(float(item) for item in value.replace(',', ' ').split())
        if numbers:
            Extrinsic.from_values(numbers)
    except ValueError as error:
        raise UserError(f'{name}: {error}') from None
    return numbers


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """The run-time robustness parameters (``sync.jump_back``, ``sync.future_tolerance``,
    ``sync.max_age``, ``certify.time_budget``, ``diagnostics.*``), in seconds / milliseconds
    as named; 0 in ``future_tolerance_s``, ``time_budget_s`` and the processing-time limits
    means off. ``stale_error_s >= stale_warn_s`` (checked)."""

    jump_back_s: float
    future_tolerance_s: float
    max_age_s: float
    time_budget_s: float
    stale_warn_s: float
    stale_error_s: float
    processing_warn_ms: float
    processing_error_ms: float

    def __post_init__(self) -> None:
        if self.stale_error_s < self.stale_warn_s:
            raise UserError('diagnostics.input_stale_error must be >= '
                            'diagnostics.input_stale_warn')


@dataclasses.dataclass(frozen=True)
class DepthSettings:
    """The depth input (``depth.*``).

    :ivar source: ``'image'`` (``depth/image``) or ``'points'`` (``depth/points``).
    :ivar extrinsic_values: the 7 or 16 numbers of ``depth.extrinsic`` (validated; empty =
        the tf chain from the cloud's frame to the RGB frame); :attr:`extrinsic` is the
        transform.
    :ivar timeout_s: seconds without depth before the RGB-only mode; 0 = never.
    """

    source: str
    extrinsic_values: tuple[float, ...]
    timeout_s: float

    @property
    def extrinsic(self) -> Extrinsic | None:
        """The fixed LiDAR-to-camera transform, or None (from tf)."""
        return Extrinsic.from_values(self.extrinsic_values) if self.extrinsic_values else None


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """Every segmenter parameter, validated together (:meth:`from_parameters`).

    :ivar certify: the engine configuration (``certify.*``, ``model.*`` but the checkpoint).
    :ivar l2: the l2 certificate's settings (``fs.*``; ``l2.enabled`` is ``fs.sigma > 0``);
        ``l2.booster`` is an existing file or ''.
    :ivar runtime: time-fault, frame-budget and input-health settings.
    :ivar depth: the depth input (``depth.*``).
    :ivar checkpoint: model checkpoint path (an existing file, ``~`` expanded), '' = the
        shipped default.
    :ivar slop_s: stamp pairing tolerance, seconds.
    :ivar reliability: one of :data:`RELIABILITIES` (subscriptions).
    :ivar rgb_transport: one of :data:`RGB_TRANSPORTS`.
    :ivar camera_k: K (9 values, row-major) given as ``camera.k``, or None.
    :ivar publish_overlay: whether ``mmcert/overlay`` is published.
    :ivar publish_radius: whether ``mmcert/certified_radius`` is published.
    :ivar publish_views: whether the view images (and labelled points) are published.
    :ivar log_frames: whether each certified frame is logged (one INFO line).
    :ivar view_max_radius: t at the top of the certified-radius view's colour ramp.
    """

    certify: CertifyConfig
    l2: L2Settings
    runtime: RuntimeSettings
    depth: DepthSettings
    checkpoint: str
    slop_s: float
    reliability: str
    rgb_transport: str
    camera_k: tuple[float, ...] | None
    publish_overlay: bool
    publish_radius: bool
    publish_views: bool
    log_frames: bool
    view_max_radius: int

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'NodeSettings':
        """Validate a full ``{parameter name: value}`` mapping (every name of the table).

        :raises ValueError: a parameter is missing.
        :raises UserError: naming the offending parameter and the reason (including a CUDA
            ``model.device`` this machine does not have).
        """
        missing = [name for name in PARAMETER_NAMES if name not in values]
        if missing:
            raise ValueError(f'missing parameters: {", ".join(missing)}')
        certify = settings_from_parameters(CertifyConfig, values)
        _check_device_available(certify.device)
        l2 = settings_from_parameters(L2Settings, values)
        l2 = l2.replace(booster=_existing_file('fs.booster', l2.booster))
        return cls(certify=certify, l2=l2,
                   runtime=settings_from_parameters(RuntimeSettings, values),
                   depth=settings_from_parameters(DepthSettings, values),
                   **_fields(cls, values))


#: Every parameter of the ``mmcert_segmenter`` node, in declaration order.
PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('model.checkpoint', '',
                  "checkpoint file of the base model; '' = the shipped default",
                  constraints='an existing file, or empty', feeds=(NodeSettings, 'checkpoint'),
                  parse=_existing_file),
    ParameterSpec.engine('model.device', (CertifyConfig, 'device'),
                         'torch device of the engine; auto = CUDA when available, else CPU',
                         constraints='auto, cpu, cuda or cuda:N'),
    ParameterSpec.engine('model.precision', (CertifyConfig, 'precision'),
                         'numeric precision of the forward pass',
                         constraints='fp32, fp16, bf16 or int8 (int8: backend openvino)'),
    ParameterSpec.engine('model.backend', (CertifyConfig, 'backend'),
                         'what runs the forward passes',
                         constraints='torch, onnxruntime or openvino'),
    ParameterSpec.engine('model.batch_size', (CertifyConfig, 'batch_size'),
                         'sub-sampled inputs per forward pass (bounds memory)'),
    ParameterSpec.engine('certify.num_samples', (CertifyConfig, 'num_samples'),
                         'N, sub-sampled copies of each frame'),
    ParameterSpec.engine('certify.keep_fraction_rgb', (CertifyConfig, 'keep_fraction_rgb'),
                         'fraction of RGB pixels kept per copy'),
    ParameterSpec.engine('certify.keep_fraction_depth', (CertifyConfig, 'keep_fraction_depth'),
                         'fraction of depth pixels kept per copy'),
    ParameterSpec.engine('certify.keep_points', (CertifyConfig, 'keep_points'),
                         'LiDAR points kept per copy when depth is a point cloud'),
    ParameterSpec.engine('certify.alpha', (CertifyConfig, 'alpha'),
                         'family-wise error rate of the per-frame certificate'),
    ParameterSpec.engine('certify.radius_rgb', (CertifyConfig, 'radius_rgb'),
                         'attack budget r_rgb (pixels) of mmcert/certification'),
    ParameterSpec.engine('certify.radius_depth', (CertifyConfig, 'radius_depth'),
                         'attack budget r_depth (pixels) of mmcert/certification'),
    ParameterSpec.engine('certify.ray', (CertifyConfig, 'ray'),
                         'mmcert/certified_radius reports t on the ray (t*a_rgb, t*a_depth)',
                         constraints='two integers >= 0, not both 0'),
    ParameterSpec.engine('certify.seed', (CertifyConfig, 'seed'),
                         'sub-sampling seed; -1 = fresh OS entropy every frame (deployment)',
                         none_as=-1),
    ParameterSpec('sync.slop', 0.02,
                  'largest RGB/depth header stamp difference paired, seconds', 0.0, 10.0,
                  feeds=(NodeSettings, 'slop_s')),
    ParameterSpec('qos.reliability', 'best_effort',
                  'reliability of the image subscriptions (fixed at start-up)', read_only=True,
                  feeds=(NodeSettings, 'reliability'), choices=RELIABILITIES),
    ParameterSpec('rgb.transport', 'raw',
                  'how RGB arrives: raw (Image on rgb/image) or compressed (CompressedImage, '
                  'jpeg/png, on rgb/image/compressed); fixed at start-up', read_only=True,
                  feeds=(NodeSettings, 'rgb_transport'), choices=RGB_TRANSPORTS),
    ParameterSpec('camera.k', '',
                  "the RGB camera's K as 9 numbers, row-major 'fx 0 cx 0 fy cy 0 0 1', for a "
                  "camera without CameraInfo (a CameraInfo, once received, wins); '' = none",
                  constraints='9 numbers separated by spaces, or empty',
                  feeds=(NodeSettings, 'camera_k'), parse=_camera_k),
    ParameterSpec('publish.overlay', True,
                  'publish mmcert/overlay (rgb8) and mmcert/overlay/compressed (jpeg)',
                  feeds=(NodeSettings, 'publish_overlay')),
    ParameterSpec('publish.radius', True, 'publish mmcert/certified_radius (mono8)',
                  feeds=(NodeSettings, 'publish_radius')),
    ParameterSpec('publish.views', True,
                  'publish mmcert/view/segmentation and mmcert/view/certified_radius (rgb8, '
                  'for viewers) and, with clouds, mmcert/labelled_points',
                  feeds=(NodeSettings, 'publish_views')),
    ParameterSpec('log.frames', False,
                  'log one INFO line per certified frame (stamp, certified and road shares, '
                  'time, mode)', feeds=(NodeSettings, 'log_frames')),
    ParameterSpec('view.max_radius', 16,
                  't shown brightest on mmcert/view/certified_radius', 1, 254,
                  feeds=(NodeSettings, 'view_max_radius')),
    ParameterSpec.engine('fs.sigma', (L2Settings, 'sigma'),
                         'l2 certificate: Gaussian noise sigma, RGB in [0, 1] units; 0 = off'),
    ParameterSpec.engine('fs.radius', (L2Settings, 'radius'),
                         'l2 radius of mmcert/l2_certification, RGB in [0, 1] units'),
    ParameterSpec.engine('fs.booster', (L2Settings, 'booster'),
                         "smoothness booster checkpoint of the l2 certificate; '' = none",
                         constraints='an existing booster checkpoint, or empty'),
    ParameterSpec.engine('fs.num_samples', (L2Settings, 'num_samples'),
                         'l2 estimation samples; 0 = certify.num_samples'),
    ParameterSpec.engine('fs.joint', (L2Settings, 'joint'),
                         'one ensemble for both certificates: the l0 votes come from the l2 '
                         "certificate's noisy passes (about half the work; l0 votes on noisy "
                         'inputs)'),
) + (
    # -- run-time robustness: time faults, frame budget, input health ----------------------
    ParameterSpec('sync.jump_back', 1.0,
                  'a stamp this many seconds behind the previous one of its stream (bag loop, '
                  'replay restart, sim-time reset) resets pairing, with one warning',
                  0.001, 86400.0, feeds=(RuntimeSettings, 'jump_back_s')),
    ParameterSpec('sync.future_tolerance', 1.0,
                  'a stamp more than this many seconds ahead of the node clock is rejected '
                  '(stamp_in_future); 0 = no check', 0.0, 86400.0,
                  feeds=(RuntimeSettings, 'future_tolerance_s')),
    ParameterSpec('sync.max_age', 5.0,
                  'seconds a message waits for its partner before it counts as unpaired',
                  0.001, 3600.0, feeds=(RuntimeSettings, 'max_age_s')),
    ParameterSpec('certify.time_budget', 60.0,
                  'seconds a frame may take; a frame still running then is abandoned and '
                  'counted (frames_abandoned); 0 = no budget', 0.0, 86400.0,
                  feeds=(RuntimeSettings, 'time_budget_s')),
    ParameterSpec('diagnostics.input_stale_warn', 2.0,
                  'seconds without a message on an input before diagnostics go to WARN',
                  0.001, 86400.0, feeds=(RuntimeSettings, 'stale_warn_s')),
    ParameterSpec('diagnostics.input_stale_error', 5.0,
                  'seconds without a message on an input before diagnostics go to ERROR',
                  0.001, 86400.0, feeds=(RuntimeSettings, 'stale_error_s')),
    ParameterSpec('diagnostics.max_processing_time_warn_ms', 0.0,
                  'processing time of a frame above which diagnostics go to WARN; 0 = none',
                  0.0, 1e9, feeds=(RuntimeSettings, 'processing_warn_ms')),
    ParameterSpec('diagnostics.max_processing_time_error_ms', 0.0,
                  'processing time of a frame above which diagnostics go to ERROR; 0 = none',
                  0.0, 1e9, feeds=(RuntimeSettings, 'processing_error_ms')),
) + (
    # -- the depth input: images or LiDAR clouds, and the RGB-only mode without it ---------
    ParameterSpec('depth.source', 'image',
                  'what the depth input is: image (depth/image, Image) or points '
                  '(depth/points, PointCloud2, certified as LiDAR points); fixed '
                  'at start-up', read_only=True, feeds=(DepthSettings, 'source'),
                  choices=DEPTH_SOURCES),
    ParameterSpec('depth.extrinsic', '',
                  "with depth.source points: the LiDAR-to-camera transform p_cam = R p_lidar + t "
                  "as 'tx ty tz qx qy qz qw' or 16 values of a 4x4 matrix (row-major); '' = "
                  'tf: the cloud frame -> RGB frame chain',
                  constraints='7 or 16 numbers separated by spaces, or empty',
                  feeds=(DepthSettings, 'extrinsic_values'), parse=_extrinsic_values),
    ParameterSpec('depth.timeout_s', 0.0,
                  'seconds without a depth message after which the node certifies RGB alone '
                  '(degraded: rgb-only) until depth returns; 0 = never (RGB waits for depth)',
                  0.0, 3600.0, feeds=(DepthSettings, 'timeout_s')),
)
PARAMETER_NAMES = tuple(spec.name for spec in PARAMETERS)
_FEEDING: dict[type, tuple[ParameterSpec, ...]] = {
    target: tuple(spec for spec in PARAMETERS if spec.feeds[0] is target)
    for target in (CertifyConfig, L2Settings, RuntimeSettings, DepthSettings, NodeSettings)}


def settings_from_parameters(target: type, values: Mapping[str, Any]) -> Any:
    """The ``target`` settings (a class of :data:`ENGINE_SETTINGS`, :class:`RuntimeSettings`
    or :class:`DepthSettings`) from the parameters that feed it, e.g. ``certify.num_samples``
    for :class:`~mmcert_ros.certify.CertifyConfig`; missing ones take the table's defaults
    (the engine's own for its fields), other parameters are ignored.

    :raises UserError: a value of the wrong type or out of range, naming the parameter; a
        name in one of ``target``'s namespaces (``fs.sigmaa``) that is no parameter.
    """
    specs = _FEEDING[target]
    spaces = {spec.name.split('.', 1)[0] for spec in specs}
    unknown = sorted(name for name in values if name not in PARAMETER_NAMES
                     and name.split('.', 1)[0] in spaces)
    if unknown:
        raise UserError(f'unknown parameter(s) {", ".join(unknown)}; {target.__name__} '
                        f'takes {", ".join(spec.name for spec in specs)}')
    fields = _fields(target, values)
    try:
        return target(**fields)
    except ValueError as error:   # the engine names its field: name the parameter
        parameter = {spec.feeds[1]: spec.name for spec in specs}.get(str(error).split(' ')[0])
        raise UserError(f'{parameter}: {error}' if parameter else str(error)) from error


def parameters_of(settings: Any) -> dict[str, Any]:
    """``{parameter name: value}`` that gives ``settings`` back through
    :func:`settings_from_parameters` (seed None as -1, the ray as a list)."""
    return {spec.name: _parameter_value(getattr(settings, spec.feeds[1]), spec.none_as)
            for spec in _FEEDING[type(settings)]}


def markdown_table(specs: Sequence[ParameterSpec] = PARAMETERS) -> str:
    """The parameter table of docs/ros.md: one row per parameter with its type (and whether
    it is read-only), default, range, the settings field it feeds and its description."""
    rows = ['| parameter | type | default | range | feeds | meaning |',
            '|---|---|---|---|---|---|']
    for spec in specs:
        kind = spec.type_name + (', read-only' if spec.read_only else '')
        target, field = spec.feeds
        rows.append(f'| `{spec.name}` | {kind} | {_markdown_value(spec.default)} | '
                    f'{_markdown_range(spec)} | `{target.__name__}.{field}` | '
                    f'{spec.description.replace("|", "/")} |')
    return '\n'.join(rows) + '\n'


def _markdown_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'`{value}`' if value else "`''`"
    return f'`{value}`' if isinstance(value, list) else repr(value)


def _markdown_range(spec: ParameterSpec) -> str:
    if spec.constraints:
        return spec.constraints.replace('|', '/')
    if spec.low is None:
        return ''
    if spec.high == _INT64_MAX:
        return f'>= {spec.low}'
    return f'[{number_text(spec.low)}, {number_text(spec.high)}]'


def _fields(target: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: value}`` of ``target`` from the parameters that feed it (defaults for the
    missing ones), each through :meth:`ParameterSpec.field_value`."""
    return {spec.feeds[1]: spec.field_value(values.get(spec.name, spec.default))
            for spec in _FEEDING[target]}


def _check_device_available(device: str) -> None:
    """Reject a CUDA device this machine does not have (``model.device ...: why``)."""
    try:
        resolve_device(device)
    except ValueError as error:
        raise UserError(f'model.{error}') from None


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mmcert_ros.segmenter.parameters --markdown``: print :func:`markdown_table`
    (the table of docs/ros.md, "Parameters")."""
    parser = argparse.ArgumentParser(prog='python -m mmcert_ros.segmenter.parameters',
                                     description='print the segmenter parameter table')
    parser.add_argument('--markdown', action='store_true', required=True,
                        help='as the Markdown table of docs/ros.md')
    parser.parse_args(argv)
    print(markdown_table(), end='')


if __name__ == '__main__':
    main()
