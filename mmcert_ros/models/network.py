"""The base segmentation network for sparse, sub-sampled RGB-D input.

MMCert feeds the base model copies of a frame in which only about 2 % of the RGB pixels and
0.2 % of the depth pixels survive. :class:`SparseRGBDNet` is built for exactly that input:

1. **Densify** each modality by normalized convolution with box kernels: the kept pixels'
   values and their count are summed separately over the cells of grids at 1/8, 1/16, 1/32
   and 1/64 of the RGB size and divided (``sum(value * mask) / sum(mask)``); each level also
   gets a confidence channel ``log1p(kept pixels in the cell)``. Only kept pixels are read,
   so dropped pixels cannot influence the output whatever they hold. Depth is encoded as
   inverse depth ``min(1, 3 m / depth)``; kept depth pixels that are invalid (0, NaN) carry no
   weight. Depth may have a different size from RGB: it is summed onto the same grids.
2. **Fuse** both modalities and a normalized row coordinate in a small encoder-decoder whose
   encoder stage at each scale also receives that scale's densified input.
3. **Embed** each cell of the 1/8 grid as a unit ``feature_dim``-vector
   (:meth:`SparseRGBDNet.features`).
4. **Classify** with a cosine head: logits ``= scale * <feature, prototype_c>`` with unit class
   prototypes and a learned temperature (:meth:`SparseRGBDNet.classify`). For two classes the
   prototypes are antipodal by construction, ``(-a, a)`` for one learned unit axis a
   (:class:`AntipodalPrototypes`), so a feature on its class prototype has the largest
   possible angular margin, pi, which the feature-space (l2) certificate needs.
5. **Upsample** the logits bilinearly to the RGB size with the certificate's own rule
   (:func:`mmcert_ros.certify.upsampling.upsample_bilinear`).

``model(...) == upsample_bilinear(model.classify(model.features(...)))`` exactly, so the
feature-space (l2) certificate can smooth the features and reuse the same head. Features live
on the grid,
not per RGB pixel, on purpose: upsampling and normalizing ``feature_dim`` channels at
1242x375 costs ~60 ms per sample on a 2-core CPU, upsampling two logit channels ~2 ms, and
certification runs about 100 forwards per frame.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from mmcert_ros.certify.kept_pixels import KeptPixels
from mmcert_ros.cpu_kernels import densify as densify_kernel
from mmcert_ros.certify.upsampling import upsample_bilinear
from mmcert_ros.models.backends import prepare_model

#: depths nearer than this (metres) saturate the inverse-depth encoding at 1
INVERSE_DEPTH_NEAR_M = 3.0
#: RGB pixels per cell side of the finest grid (features and logits live on this grid)
GRID_STRIDE = 8
#: grids of the densification pyramid: 1/8, 1/16, 1/32 and 1/64 of the RGB size
PYRAMID_LEVELS = 4
#: heads of the network (NetworkConfig.head)
HEADS = ('antipodal', 'cosine')


@dataclass(frozen=True)
class NetworkConfig:
    """Hyper-parameters of :class:`SparseRGBDNet`; stored in every checkpoint.

    :ivar num_classes: number of output classes (2 = not-road / road; class 1 is road).
    :ivar width: channels of the finest encoder stage; coarser stages use 2x and 3x.
    :ivar feature_dim: length of the unit feature vector of each grid cell.
    :ivar initial_scale: initial temperature of the cosine head (logit = scale * cosine).
    :ivar head: 'antipodal' (two classes only: prototypes ``(-a, a)``) or 'cosine' (C free unit
        prototypes); None picks 'antipodal' for two classes, else 'cosine'.
    """

    num_classes: int = 2
    width: int = 24
    feature_dim: int = 8
    initial_scale: float = 10.0
    head: str | None = None

    def __post_init__(self) -> None:
        for name in ('num_classes', 'width', 'feature_dim'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f'network config {name!r} must be a positive integer, got {value!r}')
        if self.num_classes < 2:
            raise ValueError(f'network config num_classes must be >= 2, got {self.num_classes}')
        if not (isinstance(self.initial_scale, (int, float)) and self.initial_scale > 0):
            raise ValueError(
                'network config initial_scale must be a positive number, '
                f'got {self.initial_scale!r}')
        if self.head is None:
            object.__setattr__(self, 'head', 'antipodal' if self.num_classes == 2 else 'cosine')
        if self.head not in HEADS:
            raise ValueError(f'network config head must be one of {HEADS}, got {self.head!r}')
        if self.head == 'antipodal' and self.num_classes != 2:
            raise ValueError('network config head \'antipodal\' needs num_classes = 2, '
                             f'got {self.num_classes}')

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'NetworkConfig':
        """Build from a dict, raising ``ValueError`` that names any unknown key.

        A dict without 'head' comes from a checkpoint written before the head was a setting,
        when every head was 'cosine'.
        """
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown network config key(s): {sorted(unknown)}')
        return cls(**{'head': 'cosine', **values})


class AntipodalPrototypes(nn.Module):
    """Parametrization of two class prototypes as ``(-a, a)``, a the unit vector of one axis.

    Registered on ``SparseRGBDNet.prototypes`` with ``torch.nn.utils.parametrize``: the
    parameter stored is the ``(1, D)`` axis; reading ``prototypes`` gives the ``(2, D)`` unit
    prototypes, and assigning ``(2, D)`` prototypes stores the axis
    ``normalize(p_1) - normalize(p_0)``, which keeps the head's decisions
    (``<f, p_1> > <f, p_0>`` exactly when ``<f, a> > 0``, for unit ``p_c``).
    """

    def forward(self, axis: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(axis, dim=1)
        return torch.cat([-unit, unit])

    def right_inverse(self, prototypes: torch.Tensor) -> torch.Tensor:
        if prototypes.shape[0] != 2:
            raise ValueError(f'antipodal prototypes need 2 classes, got {prototypes.shape[0]}')
        unit = F.normalize(prototypes, dim=1)
        return unit[1:] - unit[:1]


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1,
                  dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


@functools.lru_cache(maxsize=16)
def cell_of_pixel(height: int, width: int, grid: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    """``(height * width,)`` int32: the flat cell ``row * cols + col`` of a ``(rows, cols)``
    grid laid over an ``height x width`` image in which each flat pixel ``y * width + x``
    falls: cell ``(floor(y * rows / height), floor(x * cols / width))``, so images of
    different sizes map onto the same grid. One table per image size and grid (cached),
    so densification gathers instead of dividing per kept pixel."""
    rows, cols = grid
    row = torch.div(torch.arange(height) * rows, height, rounding_mode='floor')
    col = torch.div(torch.arange(width) * cols, width, rounding_mode='floor')
    return (row[:, None] * cols + col[None, :]).reshape(-1).to(torch.int32).to(device)


def cell_index(kept: KeptPixels, grid: tuple[int, int]) -> torch.Tensor:
    """``(K,)`` int64 flat index ``(b, row, col)`` into a ``(B, rows, cols)`` grid of each kept
    pixel (its cell as :func:`cell_of_pixel` maps it)."""
    table = cell_of_pixel(kept.height, kept.width, tuple(grid), kept.pixel.device)
    return torch.add(table.index_select(0, kept.pixel), kept.b, alpha=grid[0] * grid[1]).long()


def cell_sums(kept: KeptPixels, grid: tuple[int, int],
              encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Sum encoded kept pixels over the cells of a ``grid`` laid over the image
    (:func:`cell_index`), in the order of the kept pixels. Only kept pixels are read (the
    input is sparse): dropped pixels cannot influence the result.

    :param encode: maps the kept pixels' values ``(K, C)`` to float32 features ``(K, F)``.
    :returns: ``(B, F, rows, cols)`` float32 sums per cell (channels-last memory).
    """
    return _cell_sums([(kept, encode)], grid)[0]


def _cell_sums(modalities: Sequence[tuple[KeptPixels, Callable[[torch.Tensor], torch.Tensor]]],
               grid: tuple[int, int]) -> tuple[torch.Tensor, list[int]]:
    """:func:`cell_sums` of several modalities of one batch, side by side along the feature
    axis of one ``(B, F_1 + F_2 + ..., rows, cols)`` tensor (channels-last memory), and the
    feature counts ``F_i``."""
    encoded = [encode(kept.values.float()) for kept, encode in modalities]
    batch = modalities[0][0].batch
    sums = torch.zeros(batch * grid[0] * grid[1], sum(part.shape[1] for part in encoded),
                       device=encoded[0].device, dtype=torch.float32)
    first = 0
    for (kept, _), part in zip(modalities, encoded):
        sums[:, first:first + part.shape[1]].index_add_(0, cell_index(kept, grid), part)
        first += part.shape[1]
    return sums.view(batch, *grid, -1).permute(0, 3, 1, 2), [part.shape[1] for part in encoded]


def densify(modalities: Sequence[tuple[KeptPixels, Callable[[torch.Tensor], torch.Tensor]]],
            grid: tuple[int, int], levels: int, extra: int = 0) -> list[torch.Tensor]:
    """Normalized convolution with box kernels onto a pyramid of grids, for one or more
    modalities of a batch at once.

    Each modality is ``(kept, encode)``: ``encode`` maps its kept pixel values ``(K, C)`` to
    ``(K, F)`` whose last column is the pixel's weight (1 = informative, 0 = e.g. invalid
    depth) and whose other columns are already multiplied by it.

    :param levels: number of levels; the first is ``grid`` (cells as in :func:`cell_index`),
        each further one sums 2x2 cells of the previous (rounding up).
    :param extra: channels left unset after the densified ones in the first level (for the
        caller to fill, e.g. a coordinate channel).
    :returns: per level ``(B, F_1 + F_2 + ..., h, w)`` in channels-last memory: per modality,
        the weighted mean of each encoded feature per cell (0 in a cell without weight)
        and, last, ``log1p(total weight in the cell)``; per cell ``mean = sum / max(1,
        weight)`` and ``log1p(weight)``, each one float32 operation.
    """
    sums, widths = _cell_sums(modalities, grid)
    channels = sums.shape[1]
    pyramid = []
    for level in range(levels):
        if level:
            sums = F.avg_pool2d(sums, 2, ceil_mode=True, divisor_override=1)
        batch, _, rows, cols = sums.shape
        cells = sums.permute(0, 2, 3, 1)  # (B, h, w, F), contiguous
        out = torch.empty(batch, rows, cols, channels + (extra if level == 0 else 0),
                          device=sums.device, dtype=sums.dtype)
        start = 0
        for width in widths:  # features start .. start + width - 2, then the weight
            weight = cells[..., start + width - 1:start + width]
            _write(out[..., start:start + width - 1], torch.div,
                   cells[..., start:start + width - 1], weight.clamp(min=1.0))
            _write(out[..., start + width - 1:start + width], torch.log1p, weight)
            start += width
        pyramid.append(out.permute(0, 3, 1, 2))
    return pyramid


def _write(target: torch.Tensor, operation: Callable[..., torch.Tensor], *args) -> None:
    """``target[...] = operation(*args)``: straight into ``target`` (``out=``), or through a
    copy when gradients are recorded (``out=`` does not record them; e.g. booster training)."""
    if torch.is_grad_enabled() and any(arg.requires_grad for arg in args):
        target.copy_(operation(*args))
    else:
        operation(*args, out=target)


def encode_rgb(values: torch.Tensor) -> torch.Tensor:
    """Kept RGB pixels ``(K, 3)`` in [0, 1] -> ``(K, 4)``: centred colour and weight 1."""
    return torch.cat([values - 0.5, torch.ones_like(values[:, :1])], dim=1)


def encode_depth(values: torch.Tensor) -> torch.Tensor:
    """Kept depth pixels ``(K, 1)`` in metres -> ``(K, 2)``: inverse depth and validity.

    Inverse depth is ``min(1, 3 m / depth)``; a pixel <= 0 or NaN is invalid (weight 0).
    """
    valid = values > 0
    inverse = INVERSE_DEPTH_NEAR_M / torch.where(valid, values, 1.0).clamp(
        min=INVERSE_DEPTH_NEAR_M)
    valid = valid.float()
    return torch.cat([inverse * valid, valid], dim=1)


def _densify_on_cpu(rgb: KeptPixels, depth: KeptPixels) -> bool:
    """Whether :meth:`SparseRGBDNet.pyramid_inputs` runs the CPU kernel: both modalities on
    the CPU, and no gradient to record (booster training densifies under autograd)."""
    return (rgb.values.device.type == 'cpu' and depth.values.device.type == 'cpu'
            and not (torch.is_grad_enabled()
                     and (rgb.values.requires_grad or depth.values.requires_grad)))


@functools.lru_cache(maxsize=8)
def _log1p_table(largest: int) -> np.ndarray:
    """``log1p(w)`` in float32 as torch computes it, for the integer weights 0..largest."""
    return torch.log1p(torch.arange(largest + 1, dtype=torch.float32)).numpy()


def _kernel_pyramid(rgb: KeptPixels, depth: KeptPixels, grid: tuple[int, int],
                    rows: torch.Tensor) -> list[torch.Tensor]:
    """:func:`densify` of both modalities and the row coordinate, by the CPU kernel."""
    largest = max(rgb.pixel.numel(), depth.pixel.numel(), 1)
    largest = 1 << (largest - 1).bit_length()  # one table for many batch sizes
    levels = densify_kernel.pyramid(
        rgb.batch, grid[0], grid[1], PYRAMID_LEVELS,
        rgb.b.numpy(), rgb.pixel.numpy(),
        cell_of_pixel(rgb.height, rgb.width, grid, rgb.pixel.device).numpy(),
        rgb.values.float().contiguous().numpy(),
        depth.b.numpy(), depth.pixel.numpy(),
        cell_of_pixel(depth.height, depth.width, grid, depth.pixel.device).numpy(),
        depth.values.float().contiguous().numpy(),
        np.float32(INVERSE_DEPTH_NEAR_M), _log1p_table(largest), rows.numpy())
    return [torch.from_numpy(level).permute(0, 3, 1, 2) for level in levels]


class SparseRGBDNet(nn.Module):
    """Segmentation network for sub-sampled RGB-D frames (see the module docstring).

    Input contract (the MMCert model contract of this package):

    - ``rgb`` ``(B, 3, H, W)`` float in [0, 1], dropped pixels 0;
    - ``rgb_keep`` ``(B, 1, H, W)`` float in {0, 1};
    - ``depth`` ``(B, 1, Hd, Wd)`` float metres, dropped and invalid pixels 0;
    - ``depth_keep`` ``(B, 1, Hd, Wd)`` float in {0, 1}.

    Output: logits ``(B, num_classes, H, W)`` at the RGB resolution. The network is
    deterministic given its input; all randomness lives in the sub-sampling.
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        w = self.config.width
        # per pyramid level: 3 RGB values + 1 RGB confidence + 1 inverse depth + 1 depth
        # confidence; the finest level also gets the row coordinate.
        level_channels = 6
        self.stage1 = nn.Sequential(_conv_bn_relu(level_channels + 1, w), _conv_bn_relu(w, w))
        self.stage2 = nn.Sequential(_conv_bn_relu(w + level_channels, 2 * w),
                                    _conv_bn_relu(2 * w, 2 * w))
        self.stage3 = nn.Sequential(_conv_bn_relu(2 * w + level_channels, 3 * w),
                                    _conv_bn_relu(3 * w, 3 * w))
        self.stage4 = nn.Sequential(_conv_bn_relu(3 * w + level_channels, 3 * w),
                                    _conv_bn_relu(3 * w, 3 * w, dilation=2),
                                    _conv_bn_relu(3 * w, 3 * w, dilation=4))
        # decoder: project the coarser map (1x1), upsample, add the skip, refine (3x3)
        self.lateral3 = nn.Conv2d(3 * w, 3 * w, 1)
        self.lateral2 = nn.Conv2d(3 * w, 2 * w, 1)
        self.lateral1 = nn.Conv2d(2 * w, w, 1)
        self.refine3 = _conv_bn_relu(3 * w, 3 * w)
        self.refine2 = _conv_bn_relu(2 * w, 2 * w)
        self.refine1 = _conv_bn_relu(w, w)
        self.embed = nn.Conv2d(w, self.config.feature_dim, 1)
        prototypes = torch.randn(self.config.num_classes, self.config.feature_dim)
        self.prototypes = nn.Parameter(F.normalize(prototypes, dim=1))
        if self.config.head == 'antipodal':
            parametrize.register_parametrization(self, 'prototypes', AntipodalPrototypes())
        self.log_scale = nn.Parameter(torch.tensor(math.log(self.config.initial_scale)))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def _check_inputs(self, rgb, rgb_keep, depth, depth_keep) -> None:
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f'rgb must have shape (B, 3, H, W), got {tuple(rgb.shape)}')
        if rgb_keep.shape != (rgb.shape[0], 1, *rgb.shape[2:]):
            raise ValueError(f'rgb_keep must have shape (B, 1, H, W) = '
                             f'{(rgb.shape[0], 1, *rgb.shape[2:])}, got {tuple(rgb_keep.shape)}')
        if depth.ndim != 4 or depth.shape[:2] != (rgb.shape[0], 1):
            raise ValueError(
                f'depth must have shape (B, 1, Hd, Wd) with B = {rgb.shape[0]}, '
                f'got {tuple(depth.shape)}')
        if depth_keep.shape != depth.shape:
            raise ValueError(f'depth_keep must have the shape of depth {tuple(depth.shape)}, '
                             f'got {tuple(depth_keep.shape)}')

    def pyramid_inputs(self, rgb: KeptPixels, depth: KeptPixels) -> list[torch.Tensor]:
        """Densify both modalities: per pyramid level ``(B, 6, h_l, w_l)`` float32 (the finest
        level also carries the row coordinate, 7 channels), in channels-last memory.

        On the CPU without autograd this is one compiled kernel
        (:mod:`mmcert_ros.cpu_kernels.densify`), elsewhere :func:`densify`; both give the same
        bits."""
        grid = (math.ceil(rgb.height / GRID_STRIDE), math.ceil(rgb.width / GRID_STRIDE))
        rows = torch.linspace(-1.0, 1.0, grid[0], device=rgb.values.device)
        if _densify_on_cpu(rgb, depth):
            return _kernel_pyramid(rgb, depth, grid, rows)
        inputs = densify([(rgb, encode_rgb), (depth, encode_depth)], grid, PYRAMID_LEVELS,
                         extra=1)
        inputs[0][:, -1] = rows.view(1, grid[0], 1)
        return inputs

    def dense_trunk(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Fuse and decode the pyramid: ``(B, width, h, w)`` on the 1/8 grid, before the
        embedding. Runs in the dtype of the network's weights (inputs are cast to it)."""
        dtype = self.embed.weight.dtype
        inputs = [level.to(dtype) for level in inputs]
        x1 = self.stage1(inputs[0])
        x2 = self.stage2(torch.cat([F.avg_pool2d(x1, 2, ceil_mode=True), inputs[1]], dim=1))
        x3 = self.stage3(torch.cat([F.avg_pool2d(x2, 2, ceil_mode=True), inputs[2]], dim=1))
        x4 = self.stage4(torch.cat([F.avg_pool2d(x3, 2, ceil_mode=True), inputs[3]], dim=1))
        y3 = self.refine3(_upsample(self.lateral3(x4), x3) + x3)
        y2 = self.refine2(_upsample(self.lateral2(y3), x2) + x2)
        return self.refine1(_upsample(self.lateral1(y2), x1) + x1)

    def embed_trunk(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Unit feature vectors ``(B, feature_dim, h, w)`` from the densified pyramid."""
        coarse = self.embed(self.dense_trunk(inputs))
        return coarse * torch.rsqrt((coarse * coarse).sum(dim=1, keepdim=True).clamp(min=1e-12))

    def features_kept(self, rgb: KeptPixels, depth: KeptPixels) -> torch.Tensor:
        """:meth:`features` of the kept pixels of a batch: ``(B, feature_dim, h, w)``."""
        return self.embed_trunk(self.pyramid_inputs(rgb, depth))

    def features(self, rgb, rgb_keep, depth, depth_keep) -> torch.Tensor:
        """Unit-length feature vectors on the 1/8 grid: ``(B, feature_dim, h, w)``.

        ``(h, w) = (ceil(H / 8), ceil(W / 8))`` for an ``H x W`` RGB input. Every vector has
        Euclidean norm 1 (up to rounding), as feature-space smoothing requires.
        """
        self._check_inputs(rgb, rgb_keep, depth, depth_keep)
        return self.features_kept(KeptPixels.from_mask(rgb, rgb_keep),
                                  KeptPixels.from_mask(depth, depth_keep))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine head: logits ``(B, num_classes, h, w) = scale * <features, unit prototype>``.

        ``features`` should be unit vectors (as :meth:`features` returns); the logits then lie
        in ``[-scale, scale]``.
        """
        prototypes = F.normalize(self.prototypes, dim=1).to(features.dtype)
        logits = F.conv2d(features, prototypes[:, :, None, None])
        return logits * self.log_scale.exp().to(features.dtype)

    #: the rule that maps :meth:`grid_logits_kept` to the logits of :meth:`forward_kept`
    #: (``'bilinear'``: :func:`upsample_bilinear`); lets the engine count votes on the grid.
    logit_upsampling = 'bilinear'

    def forward(self, rgb, rgb_keep, depth, depth_keep) -> torch.Tensor:
        """Logits at the RGB resolution: ``upsample_bilinear(classify(features(...)))`` in eval
        mode. In training mode the upsampling is ``F.interpolate`` (bilinear, half-pixel
        centres): the same map up to float32 rounding of the source positions (about 1e-5
        relative), with a much cheaper backward pass.

        The upsampling is bilinear, so each pixel's logits are a convex combination of the
        logits of at most four grid cells, and a pixel's label margin is a bounded linear
        function of its cells' features (what the l2 certificate of
        :mod:`mmcert_ros.certify.l2.pixel_margin` uses).
        """
        coarse = self.classify(self.features(rgb, rgb_keep, depth, depth_keep))
        if self.training:  # the same bilinear map up to float32 rounding, far cheaper to train
            return F.interpolate(coarse, size=rgb.shape[2:], mode='bilinear', align_corners=False)
        return upsample_bilinear(coarse, rgb.shape[2:])

    def grid_logits_kept(self, rgb: torch.Tensor, rgb_indices: torch.Tensor, depth: torch.Tensor,
                         depth_indices: torch.Tensor) -> torch.Tensor:
        """Logits on the 1/8 grid ``(B, num_classes, h, w)`` of the sub-sampled batch (arguments
        as :meth:`forward_kept`): ``forward_kept == upsample_bilinear(grid_logits_kept)``."""
        return self.grid_logits_from_levels(self.pyramid_inputs(
            KeptPixels.from_indices(rgb, rgb_indices),
            KeptPixels.from_indices(depth, depth_indices)))

    def grid_logits_from_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """The dense part: grid logits ``(B, num_classes, h, w)`` from :meth:`pyramid_inputs`
        (what :func:`~mmcert_ros.models.backends.export_onnx` exports)."""
        return self.classify(self.embed_trunk(levels))

    def forward_kept(self, rgb: torch.Tensor, rgb_indices: torch.Tensor, depth: torch.Tensor,
                     depth_indices: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of the sub-sampled batch, read straight from the un-ablated frame.

        Gives the same logits as ``forward`` on the ablated batch and its keep-masks, without
        building them, and reads nothing but the kept pixels.

        :param rgb: ``(1, 3, H, W)`` float in [0, 1] (or one frame per sample).
        :param rgb_indices: ``(B, k_rgb)`` flat kept indices into ``H * W``, rows ascending.
        :param depth: ``(1, 1, Hd, Wd)`` float metres, invalid pixels 0 (or one per sample).
        :param depth_indices: ``(B, k_depth)`` flat kept indices into ``Hd * Wd``.
        """
        return upsample_bilinear(self.grid_logits_kept(rgb, rgb_indices, depth, depth_indices),
                                 rgb.shape[2:])

    def for_backend(self, precision: str, backend: str, device: torch.device) -> nn.Module:
        """What the engine runs for ``CertifyConfig.precision`` / ``backend`` on ``device``:
        :func:`mmcert_ros.models.backends.prepare_model` of this network."""
        return prepare_model(self, precision, backend, device)

    def for_inference(self, dtype: torch.dtype = torch.float32) -> 'SparseRGBDNet':
        """An inference copy: batch norm folded into the convolutions, weights in channels-last
        memory and in ``dtype`` (float32, or bfloat16 / float16 for the reduced-precision
        modes; densification always runs in float32). Eval mode, no gradients; the original
        is left untouched. In float32 the copy's logits equal the original's up to rounding."""
        import copy

        inference = copy.deepcopy(self).eval()
        for block in inference.modules():
            if isinstance(block, nn.Sequential) and len(block) == 3 \
                    and isinstance(block[1], nn.BatchNorm2d):
                block[0] = nn.utils.fusion.fuse_conv_bn_eval(block[0], block[1])
                block[1] = nn.Identity()
        inference = inference.to(dtype=dtype, memory_format=torch.channels_last)
        return inference.requires_grad_(False)


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode='bilinear', align_corners=False)


def build_model(config: NetworkConfig | dict | None = None) -> SparseRGBDNet:
    """A freshly initialised :class:`SparseRGBDNet` (``config`` as object, dict or None)."""
    if isinstance(config, dict):
        config = NetworkConfig.from_dict(config)
    return SparseRGBDNet(config)
