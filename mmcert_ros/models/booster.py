"""Gaussian smoothness booster: a plug-in around the frozen base network for the l2 certificate.

Feature-space smoothing (docs/feature_smoothing.md) certifies the label of a cosine head from
the *Gaussian robustness score* of the encoder's unit features under noise ``N(0, sigma^2)``
on the RGB input. A base network trained only for sub-sampling loses score (and accuracy) as
sigma grows. The booster raises the score without retraining the base network:

* **purifier** (before the frozen encoder): a per-pixel residual MLP on the RGB values,
  ``rgb -> clamp(rgb + P(rgb), 0, 1)`` (1x1 convolutions only). Per pixel on purpose: a kept
  pixel's purified value depends on that pixel alone, so dropped pixels still cannot change
  the output and MMCert's l0 certificate keeps holding for the boosted model.
* **mapper** (after it): a residual convolutional map on the 1/8 feature grid,
  ``f -> normalize(f + Q(f))``, which can pool a cell's noisy feature with its neighbours'.
  Its output is a unit vector, so the cosine head and every FS guarantee apply unchanged.

Both residual branches start at zero (the last layer is zero-initialised), so an untrained
booster is the identity on inputs in [0, 1]. :class:`BoostedModel` follows the model contract
of :mod:`mmcert_ros.models` (``features``, ``classify``, ``prototypes``, ``forward``), so the
MMCert engine and the FS certificate run on it as on the base network.

Booster checkpoints are ``torch.save`` dicts read with ``weights_only=True``: ``format``
'mmcert_ros.booster', ``format_version`` 1, ``booster`` (the :class:`BoosterConfig`),
``state_dict`` and ``provenance`` (sigma trained for, base checkpoint, data, history).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmcert_ros.device import resolve_device
from mmcert_ros.models.checkpoint import CheckpointError, read_payload, write_payload

BOOSTER_FORMAT = 'mmcert_ros.booster'
BOOSTER_VERSION = 1
#: where shipped boosters live: ``booster_sigma0.25.pt`` for sigma = 0.25
WEIGHTS_DIR = Path(__file__).resolve().parent / 'weights'


@dataclass(frozen=True)
class BoosterConfig:
    """Sizes of a :class:`SmoothnessBooster`.

    :ivar feature_dim: length of the base network's unit feature vectors.
    :ivar purifier_width: hidden channels of the per-pixel purifier (0 = no purifier).
    :ivar mapper_width: hidden channels of the feature mapper (0 = no mapper).
    :ivar mapper_layers: 3x3 convolutions of the mapper before its final 1x1 (>= 1).
    """

    feature_dim: int = 8
    purifier_width: int = 16
    mapper_width: int = 32
    mapper_layers: int = 2

    def __post_init__(self) -> None:
        for name, low in (('feature_dim', 1), ('purifier_width', 0), ('mapper_width', 0),
                          ('mapper_layers', 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f'booster config {name!r} must be an integer >= {low}, '
                                 f'got {value!r}')

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'BoosterConfig':
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown booster config key(s): {sorted(unknown)}')
        return cls(**values)


class SmoothnessBooster(nn.Module):
    """Purifier and residual smoothness mapper (see the module docstring)."""

    def __init__(self, config: BoosterConfig | None = None) -> None:
        super().__init__()
        self.config = config or BoosterConfig()
        c = self.config
        self.purifier = None
        if c.purifier_width:
            self.purifier = nn.Sequential(
                nn.Conv2d(3, c.purifier_width, 1), nn.ReLU(inplace=True),
                nn.Conv2d(c.purifier_width, c.purifier_width, 1), nn.ReLU(inplace=True),
                nn.Conv2d(c.purifier_width, 3, 1))
            _zero(self.purifier[-1])
        self.mapper = None
        if c.mapper_width:
            layers: list[nn.Module] = []
            channels = c.feature_dim
            for _ in range(c.mapper_layers):
                layers += [nn.Conv2d(channels, c.mapper_width, 3, padding=1),
                           nn.ReLU(inplace=True)]
                channels = c.mapper_width
            layers.append(nn.Conv2d(channels, c.feature_dim, 1))
            self.mapper = nn.Sequential(*layers)
            _zero(self.mapper[-1])

    def boosted(self, base: nn.Module) -> 'BoostedModel':
        """``base`` with this booster plugged in (:class:`BoostedModel`; ``base`` frozen)."""
        return BoostedModel(base, self)

    def purify(self, rgb: torch.Tensor) -> torch.Tensor:
        """``clamp(rgb + P(rgb), 0, 1)`` per pixel; ``(B, 3, H, W)`` in, same shape out."""
        if self.purifier is None:
            return rgb.clamp(0.0, 1.0)
        return (rgb + self.purifier(rgb)).clamp(0.0, 1.0)

    def map(self, features: torch.Tensor) -> torch.Tensor:
        """``normalize(f + Q(f))``: unit vectors ``(B, D, h, w)`` in, unit vectors out."""
        if features.shape[1] != self.config.feature_dim:
            raise ValueError(f'booster expects {self.config.feature_dim}-dimensional features, '
                             f'got {features.shape[1]}')
        if self.mapper is None:
            return features
        return F.normalize(features + self.mapper(features), dim=1)


class BoostedModel(nn.Module):
    """The frozen base network wrapped by a booster; same contract as the base network.

    ``features(rgb, rgb_keep, depth, depth_keep) = map(base.features(purify(rgb) * rgb_keep,
    rgb_keep, depth, depth_keep))``: the purifier is applied per pixel and re-masked, which
    equals purifying the full image and then sub-sampling it, so a dropped pixel never
    influences the output. The base network's parameters are frozen (``requires_grad`` off)
    and it is kept in eval mode.
    """

    def __init__(self, base: nn.Module, booster: SmoothnessBooster) -> None:
        super().__init__()
        if booster.config.feature_dim != base.feature_dim:
            raise ValueError(f'booster for {booster.config.feature_dim}-dimensional features '
                             f'does not fit a base network with {base.feature_dim}')
        self.base = base.eval()
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self.booster = booster

    def train(self, mode: bool = True) -> 'BoostedModel':
        super().train(mode)
        self.base.eval()  # frozen: batch-norm statistics never move
        return self

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def feature_dim(self) -> int:
        return self.base.feature_dim

    @property
    def prototypes(self) -> torch.Tensor:
        return self.base.prototypes

    def features(self, rgb, rgb_keep, depth, depth_keep) -> torch.Tensor:
        return self.booster.map(self.base.features(self.purify_kept(rgb, rgb_keep), rgb_keep,
                                                   depth, depth_keep))

    def purify_kept(self, rgb: torch.Tensor, rgb_keep: torch.Tensor) -> torch.Tensor:
        """``purify(rgb) * rgb_keep``, computed on the kept pixels only (about 2 % of them)."""
        if self.booster.purifier is None:
            return rgb.clamp(0.0, 1.0) * rgb_keep
        b, _, y, x = torch.nonzero(rgb_keep, as_tuple=True)
        purified = self.purify_values(rgb[b, :, y, x])
        out = torch.zeros(rgb.shape[0], rgb.shape[2], rgb.shape[3], 3, dtype=purified.dtype,
                          device=rgb.device)
        out[b, y, x] = purified
        return out.permute(0, 3, 1, 2)

    def purify_values(self, values: torch.Tensor) -> torch.Tensor:
        """The purifier on kept pixel values ``(K, 3)`` (it acts per pixel)."""
        if self.booster.purifier is None:
            return values.clamp(0.0, 1.0)
        return self.booster.purify(values.T[None, :, :, None])[0, :, :, 0].T

    def features_kept(self, rgb, depth) -> torch.Tensor:
        """:meth:`features` from the kept pixels (``KeptPixels``) of a batch."""
        import dataclasses

        rgb = dataclasses.replace(rgb, values=self.purify_values(rgb.values))
        return self.booster.map(self.base.features_kept(rgb, depth))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.base.classify(features)

    def forward(self, rgb, rgb_keep, depth, depth_keep) -> torch.Tensor:
        coarse = self.classify(self.features(rgb, rgb_keep, depth, depth_keep))
        return F.interpolate(coarse, size=rgb.shape[2:], mode='bilinear', align_corners=False)


def default_booster_path(sigma: float) -> Path:
    """Where the shipped booster for ``sigma`` lives (it may not exist)."""
    return WEIGHTS_DIR / f'booster_sigma{sigma:g}.pt'


def save_booster(path: str | Path, booster: SmoothnessBooster, provenance: dict[str, Any]) -> Path:
    """Write ``booster`` and ``provenance`` to ``path`` (temporary file, then rename)."""
    return write_payload(Path(path), {
        'format': BOOSTER_FORMAT, 'format_version': BOOSTER_VERSION,
        'booster': booster.config.as_dict(),
        'state_dict': {k: v.detach().cpu() for k, v in booster.state_dict().items()},
        'provenance': dict(provenance),
    })


def load_booster(path: str | Path, device: str | torch.device = 'cpu'
                 ) -> tuple[SmoothnessBooster, dict[str, Any]]:
    """The booster at ``path`` in eval mode on ``device`` (a torch device or a name, see
    :mod:`mmcert_ros.device`), and its provenance.

    :raises CheckpointError: missing, corrupt, refused or incompatible file (the message names it).
    """
    payload = read_payload(path, BOOSTER_FORMAT, BOOSTER_VERSION, 'a booster checkpoint')
    try:
        booster = SmoothnessBooster(BoosterConfig.from_dict(payload['booster']))
        booster.load_state_dict(payload['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = ' '.join(str(error).split())
        raise CheckpointError(path, 'incompatible', f'booster does not fit: {reason}') from error
    return booster.to(resolve_device(device)).eval(), dict(payload.get('provenance', {}))


def _zero(layer: nn.Conv2d) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
