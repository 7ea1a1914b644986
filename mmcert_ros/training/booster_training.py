"""Training a :class:`~mmcert_ros.models.booster.SmoothnessBooster`, base network frozen.

Every training input is made by the function the l2 certificate uses
(:func:`mmcert_ros.certify.l0.sampling.noisy_subsample`, inside
:func:`mmcert_ros.certify.l2.feature_smoothing.joint_rgbd_encoder`): Gaussian noise of the
booster's sigma on the full RGB image, clamp to [0, 1], then MMCert's exact-k sub-sampling at
the certification keep fractions. Each step
takes ``batch_frames`` frames and ``copies`` noisy, sub-sampled copies of each, and minimises

    cross-entropy(upsampled cosine-head logits, road mask)
    + score_weight * mean(1 - <u, f_i>) / 2,  u = normalize(mean_i f_i) per frame and cell
    + align_weight * (1 - class-balanced mean <f_i, w_y>), w_y the prototype of the cell class

The second term is one minus the Gaussian robustness score of the copies about their own
mean direction (the certificate's reference is such a mean), so it rewards features that
noise and masks do not move. The certificate also needs a wide angular margin between the
reference and the runner-up prototype (FCSB > cos(margin / 2)); the cross-entropy of a
cosine head saturates long before features reach their prototype, so the third term pulls
each feature onto the prototype of its cell's class (the class of most of the cell's
pixels), where the margin is largest; the mean is taken per class and then over the
classes present, so the smaller road class weighs as much as the rest. Only the booster's
parameters are optimised (Adam); the base network stays in eval mode, its parameters
untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB
from mmcert_ros.certify.l0.sampling import kept_count, noisy_subsample
from mmcert_ros.data.frame import Frame
from mmcert_ros.models.booster import BoostedModel, BoosterConfig, SmoothnessBooster
from mmcert_ros.training.alignment import cell_labels, class_balanced_alignment


@dataclass(frozen=True)
class BoosterTrainConfig:
    """Settings of :func:`train_booster`.

    :ivar sigma: noise standard deviation the booster is trained for (RGB in [0, 1] units).
    :ivar steps: optimiser steps.
    :ivar batch_frames: frames per step; ``copies`` noisy sub-sampled copies of each.
    :ivar lr: Adam learning rate.
    :ivar score_weight: weight of the robustness-score term against the cross-entropy.
    :ivar align_weight: weight of the prototype-alignment (margin) term.
    :ivar keep_fraction_rgb: / ``keep_fraction_depth``: sub-sampling as in certification.
    :ivar seed: seeds the booster's initial weights, the frame order, noise and masks.
    """

    sigma: float
    steps: int = 500
    batch_frames: int = 2
    copies: int = 4
    lr: float = 2e-3
    score_weight: float = 1.0
    align_weight: float = 4.0
    keep_fraction_rgb: float = KEEP_FRACTION_RGB
    keep_fraction_depth: float = KEEP_FRACTION_DEPTH
    seed: int = 0
    booster: BoosterConfig = field(default_factory=BoosterConfig)

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f'sigma must be a positive number, got {self.sigma!r}')
        for name in ('steps', 'batch_frames', 'copies'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, got {value!r}')
        if self.copies < 2:
            raise ValueError(f'copies must be >= 2 (the score term needs a mean), '
                             f'got {self.copies}')
        if not self.lr > 0 or self.score_weight < 0 or self.align_weight < 0:
            raise ValueError(f'lr must be > 0, score_weight and align_weight >= 0, got '
                             f'{self.lr}, {self.score_weight}, {self.align_weight}')

    def as_dict(self) -> dict:
        return asdict(self)


def train_booster(model: torch.nn.Module, frames: list[Frame], config: BoosterTrainConfig,
                  progress: Callable[[int, dict], None] | None = None,
                  log_every: int = 25) -> tuple[SmoothnessBooster, list[dict]]:
    """Train a booster for ``model`` (frozen) on ``frames`` (all one size, with road masks).

    :param progress: called after every step with ``(step, {'loss', 'ce', 'score', 'align'})``.
    :returns: the booster in eval mode and the history: one entry per ``log_every`` steps
        with the mean loss, cross-entropy, robustness score and prototype alignment over
        those steps.
    :raises ValueError: no frames, a frame without a road mask, or frames of different sizes.
    """
    rgb, depth, road = _stack(frames)
    device = next(model.parameters()).device
    rgb, depth, road = rgb.to(device), depth.to(device), road.to(device)
    torch.manual_seed(config.seed)
    booster = SmoothnessBooster(config.booster).to(device)
    network = BoostedModel(model, booster).train()
    optimizer = torch.optim.Adam(booster.parameters(), lr=config.lr)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    height, width = rgb.shape[2:]
    k_rgb = kept_count(config.keep_fraction_rgb, height * width)
    k_depth = kept_count(config.keep_fraction_depth, depth.shape[2] * depth.shape[3])
    cells = cell_labels(road)
    history: list[dict] = []
    window = {'loss': 0.0, 'ce': 0.0, 'score': 0.0, 'align': 0.0}
    for step in range(1, config.steps + 1):
        chosen = torch.randint(0, rgb.shape[0], (config.batch_frames,), generator=generator,
                               device=device).repeat_interleave(config.copies)
        inputs = noisy_subsample(rgb[chosen], depth[chosen], config.sigma, k_rgb, k_depth,
                                 generator)
        features = network.features(*inputs.as_args())
        logits = F.interpolate(network.classify(features), size=(height, width),
                               mode='bilinear', align_corners=False)
        ce = F.cross_entropy(logits, road[chosen])
        grouped = features.view(config.batch_frames, config.copies, *features.shape[1:])
        reference = F.normalize(grouped.mean(dim=1, keepdim=True), dim=2)
        score = ((1.0 + (grouped * reference).sum(dim=2)) / 2.0).mean()
        align = class_balanced_alignment(features, cells[chosen], model.prototypes)
        loss = ce + config.score_weight * (1.0 - score) + config.align_weight * (1.0 - align)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        figures = {'loss': loss.item(), 'ce': ce.item(), 'score': score.item(),
                   'align': align.item()}
        for name, value in figures.items():
            window[name] += value
        if progress is not None:
            progress(step, figures)
        if step % log_every == 0 or step == config.steps:
            count = (step - 1) % log_every + 1
            history.append({'step': step, **{k: v / count for k, v in window.items()}})
            window = dict.fromkeys(window, 0.0)
    return booster.eval(), history


def _stack(frames: list[Frame]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB ``(F, 3, H, W)`` in [0, 1], depth ``(F, 1, Hd, Wd)`` (invalid = 0) and road
    ``(F, H, W)`` int64 tensors of the frames."""
    from mmcert_ros.certify.tensors import frame_tensors

    if not frames:
        raise ValueError('no training frames')
    rgbs, depths, roads = [], [], []
    for frame in frames:
        if frame.road_mask is None:
            raise ValueError(f'frame {frame.name!r} has no road mask to train on')
        if frame.rgb.shape != frames[0].rgb.shape or frame.depth.shape != frames[0].depth.shape:
            raise ValueError(f'frame {frame.name!r} has another size than {frames[0].name!r}')
        rgb, depth = frame_tensors(frame.rgb, frame.depth, torch.device('cpu'))
        rgbs.append(rgb)
        depths.append(depth)
        roads.append(torch.from_numpy(frame.road_mask.astype('int64'))[None])
    return torch.cat(rgbs), torch.cat(depths), torch.cat(roads)
