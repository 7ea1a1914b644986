"""Feature-space smoothing certificate for any torch encoder (docs/feature_smoothing.md).

:func:`certify_encoder` takes any module (or callable) that maps a batch of inputs to feature
vectors, e.g. the vision tower of a multimodal model, and certifies the Gaussian-smoothed,
normalised encoder ``g(x) = E[normalize(f(x + eps))]``, ``eps ~ N(0, sigma^2 I)``: with
probability at least ``1 - alpha`` over the noise, for every location p (one per feature
vector) and every ``||x' - x||_2 <= R``,

    <u_p, g_p(x')> >= FCSB_p(R) = 2 Phi(Phi^{-1}(S_p) - R / sigma) - 1,

with u_p the reference direction (the normalised mean of separate selection samples) and S_p
a lower confidence bound on the Gaussian robustness score. Where FCSB is positive it also
bounds ``cos(g_p(x'), u_p)``. An optional booster plugs in around the frozen encoder: its
``purify`` runs on the noisy input before the encoder and its ``map`` on the unit features
after it (:class:`~mmcert_ros.models.booster.SmoothnessBooster` has both). All the maths is
:mod:`mmcert_ros.certify.l2.feature_smoothing`'s; this module only adapts the encoder.
Nothing here imports the ROS client library.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mmcert_ros.certify.l2 import confidence
from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.device import resolve_device
from mmcert_ros.certify.l0.sampling import make_generator


class FeatureBooster(Protocol):
    """A plug-in around a frozen encoder: ``purify`` on inputs, ``map`` on unit features
    ``(B, D, *spatial)`` (its output must have norm <= 1 per location)."""

    def purify(self, x: torch.Tensor) -> torch.Tensor: ...

    def map(self, features: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class EncoderCertificate:
    """The l2 certificate of one input of an encoder (per location, CPU numpy).

    Guarantees, each with probability at least ``1 - alpha`` over the noise, simultaneously
    for all locations (Bonferroni over them):

    - ``fcsb``: for every ``||x' - x||_2 <= radius``, ``<u_p, g_p(x')> >= fcsb[p]``, and
      ``cos(g_p(x'), u_p) >= fcsb[p]`` where ``fcsb[p] > 0``;
    - :meth:`certified_radius`: ``cos(g_p(x'), u_p) > cosine`` for every
      ``||x' - x||_2 < certified_radius(cosine)[p]``.

    :ivar smoothed: the estimate (reference u, mean feature, score statistics).
    :ivar fcsb: ``(*spatial)`` FCSB at ``radius`` (shape ``()`` for an encoder with one vector).
    """

    smoothed: fs.SmoothedFeatures
    fcsb: np.ndarray
    radius: float
    alpha: float
    method: str

    @property
    def reference(self) -> np.ndarray:
        """``(D, *spatial)`` unit reference vectors u."""
        return self.smoothed.reference

    def fcsb_at(self, radius: float) -> np.ndarray:
        """FCSB map at another radius, from the same samples (same guarantee)."""
        return self.smoothed.fcsb(radius, self.alpha, self.method)

    def certified_radius(self, cosine: float | np.ndarray = 0.0) -> np.ndarray:
        """Per location, the supremum of the radii at which the FCSB exceeds ``cosine``."""
        return fs.certified_l2_radius(self.smoothed.score_lower(self.alpha, self.method),
                                      self.smoothed.sigma, cosine)

    def certify_head(self, prototypes: np.ndarray | torch.Tensor) -> fs.CosineCertificate:
        """The labels of a cosine head with these ``(C, D)`` prototypes on the smoothed
        features, certified at ``radius`` (:func:`feature_smoothing.certify_cosine_head`)."""
        return fs.certify_cosine_head(self.smoothed, prototypes, self.radius, self.alpha,
                                      self.method)


def smoothed_encoder(encoder: Callable[[torch.Tensor], torch.Tensor],
                     booster: FeatureBooster | None = None,
                     feature_axis: int = 1) -> fs.Encoder:
    """The :data:`feature_smoothing.Encoder` ``z -> map(f(purify(z)))`` with features moved
    to axis 1, as :class:`~mmcert_ros.certify.l2.feature_smoothing.FeatureSmoother` expects.

    :param encoder: maps ``(B, *input_shape)`` to features with the feature axis at
        ``feature_axis`` (1 for ``(B, D)`` or ``(B, D, h, w)``; -1 for ``(B, tokens, D)``).
    """

    def encode(noisy: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        inputs = booster.purify(noisy) if booster is not None else noisy
        features = torch.movedim(encoder(inputs), feature_axis, 1)
        if booster is not None:
            features = booster.map(torch.nn.functional.normalize(features, dim=1))
        return features

    return encode


def certify_encoder(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    sigma: float, radius: float = 0.0, alpha: float = 0.001,
                    num_samples: int = 1000, num_selection: int = 16,
                    booster: FeatureBooster | None = None, *, feature_axis: int = 1,
                    batch_size: int = 16, seed: int | None = None, method: str = 'hoeffding',
                    device: str | None = None) -> EncoderCertificate:
    """Certify the smoothed, normalised ``encoder`` at one input ``x`` (see the module doc).

    :param encoder: any torch module or callable ``(B, *input_shape) -> features``; a module
        is put in eval mode. It must be deterministic given its input.
    :param x: one input, ``input_shape`` (no batch axis), in the units sigma and R use.
    :param sigma: noise standard deviation > 0.
    :param radius: l2 radius R >= 0 of ``fcsb``.
    :param num_samples: estimation samples N; ``num_selection`` more choose the reference.
    :param booster: optional plug-in with ``purify`` and ``map`` (:class:`FeatureBooster`).
    :param feature_axis: axis of the encoder's output that holds the feature vector.
    :param seed: fixed seed for reproducible evaluation; None = fresh OS entropy.
    :param device: where to run (default: x's device).
    :raises ValueError: bad sigma, radius, alpha, method or sample counts.
    """
    confidence.check_method(method)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f'alpha must lie in (0, 1), got {alpha}')
    target = resolve_device(device) if device is not None else torch.as_tensor(x).device
    x = torch.as_tensor(x, device=target)
    if isinstance(encoder, torch.nn.Module):
        encoder = encoder.to(target).eval()
    if isinstance(booster, torch.nn.Module):
        booster = booster.to(target).eval()
    smoother = fs.FeatureSmoother(smoothed_encoder(encoder, booster, feature_axis), sigma,
                                  batch_size)
    generator = make_generator(seed, target)
    batch = x.unsqueeze(0)
    reference = smoother.select_reference(batch, num_selection, generator)
    smoothed = smoother.estimate(batch, reference, num_samples, generator)
    return EncoderCertificate(smoothed=smoothed,
                              fcsb=smoothed.fcsb(radius, alpha, method),
                              radius=float(radius), alpha=float(alpha), method=method)
