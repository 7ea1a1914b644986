"""The segmenter's parameters without ROS: one table of names, defaults, help texts and
ranges, and :class:`NodeSettings`, the validated value of all of them together. The node
declares them (:mod:`mmcert_ros.ros.parameters`) and the offline tools read them from the
same params file (:mod:`mmcert_ros.pipeline.settings`); both validate with
:meth:`NodeSettings.from_parameters`.

Engine defaults come from :class:`~mmcert_ros.certify.CertifyConfig` (one source of truth;
``model.device`` is ``auto``: a vehicle's GPU is used when present); ``config/mmcert.yaml``
repeats them for people reading the file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmcert_ros.certify.config import PARAMETER_FIELDS, CertifyConfig
from mmcert_ros.certify.l2.certifier import PARAMETER_FIELDS as L2_PARAMETER_FIELDS
from mmcert_ros.certify.l2.certifier import L2Settings
from mmcert_ros.device import resolve_device
from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.errors import UserError
from mmcert_ros.pipeline.frames import DEPTH_SOURCES
from mmcert_ros.pipeline.message_fields import camera_info_from_k

RELIABILITIES = ('best_effort', 'reliable')
#: how RGB images arrive: sensor_msgs/Image on rgb/image, or image_transport's compressed
#: sensor_msgs/CompressedImage on rgb/image/compressed
RGB_TRANSPORTS = ('raw', 'compressed')
_PARAMETER_OF_FIELD = {field: name for name, field in PARAMETER_FIELDS.items()}
_INT64_MAX = 2 ** 63 - 1


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter: default value, help text and optional numeric range."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    constraints: str = ''
    read_only: bool = False

    def conform(self, value: Any) -> Any:
        """``value`` (a start-up override) in this parameter's type, checked against its range.

        An integer given for a floating-point parameter is taken as that number
        (``-p fs.sigma:=1`` means 1.0); every other type mismatch is refused.

        :raises UserError: naming the parameter, the value and what is expected.
        """
        expected = self.default
        if isinstance(expected, bool):
            ok, kind = isinstance(value, bool), 'true or false'
        elif isinstance(expected, int):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), 'an integer'
        elif isinstance(expected, float):
            ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
            value = float(value) if ok else value
        elif isinstance(expected, str):
            ok, kind = isinstance(value, str), 'a string'
        else:  # an integer list, e.g. certify.ray
            ok, kind = isinstance(value, (list, tuple)) and all(
                isinstance(item, int) and not isinstance(item, bool) for item in value), \
                'a list of integers'
            value = list(value) if ok else value
        if not ok:
            raise UserError(f'{self.name}: expected {kind}, got {value!r}')
        if self.low is not None and not self.low <= value <= self.high:
            raise UserError(f'{self.name}: {value!r} is outside [{self.low!r}, {self.high!r}]')
        return value


_ENGINE = CertifyConfig().to_parameters()

#: Every parameter of the ``mmcert_segmenter`` node, in declaration order.
PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec('model.checkpoint', '',
                  "checkpoint file of the base model; '' = the shipped default",
                  constraints='an existing file, or empty'),
    ParameterSpec('model.device', _ENGINE['model.device'],
                  'torch device of the engine; auto = CUDA when available, else CPU',
                  constraints='auto, cpu, cuda or cuda:N'),
    ParameterSpec('model.precision', _ENGINE['model.precision'],
                  'numeric precision of the forward pass',
                  constraints='fp32, fp16, bf16 or int8 (int8: backend openvino)'),
    ParameterSpec('model.backend', _ENGINE['model.backend'],
                  'what runs the forward passes', constraints='torch, onnxruntime or openvino'),
    ParameterSpec('model.batch_size', _ENGINE['model.batch_size'],
                  'sub-sampled inputs per forward pass (bounds memory)', 1, 65536),
    ParameterSpec('certify.num_samples', _ENGINE['certify.num_samples'],
                  'N, sub-sampled copies of each frame', 1, 1_000_000),
    ParameterSpec('certify.keep_fraction_rgb', _ENGINE['certify.keep_fraction_rgb'],
                  'fraction of RGB pixels kept per copy', 0.0, 1.0, constraints='(0, 1]'),
    ParameterSpec('certify.keep_fraction_depth', _ENGINE['certify.keep_fraction_depth'],
                  'fraction of depth pixels kept per copy', 0.0, 1.0, constraints='(0, 1]'),
    ParameterSpec('certify.keep_points', _ENGINE['certify.keep_points'],
                  'LiDAR points kept per copy when depth is a point cloud', 1, _INT64_MAX),
    ParameterSpec('certify.alpha', _ENGINE['certify.alpha'],
                  'family-wise error rate of the per-frame certificate', 0.0, 1.0,
                  constraints='(0, 1)'),
    ParameterSpec('certify.radius_rgb', _ENGINE['certify.radius_rgb'],
                  'attack budget r_rgb (pixels) of mmcert/certification', 0, _INT64_MAX),
    ParameterSpec('certify.radius_depth', _ENGINE['certify.radius_depth'],
                  'attack budget r_depth (pixels) of mmcert/certification', 0, _INT64_MAX),
    ParameterSpec('certify.ray', _ENGINE['certify.ray'],
                  'mmcert/certified_radius reports t on the ray (t*a_rgb, t*a_depth)',
                  constraints='two integers >= 0, not both 0'),
    ParameterSpec('certify.seed', _ENGINE['certify.seed'],
                  'sub-sampling seed; -1 = fresh OS entropy every frame (deployment)',
                  -1, _INT64_MAX),
    ParameterSpec('sync.slop', 0.02,
                  'largest RGB/depth header stamp difference paired, seconds', 0.0, 10.0),
    ParameterSpec('qos.reliability', 'best_effort',
                  'reliability of the image subscriptions (fixed at start-up)',
                  constraints='best_effort or reliable', read_only=True),
    ParameterSpec('rgb.transport', 'raw',
                  'how RGB arrives: raw (Image on rgb/image) or compressed (CompressedImage, '
                  'jpeg/png, on rgb/image/compressed); fixed at start-up',
                  constraints='raw or compressed', read_only=True),
    ParameterSpec('camera.k', '',
                  "the RGB camera's K as 9 numbers, row-major 'fx 0 cx 0 fy cy 0 0 1', for a "
                  "camera without CameraInfo (a CameraInfo, once received, wins); '' = none",
                  constraints='9 numbers separated by spaces, or empty'),
    ParameterSpec('publish.overlay', True,
                  'publish mmcert/overlay (rgb8) and mmcert/overlay/compressed (jpeg)'),
    ParameterSpec('publish.radius', True, 'publish mmcert/certified_radius (mono8)'),
    ParameterSpec('publish.views', True,
                  'publish mmcert/view/segmentation and mmcert/view/certified_radius (rgb8, '
                  'for viewers) and, with clouds, mmcert/labelled_points'),
    ParameterSpec('log.frames', False,
                  'log one INFO line per certified frame (stamp, certified and road shares, '
                  'time, mode)'),
    ParameterSpec('view.max_radius', 16,
                  't shown brightest on mmcert/view/certified_radius', 1, 254),
    ParameterSpec('fs.sigma', L2Settings.sigma,
                  'l2 certificate: Gaussian noise sigma, RGB in [0, 1] units; 0 = off',
                  0.0, 10.0),
    ParameterSpec('fs.radius', L2Settings.radius,
                  'l2 radius of mmcert/l2_certification, RGB in [0, 1] units', 0.0, 100.0),
    ParameterSpec('fs.booster', L2Settings.booster,
                  "smoothness booster checkpoint of the l2 certificate; '' = none",
                  constraints='an existing booster checkpoint, or empty'),
    ParameterSpec('fs.num_samples', L2Settings.num_samples,
                  'l2 estimation samples; 0 = certify.num_samples', 0, 1_000_000),
    ParameterSpec('fs.joint', L2Settings.joint,
                  'one ensemble for both certificates: the l0 votes come from the l2 '
                  "certificate's noisy passes (about half the work; l0 votes on noisy inputs)"),
) + (
    # -- run-time robustness: time faults, frame budget, input health ----------------------
    ParameterSpec('sync.jump_back', 1.0,
                  'a stamp this many seconds behind the previous one of its stream (bag loop, '
                  'replay restart, sim-time reset) resets pairing, with one warning',
                  0.001, 86400.0),
    ParameterSpec('sync.future_tolerance', 1.0,
                  'a stamp more than this many seconds ahead of the node clock is rejected '
                  '(stamp_in_future); 0 = no check', 0.0, 86400.0),
    ParameterSpec('sync.max_age', 5.0,
                  'seconds a message waits for its partner before it counts as unpaired',
                  0.001, 3600.0),
    ParameterSpec('certify.time_budget', 60.0,
                  'seconds a frame may take; a frame still running then is abandoned and '
                  'counted (frames_abandoned); 0 = no budget', 0.0, 86400.0),
    ParameterSpec('diagnostics.input_stale_warn', 2.0,
                  'seconds without a message on an input before diagnostics go to WARN',
                  0.001, 86400.0),
    ParameterSpec('diagnostics.input_stale_error', 5.0,
                  'seconds without a message on an input before diagnostics go to ERROR',
                  0.001, 86400.0),
    ParameterSpec('diagnostics.max_processing_time_warn_ms', 0.0,
                  'processing time of a frame above which diagnostics go to WARN; 0 = none',
                  0.0, 1e9),
    ParameterSpec('diagnostics.max_processing_time_error_ms', 0.0,
                  'processing time of a frame above which diagnostics go to ERROR; 0 = none',
                  0.0, 1e9),
) + (
    # -- the depth input: images or LiDAR clouds, and the RGB-only mode without it ---------
    ParameterSpec('depth.source', 'image',
                  'what the depth input is: image (depth/image, Image) or points '
                  '(depth/points, PointCloud2, certified as LiDAR points); fixed '
                  'at start-up', constraints='image or points', read_only=True),
    ParameterSpec('depth.extrinsic', '',
                  "with depth.source points: the LiDAR-to-camera transform p_cam = R p_lidar + t "
                  "as 'tx ty tz qx qy qz qw' or 16 values of a 4x4 matrix (row-major); '' = "
                  'tf: the cloud frame -> RGB frame chain',
                  constraints="7 or 16 numbers separated by spaces, or empty"),
    ParameterSpec('depth.timeout_s', 0.0,
                  'seconds without a depth message after which the node certifies RGB alone '
                  '(degraded: rgb-only) until depth returns; 0 = never (RGB waits for depth)',
                  0.0, 3600.0),
)
PARAMETER_NAMES = tuple(spec.name for spec in PARAMETERS)


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """The run-time robustness parameters (``sync.jump_back``, ``sync.future_tolerance``,
    ``sync.max_age``, ``certify.time_budget``, ``diagnostics.*``), in seconds / milliseconds
    as named; 0 in ``future_tolerance_s``, ``time_budget_s`` and the processing-time limits
    means off."""

    jump_back_s: float
    future_tolerance_s: float
    max_age_s: float
    time_budget_s: float
    stale_warn_s: float
    stale_error_s: float
    processing_warn_ms: float
    processing_error_ms: float

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'RuntimeSettings':
        """Validate the block's values (ranges as declared).

        :raises UserError: naming the offending parameter and the reason.
        """
        numbers = {}
        for spec in (spec for spec in PARAMETERS if spec.name in _RUNTIME_FIELDS):
            value = values[spec.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not spec.low <= value <= spec.high:
                raise UserError(f'{spec.name} must be a number in [{spec.low:g}, '
                                f'{spec.high:g}], got {value!r}')
            numbers[_RUNTIME_FIELDS[spec.name]] = float(value)
        if numbers['stale_error_s'] < numbers['stale_warn_s']:
            raise UserError('diagnostics.input_stale_error must be >= '
                            'diagnostics.input_stale_warn')
        return cls(**numbers)


_RUNTIME_FIELDS = {
    'sync.jump_back': 'jump_back_s', 'sync.future_tolerance': 'future_tolerance_s',
    'sync.max_age': 'max_age_s', 'certify.time_budget': 'time_budget_s',
    'diagnostics.input_stale_warn': 'stale_warn_s',
    'diagnostics.input_stale_error': 'stale_error_s',
    'diagnostics.max_processing_time_warn_ms': 'processing_warn_ms',
    'diagnostics.max_processing_time_error_ms': 'processing_error_ms'}


@dataclasses.dataclass(frozen=True)
class DepthSettings:
    """The depth input (``depth.*``).

    :ivar source: ``'image'`` (``depth/image``) or ``'points'`` (``depth/points``).
    :ivar extrinsic_values: the 7 or 16 numbers of ``depth.extrinsic`` (validated; empty =
        the tf chain from the cloud's frame to the RGB frame); :attr:`extrinsic` is the
        transform.
    :ivar timeout_s: seconds without depth before the RGB-only mode; 0 = never.
    """

    source: str = 'image'
    extrinsic_values: tuple[float, ...] = ()
    timeout_s: float = 0.0

    @property
    def extrinsic(self) -> Extrinsic | None:
        """The fixed LiDAR-to-camera transform, or None (from tf)."""
        return Extrinsic.from_values(self.extrinsic_values) if self.extrinsic_values else None

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'DepthSettings':
        """Validate ``depth.*``.

        :raises UserError: naming the offending parameter and the reason.
        """
        source = values['depth.source']
        if source not in DEPTH_SOURCES:
            raise UserError(f'depth.source must be one of {DEPTH_SOURCES}, got {source!r}')
        text = values['depth.extrinsic']
        if not isinstance(text, str):
            raise UserError(f'depth.extrinsic must be a string of 7 or 16 numbers, got {text!r}')
        try:
            numbers = tuple(float(item) for item in text.replace(',', ' ').split())
            if numbers:
                Extrinsic.from_values(numbers)
        except ValueError as error:
            raise UserError(f'depth.extrinsic: {error}') from None
        timeout = values['depth.timeout_s']
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 <= timeout <= 3600:
            raise UserError(f'depth.timeout_s must be seconds in [0, 3600], got {timeout!r}')
        return cls(source=source, extrinsic_values=numbers, timeout_s=float(timeout))


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """Every segmenter parameter, validated together.

    :ivar certify: the engine configuration (``certify.*``, ``model.device/precision/batch_size``).
    :ivar checkpoint: model checkpoint path, '' = the shipped default.
    :ivar slop_s: stamp pairing tolerance, seconds.
    :ivar reliability: 'best_effort' or 'reliable' (subscriptions).
    :ivar publish_overlay: whether ``mmcert/overlay`` is published.
    :ivar publish_radius: whether ``mmcert/certified_radius`` is published.
    :ivar rgb_transport: one of :data:`RGB_TRANSPORTS`.
    :ivar camera_k: K (9 values, row-major) given as ``camera.k``, or None.
    :ivar publish_views: whether the view images (and labelled points) are published.
    :ivar view_max_radius: t at the top of the certified-radius view's colour ramp.
    :ivar log_frames: whether each certified frame is logged (one INFO line).
    :ivar l2: the l2 certificate's settings (``fs.*``; ``l2.enabled`` is ``fs.sigma > 0``);
        ``l2.booster`` is an existing file or ''.
    :ivar runtime: time-fault, frame-budget and input-health settings.
    :ivar depth: the depth input (``depth.*``).
    """

    certify: CertifyConfig
    checkpoint: str
    slop_s: float
    reliability: str
    publish_overlay: bool
    publish_radius: bool
    l2: L2Settings
    runtime: RuntimeSettings
    depth: DepthSettings = DepthSettings()
    rgb_transport: str = 'raw'
    camera_k: tuple[float, ...] | None = None
    publish_views: bool = True
    view_max_radius: int = 16
    log_frames: bool = False

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'NodeSettings':
        """Validate a full ``{parameter name: value}`` mapping.

        :raises UserError: naming the offending parameter and the reason.
        """
        missing = [name for name in PARAMETER_NAMES if name not in values]
        if missing:
            raise ValueError(f'missing parameters: {", ".join(missing)}')
        engine = {name: values[name] for name in _ENGINE}
        engine['certify.ray'] = list(values['certify.ray'])
        try:
            certify = CertifyConfig.from_parameters(engine)
        except ValueError as error:    # name the ROS parameter, not only the engine field
            parameter = _PARAMETER_OF_FIELD.get(str(error).split(' ', 1)[0])
            raise UserError(f'{parameter}: {error}' if parameter else str(error)) from error
        _check_device_available(certify.device)
        checkpoint = str(values['model.checkpoint'])
        if checkpoint and not Path(checkpoint).expanduser().is_file():
            raise UserError(f'model.checkpoint: no such file: {checkpoint}')
        slop = values['sync.slop']
        if isinstance(slop, bool) or not isinstance(slop, (int, float)) or not 0 <= slop <= 10:
            raise UserError(f'sync.slop must be seconds in [0, 10], got {slop!r}')
        reliability = values['qos.reliability']
        if reliability not in RELIABILITIES:
            raise UserError(
                f'qos.reliability must be one of {RELIABILITIES}, got {reliability!r}')
        for name in ('publish.overlay', 'publish.radius', 'publish.views', 'log.frames'):
            if not isinstance(values[name], bool):
                raise UserError(f'{name} must be true or false, got {values[name]!r}')
        if checkpoint:
            checkpoint = str(Path(checkpoint).expanduser())
        try:
            l2 = L2Settings.from_parameters({name: values[name] for name in L2_PARAMETER_FIELDS})
        except ValueError as error:     # its messages name the fs.* parameter
            raise UserError(str(error)) from error
        if l2.booster:
            booster = Path(l2.booster).expanduser()
            if not booster.is_file():
                raise UserError(f'fs.booster: no such file: {l2.booster}')
            l2 = l2.replace(booster=str(booster))
        return cls(certify=certify, checkpoint=checkpoint,
                   slop_s=float(slop), reliability=reliability,
                   publish_overlay=values['publish.overlay'],
                   publish_radius=values['publish.radius'], l2=l2,
                   runtime=RuntimeSettings.from_parameters(values),
                   depth=DepthSettings.from_parameters(values),
                   rgb_transport=_rgb_transport(values['rgb.transport']),
                   camera_k=_camera_k(values['camera.k']),
                   publish_views=values['publish.views'],
                   view_max_radius=_view_max_radius(values['view.max_radius']),
                   log_frames=values['log.frames'])


def _rgb_transport(value) -> str:
    if value not in RGB_TRANSPORTS:
        raise UserError(f'rgb.transport must be one of {RGB_TRANSPORTS}, got {value!r}')
    return value


def _camera_k(value) -> tuple[float, ...] | None:
    """``camera.k`` as 9 floats (checked as a camera matrix), or None for ''."""
    if not isinstance(value, str):
        raise UserError(f'camera.k must be a string of 9 numbers, got {value!r}')
    if not value.strip():
        return None
    try:
        numbers = tuple(float(v) for v in value.split())
    except ValueError:
        raise UserError(f'camera.k must be 9 numbers separated by spaces, got {value!r}') from None
    try:
        camera_info_from_k(numbers, 1, 1)
    except ValueError as error:
        raise UserError(f'camera.k: {error}') from None
    return numbers


def _view_max_radius(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 254:
        raise UserError(f'view.max_radius must be an integer in [1, 254], got {value!r}')
    return value


def _check_device_available(device: str) -> None:
    """Reject a CUDA device this machine does not have (``model.device ...: why``)."""
    try:
        resolve_device(device)
    except ValueError as error:
        raise UserError(f'model.{error}') from None
