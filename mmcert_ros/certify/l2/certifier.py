"""The l2 (feature-space smoothing) certificate of one RGB-D frame, at pixels.

:class:`L2Certifier` is what the node, ``mmcert-ros certify``, ``mmcert-ros evaluate`` and the
benchmarks build (once, through :func:`mmcert_ros.segmenter.engines.build_engines`) for the l2
certificate (docs/feature_smoothing.md): Gaussian noise of standard deviation ``sigma`` on the
full RGB image (in [0, 1] units), then MMCert's exact-k sub-sampling, then the base network's
unit features on its 1/8 grid (optionally through a
:class:`~mmcert_ros.models.booster.SmoothnessBooster`); each pixel's label under the cosine
head and the bilinear upsampling of its logits is certified on the pixel's own margin
(:mod:`~mmcert_ros.certify.l2.pixel_margin`), with Holm across pixels, and the per-cell feature
certificate (FCSB) is kept beside it.
:class:`FrameCertification` runs one frame through the l0 engine and the l2 certifier,
separately or as one joint ensemble (``fs.joint``).

Its settings are an :class:`~mmcert_ros.certify.config.L2Settings`; settings shared with
the l0 engine come from its :class:`~mmcert_ros.certify.CertifyConfig`:
``num_samples`` (N estimation samples, unless ``fs.num_samples`` is set), ``keep_fraction_*``,
``alpha``, ``seed`` (None = fresh OS entropy per frame), ``batch_size`` and ``device``. The
forward passes run in fp32 whatever ``precision`` says (the confidence bounds assume exact
unit features). Nothing here imports the ROS client library.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l2.pixel_margin import PixelMargins, pixel_margins
from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.certify.l2.confidence import round_down_float32
from mmcert_ros.certify.config import CertifyConfig, L2Settings
from mmcert_ros.certify.l0.engine import Certificate, CertifiedSegmenter, certify_votes
from mmcert_ros.certify.tensors import FrameTensors, frame_tensors
from mmcert_ros.device import resolve_device
from mmcert_ros.certify.l0.sampling import kept_count, make_generator
from mmcert_ros.data.frame import Frame, validate_depth, validate_rgb

#: noisy samples that choose the reference vectors before the N estimation samples
DEFAULT_NUM_SELECTION = 16


@dataclass(frozen=True)
class L2Certificate:
    """The l2 certificate of one frame (pixel arrays at the RGB size, on the CPU).

    What is certified is the *l2-smoothed label*: at a pixel, the argmax of the bilinearly
    upsampled cosine-head logits of the expected unit features ``E[f(M(clamp(x + eps)))]``
    of the (boosted) network's cells, over the noise eps and the exact-k masks M. With
    probability at least ``1 - alpha`` over the noise and the masks, every pixel in
    ``certified`` has l2-smoothed label ``labels`` at every RGB image within l2 distance
    ``l2_radius`` of the observed one (RGB in [0, 1] units; depth unchanged), and,
    simultaneously for all pixels, ``labels[p]`` holds at every RGB image at l2 distance
    strictly less than ``radius[p]``. Outside ``certified``, ``labels`` is only the label of
    the upsampled reference logits (a Monte-Carlo estimate of the smoothed label from the
    selection samples); it equals the published (l0 majority-vote) label where
    :meth:`agreeing` says so.

    **Sentinel: radius 0 = not certified.** The radius map is the supremum of an open ball
    (the guarantee holds strictly inside it), so 0 certifies nothing, not even the observed
    image, every positive value certifies a ball, and no value is negative. (The l0
    :class:`~mmcert_ros.certify.Certificate` counts changed pixels, where t = 0 is a real
    budget, and uses -1 for none.) :meth:`summary` reports ``radius_map.median`` and
    ``max`` over the pixels with radius > 0, 0.0 when there are none. The Holm mask
    ``certified`` is a separate statement and may hold pixels whose map radius is 0.

    :ivar labels: ``(H, W)`` uint8 l2-smoothed class ids.
    :ivar certified: ``(H, W)`` bool, certified (Holm over pixels) at ``l2_radius``.
    :ivar radius: ``(H, W)`` float32 certified l2 radius per pixel (Bonferroni), 0 = none
        (see the sentinel above); rounded down from the float64 supremum, so it never claims
        more.
    :ivar pixels: the :class:`~mmcert_ros.certify.l2.pixel_margin.PixelMargins` (per-pixel margin
        scores) from which the masks at other radii are evaluated.
    :ivar cells: the per-cell feature certificate
        (:class:`~mmcert_ros.certify.l2.feature_smoothing.CosineCertificate`: scores, FCSB map,
        the cells' own labels and radii).
    :ivar sigma: noise standard deviation, RGB in [0, 1] units.
    :ivar l2_radius: the l2 radius of ``certified``, same units.
    :ivar num_samples: N estimation samples; ``num_selection`` more chose the reference.
    :ivar alpha: family-wise error rate over the cells of the frame.
    :ivar boosted: whether a booster wrapped the network.
    :ivar timings: seconds: 'sampling_inference' (noise, masks and forward passes; in the
        joint ensemble these are also the l0 votes' passes), 'certification' and 'total'.
    """

    labels: np.ndarray
    certified: np.ndarray
    radius: np.ndarray
    pixels: PixelMargins
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
        return self.pixels.certified_at(l2_radius, self.alpha)

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
            'radius_map': {'uncertified_fraction': float(np.mean(self.radius == 0)),
                           'median': float(np.median(certified_radius))
                           if certified_radius.size else 0.0,
                           'max': float(certified_radius.max()) if certified_radius.size else 0.0},
            'timings_s': dict(self.timings),
        }


class L2Certifier:
    """Certifies frames against l2-bounded RGB perturbations with one network and settings.

    Built once per model, booster and settings (moving the network to the device and wrapping
    it with the booster happen here, never per frame); :meth:`certify_frame` (or
    :meth:`certify`) then certifies one frame against l2-bounded RGB perturbations
    (:class:`L2Certificate`). With ``settings.joint`` (``fs.joint``), :meth:`certify_joint`
    takes the l0 votes from the same noisy sub-sampled passes (docs/feature_smoothing.md,
    "One ensemble, two certificates").

    :param model: base network with ``features``, ``classify`` and ``prototypes``
        (:class:`~mmcert_ros.models.SparseRGBDNet`). When it (and the booster wrapper) has
        ``features_kept``, the noise is drawn only at the kept RGB pixels
        (:func:`~mmcert_ros.certify.l2.feature_smoothing.kept_pixel_rgbd_encoder`): the same
        distribution of features, hence the same certificate semantics, at a fraction of
        the cost. The module is shared, not copied: it is put on the device in eval mode.
    :param settings: ``fs.*`` (``sigma`` > 0, ``radius``, ``num_samples``, ``joint``).
    :param config: the l0 engine's settings; the l2 engine runs with
        ``settings.engine_config(config)`` (N estimation samples, keep fractions, alpha, seed,
        batch size, device).
    :param booster: optional :class:`~mmcert_ros.models.booster.SmoothnessBooster` (trained
        for this sigma): ``booster.boosted(model)`` is certified; the base network stays
        frozen.
    :param num_selection: noisy samples choosing the reference vectors (not reused).
    :raises ValueError: sigma 0 (the certificate is off), a booster that does not fit the
        model, or ``joint`` with a model that has no ``classify`` head.
    """

    def __init__(self, model: torch.nn.Module, settings: L2Settings, config: CertifyConfig,
                 booster: torch.nn.Module | None = None, *,
                 num_selection: int = DEFAULT_NUM_SELECTION) -> None:
        if not settings.enabled:
            raise ValueError('the l2 certificate needs fs.sigma > 0')
        self.settings = settings
        self.config = settings.engine_config(config)
        self.num_selection = num_selection
        self.device = resolve_device(config.device)
        network = booster.boosted(model) if booster is not None else model
        self.network = network.to(self.device).eval()
        self.boosted = booster is not None
        if settings.joint and not callable(getattr(self.network, 'classify', None)):
            raise ValueError('fs.joint needs a model with a classify head (its l0 votes)')

    def certify_frame(self, frame: Frame, cancel: CancelToken | None = None,
                      tensors: FrameTensors | None = None) -> L2Certificate:
        """:meth:`certify` on a :class:`~mmcert_ros.data.frame.Frame` (its depth image)."""
        return self.certify(frame.rgb, frame.depth, cancel, tensors)

    def certify(self, rgb: np.ndarray, depth: np.ndarray, cancel: CancelToken | None = None,
                tensors: FrameTensors | None = None) -> L2Certificate:
        """Certify one frame against l2 perturbations of its RGB (see :class:`L2Certificate`).

        :param rgb: ``(H, W, 3)`` uint8 RGB.
        :param depth: ``(Hd, Wd)`` float32 metres; NaN, Inf and values <= 0 are invalid.
        :param cancel: checked before every batch of noisy forward passes; when it is
            cancelled or past its deadline the frame is abandoned with
            :class:`~mmcert_ros.certify.cancel.FrameCancelled` (nothing partial is returned).
        :param tensors: the frame already uploaded to :attr:`device` by
            :func:`~mmcert_ros.certify.l0.engine.frame_tensors` (e.g. by the l0 engine), so that
            it is not uploaded twice; None uploads it here.
        :raises ValueError: bad image (the message says which).
        """
        return self._run(rgb, depth, cancel, tensors, votes=False)[1]

    def certify_joint(self, rgb: np.ndarray, depth: np.ndarray,
                      cancel: CancelToken | None = None, tensors: FrameTensors | None = None
                      ) -> tuple[Certificate, L2Certificate]:
        """Both certificates from one ensemble: the l0 :class:`~mmcert_ros.certify.Certificate`
        and the :class:`L2Certificate` of the same N noisy sub-sampled passes.

        The l2 certificate is exactly :meth:`certify`'s (same draws for the same seed). The
        l0 one certifies the majority vote of the per-sample label
        ``argmax_c upsample_bilinear(classify(f(M(clamp(x + eps)))))`` (``f`` the unit
        features of the, possibly boosted, network, M the exact-k masks, eps the noise), from
        the N estimation samples (``Certificate.num_samples`` = the l2 N; the selection
        samples do not vote), with the l0 settings' budget, ray and alpha; the passes run
        in fp32 whatever ``precision`` says. Arguments as :meth:`certify`.
        """
        return self._run(rgb, depth, cancel, tensors, votes=True)

    def _run(self, rgb: np.ndarray, depth: np.ndarray, cancel: CancelToken | None,
             tensors: FrameTensors | None, votes: bool
             ) -> tuple[Certificate | None, L2Certificate]:
        validate_rgb(rgb)
        validate_depth(depth)
        config, settings, network = self.config, self.settings, self.network
        start = time.perf_counter()
        if tensors is None:
            tensors = frame_tensors(rgb, depth, self.device)
        elif tensors[0].device != self.device:
            raise ValueError(f'frame tensors on {tensors[0].device}, the l2 engine runs on '
                             f'{self.device}')
        rgb_t, depth_t = tensors
        height, width = rgb.shape[:2]
        n = (height * width, depth.shape[0] * depth.shape[1])
        k = (kept_count(config.keep_fraction_rgb, n[0]),
             kept_count(config.keep_fraction_depth, n[1]))
        token = cancel or CancelToken()
        if callable(getattr(network, 'features_kept', None)):  # noise only at the kept pixels
            encoder = fs.kept_pixel_rgbd_encoder(network.features_kept, depth_t, k[0], k[1],
                                                 settings.sigma)
        else:
            encoder = fs.joint_rgbd_encoder(network.features, depth_t, k[0], k[1],
                                            settings.sigma)
        smoother = fs.FeatureSmoother(_checked(encoder, token), settings.sigma,
                                      config.batch_size, adds_noise=True)
        counter = fs.VoteCounter(network.classify, (height, width)) if votes else None
        generator = make_generator(config.seed, self.device)
        reference = smoother.select_reference(rgb_t, self.num_selection, generator)
        smoothed = smoother.estimate(rgb_t, reference, config.num_samples, generator, counter)
        sampled = time.perf_counter()
        cells = fs.certify_cosine_head(smoothed, network.prototypes, settings.radius,
                                       config.alpha)
        pixels = pixel_margins(smoothed, network.prototypes, (height, width))
        certified = pixels.certified_at(settings.radius, config.alpha)
        pixel_radius = pixels.radius(config.alpha)
        done = time.perf_counter()
        l2 = L2Certificate(
            labels=pixels.labels.astype(np.uint8), certified=certified,
            radius=round_down_float32(pixel_radius), pixels=pixels, cells=cells,
            sigma=settings.sigma,
            l2_radius=settings.radius, num_samples=config.num_samples,
            num_selection=self.num_selection, alpha=config.alpha, boosted=self.boosted,
            timings={'sampling_inference': sampled - start, 'certification': done - sampled,
                     'total': done - start})
        if counter is None:
            return None, l2
        l0 = certify_votes(counter.counts, n, k, config)
        finished = time.perf_counter()
        l0.timings = {'preprocess': 0.0, 'sampling': 0.0, 'inference': sampled - start,
                      'certification': finished - done, 'total': finished - start}
        return l0, l2


class FrameCertification:
    """One frame through the l0 engine and, when given, the l2 certifier: the one call
    pattern of the node, ``mmcert-ros certify``, ``evaluate`` and the benchmarks::

        run = FrameCertification(segmenter, l2_certifier, frame, cancel)
        certificate = run.l0()    # publish the l0 outputs
        l2_certificate = run.l2() # None while the l2 certificate is off

    The frame is uploaded to the device once and shared by both engines (a frame whose depth
    is a LiDAR cloud, ``extras['points']``, is uploaded by the l0 engine itself, which
    z-buffers it). With ``fs.joint`` (:meth:`L2Certifier.certify_joint`), :meth:`l0` runs the
    one ensemble of both certificates and :meth:`l2` returns its l2 half; otherwise :meth:`l0`
    runs the l0 engine and :meth:`l2` the separate l2 ensemble, so the l0 outputs never wait
    for the l2 stage. Both raise :class:`~mmcert_ros.certify.cancel.FrameCancelled` when
    ``cancel`` is cancelled or runs out. The upload's time is counted in the timings of the
    certificate whose call made it (the l0 one: 'preprocess' and 'total').

    :raises ValueError: from :meth:`l0`, ``fs.joint`` on a frame whose depth is a LiDAR cloud
        (the joint ensemble masks depth pixels).
    """

    def __init__(self, segmenter: CertifiedSegmenter, l2: L2Certifier | None, frame: Frame,
                 cancel: CancelToken | None = None) -> None:
        if l2 is not None and l2.device != segmenter.device:
            raise ValueError(f'the l0 engine runs on {segmenter.device}, the l2 engine on '
                             f'{l2.device}')
        self.segmenter, self.l2_certifier, self.frame, self.cancel = segmenter, l2, frame, cancel
        self._tensors: FrameTensors | None = None
        self._upload_s = 0.0      # upload time not yet counted in a certificate's timings
        self._l2: L2Certificate | None = None

    @property
    def joint(self) -> bool:
        return self.l2_certifier is not None and self.l2_certifier.settings.joint

    def l0(self) -> Certificate:
        """The l0 certificate (joint: together with the l2 one, kept for :meth:`l2`)."""
        frame = self.frame
        if self.joint:
            if 'points' in frame.extras:
                raise ValueError('fs.joint needs a depth image; this frame\'s depth is a '
                                 'LiDAR cloud')
            l0, self._l2 = self.l2_certifier.certify_joint(frame.rgb, frame.depth, self.cancel,
                                                           self._upload())
        elif 'points' in frame.extras:
            l0 = self.segmenter.certify_frame(frame, self.cancel)
        else:
            l0 = self.segmenter.certify_frame(frame, self.cancel, self._upload())
        return self._counting_upload(l0, 'preprocess')

    def l2(self) -> L2Certificate | None:
        """The l2 certificate, None while it is off (joint: after :meth:`l0`)."""
        if self.l2_certifier is None:
            return None
        if self.joint:
            if self._l2 is None:
                raise RuntimeError('the joint ensemble runs in l0(); call it first')
            return self._l2
        certificate = self.l2_certifier.certify_frame(self.frame, self.cancel, self._upload())
        return self._counting_upload(certificate, 'sampling_inference')

    def _upload(self) -> FrameTensors:
        if self._tensors is None:
            tic = time.perf_counter()
            self._tensors = frame_tensors(self.frame.rgb, self.frame.depth,
                                          self.segmenter.device)
            self._upload_s = time.perf_counter() - tic
        return self._tensors

    def _counting_upload(self, certificate, stage: str):
        """``certificate`` with the upload time not yet counted added to ``stage`` and
        'total' of its timings."""
        certificate.timings[stage] = certificate.timings.get(stage, 0.0) + self._upload_s
        certificate.timings['total'] = certificate.timings.get('total', 0.0) + self._upload_s
        self._upload_s = 0.0
        return certificate


def _checked(encoder, cancel: CancelToken):
    """``encoder`` (a :data:`~mmcert_ros.certify.l2.feature_smoothing.NoisyEncoder`) checking
    ``cancel`` before every batch."""
    def checked(*args) -> torch.Tensor:
        cancel.check()
        return encoder(*args)
    return checked


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64).ravel()
    return {'mean': float(values.mean()), 'min': float(values.min()),
            'p10': float(np.percentile(values, 10)), 'median': float(np.median(values))}
