"""Ablation-aware training of the base network (the MMCert recipe on our sparse network).

Every training input is sub-sampled by :func:`mmcert_ros.certify.l0.sampling.subsample`, the
function certification uses, so the model learns exactly the input distribution it is
certified with. Each sample keeps either the certification keep fractions or, with
probability ``random_keep_probability``, a random RGB fraction in ``(0, random_keep_max]``
(MMCert's training recipe) with the depth fraction scaled by the same factor.

With ``depth_source='points'`` the depth of each sample is drawn the way point-cloud
certification draws it (:func:`mmcert_ros.certify.l0.points.subsample_points`): the valid
pixels of the sparse LiDAR depth are the points, ``keep_points`` of the full frame are kept
(scaled to the crop's share of the frame width, and by the random factor). With probability
``depth_dropout`` a sample's whole depth modality is dropped (depth and its keep mask all
0), so the model also learns to segment from RGB alone (the node's degraded mode).

Loss: cross-entropy of the full-resolution logits, plus ``align_weight`` times the
prototype-alignment term of :mod:`mmcert_ros.training.alignment` (0 by default), which pulls
cell features onto their class prototype for the l2 certificate's margins. A run may start
from the weights of another checkpoint (``init_checkpoint``: fine-tuning); a cosine-head
two-class checkpoint is first given the antipodal head if the run's network has it
(:func:`mmcert_ros.training.head.with_antipodal_head`, same decisions).

Reproducibility: with the same config, data and seed, two runs on the CPU produce identical
weights, and a run resumed from its ``last.pt`` continues exactly as if uninterrupted.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB
from mmcert_ros.certify.l0.engine import predict_labels
from mmcert_ros.evaluation.metrics import Confusion, plain_confusion
from mmcert_ros.certify.l0.points import kept_point_count, subsample_points
from mmcert_ros.certify.l0.sampling import ModelInputs, kept_count, subsample
from mmcert_ros.data.projection import points_from_depth_image
from mmcert_ros.device import resolve_device
from mmcert_ros.models.checkpoint import load_checkpoint, save_checkpoint
from mmcert_ros.models.network import NetworkConfig, SparseRGBDNet
from mmcert_ros.training.alignment import cell_labels, class_balanced_alignment
from mmcert_ros.training.data import Batch, TrainingSet
from mmcert_ros.training.head import with_antipodal_head
from mmcert_ros.training.validation import validate


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (stored in the checkpoint provenance).

    :ivar epochs: passes of ``steps_per_epoch`` steps; validation and a checkpoint after each.
    :ivar steps_per_epoch: optimizer steps per epoch.
    :ivar batch_size: crops per step.
    :ivar crop_width: training crop width in pixels (full height); None = full frames.
    :ivar learning_rate: peak AdamW learning rate (cosine decay after a 5 % warm-up).
    :ivar weight_decay: AdamW weight decay.
    :ivar keep_fraction_rgb: certification keep fraction of RGB pixels.
    :ivar keep_fraction_depth: certification keep fraction of depth pixels.
    :ivar random_keep_probability: share of samples with a random keep fraction instead.
    :ivar random_keep_max: random RGB keep fractions are uniform in (0, random_keep_max].
    :ivar flip: random horizontal flips.
    :ivar seed: seeds weights, batch order, crops and sub-sampling masks.
    :ivar device: 'cpu', 'cuda', 'cuda:N' or 'auto'.
    :ivar amp: mixed precision on CUDA (ignored on the CPU).
    :ivar val_samples: sub-samples per validation frame (fixed masks across epochs).
    :ivar depth_source: 'image' (depth pixels are the elements) or 'points' (the valid
        pixels of a sparse LiDAR depth are points, sampled as point clouds are certified).
    :ivar keep_points: points kept per full frame with ``depth_source='points'``.
    :ivar depth_dropout: probability that a sample's whole depth modality is dropped.
    :ivar align_weight: weight of the prototype-alignment term (0 = cross-entropy only).
    :ivar init_checkpoint: start from this checkpoint's weights ('' = fresh initialisation);
        its network settings must match except for the head.
    """

    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 8
    crop_width: int | None = 512
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    keep_fraction_rgb: float = KEEP_FRACTION_RGB
    keep_fraction_depth: float = KEEP_FRACTION_DEPTH
    random_keep_probability: float = 0.25
    random_keep_max: float = 0.05
    flip: bool = True
    seed: int = 0
    device: str = 'cpu'
    amp: bool = True
    val_samples: int = 8
    depth_source: str = 'image'
    keep_points: int = 128
    depth_dropout: float = 0.0
    align_weight: float = 0.0
    init_checkpoint: str = ''
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        for name in ('epochs', 'steps_per_epoch', 'batch_size', 'val_samples'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.crop_width is not None and self.crop_width < 16:
            raise ValueError(f'crop_width must be >= 16 pixels or None, got {self.crop_width}')
        for name in ('keep_fraction_rgb', 'keep_fraction_depth', 'random_keep_max'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must lie in (0, 1], got {getattr(self, name)}')
        if not 0.0 <= self.random_keep_probability <= 1.0:
            raise ValueError(
                f'random_keep_probability must lie in [0, 1], got {self.random_keep_probability}')
        if self.depth_source not in ('image', 'points'):
            raise ValueError(
                f"depth_source must be 'image' or 'points', got {self.depth_source!r}")
        if self.keep_points < 1:
            raise ValueError(f'keep_points must be >= 1, got {self.keep_points}')
        if not 0.0 <= self.depth_dropout < 1.0:
            raise ValueError(f'depth_dropout must lie in [0, 1), got {self.depth_dropout}')
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError('learning_rate must be > 0 and weight_decay >= 0')
        if self.align_weight < 0:
            raise ValueError(f'align_weight must be >= 0, got {self.align_weight}')

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values['network'] = self.network.as_dict()
        return values


@dataclass
class EpochReport:
    """What one epoch measured: mean training loss, training IoU (road, pooled over the
    epoch's sub-sampled crops), and the validation metrics of :func:`validate`."""

    epoch: int
    loss: float
    train_iou: float
    validation: dict[str, float]
    seconds: float


def keep_counts(config: TrainConfig, batch: int, n_rgb: int, n_depth: int,
                rng: np.random.Generator, crop_share: float = 1.0) -> tuple[list[int], list[int]]:
    """Kept elements per sample: certification fractions, or random ones (see module doc).

    With ``depth_source='points'`` the second list is points: ``keep_points * crop_share``
    times the sample's random factor (at least 1; capped by the crop's points later).
    """
    k_rgb, k_depth = [], []
    for _ in range(batch):
        fraction_rgb, fraction_depth = config.keep_fraction_rgb, config.keep_fraction_depth
        scale = 1.0
        if rng.random() < config.random_keep_probability:
            scale = (1.0 - rng.random()) * config.random_keep_max / fraction_rgb  # (0, max/f]
            fraction_rgb = min(1.0, fraction_rgb * scale)
            fraction_depth = min(1.0, fraction_depth * scale)
        k_rgb.append(kept_count(fraction_rgb, n_rgb))
        if config.depth_source == 'points':
            k_depth.append(max(1, round(config.keep_points * crop_share * scale)))
        else:
            k_depth.append(kept_count(fraction_depth, n_depth))
    return k_rgb, k_depth


class Trainer:
    """Trains a :class:`SparseRGBDNet`; writes ``last.pt`` (resumable) and ``best.pt``.

    :param config: the run's settings.
    :param train_set: cropped, flipped training batches.
    :param val_frames: held-out frames, validated at full size after every epoch.
    :param out_dir: checkpoint directory.
    :param provenance: extra provenance (data description, command, commit) for checkpoints.
    """

    def __init__(self, config: TrainConfig, train_set: TrainingSet, val_frames: list,
                 out_dir: str | Path, provenance: dict[str, Any]) -> None:
        self.config = config
        self.train_set = train_set
        self.val_frames = val_frames
        self.out_dir = Path(out_dir)
        self.provenance = provenance
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.model = SparseRGBDNet(config.network).to(self.device)
        if config.init_checkpoint:
            self.model.load_state_dict(_initial_weights(config).state_dict())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        total = config.epochs * config.steps_per_epoch
        warmup = max(1, total // 20)

        def learning_rate_factor(step: int) -> float:
            cosine = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            return min((step + 1) / warmup, cosine)

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, learning_rate_factor)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.amp_dtype = _amp_dtype(self.device) if config.amp else None
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.epoch = 0
        self.best_iou = -1.0
        self.history: list[dict[str, Any]] = []

    def resume(self, path: str | Path) -> None:
        """Continue from a ``last.pt`` written by a run with the same config."""
        model, payload = load_checkpoint(path, self.device)
        state = payload.get('training')
        if not state:
            raise ValueError(f'checkpoint {path} has no training state to resume from')
        if state['config'] != self.config.as_dict():
            changed = sorted(key for key, value in self.config.as_dict().items()
                             if state['config'].get(key) != value)
            raise ValueError(f'checkpoint {path} was trained with other settings: {changed}')
        self.model.load_state_dict(model.state_dict())
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        self.rng.bit_generator.state = state['numpy_rng']
        self.generator.set_state(state['sampling_rng'])
        torch.set_rng_state(state['torch_rng'])
        self.epoch = state['epoch']
        self.best_iou = state['best_iou']
        self.history = list(state['history'])

    def fit(self, progress: Callable[[int, int], Any] | None = None,
            until_epoch: int | None = None) -> list[EpochReport]:
        """Train the remaining epochs (or up to ``until_epoch``); returns their reports.

        :param progress: ``progress(epoch, steps) -> bar`` makes a tqdm-like bar (with
            ``update`` and ``set_postfix``) per epoch; None trains silently.
        """
        last = self.config.epochs if until_epoch is None else min(until_epoch, self.config.epochs)
        reports = []
        while self.epoch < last:
            reports.append(self._run_epoch(progress))
        return reports

    def _run_epoch(self, progress) -> EpochReport:
        start = time.perf_counter()
        self.model.train()
        bar = progress(self.epoch + 1, self.config.steps_per_epoch) if progress else None
        losses, confusion = [], Confusion()
        for _ in range(self.config.steps_per_epoch):
            indices = self.rng.integers(0, len(self.train_set), self.config.batch_size)
            loss, step_confusion = self.step(self.train_set.batch(indices, self.rng))
            losses.append(loss)
            confusion = confusion + step_confusion
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f'{np.mean(losses[-20:]):.4f}', iou=f'{confusion.iou:.3f}')
        if bar is not None:
            bar.close()
        self.epoch += 1
        keep_points = self.config.keep_points if self.config.depth_source == 'points' else None
        validation = validate(self.model, self.val_frames, self.config.keep_fraction_rgb,
                              self.config.keep_fraction_depth, self.config.val_samples,
                              seed=self.config.seed, device=self.device,
                              keep_points=keep_points) if self.val_frames else {}
        report = EpochReport(self.epoch, float(np.mean(losses)), confusion.iou, validation,
                             time.perf_counter() - start)
        self.history.append(dataclasses.asdict(report))
        self._save(validation)
        return report

    def step(self, batch: Batch) -> tuple[float, Confusion]:
        """One optimizer step on a batch; returns the loss and the batch's confusion counts."""
        batch = batch.to(self.device)
        size = batch.rgb.shape[0]
        k_rgb, k_depth = keep_counts(self.config, size, batch.rgb.shape[2] * batch.rgb.shape[3],
                                     batch.depth.shape[2] * batch.depth.shape[3], self.rng,
                                     self.train_set.crop_share)
        if self.config.depth_source == 'points':
            inputs = point_inputs(batch, k_rgb, k_depth, self.generator)
        else:
            inputs = subsample(batch.rgb, batch.depth, k_rgb, k_depth, self.generator)
        if self.config.depth_dropout:
            inputs = drop_depth(inputs, self.rng.random(size) < self.config.depth_dropout)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype,
                                  enabled=self.amp_dtype is not None)
        with autocast:
            features = self.model.features(*inputs.as_args())
            logits = F.interpolate(self.model.classify(features), size=batch.target.shape[-2:],
                                   mode='bilinear', align_corners=False)  # == model(...)
        loss = F.cross_entropy(logits.float(), batch.target)
        if self.config.align_weight:
            loss = loss + self.config.align_weight * (1.0 - class_balanced_alignment(
                features.float(), cell_labels(batch.target), self.model.prototypes))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        labels = predict_labels(logits.detach()).cpu().numpy()
        return loss.item(), plain_confusion(labels, batch.target.cpu().numpy())

    def _save(self, validation: dict[str, float]) -> None:
        provenance = dict(self.provenance, train_config=self.config.as_dict(),
                          keep_fraction_rgb=self.config.keep_fraction_rgb,
                          keep_fraction_depth=self.config.keep_fraction_depth,
                          seed=self.config.seed, epochs_trained=self.epoch,
                          history=list(self.history))
        score = validation.get('vote_iou', -1.0)
        is_best = score > self.best_iou
        if is_best:
            self.best_iou = score
        training = {
            'config': self.config.as_dict(), 'epoch': self.epoch, 'best_iou': self.best_iou,
            'history': list(self.history), 'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(), 'scaler': self.scaler.state_dict(),
            'numpy_rng': self.rng.bit_generator.state, 'sampling_rng': self.generator.get_state(),
            'torch_rng': torch.get_rng_state(),
        }
        save_checkpoint(self.out_dir / 'last.pt', self.model, provenance, training)
        if is_best or not self.val_frames:
            save_checkpoint(self.out_dir / 'best.pt', self.model, provenance)


def point_inputs(batch: Batch, k_rgb: list[int], k_points: list[int],
                 generator: torch.Generator) -> ModelInputs:
    """Sub-sample each crop with its sparse depth's valid pixels as points (the sampling of
    point-cloud certification); a crop with fewer points than ``k_points`` keeps them all."""
    parts = []
    for index in range(batch.rgb.shape[0]):
        points = points_from_depth_image(batch.depth[index, 0].cpu().numpy(), 'training crop')
        parts.append(subsample_points(points, batch.rgb[index:index + 1], k_rgb[index],
                                      kept_point_count(k_points[index], points.count), 1,
                                      generator).as_args())
    return ModelInputs(*(torch.cat(tensors) for tensors in zip(*parts)))


def drop_depth(inputs: ModelInputs, dropped: np.ndarray) -> ModelInputs:
    """``inputs`` with the whole depth modality (values and keep mask) of the samples
    ``dropped`` set to 0: what the model sees in the degraded, RGB-only mode."""
    keep = torch.from_numpy(~dropped).to(inputs.depth.device, inputs.depth.dtype)
    keep = keep[:, None, None, None]
    return ModelInputs(inputs.rgb, inputs.rgb_keep, inputs.depth * keep, inputs.depth_keep * keep)


def _initial_weights(config: TrainConfig) -> SparseRGBDNet:
    """The network of ``config.init_checkpoint``, with the run's head (see the module doc)."""
    model, _ = load_checkpoint(config.init_checkpoint, 'cpu')
    if model.config.head == 'cosine' and config.network.head == 'antipodal':
        model = with_antipodal_head(model)
    if model.config != config.network:
        raise ValueError(f'{config.init_checkpoint} has network {model.config.as_dict()}, the '
                         f'run {config.network.as_dict()}')
    return model


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it (no loss scaling needed), else fp16; None on the CPU."""
    if device.type != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
