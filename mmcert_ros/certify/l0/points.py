"""The depth modality as LiDAR points: exact-k point sub-samples and their bounds.

With point-cloud depth the modality's basic elements are the n in-view points of a cloud
(:class:`~mmcert_ros.data.projection.ProjectedPoints`, which ``CertifiedSegmenter.certify``
accepts as depth). Each sample keeps exactly ``k = min(certify.keep_points, n)`` of them,
uniformly without replacement and independently of the RGB sub-sample (both drawn by
:mod:`mmcert_ros.certify.l0.sampling`, one after the other from the frame's generator); the
kept points are z-buffered into a depth image (the nearest kept point per pixel) whose keep
mask is the pixels that received one. The base model sees the usual four tensors (the dense
model contract), so nothing else changes.

Bounds (``docs/certification.md``, "The certificate in LiDAR points"):

* ``delta`` of :mod:`mmcert_ros.certify.l0.bounds` with ``n = (n_rgb, n_points)``, unchanged:
  it holds for every cloud that differs from the observed one by at most r removed and at
  most r added in-view points (moving r points, deleting r, injecting r, or any mix), in
  either direction. The published mask uses it.
* :func:`injection_delta` ``= 1 - C(n, k) / C(n + r, k)`` (times the RGB survival): only for
  clouds that *contain* the observed one plus at most r injected points.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmcert_ros.certify.l0.bounds import delta, holm_certify
from mmcert_ros.certify.l0.sampling import ModelInputs, draw_kept_indices
from mmcert_ros.data.projection import ProjectedPoints


def injection_delta(n: Sequence[int], k: Sequence[int], r: Sequence[int]) -> float:
    """``1 - C(n_rgb - r_rgb, k_rgb) / C(n_rgb, k_rgb) * C(n, k) / C(n + r, k)``.

    The bound of an attacker who changes r_rgb pixels and *injects* r extra in-view points
    into the observed cloud of n points (nothing removed). Since ``C(n, k) / C(n + r, k) =
    C((n + r) - r, k) / C(n + r, k)`` this is ``delta`` evaluated at ``n + r`` points.

    :param n: ``(n_rgb, n_points)`` of the observed frame.
    :param k: ``(k_rgb, k_points)``. A sample that keeps every point (``k_points >=
        n_points``) gives 1 for any r > 0: the engine keeps ``min(keep_points, n)``, so on a
        cloud with fewer points than ``keep_points`` k itself would grow with the injection.
    """
    n_rgb, n_points = (int(v) for v in n)
    r_rgb, r_points = (int(v) for v in r)
    if r_points < 0:
        raise ValueError(f'attack budget r must be >= 0, got {r_points}')
    if r_points and int(k[1]) >= n_points:
        return 1.0
    return delta((n_rgb, n_points + r_points), k, (r_rgb, r_points))


def certified_against_injection(certificate, r_rgb: int, r_points: int) -> np.ndarray:
    """Holm mask of pixels certified against r_rgb pixels and r_points *injected* points.

    Same votes and error rate as ``certificate.certified_at``; the guarantee covers only the
    clouds that contain the observed cloud (see the module docstring).
    """
    bound = injection_delta(certificate.n, certificate.k, (r_rgb, r_points))
    return holm_certify(certificate.top_counts, certificate.num_samples,
                        certificate.num_classes, bound, certificate.alpha)


def kept_point_count(keep_points: int, n: int) -> int:
    """k of a frame: ``min(keep_points, n)`` (a cloud with fewer in-view points keeps them
    all, and then no budget r > 0 certifies: delta = 1).

    :raises ValueError: unless ``keep_points >= 1`` and ``n >= 1``.
    """
    if isinstance(keep_points, bool) or int(keep_points) < 1:
        raise ValueError(f'keep_points must be a positive integer, got {keep_points!r}')
    if int(n) < 1:
        raise ValueError('point-cloud depth needs at least one in-view point')
    return min(int(keep_points), int(n))


def ablate_points(rgb: torch.Tensor, rgb_indices: torch.Tensor, points: ProjectedPoints,
                  point_indices: torch.Tensor) -> ModelInputs:
    """The sub-sampled batch of one frame whose depth is points, from kept indices
    (:func:`~mmcert_ros.certify.l0.sampling.draw_kept_indices`: RGB pixels, then points).

    :param rgb: ``(1, 3, H, W)`` float in [0, 1] at the points' image size.
    :param rgb_indices: ``(B, k_rgb)`` kept flat indices into ``H * W``.
    :param points: the in-view points (their order does not matter).
    :param point_indices: ``(B, k_points)`` kept indices into the points, distinct per row.
    :returns: ``depth`` the nearest kept point per pixel (0 elsewhere) and ``depth_keep``
        1 exactly at the pixels that received a kept point.
    """
    height, width = rgb.shape[-2:]
    if (height, width) != (points.height, points.width):
        raise ValueError(f'rgb is {height}x{width} but the points project into '
                         f'{points.height}x{points.width}')
    batch, device = rgb_indices.shape[0], rgb.device
    rgb_keep = torch.zeros(batch, height * width, dtype=rgb.dtype, device=device)
    rgb_keep = rgb_keep.scatter_(1, rgb_indices, 1).view(batch, 1, height, width)
    pixels = torch.from_numpy(points.pixels).to(device)[point_indices]
    depth = torch.from_numpy(points.depth).to(device, rgb.dtype)[point_indices]
    flat = pixels + torch.arange(batch, device=device)[:, None] * (height * width)
    nearest = torch.full((batch * height * width,), torch.inf, device=device, dtype=rgb.dtype)
    nearest.scatter_reduce_(0, flat.reshape(-1), depth.reshape(-1), 'amin')
    keep = torch.isfinite(nearest)
    nearest = torch.where(keep, nearest, torch.zeros_like(nearest))
    shape = (batch, 1, height, width)
    return ModelInputs(rgb.expand(batch, -1, -1, -1) * rgb_keep, rgb_keep, nearest.view(shape),
                       keep.to(rgb.dtype).view(shape))


def free_pixel(points: ProjectedPoints) -> int | None:
    """A pixel no in-view point lands on (the first), or None if the points cover the image.

    Its depth is 0 in every sample, so it can pad a sample's kept pixels for the model's
    kept-index path (:func:`point_frames`) without contributing anything.
    """
    hits = np.bincount(points.pixels, minlength=points.height * points.width)
    free = np.flatnonzero(hits == 0)
    return int(free[0]) if free.size else None


def point_frames(points: ProjectedPoints, point_indices: torch.Tensor, null_pixel: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The same samples as :func:`ablate_points` in the form of the model's kept-index path
    (``forward_kept`` with one depth frame per sample): ``(B, 1, H, W)`` frames holding the
    nearest kept point per pixel (0 elsewhere) and ``(B, k)`` flat indices of the pixels that
    received one, each once, the rest of the row pointing at ``null_pixel`` (depth 0 in every
    frame: a kept invalid pixel, which the model contract weighs as nothing).
    """
    batch = point_indices.shape[0]
    size = points.height * points.width
    pixels = torch.from_numpy(points.pixels).to(device)[point_indices]
    depth = torch.from_numpy(points.depth).to(device)[point_indices]
    nearest = torch.full((batch * size,), torch.inf, device=device)
    flat = pixels + torch.arange(batch, device=device)[:, None] * size
    nearest.scatter_reduce_(0, flat.reshape(-1), depth.reshape(-1), 'amin')
    frames = torch.where(torch.isfinite(nearest), nearest, torch.zeros_like(nearest))
    pixels, _ = pixels.sort(dim=1)
    repeated = torch.zeros_like(pixels, dtype=torch.bool)
    repeated[:, 1:] = pixels[:, 1:] == pixels[:, :-1]
    return frames.view(batch, 1, points.height, points.width), pixels.masked_fill(repeated,
                                                                                  null_pixel)


def subsample_points(points: ProjectedPoints, rgb: torch.Tensor, k_rgb: int, k_points: int,
                     batch: int, generator: torch.Generator) -> ModelInputs:
    """``batch`` samples of one frame: exactly k_rgb RGB pixels and k_points points each,
    drawn in the engine's order (RGB indices, then point indices) by the package's one
    sampler; what training feeds the model, so it learns the certified input distribution.

    :param rgb: ``(1, 3, H, W)``; :param k_points: in ``[1, points.count]``.
    """
    height, width = rgb.shape[-2:]
    rgb_indices = draw_kept_indices(batch, height * width, k_rgb, generator, rgb.device)
    point_indices = draw_kept_indices(batch, points.count, k_points, generator, rgb.device)
    return ablate_points(rgb, rgb_indices, points, point_indices)
