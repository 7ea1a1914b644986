"""CertifiedSegmenter: one RGB-D frame in, labels and a per-pixel certificate out.

The engine draws N sub-sampled inputs, runs the base model on them in micro-batches on the
configured device, counts votes per pixel and certifies pixels (CERTIFICATION.md 2 to 6).
It imports torch, numpy and scipy, never rclpy.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from functools import partial
from dataclasses import dataclass, field

import numpy as np
import torch

from mmcert_ros.certify.bounds import delta as perturbation_bound
from mmcert_ros.certify.bounds import holm_certify, radius_table
from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.certify.config import CertifyConfig
from mmcert_ros.certify.points import kept_point_count, subsample_points
from mmcert_ros.certify.sampling import (draw_kept_indices, kept_count, make_generator,
                                         subsample)
from mmcert_ros.data.frame import Frame, validate_depth, validate_rgb
from mmcert_ros.data.projection import ProjectedPoints, zbuffer

_AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


@dataclass
class Certificate:
    """The certified segmentation of one frame (all arrays at the RGB resolution, on the CPU).

    Guarantees, each with probability at least ``1 - alpha`` over the sub-sampling:

    - ``certified``: every pixel in the mask keeps its label ``labels`` under every attack
      changing at most ``radius_budget = (r_rgb, r_depth)`` pixels (Holm over all pixels);
      with point-cloud depth r_depth counts in-view points moved, deleted or injected
      (``docs/certification.md``, "The certificate in LiDAR points").
    - ``radius``: simultaneously for every pixel, its label holds under every attack within
      ``(t * ray[0], t * ray[1])`` for ``t = radius[p]`` (Bonferroni); -1 = not certified at 0.
      The Holm mask at a budget on the ray certifies at least the pixels the map does there.

    :ivar labels: ``(H, W)`` uint8 majority-vote class ids.
    :ivar certified: ``(H, W)`` bool, certified at ``radius_budget``.
    :ivar radius: ``(H, W)`` int16 certified t on the ray, -1 = none.
    :ivar top_counts: ``(H, W)`` int32 votes for the majority label, in [0, N].
    :ivar delta: delta(radius_budget), the perturbation bound used for ``certified``.
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
    :param config: engine settings; may be replaced between frames (``segmenter.config = ...``).
    """

    def __init__(self, model: torch.nn.Module, config: CertifyConfig | None = None) -> None:
        self.config = config or CertifyConfig()
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device).eval()

    @property
    def config(self) -> CertifyConfig:
        return self._config

    @config.setter
    def config(self, config: CertifyConfig) -> None:
        if hasattr(self, '_config') and resolve_device(config.device) != self.device:
            raise ValueError('the device cannot change on a running segmenter; build a new one')
        self._config = config

    def certify_frame(self, frame: Frame, cancel: CancelToken | None = None) -> Certificate:
        """:meth:`certify` on a :class:`~mmcert_ros.data.frame.Frame`; a frame whose
        ``extras['points']`` holds in-view LiDAR points is certified as points."""
        return self.certify(frame.rgb, frame.extras.get('points', frame.depth), cancel)

    def certify(self, rgb: np.ndarray, depth: np.ndarray | ProjectedPoints,
                cancel: CancelToken | None = None) -> Certificate:
        """Certify one frame.

        :param rgb: ``(H, W, 3)`` uint8 RGB.
        :param depth: ``(Hd, Wd)`` float32 metres; NaN, Inf, 0 and negative values are invalid
            (fed to the model as 0). Its size may differ from the RGB size. Or
            :class:`~mmcert_ros.data.projection.ProjectedPoints`: the in-view points of a
            LiDAR cloud at the RGB size, the depth modality's elements (n = in-view points,
            k = ``min(config.keep_points, n)``); each sample's depth input then comes from
            :func:`~mmcert_ros.certify.points.subsample_points`.
        :param cancel: checked before every micro-batch; when it is cancelled or past its
            deadline the frame is abandoned with
            :class:`~mmcert_ros.certify.cancel.FrameCancelled` (nothing partial is returned).
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
        rgb_t, depth_t = frame_tensors(rgb, depth, self.device)
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
        """Votes per class and pixel over N samples: ``(C, H, W)`` int32, sampling s, inference s.

        With ``points`` each sample's depth input comes from ``subsample_points`` (the dense
        model contract) instead of sub-sampling the pixels of ``depth``.
        """
        generator = make_generator(config.seed, self.device)
        height, width = rgb.shape[-2:]
        counts = None
        sampling = inference = 0.0
        autocast = (torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[config.precision])
                    if config.precision in _AUTOCAST_DTYPES else nullcontext())
        reads_kept_pixels = callable(getattr(self.model, 'forward_kept', None))
        for first in range(0, config.num_samples, config.batch_size):
            cancel.check()
            batch = min(config.batch_size, config.num_samples - first)
            tic = time.perf_counter()
            if points is not None:
                inputs = subsample_points(points, rgb.expand(batch, -1, -1, -1), k[0], k[1],
                                          generator)
                forward = partial(self.model, *inputs.as_args())
            elif reads_kept_pixels:  # same draws as subsample(), without the dense tensors
                rgb_indices = draw_kept_indices(batch, height * width, k[0], generator)
                depth_indices = draw_kept_indices(batch, depth.shape[-2] * depth.shape[-1], k[1],
                                                  generator)
                forward = partial(self.model.forward_kept, rgb, rgb_indices, depth, depth_indices)
            else:
                inputs = subsample(rgb.expand(batch, -1, -1, -1),
                                   depth.expand(batch, -1, -1, -1), k[0], k[1], generator)
                forward = partial(self.model, *inputs.as_args())
            toc = time.perf_counter()
            with torch.inference_mode(), autocast:
                logits = forward()
            if logits.ndim != 4 or logits.shape[0] != batch or logits.shape[-2:] != (height, width):
                raise ValueError(f'model returned logits of shape {tuple(logits.shape)}, '
                                 f'expected ({batch}, C, {height}, {width})')
            votes = predict_labels(logits).view(batch, -1)
            if counts is None:
                counts = torch.zeros(logits.shape[1], height * width, dtype=torch.int32,
                                     device=self.device)
            counts.scatter_add_(0, votes, torch.ones_like(votes, dtype=torch.int32))
            if self.device.type == 'cuda':
                torch.cuda.synchronize(self.device)
            sampling += toc - tic
            inference += time.perf_counter() - toc
        return counts.view(-1, height, width), sampling, inference


def frame_tensors(rgb: np.ndarray, depth: np.ndarray, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, 3, H, W)`` float RGB in [0, 1] and ``(1, 1, Hd, Wd)`` metres with every invalid
    depth (NaN, Inf, <= 0) set to 0, on ``device``, from a frame's uint8 RGB and float depth."""
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    rgb_t = rgb_t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()
    depth_t = torch.from_numpy(np.ascontiguousarray(depth)).to(device)
    valid = torch.isfinite(depth_t) & (depth_t > 0)
    depth_t = torch.where(valid, depth_t, torch.zeros_like(depth_t))[None, None]
    return rgb_t, depth_t


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


def predict_labels(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(dim=1)`` (first class on ties), computed class by class.

    Same result as ``argmax`` for finite logits, but on the CPU ``argmax`` over the short,
    strided class axis of ``(B, C, H, W)`` logits is far slower than these C - 1 elementwise
    passes (about 90 ms against 1 ms per 1242x375 sample for C = 2 on two cores).

    :returns: ``(B, H, W)`` int64 class ids.
    """
    best = logits[:, 0]
    labels = torch.zeros(best.shape, dtype=torch.int64, device=logits.device)
    for label in range(1, logits.shape[1]):
        better = logits[:, label] > best
        labels.masked_fill_(better, label)
        if label + 1 < logits.shape[1]:
            best = torch.where(better, logits[:, label], best)
    return labels


def resolve_device(name: str) -> torch.device:
    """'auto' -> the first CUDA device if one is available, else the CPU."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} requested but CUDA is not available here')
    return device
