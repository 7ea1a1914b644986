"""Feature-space smoothing (FS): a certified l2 guarantee on features.

The mathematical contract is docs/certification.md section 8.

An encoder f maps an input x to a unit feature vector per location (norm <= 1 suffices). Its
Gaussian smoothing ``g(x) = E_eps[f(x + eps)]``, ``eps ~ N(0, sigma^2 I)``, is estimated by
Monte Carlo. For a reference unit vector u per location, fixed independently of the estimation
samples, the *Gaussian robustness score* ``S(x) = E[(1 + <u, f(x + eps)>) / 2]`` lies in [0, 1]
and ``Phi^{-1}(S)`` is ``1/sigma``-Lipschitz in x, so for every ``||x' - x||_2 <= R``::

    <u, g(x')> >= FCSB(S, R, sigma) = 2 Phi(Phi^{-1}(S) - R / sigma) - 1

and, because ``||g|| <= 1``, ``cos(g(x'), u) >= FCSB`` whenever FCSB > 0. S is replaced by a
one-sided lower confidence bound (:mod:`mmcert_ros.certify.l2.confidence`); FCSB is increasing
in S.

For a cosine head with unit class prototypes ``w_c``, the label ``y = argmax_c <u, w_c>`` is the
smoothed prediction ``argmax_c cos(g(x'), w_c)`` at every x' within R if the angular margin of u,
``min_{c != y} angle(u, w_c) - angle(u, w_y)``, exceeds ``2 arccos(FCSB)`` (spherical triangle
inequality; x itself lies in the ball, so y is also the smoothed prediction at x).
:mod:`mmcert_ros.certify.l2.pixel_margin` certifies the labels of bilinearly upsampled pixels.

Units: sigma and every radius are l2 norms in the units of the smoothed input tensor (for RGB
scaled to [0, 1], a radius of 1 is e.g. one pixel channel moved from black to white).
Nothing here imports the ROS client library.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.special
import torch
import torch.nn.functional as F

from mmcert_ros.certify.l2 import confidence
from mmcert_ros.certify.l0.sampling import make_generator, noisy_subsample
from mmcert_ros.certify.l0.votes import DenseVotes, GridVotes

ArrayLike = np.ndarray | torch.Tensor

#: ``encoder(noisy_inputs (B, *input_shape), generator) -> features (B, D, *spatial)``. The
#: encoder may draw its own randomness (e.g. ablation masks) from ``generator``; it must not
#: depend on anything else that an attacker controls or that the noise depends on.
Encoder = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
#: ``encoder(clean_input (1, *input_shape), batch, generator) -> features (batch, D, *spatial)``
#: distributed as ``batch`` independent draws of ``Encoder(x + eps)``, eps ~ N(0, sigma^2 I):
#: an encoder that draws the noise itself, e.g. only for the input elements it reads.
NoisyEncoder = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def fcsb(score_lower: ArrayLike, radius: ArrayLike | float, sigma: float) -> ArrayLike:
    """Feature cosine similarity bound ``2 Phi(Phi^{-1}(S) - R / sigma) - 1``, in [-1, 1].

    Evaluated as ``erf((Phi^{-1}(S) - R / sigma) / sqrt 2)``, accurate in both tails.
    ``S = 0`` gives -1; ``S = 1`` gives 1 at every finite radius.

    :param score_lower: lower bound on the Gaussian robustness score, in [0, 1] (numpy or torch).
    :param radius: l2 radius R >= 0 (scalar or broadcastable array of the same family).
    :param sigma: noise standard deviation > 0, in the input's units.
    :returns: same family (and torch device) as ``score_lower``.
    """
    ops = _ops(score_lower)
    _check_scores(score_lower)
    _check_radius(radius)
    sigma = _check_sigma(sigma)
    shifted = ops.ndtri(score_lower) - ops.like(radius, score_lower) / sigma
    return ops.erf(shifted / math.sqrt(2.0))


def certified_l2_radius(score_lower: ArrayLike, sigma: float,
                        cosine: ArrayLike | float = 0.0) -> ArrayLike:
    """Supremum of the radii R at which ``FCSB(score_lower, R, sigma) > cosine``; 0 if none.

    Closed form (FCSB inverted): ``sigma (Phi^{-1}(S) - Phi^{-1}((1 + cosine) / 2))``, clipped at
    0. The bound holds for every radius strictly below the returned value.

    :param cosine: target cosine in [0, 1) (the certificate needs FCSB > 0), scalar or array.
    """
    ops = _ops(score_lower)
    _check_scores(score_lower)
    sigma = _check_sigma(sigma)
    if not np.all((_as_numpy(cosine) >= 0) & (_as_numpy(cosine) <= 1)):
        raise ValueError(f'target cosine must lie in [0, 1], got {cosine}')
    cosine = ops.like(cosine, score_lower)
    with np.errstate(invalid='ignore'):
        radius = sigma * (ops.ndtri(score_lower) - ops.ndtri((1.0 + cosine) / 2.0))
    return ops.where(radius > 0, radius, 0.0)  # also maps inf - inf (S = 1, cosine = 1) to 0


def required_score(cosine: np.ndarray | float, radius: float, sigma: float) -> np.ndarray:
    """Smallest score S with ``FCSB(S, radius, sigma) >= cosine``.

    ``S = Phi(Phi^{-1}((1 + cosine) / 2) + radius / sigma)``, elementwise (numpy).
    """
    _check_radius(radius)
    sigma = _check_sigma(sigma)
    cosine = np.asarray(cosine, dtype=np.float64)
    return scipy.special.ndtr(scipy.special.ndtri((1.0 + cosine) / 2.0) + radius / sigma)


def margin_cosine(margin: np.ndarray) -> np.ndarray:
    """Cosine bound that keeps a label of angular margin m: FCSB must exceed ``cos(m / 2)``."""
    return np.cos(np.asarray(margin, dtype=np.float64) / 2.0)


def cosine_head_margin(reference: np.ndarray,
                       prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label and angular margin of each reference vector under a cosine head.

    :param reference: ``(D, *spatial)`` unit vectors u (numpy).
    :param prototypes: ``(C, D)`` class prototypes, C >= 2 (normalized here).
    :returns: ``labels (*spatial)`` int64 ``argmax_c <u, w_c>`` and ``margin (*spatial)`` float64
        radians, ``min_{c != y} angle(u, w_c) - angle(u, w_y)`` in [0, pi].
    """
    reference = np.asarray(reference, dtype=np.float64)
    prototypes = np.asarray(prototypes, dtype=np.float64)
    if prototypes.ndim != 2 or prototypes.shape[0] < 2:
        raise ValueError(f'prototypes must have shape (C >= 2, D), got {prototypes.shape}')
    if reference.shape[0] != prototypes.shape[1]:
        raise ValueError(f'reference feature dimension {reference.shape[0]} does not match the '
                         f'prototypes {prototypes.shape[1]}')
    norms = np.linalg.norm(prototypes, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError('class prototypes must be non-zero')
    cosines = np.tensordot(prototypes / norms, reference, axes=(1, 0))  # (C, *spatial)
    angles = np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)), axis=0)
    return np.argmax(cosines, axis=0), angles[1] - angles[0]


@dataclass(frozen=True)
class SmoothedFeatures:
    """Monte-Carlo estimate of the smoothed encoder at one input, per location (CPU numpy).

    :ivar reference: ``(D, *spatial)`` unit reference vectors u, chosen independently of the
        estimation samples.
    :ivar mean_feature: ``(D, *spatial)`` estimate of ``g(x)``, the mean of N unit features.
    :ivar score_mean: ``(*spatial)`` float64 sample mean of ``(1 + <u, f(x + eps)>) / 2``.
    :ivar score_variance: ``(*spatial)`` float64 unbiased sample variance of the same (0 if N = 1).
    :ivar num_samples: N, estimation samples.
    :ivar sigma: noise standard deviation, input units.
    """

    reference: np.ndarray
    mean_feature: np.ndarray
    score_mean: np.ndarray
    score_variance: np.ndarray
    num_samples: int
    sigma: float

    @property
    def num_locations(self) -> int:
        return int(self.score_mean.size)

    def score_lower(self, alpha: float, method: str = 'hoeffding',
                    simultaneous: bool = True) -> np.ndarray:
        """Lower confidence bound on every location's score.

        With probability at least ``1 - alpha``: all bounds hold at once if ``simultaneous``
        (Bonferroni, each at ``alpha / m``), else each location's bound on its own.
        """
        delta = alpha / self.num_locations if simultaneous else alpha
        return confidence.lower_bound(method, self.score_mean, self.score_variance,
                                      self.num_samples, delta)

    def score_pvalues(self, threshold: np.ndarray | float,
                      method: str = 'hoeffding') -> np.ndarray:
        """Per-location p-values of ``H0: S <= threshold`` (for Holm across locations)."""
        return confidence.pvalue(method, self.score_mean, self.score_variance,
                                 self.num_samples, threshold)

    def fcsb(self, radius: float, alpha: float, method: str = 'hoeffding') -> np.ndarray:
        """FCSB map at l2 radius R: with probability >= 1 - alpha, for every location p and every
        ``||x' - x||_2 <= R``, ``<u_p, g_p(x')> >= fcsb[p]`` (and ``cos(g_p(x'), u_p) >= fcsb[p]``
        where it is positive)."""
        return fcsb(self.score_lower(alpha, method), radius, self.sigma)


@dataclass(frozen=True)
class CosineCertificate:
    """Per-location l2 certificate of a cosine head's prediction under feature-space smoothing.

    The smoothed prediction at a location is ``argmax_c <g(x'), w_c>``, the argmax of the
    expected logits. Guarantees, each with probability at least ``1 - alpha`` over the Gaussian
    noise (and any randomness of the encoder):

    - ``certified`` (Holm over all locations at ``radius``): every location in the mask has
      smoothed prediction ``labels`` at every x' with ``||x' - x||_2 <= radius``.
    - ``certified_radius`` (Bonferroni, simultaneous): every location p has smoothed prediction
      ``labels[p]`` at every x' with ``||x' - x||_2 < certified_radius[p]``; 0 = no certificate.
      At any radius, the Holm mask contains every location whose map radius exceeds it.
    - ``fcsb``: the simultaneous FCSB map at ``radius`` (as :meth:`SmoothedFeatures.fcsb`).

    :ivar labels: ``(*spatial)`` int64 label of the reference vector under the head.
    :ivar margin: ``(*spatial)`` float64 angular margin of the reference vector, radians.
    """

    smoothed: SmoothedFeatures
    labels: np.ndarray
    margin: np.ndarray
    certified: np.ndarray
    certified_radius: np.ndarray
    fcsb: np.ndarray
    radius: float
    alpha: float
    method: str

    @property
    def certified_fraction(self) -> float:
        """Fraction of locations certified (Holm) at ``radius``."""
        return float(self.certified.mean())

    def certified_at(self, radius: float) -> np.ndarray:
        """Holm-certified mask at another l2 radius, from the stored statistics (same
        guarantee)."""
        return holm_certified(self.smoothed, self.margin, radius, self.alpha, self.method)


def holm_certified(smoothed: SmoothedFeatures, margin: np.ndarray, radius: float, alpha: float,
                   method: str = 'hoeffding') -> np.ndarray:
    """Locations whose cosine-head label is certified at l2 radius R, Holm over all locations.

    Location p's null hypothesis is ``S_p <= required_score(cos(margin_p / 2), R, sigma)``, the
    score below which the FCSB at R no longer exceeds ``cos(margin_p / 2)``; a tie (margin 0)
    is never certified.
    """
    threshold = required_score(margin_cosine(margin), radius, smoothed.sigma)
    return confidence.holm_reject(smoothed.score_pvalues(threshold, method), alpha)


def certify_cosine_head(smoothed: SmoothedFeatures, prototypes: np.ndarray | torch.Tensor,
                        radius: float, alpha: float,
                        method: str = 'hoeffding') -> CosineCertificate:
    """Certify a cosine head's per-location labels against l2 attacks (:class:`CosineCertificate`).

    :param prototypes: ``(C, D)`` class prototypes of the head (normalized here).
    :param radius: l2 radius of the Holm mask, input units.
    :param alpha: family-wise error rate over all locations.
    """
    _check_radius(radius)
    confidence.check_method(method)
    if isinstance(prototypes, torch.Tensor):
        prototypes = prototypes.detach().cpu().numpy()
    labels, margin = cosine_head_margin(smoothed.reference, prototypes)
    score_lower = smoothed.score_lower(alpha, method)
    return CosineCertificate(
        smoothed=smoothed, labels=labels, margin=margin,
        certified=holm_certified(smoothed, margin, radius, alpha, method),
        certified_radius=certified_l2_radius(score_lower, smoothed.sigma, margin_cosine(margin)),
        fcsb=fcsb(score_lower, radius, smoothed.sigma),
        radius=float(radius), alpha=float(alpha), method=method)


class FeatureSmoother:
    """Monte-Carlo estimation of a Gaussian-smoothed, normalized encoder.

    Selection and estimation are kept apart (as in Cohen et al.'s ``Smooth``): the reference u
    comes from :meth:`select_reference` on its own samples (or from any other source that does
    not see the estimation samples), and :meth:`estimate` then draws fresh samples.

    :param encoder: see :data:`Encoder`; its outputs are normalized to unit length per location.
    :param sigma: noise standard deviation > 0, in the units of the input tensor.
    :param batch_size: noisy copies per forward pass.
    """

    def __init__(self, encoder: Encoder | NoisyEncoder, sigma: float, batch_size: int = 16,
                 adds_noise: bool = False) -> None:
        """:param adds_noise: ``encoder`` is a :data:`NoisyEncoder` (draws the noise itself,
            e.g. only where it reads the input); otherwise the noise is added here."""
        self.encoder = encoder
        self.adds_noise = adds_noise
        self.sigma = _check_sigma(sigma)
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer, got {batch_size}')
        self.batch_size = int(batch_size)

    def select_reference(self, x: torch.Tensor, num_samples: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Reference vectors u: the normalized mean of ``num_samples`` noisy unit features.

        :param x: one input with a leading batch dimension of 1, ``(1, *input_shape)``.
        :returns: ``(D, *spatial)`` unit vectors (0 where the mean feature is 0), on x's device.
        """
        total = None
        for features in self._noisy_features(x, num_samples, generator):
            batch_sum = features.sum(dim=0, dtype=torch.float64)
            total = batch_sum if total is None else total + batch_sum
        return F.normalize(total, dim=0).to(x.dtype)

    def estimate(self, x: torch.Tensor, reference: torch.Tensor, num_samples: int,
                 generator: torch.Generator | None = None,
                 on_batch: Callable[[torch.Tensor], None] | None = None) -> SmoothedFeatures:
        """Estimate ``g(x)`` and the per-location scores from ``num_samples`` fresh noisy copies.

        :param reference: ``(D, *spatial)`` unit vectors, independent of these samples.
        :param generator: torch generator on x's device; None draws a fresh OS-entropy seed.
        :param on_batch: called with every batch of unit features ``(b, D, *spatial)``, e.g. to
            count a head's votes so that the same forward passes also give the l0 certificate.
        """
        reference = reference.to(device=x.device, dtype=torch.float64)
        feature_sum = score_sum = score_square_sum = None
        for features in self._noisy_features(x, num_samples, generator):
            if features.shape[1:] != reference.shape:
                raise ValueError(f'encoder features {tuple(features.shape[1:])} do not match the '
                                 f'reference {tuple(reference.shape)}')
            if on_batch is not None:
                on_batch(features)
            features = features.to(torch.float64)
            scores = ((1.0 + (features * reference).sum(dim=1)) / 2.0).clamp(0.0, 1.0)
            if feature_sum is None:
                feature_sum = torch.zeros_like(reference)
                score_sum = torch.zeros_like(scores[0])
                score_square_sum = torch.zeros_like(scores[0])
            feature_sum += features.sum(dim=0)
            score_sum += scores.sum(dim=0)
            score_square_sum += scores.square().sum(dim=0)
        mean = (score_sum / num_samples).clamp(0.0, 1.0)
        if num_samples > 1:
            variance = ((score_square_sum - num_samples * mean.square()) / (num_samples - 1))
            variance = variance.clamp(0.0, 0.5)
        else:
            variance = torch.zeros_like(mean)
        return SmoothedFeatures(
            reference=reference.cpu().numpy(),
            mean_feature=(feature_sum / num_samples).cpu().numpy(),
            score_mean=mean.cpu().numpy(), score_variance=variance.cpu().numpy(),
            num_samples=int(num_samples), sigma=self.sigma)

    def certify(self, x: torch.Tensor, prototypes: np.ndarray | torch.Tensor, radius: float,
                alpha: float, num_selection: int, num_estimation: int,
                generator: torch.Generator | None = None, method: str = 'hoeffding',
                on_batch: Callable[[torch.Tensor], None] | None = None) -> CosineCertificate:
        """Select the reference on ``num_selection`` samples, estimate on ``num_estimation``
        fresh ones and certify the cosine head (:func:`certify_cosine_head`)."""
        generator = generator if generator is not None else make_generator(None, x.device)
        reference = self.select_reference(x, num_selection, generator)
        smoothed = self.estimate(x, reference, num_estimation, generator, on_batch)
        return certify_cosine_head(smoothed, prototypes, radius, alpha, method)

    def _noisy_features(self, x: torch.Tensor, num_samples: int,
                        generator: torch.Generator | None):
        """Yield unit features of ``num_samples`` copies ``x + eps`` in batches (no autograd)."""
        if x.ndim < 2 or x.shape[0] != 1:
            raise ValueError(f'x must hold one input with a leading batch dimension of 1, '
                             f'got shape {tuple(x.shape)}')
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f'number of samples must be a positive integer, got {num_samples}')
        generator = generator if generator is not None else make_generator(None, x.device)
        with torch.no_grad():
            for first in range(0, num_samples, self.batch_size):
                batch = min(self.batch_size, num_samples - first)
                if self.adds_noise:
                    features = self.encoder(x, batch, generator)
                else:
                    noise = torch.randn((batch, *x.shape[1:]), generator=generator,
                                        device=x.device, dtype=x.dtype)
                    features = self.encoder(x + self.sigma * noise, generator)
                if features.ndim < 2 or features.shape[0] != batch:
                    raise ValueError(f'encoder returned shape {tuple(features.shape)}, '
                                     f'expected ({batch}, D, ...)')
                yield F.normalize(features, dim=1)


def joint_rgbd_encoder(features: Callable[..., torch.Tensor], depth: torch.Tensor,
                       k_rgb: int, k_depth: int, sigma: float) -> NoisyEncoder:
    """Encoder for one ensemble carrying both certificates: noise on the full RGB, then masking.

    Returns the :data:`NoisyEncoder` ``encoder(rgb, batch, generator) =
    features(*noisy_subsample(rgb, depth, sigma, k_rgb, k_depth, generator))`` for ``batch``
    copies (:func:`~mmcert_ros.certify.l0.sampling.noisy_subsample`, the recipe booster training
    uses too; use it with ``FeatureSmoother(..., adds_noise=True)``); ``rgb`` may also hold
    ``batch`` different images (an attack's). The Gaussian noise is added to every RGB pixel
    *before* the exact-k sub-sampling, so (i) for the l2 certificate the mask average is one
    more function of ``x + eps`` into [0, 1] and the Lipschitz argument is untouched, and
    (ii) for the l0 certificate the noise is part of the randomized base input, coupled between
    x and x' so that ``M(x + eps) = M(x' + eps)`` whenever the kept set avoids the changed
    pixels (docs/feature_smoothing.md gives both arguments). Depth is not noised: the l2
    certificate covers RGB perturbations (input units: RGB in [0, 1]).

    :param features: e.g. ``model.features``, taking ``(rgb, rgb_keep, depth, depth_keep)``.
    :param depth: ``(1, 1, Hd, Wd)`` float metres, invalid pixels already 0.
    :param sigma: noise standard deviation, RGB in [0, 1] units (> 0).
    """
    if depth.ndim != 4 or depth.shape[:2] != (1, 1):
        raise ValueError(f'depth must have shape (1, 1, Hd, Wd), got {tuple(depth.shape)}')
    sigma = _check_sigma(sigma)

    def encoder(rgb: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
        inputs = noisy_subsample(rgb.expand(batch, -1, -1, -1),
                                 depth.expand(batch, -1, -1, -1), sigma, k_rgb, k_depth,
                                 generator)
        return features(*inputs.as_args())

    return encoder


def kept_pixel_rgbd_encoder(features_kept: Callable[..., torch.Tensor], depth: torch.Tensor,
                            k_rgb: int, k_depth: int, sigma: float) -> NoisyEncoder:
    """:func:`joint_rgbd_encoder` with the noise drawn only at the kept RGB pixels.

    Per sample it draws the kept indices
    (:func:`~mmcert_ros.certify.l0.sampling.draw_kept_indices`),
    reads the kept pixels of the clean frame, adds ``sigma * N(0, 1)`` to each of their
    values, clamps to [0, 1] and returns ``features_kept(rgb_pixels, depth_pixels)``. Equal in
    distribution to ``joint_rgbd_encoder(...)(x + eps)``: there the output depends on eps only
    through its values at the kept pixels, the masks are independent of eps, and given the
    masks those values are i.i.d. ``N(0, sigma^2)``, as here. About 98 % less noise to draw.

    :param features_kept: e.g. ``model.features_kept``, taking the kept pixels
        (:class:`~mmcert_ros.models.network.KeptPixels`) of RGB and depth.
    :param depth: ``(1, 1, Hd, Wd)`` float metres, invalid pixels already 0.
    """
    from mmcert_ros.certify.l0.sampling import draw_kept_indices
    from mmcert_ros.certify.kept_pixels import KeptPixels

    if depth.ndim != 4 or depth.shape[:2] != (1, 1):
        raise ValueError(f'depth must have shape (1, 1, Hd, Wd), got {tuple(depth.shape)}')
    sigma = _check_sigma(sigma)

    def encoder(rgb: torch.Tensor, batch: int, generator: torch.Generator) -> torch.Tensor:
        rgb_indices = draw_kept_indices(batch, rgb.shape[-2] * rgb.shape[-1], k_rgb, generator)
        depth_indices = draw_kept_indices(batch, depth.shape[-2] * depth.shape[-1], k_depth,
                                          generator)
        pixels = KeptPixels.from_indices(rgb, rgb_indices)
        noise = torch.randn(pixels.values.shape, generator=generator, device=rgb.device,
                            dtype=pixels.values.dtype)
        noisy = dataclasses.replace(pixels, values=(pixels.values + sigma * noise).clamp(0.0, 1.0))
        return features_kept(noisy, KeptPixels.from_indices(depth, depth_indices))

    return encoder


class VoteCounter:
    """``on_batch`` callback that counts a head's per-pixel votes (for the l0 certificate).

    :param classify: maps unit features ``(b, D, h, w)`` to logits ``(b, C, h, w)``.
    :param size: ``(H, W)``: the logits are grid logits whose pixels' logits are
        ``upsample_bilinear(logits, size)`` (the bilinear head of ``SparseRGBDNet``), counted
        on the grid bit for bit (:class:`~mmcert_ros.certify.l0.votes.GridVotes`); None counts
        the logits as they come (:class:`~mmcert_ros.certify.l0.votes.DenseVotes`).
    :ivar counts: ``(C, H, W)`` int32 votes after the run, or None before the first batch.
    """

    def __init__(self, classify: Callable[[torch.Tensor], torch.Tensor],
                 size: tuple[int, int] | None = None) -> None:
        self.classify = classify
        self.size = size
        self._votes: DenseVotes | GridVotes | None = None

    def __call__(self, features: torch.Tensor) -> None:
        with torch.no_grad():
            logits = self.classify(features)
        if self._votes is None:
            self._votes = (DenseVotes(logits.shape[1], tuple(logits.shape[2:]), logits.device)
                           if self.size is None else
                           GridVotes(logits.shape[1], self.size, tuple(logits.shape[2:]),
                                     logits.device))
        self._votes.add(logits)

    @property
    def counts(self) -> torch.Tensor | None:
        return None if self._votes is None else self._votes.counts()


class _NumpyOps:
    ndtri = staticmethod(scipy.special.ndtri)
    erf = staticmethod(scipy.special.erf)

    @staticmethod
    def like(value, reference):
        return np.asarray(_as_numpy(value), dtype=np.float64)

    @staticmethod
    def where(condition, x, y):
        return np.where(condition, x, y)


class _TorchOps:
    ndtri = staticmethod(torch.special.ndtri)
    erf = staticmethod(torch.special.erf)

    @staticmethod
    def like(value, reference):
        return torch.as_tensor(value, dtype=reference.dtype, device=reference.device)

    @staticmethod
    def where(condition, x, y):
        return torch.where(condition, x, torch.as_tensor(y, dtype=x.dtype, device=x.device))


def _ops(x: ArrayLike):
    return _TorchOps if isinstance(x, torch.Tensor) else _NumpyOps


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_scores(score: ArrayLike) -> None:
    values = _as_numpy(score)
    if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise ValueError('Gaussian robustness scores must lie in [0, 1] (no NaN)')


def _check_radius(radius) -> None:
    values = _as_numpy(radius)
    if not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(f'l2 radius must be finite and >= 0, got {radius}')


def _check_sigma(sigma: float) -> float:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f'sigma must be a positive number, got {sigma!r}')
    return float(sigma)
