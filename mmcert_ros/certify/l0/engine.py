"""CertifiedSegmenter: one RGB-D frame in, labels and a per-pixel certificate out.

The engine draws N sub-sampled inputs, runs the base model on them in micro-batches on the
configured device, counts votes per pixel and certifies pixels (docs/certification.md
sections 2 to 6).
It imports torch, numpy and scipy, never the ROS client library.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from dataclasses import dataclass, field

import numpy as np
import torch

from mmcert_ros.certify.l0.bounds import delta as perturbation_bound
from mmcert_ros.certify.l0.bounds import holm_certify, radius_table
from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB, CertifyConfig
from mmcert_ros.certify.l0.points import ablate_points, free_pixel, kept_point_count, point_frames
from mmcert_ros.certify.l0.sampling import ablate, draw_kept_indices, kept_count, make_generator
from mmcert_ros.certify.l0.votes import DenseVotes, GridVotes, predict_labels  # noqa: F401
from mmcert_ros.certify.tensors import FrameTensors, frame_tensors
from mmcert_ros.data.frame import Frame, validate_depth, validate_rgb
from mmcert_ros.data.projection import ProjectedPoints, zbuffer
from mmcert_ros.device import resolve_device

_AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
_LOG = logging.getLogger(__name__)


@dataclass
class Certificate:
    """The certified segmentation of one frame (all arrays at the RGB resolution, on the CPU).

    What is certified is the *ensemble* label of a pixel: the class the base model votes for
    with the largest probability over the random sub-sampling (the majority vote as
    N -> infinity), at the attacked input. ``labels`` is its N-sample estimate at the observed
    input. Guarantees, each with probability at least ``1 - alpha`` over the sub-sampling
    (docs/certification.md section 1):

    - ``certified``: for every pixel in the mask, the ensemble label at every input changing
      at most ``radius_budget = (r_rgb, r_depth)`` pixels is ``labels[p]`` (Holm over all
      pixels); with point-cloud depth r_depth counts in-view points moved, deleted or
      injected (docs/certification.md section 13).
    - ``radius``: simultaneously for every pixel, its ensemble label is ``labels[p]`` at every
      input within ``(t * ray[0], t * ray[1])`` for ``t = radius[p]`` (Bonferroni); -1 = not
      certified at 0. The Holm mask at a budget on the ray certifies at least the pixels the
      map does there.

    :ivar labels: ``(H, W)`` uint8 majority-vote class ids of the N samples (ties: the
        smallest class id).
    :ivar certified: ``(H, W)`` bool, certified at ``radius_budget``.
    :ivar radius: ``(H, W)`` int16 certified t on the ray, -1 = none.
    :ivar top_counts: ``(H, W)`` int32 votes for the majority label, in [0, N].
    :ivar delta: delta(radius_budget), the perturbation bound used for ``certified``
        (docs/certification.md section 2).
    :ivar n: ``(n_rgb, n_depth)`` elements per modality: RGB pixels, depth pixels (or
        in-view LiDAR points with point-cloud depth).
    :ivar k: ``(k_rgb, k_depth)`` elements kept per sample and modality.
    :ivar num_samples: N, the number of sub-sampled inputs voted.
    :ivar num_classes: C, the classes of the model's output.
    :ivar alpha: the family-wise error rate of ``certified`` and of ``radius``.
    :ivar radius_budget: ``(r_rgb, r_depth)``, the attack budget of ``certified``.
    :ivar ray: ``(a_rgb, a_depth)``, the direction of ``radius``: budget ``(t a_rgb, t a_depth)``.
    :ivar timings: seconds per stage: 'preprocess', 'sampling', 'inference',
        'certification', 'total'.
    """

    labels: np.ndarray
    certified: np.ndarray
    radius: np.ndarray
    top_counts: np.ndarray
    delta: float
    n: tuple[int, int]
    k: tuple[int, int]
    num_samples: int
    num_classes: int
    alpha: float
    radius_budget: tuple[int, int]
    ray: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def certified_fraction(self) -> float:
        """Fraction of pixels certified at ``radius_budget``."""
        return float(self.certified.mean())

    def certified_at(self, r_rgb: int, r_depth: int) -> np.ndarray:
        """Holm-certified mask at another budget, from the stored votes (same guarantee)."""
        bound = perturbation_bound(self.n, self.k, (r_rgb, r_depth))
        return holm_certify(self.top_counts, self.num_samples, self.num_classes, bound,
                            self.alpha)


class CertifiedSegmenter:
    """MMCert certification of a base segmentation model.

    :param model: a torch module following the model contract of :mod:`mmcert_ros.models`:
        ``model(rgb, rgb_keep, depth, depth_keep) -> logits (B, C, H, W)`` at the RGB size.
        A model that also has ``forward_kept(rgb, rgb_indices, depth, depth_indices)`` (the
        un-ablated frame and the kept flat indices, see ``SparseRGBDNet.forward_kept``) is
        called that way instead: the same samples, without building dense ablated tensors.
        A model that also has ``grid_logits_kept`` (same arguments, logits on a coarse grid)
        and ``logit_upsampling = 'bilinear'`` (its logits are ``upsample_bilinear`` of the
        grid logits) has its votes counted on the grid (:mod:`mmcert_ros.certify.l0.votes`):
        the same counts, a fraction of the work. The forward passes run on what
        :func:`prepared_model` gives for ``config.precision`` / ``config.backend``.
    :param config: engine settings; may be replaced between frames (``segmenter.config = ...``).
    :param warn: where :attr:`keep_fraction_warning` goes whenever a config brings it (at
        construction and when the keep fractions change); default: this module's
        ``logging`` logger at WARNING. The node passes its ROS logger.
    """

    def __init__(self, model: torch.nn.Module, config: CertifyConfig | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        config = config or CertifyConfig()
        self.device = resolve_device(config.device)
        self.model = model.to(self.device).eval()
        self._warn = warn or _LOG.warning
        self.config = config
        self._inference_model(self.config)  # a missing backend package fails here, not later

    @property
    def config(self) -> CertifyConfig:
        return self._config

    @config.setter
    def config(self, config: CertifyConfig) -> None:
        previous = getattr(self, '_config', None)
        if previous is not None and resolve_device(config.device) != self.device:
            raise ValueError('the device cannot change on a running segmenter; build a new one')
        self._config = config
        fractions = (config.keep_fraction_rgb, config.keep_fraction_depth)
        if previous is None or fractions != (previous.keep_fraction_rgb,
                                             previous.keep_fraction_depth):
            warning = self.keep_fraction_warning
            if warning:
                self._warn(warning)

    @property
    def keep_fraction_warning(self) -> str | None:
        """Why the configured keep fractions are not those the model was trained for, or
        None (see :func:`keep_fraction_mismatch`)."""
        return keep_fraction_mismatch(self.model, self._config)

    def certify_frame(self, frame: Frame, cancel: CancelToken | None = None,
                      tensors: FrameTensors | None = None) -> Certificate:
        """:meth:`certify` on a :class:`~mmcert_ros.data.frame.Frame`; a frame whose
        ``extras['points']`` holds in-view LiDAR points is certified as points."""
        return self.certify(frame.rgb, frame.extras.get('points', frame.depth), cancel, tensors)

    def certify(self, rgb: np.ndarray, depth: np.ndarray | ProjectedPoints,
                cancel: CancelToken | None = None,
                tensors: FrameTensors | None = None) -> Certificate:
        """Certify one frame.

        :param rgb: ``(H, W, 3)`` uint8 RGB.
        :param depth: ``(Hd, Wd)`` float32 metres; NaN, Inf, 0 and negative values are invalid
            (fed to the model as 0). Its size may differ from the RGB size. Or
            :class:`~mmcert_ros.data.projection.ProjectedPoints`: the in-view points of a
            LiDAR cloud at the RGB size, the depth modality's elements (n = in-view points,
            k = ``min(config.keep_points, n)``); each sample's depth input then comes from
            :func:`~mmcert_ros.certify.l0.points.ablate_points` (the dense model contract).
        :param cancel: checked before every micro-batch; when it is cancelled or past its
            deadline the frame is abandoned with
            :class:`~mmcert_ros.certify.cancel.FrameCancelled` (nothing partial is returned).
        :param tensors: ``frame_tensors(rgb, depth, self.device)`` when the caller already
            uploaded the frame (it is shared with the l2 certifier); depth images only.
        :returns: the :class:`Certificate`, with the guarantees stated there.
        """
        config = self.config  # one consistent config for the whole frame
        validate_rgb(rgb)
        points = depth if isinstance(depth, ProjectedPoints) else None
        if points is not None:
            depth = zbuffer(points)
        validate_depth(depth)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if tensors is not None and points is not None:
            raise ValueError('a LiDAR frame is uploaded by the engine itself (no tensors)')
        rgb_t, depth_t = tensors if tensors is not None else frame_tensors(rgb, depth,
                                                                           self.device)
        height, width = rgb.shape[:2]
        n = (height * width, depth.shape[0] * depth.shape[1])
        k = (kept_count(config.keep_fraction_rgb, n[0]),
             kept_count(config.keep_fraction_depth, n[1]))
        if points is not None:
            n = (n[0], points.count)
            k = (k[0], kept_point_count(config.keep_points, points.count))
        timings['preprocess'] = time.perf_counter() - start

        counts, timings['sampling'], timings['inference'] = self._vote(rgb_t, depth_t, k, config,
                                                                       cancel or CancelToken(),
                                                                       points)

        tic = time.perf_counter()
        result = certify_votes(counts, n, k, config)
        timings['certification'] = time.perf_counter() - tic
        timings['total'] = time.perf_counter() - start
        result.timings = timings
        return result

    def _vote(self, rgb: torch.Tensor, depth: torch.Tensor, k: tuple[int, int],
              config: CertifyConfig, cancel: CancelToken, points: ProjectedPoints | None = None
              ) -> tuple[torch.Tensor, float, float]:
        """Votes per class and pixel over N samples: ``(C, H, W)`` int32 (on the device),
        sampling s, inference s (forward passes and vote counting).

        With ``points`` the depth draws are point indices; each sample's depth input is built
        by :func:`~mmcert_ros.certify.l0.points.point_frames` (kept-index paths: one depth frame
        per sample) or :func:`~mmcert_ros.certify.l0.points.ablate_points` (dense contract, and
        when the points cover every pixel).

        On an accelerator nothing here waits for the device: the stage times are the times to
        queue the work, and the counts stay on the device until :func:`certify_votes`.
        """
        generator = make_generator(config.seed, self.device)
        model = self._inference_model(config)
        height, width = rgb.shape[-2:]
        n = (height * width, depth.shape[-2] * depth.shape[-1] if points is None else points.count)
        counter = None
        sampling = inference = 0.0
        autocast = (torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[config.precision])
                    if config.precision in _AUTOCAST_DTYPES and model is self.model
                    else nullcontext())
        null_pixel = None if points is None else free_pixel(points)
        path = vote_path(model) if points is None or null_pixel is not None else 'dense'
        tic = time.perf_counter()
        for rgb_chunk, depth_chunk in draw_sample_indices(config.num_samples, n, k, generator):
            sampling += time.perf_counter() - tic
            for first in range(0, rgb_chunk.shape[0], config.batch_size):
                cancel.check()
                tic = time.perf_counter()
                batch = min(config.batch_size, rgb_chunk.shape[0] - first)
                rows = slice(first, first + batch)
                if path == 'dense':
                    inputs = (ablate(rgb, depth, rgb_chunk[rows], depth_chunk[rows])
                              if points is None else
                              ablate_points(rgb, rgb_chunk[rows], points, depth_chunk[rows]))
                    forward = partial(model, *inputs.as_args())
                else:
                    function = model.grid_logits_kept if path == 'grid' else model.forward_kept
                    depth_in, depth_rows = ((depth, depth_chunk[rows]) if points is None else
                                            point_frames(points, depth_chunk[rows], null_pixel,
                                                         self.device))
                    forward = partial(function, rgb, rgb_chunk[rows], depth_in, depth_rows)
                toc = time.perf_counter()
                sampling += toc - tic
                with torch.inference_mode(), autocast:
                    logits = forward()
                if counter is None:
                    counter = make_counter(path, logits, (height, width), self.device)
                check_logits(logits, batch, counter.grid if path == 'grid' else (height, width))
                counter.add(logits)
                inference += time.perf_counter() - toc
            tic = time.perf_counter()
        return counter.counts(), sampling, inference

    def _inference_model(self, config: CertifyConfig) -> torch.nn.Module:
        """The model that runs the forward passes: the base model's inference copy (batch
        norm folded, channels-last, weights in the configured precision) or an exported
        backend (:mod:`mmcert_ros.models.backends`); built once per setting and reused."""
        key = (config.precision, config.backend)
        if getattr(self, '_prepared_key', None) != key:
            self._prepared = prepared_model(self.model, config.precision, config.backend,
                                            self.device)
            self._prepared_key = key
        return self._prepared


def prepared_model(model: torch.nn.Module, precision: str, backend: str,
                   device: torch.device) -> torch.nn.Module:
    """What runs the forward passes of ``model``: ``model.for_backend(precision, backend,
    device)`` where the model has it (``SparseRGBDNet``: its inference copy, or an exported
    backend, :mod:`mmcert_ros.models.backends`); any other model runs as it is, with backend
    ``'torch'`` (under autocast for 'fp16' / 'bf16').

    :raises ValueError: an exported backend for a model without ``for_backend``.
    """
    for_backend = getattr(model, 'for_backend', None)
    if callable(for_backend):
        return for_backend(precision, backend, device)
    if backend != 'torch':
        raise ValueError(f'backend {backend!r} exports SparseRGBDNet-like models only '
                         f'(for_backend, pyramid_inputs, grid_logits_from_levels); '
                         f'got {type(model).__name__}')
    return model


#: samples whose kept indices are drawn in one call (one host read per modality and call)
DRAW_CHUNK = 128


def draw_sample_indices(num_samples: int, n: tuple[int, int], k: tuple[int, int],
                        generator: torch.Generator):
    """The engine's draws, in order: for every chunk of up to :data:`DRAW_CHUNK` samples the
    kept RGB indices ``(chunk, k_rgb)`` then the kept depth indices ``(chunk, k_depth)``
    (:func:`~mmcert_ros.certify.l0.sampling.draw_kept_indices`)."""
    for first in range(0, num_samples, DRAW_CHUNK):
        chunk = min(DRAW_CHUNK, num_samples - first)
        yield (draw_kept_indices(chunk, n[0], k[0], generator),
               draw_kept_indices(chunk, n[1], k[1], generator))


def vote_path(model: torch.nn.Module) -> str:
    """How the engine calls ``model``: 'grid' (``grid_logits_kept`` and
    ``logit_upsampling == 'bilinear'``: votes counted on the grid), 'kept'
    (``forward_kept``) or 'dense' (``model(rgb, rgb_keep, depth, depth_keep)``)."""
    if callable(getattr(model, 'grid_logits_kept', None)) \
            and getattr(model, 'logit_upsampling', None) == 'bilinear':
        return 'grid'
    return 'kept' if callable(getattr(model, 'forward_kept', None)) else 'dense'


def make_counter(path: str, logits: torch.Tensor, size: tuple[int, int],
                 device: torch.device) -> DenseVotes | GridVotes:
    """The vote counter for the engine's path (see :mod:`mmcert_ros.certify.l0.votes`)."""
    if path == 'grid':
        return GridVotes(logits.shape[1], size, tuple(logits.shape[-2:]), device)
    return DenseVotes(logits.shape[1], size, device)


def check_logits(logits: torch.Tensor, batch: int, expected: tuple[int, int]) -> None:
    """Refuse logits of the wrong shape, naming the shape expected."""
    if logits.ndim != 4 or logits.shape[0] != batch or tuple(logits.shape[-2:]) != expected:
        raise ValueError(f'model returned logits of shape {tuple(logits.shape)}, '
                         f'expected ({batch}, C, {expected[0]}, {expected[1]})')


def keep_fraction_mismatch(model: torch.nn.Module, config: CertifyConfig) -> str | None:
    """A warning when ``config`` certifies ``model`` at other keep fractions than it was
    trained for, else None.

    The certificate stays valid (it holds for any base model), but a model fed sub-samples of
    another density than in training degrades silently: fewer pixels are correct and
    certified. The training fractions come from the checkpoint
    (``model.trained_keep_fractions``,
    :class:`~mmcert_ros.models.checkpoint.TrainedKeepFractions`);
    a checkpoint that does not record them is taken to be trained at the defaults
    (:data:`~mmcert_ros.certify.config.KEEP_FRACTION_RGB` / ``KEEP_FRACTION_DEPTH``) and the
    warning says so; a model not loaded from a checkpoint is never flagged.
    """
    trained = getattr(model, 'trained_keep_fractions', None)
    if trained is None:
        return None
    rgb = KEEP_FRACTION_RGB if trained.rgb is None else trained.rgb
    depth = KEEP_FRACTION_DEPTH if trained.depth is None else trained.depth
    if math.isclose(rgb, config.keep_fraction_rgb, rel_tol=1e-9) \
            and math.isclose(depth, config.keep_fraction_depth, rel_tol=1e-9):
        return None
    assumed = ('' if trained.rgb is not None and trained.depth is not None else
               ' (the checkpoint does not record its training keep fractions: taken as the '
               'defaults)')
    return (f'certifying at keep fractions {config.keep_fraction_rgb:g} RGB / '
            f'{config.keep_fraction_depth:g} depth, but the model was trained for {rgb:g} / '
            f'{depth:g}{assumed}: the certificate holds, but the model sees inputs unlike its '
            f'training ones and fewer pixels are correct and certified')


def certify_votes(counts: torch.Tensor | np.ndarray, n: tuple[int, int], k: tuple[int, int],
                  config: CertifyConfig) -> Certificate:
    """Certify pixels from their vote counts ``(C, H, W)``; see :class:`Certificate`.

    Holm at the configured budget and the radius map both run on the histogram of top
    counts: one max over classes, one bincount and one table lookup, on the CPU (the counts
    are small next to the images; moving them off an accelerator is cheap).
    """
    if isinstance(counts, torch.Tensor):
        counts = counts.cpu().numpy()
    num_classes, height, width = counts.shape
    top_counts = counts[0].copy()
    labels = np.zeros((height, width), dtype=np.uint8)
    for label in range(1, num_classes):  # strict '>': ties go to the smallest class id
        np.copyto(labels, label, where=counts[label] > top_counts)
        np.maximum(top_counts, counts[label], out=top_counts)
    budget = (config.radius_rgb, config.radius_depth)
    bound = perturbation_bound(n, k, budget)
    certified = holm_certify(top_counts, config.num_samples, num_classes, bound, config.alpha)
    table = radius_table(config.num_samples, num_classes, n, k, config.ray, config.alpha,
                         height * width)
    return Certificate(
        labels=labels, certified=certified, radius=np.take(table, top_counts),
        top_counts=top_counts, delta=bound, n=n, k=k, num_samples=config.num_samples,
        num_classes=num_classes, alpha=config.alpha, radius_budget=budget, ray=config.ray)
