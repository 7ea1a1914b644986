"""The l2 (feature-space smoothing) certificate of one RGB-D frame, at pixels.

:func:`certify_l2` is the one call the node, ``mmcert-ros certify`` and ``mmcert-ros evaluate``
make for the l2 certificate (docs/feature_smoothing.md): Gaussian noise of standard deviation
``sigma`` on the full RGB image (in [0, 1] units), then MMCert's exact-k sub-sampling, then
the base network's unit features on its 1/8 grid (optionally through a
:class:`~mmcert_ros.models.booster.SmoothnessBooster`); the cosine head's label per cell is
certified with Holm across cells and carried to pixels under the network's bilinear
upsampling (:func:`~mmcert_ros.certify.feature_smoothing.cells_to_pixels`).

Settings shared with the l0 engine come from its :class:`~mmcert_ros.certify.CertifyConfig`:
``num_samples`` (N estimation samples), ``keep_fraction_*``, ``alpha``, ``seed`` (None =
fresh OS entropy per frame), ``batch_size`` and ``device``. The forward passes run in fp32
whatever ``precision`` says (the confidence bounds assume exact unit features).
Nothing here imports the ROS client library.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmcert_ros.certify import feature_smoothing as fs
from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.certify.confidence import round_down_float32
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.engine import frame_tensors
from mmcert_ros.device import resolve_device
from mmcert_ros.certify.sampling import kept_count, make_generator
from mmcert_ros.data.frame import validate_depth, validate_rgb

#: noisy samples that choose the reference vectors before the N estimation samples
DEFAULT_NUM_SELECTION = 16
#: ROS parameter name -> :class:`L2Settings` field (the node's ``fs.*`` parameters)
PARAMETER_FIELDS = {'fs.sigma': 'sigma', 'fs.radius': 'radius', 'fs.booster': 'booster',
                    'fs.num_samples': 'num_samples'}


@dataclass(frozen=True)
class L2Settings:
    """Validated settings of the l2 certificate (the ``fs.*`` parameters); raises ``ValueError``
    naming the parameter.

    :ivar sigma: noise standard deviation, RGB in [0, 1] units; 0 = l2 certificate off.
    :ivar radius: l2 radius of the published ``mmcert/l2_certification`` mask, same units.
    :ivar booster: booster checkpoint ('' = none).
    :ivar num_samples: estimation samples N; 0 = the engine's ``certify.num_samples``.
    """

    sigma: float = 0.0
    radius: float = 0.0
    booster: str = ''
    num_samples: int = 0

    def __post_init__(self) -> None:
        for name in ('sigma', 'radius'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f'fs.{name} must be a finite number >= 0, got {value!r}')
            object.__setattr__(self, name, float(value))
        if not isinstance(self.booster, str):
            raise ValueError(f'fs.booster must be a path string, got {self.booster!r}')
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) \
                or self.num_samples < 0:
            raise ValueError(f'fs.num_samples must be an integer >= 0, got {self.num_samples!r}')

    @property
    def enabled(self) -> bool:
        return self.sigma > 0

    def replace(self, **changes: Any) -> 'L2Settings':
        """A validated copy with ``changes`` (field names) applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> 'L2Settings':
        """From flat ROS parameters (``fs.sigma``...); other namespaces are ignored, an unknown
        ``fs.*`` name raises ``ValueError``."""
        unknown = sorted(k for k in values if k.startswith('fs.') and k not in PARAMETER_FIELDS)
        if unknown:
            raise ValueError(f'unknown parameter(s) {", ".join(unknown)}; the l2 certificate '
                             f'takes {", ".join(PARAMETER_FIELDS)}')
        return cls(**{field_: values[key] for key, field_ in PARAMETER_FIELDS.items()
                      if key in values})

    def engine_config(self, config: CertifyConfig) -> CertifyConfig:
        """``config`` with ``num_samples`` replaced by ``fs.num_samples`` when that is set."""
        return config.replace(num_samples=self.num_samples) if self.num_samples else config


@dataclass(frozen=True)
class L2Certificate:
    """The l2 certificate of one frame (pixel arrays at the RGB size, on the CPU).

    With probability at least ``1 - alpha`` over the noise and the masks, every pixel in
    ``certified`` has smoothed label ``labels`` at every RGB image within l2 distance
    ``l2_radius`` of the observed one (RGB in [0, 1] units; depth unchanged), and,
    simultaneously for all pixels, ``labels[p]`` holds within ``radius[p]`` (0 = none).
    The smoothed label is the argmax of the cosine head on the expected (boosted) feature.

    :ivar labels: ``(H, W)`` uint8 smoothed-feature class ids.
    :ivar certified: ``(H, W)`` bool, certified (Holm over cells) at ``l2_radius``.
    :ivar radius: ``(H, W)`` float32 certified l2 radius per pixel (Bonferroni), 0 = none;
        rounded down from the float64 supremum, so it never claims more.
    :ivar cells: the per-cell :class:`~mmcert_ros.certify.feature_smoothing.CosineCertificate`
        (scores, FCSB map, margins) from which other radii are evaluated.
    :ivar timings: seconds: 'sampling_inference' (noise, masks and forward passes),
        'certification' and 'total'.
    """

    labels: np.ndarray
    certified: np.ndarray
    radius: np.ndarray
    cells: fs.CosineCertificate
    sigma: float
    l2_radius: float
    num_samples: int
    num_selection: int
    alpha: float
    boosted: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def certified_fraction(self) -> float:
        """Fraction of pixels certified (Holm) at ``l2_radius``."""
        return float(self.certified.mean())

    def certified_at(self, l2_radius: float) -> np.ndarray:
        """``(H, W)`` Holm mask at another l2 radius, from the stored statistics (same
        guarantee as ``certified``)."""
        cell_mask = self.cells.certified_at(l2_radius)
        return fs.cells_to_pixels(self.cells.labels, cell_mask, self.cells.certified_radius,
                                  self.labels.shape)[1]

    def fcsb_at(self, l2_radius: float) -> np.ndarray:
        """Per-cell FCSB at another radius (simultaneous over cells, probability 1 - alpha)."""
        return self.cells.smoothed.fcsb(l2_radius, self.alpha, self.cells.method)

    def agreeing(self, labels: np.ndarray) -> np.ndarray:
        """``certified & (self.labels == labels)``: the l2 mask beside a published segmentation
        (e.g. the l0 majority vote), keeping only pixels where the two labels agree. It
        certifies the l2-smoothed label, which there agrees with the published label at the
        clean input (docs/certification.md section 8)."""
        return self.certified & (self.labels == np.asarray(labels))

    def summary(self) -> dict:
        """JSON-ready figures for reports: settings, certified fraction, score, FCSB, radius."""
        cells = self.cells
        certified_radius = self.radius[self.radius > 0]
        return {
            'sigma': self.sigma, 'radius': self.l2_radius, 'num_samples': self.num_samples,
            'num_selection': self.num_selection, 'alpha': self.alpha, 'method': cells.method,
            'boosted': self.boosted, 'cells': int(cells.labels.size),
            'certified_fraction': self.certified_fraction,
            'score_mean': float(cells.smoothed.score_mean.mean()),
            'fcsb': _distribution(cells.fcsb),
            'radius_map': {'uncertified_fraction': float(np.mean(self.radius <= 0)),
                           'median': float(np.median(certified_radius))
                           if certified_radius.size else 0.0,
                           'max': float(certified_radius.max()) if certified_radius.size else 0.0},
            'timings_s': dict(self.timings),
        }


def certify_l2(model: torch.nn.Module, rgb: np.ndarray, depth: np.ndarray,
               config: CertifyConfig, sigma: float, radius: float,
               booster: torch.nn.Module | None = None, *,
               num_selection: int = DEFAULT_NUM_SELECTION,
               method: str = 'hoeffding', cancel: CancelToken | None = None) -> L2Certificate:
    """Certify one frame against l2-bounded RGB perturbations (see :class:`L2Certificate`).

    :param model: base network with ``features``, ``classify`` and ``prototypes``
        (:class:`~mmcert_ros.models.SparseRGBDNet`). When it (and the booster wrapper) has
        ``features_kept``, the noise is drawn only at the kept RGB pixels
        (:func:`~mmcert_ros.certify.feature_smoothing.kept_pixel_rgbd_encoder`): the same
        distribution of features, hence the same certificate semantics, at a fraction of
        the cost.
    :param rgb: ``(H, W, 3)`` uint8 RGB.
    :param depth: ``(Hd, Wd)`` float32 metres; NaN, Inf and values <= 0 are invalid.
    :param config: N = ``config.num_samples`` estimation samples, keep fractions, alpha,
        seed, batch size and device.
    :param sigma: Gaussian noise standard deviation, RGB in [0, 1] units (> 0).
    :param radius: l2 radius R >= 0 of the ``certified`` mask, same units.
    :param booster: optional :class:`~mmcert_ros.models.booster.SmoothnessBooster` (trained
        for this sigma); the base network stays frozen.
    :param num_selection: noisy samples choosing the reference vectors (not reused).
    :param cancel: checked before every batch of noisy forward passes; when it is cancelled
        or past its deadline the frame is abandoned with
        :class:`~mmcert_ros.certify.cancel.FrameCancelled` (nothing partial is returned).
    :raises ValueError: bad image, sigma, radius or method (the message says which).
    """
    from mmcert_ros.models.booster import BoostedModel

    validate_rgb(rgb)
    validate_depth(depth)
    start = time.perf_counter()
    device = resolve_device(config.device)
    network = BoostedModel(model, booster) if booster is not None else model
    network = network.to(device).eval()
    rgb_t, depth_t = frame_tensors(rgb, depth, device)
    height, width = rgb.shape[:2]
    k_rgb = kept_count(config.keep_fraction_rgb, height * width)
    k_depth = kept_count(config.keep_fraction_depth, depth.shape[0] * depth.shape[1])
    token = cancel or CancelToken()
    if callable(getattr(network, 'features_kept', None)):  # noise only at the kept pixels
        encoder = fs.kept_pixel_rgbd_encoder(network.features_kept, depth_t, k_rgb, k_depth,
                                             sigma)
    else:
        encoder = fs.joint_rgbd_encoder(network.features, depth_t, k_rgb, k_depth, sigma)
    smoother = fs.FeatureSmoother(_checked(encoder, token), sigma, config.batch_size,
                                  adds_noise=True)
    generator = make_generator(config.seed, device)
    reference = smoother.select_reference(rgb_t, num_selection, generator)
    smoothed = smoother.estimate(rgb_t, reference, config.num_samples, generator)
    sampled = time.perf_counter()
    cells = fs.certify_cosine_head(smoothed, network.prototypes, radius, config.alpha, method)
    labels, certified, pixel_radius = fs.cells_to_pixels(
        cells.labels, cells.certified, cells.certified_radius, (height, width))
    done = time.perf_counter()
    return L2Certificate(
        labels=labels.astype(np.uint8), certified=certified,
        radius=round_down_float32(pixel_radius), cells=cells, sigma=float(sigma),
        l2_radius=float(radius), num_samples=config.num_samples, num_selection=num_selection,
        alpha=config.alpha, boosted=booster is not None,
        timings={'sampling_inference': sampled - start, 'certification': done - sampled,
                 'total': done - start})


def _checked(encoder, cancel: CancelToken):
    """``encoder`` (a :data:`~mmcert_ros.certify.feature_smoothing.NoisyEncoder`) checking
    ``cancel`` before every batch."""
    def checked(*args) -> torch.Tensor:
        cancel.check()
        return encoder(*args)
    return checked


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64).ravel()
    return {'mean': float(values.mean()), 'min': float(values.min()),
            'p10': float(np.percentile(values, 10)), 'median': float(np.median(values))}
