"""The kept pixels of sub-sampled copies: the form in which sub-sampled inputs reach a base
model that reads only what was kept (``forward_kept`` of the model contract,
:mod:`mmcert_ros.models`), built from the engine's kept indices
(:func:`~mmcert_ros.certify.l0.sampling.draw_kept_indices`) or from a keep-mask. Only torch
is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeptPixels:
    """The kept pixels of a batch of sub-sampled images, in batch-major, row-major order.

    :ivar b: ``(K,)`` int32 sample of each kept pixel; ``pixel``: ``(K,)`` int32 its flat
        index ``y * width + x`` in its image (``y``, ``x``: its row and column; an image has
        fewer than 2^31 pixels).
    :ivar values: ``(K, C)`` the pixel values.
    :ivar batch: samples in the batch; ``height``, ``width``: the image size.
    """

    b: torch.Tensor
    pixel: torch.Tensor
    values: torch.Tensor
    batch: int
    height: int
    width: int

    @property
    def y(self) -> torch.Tensor:
        """``(K,)`` int64 row of each kept pixel."""
        return torch.div(self.pixel.long(), self.width, rounding_mode='floor')

    @property
    def x(self) -> torch.Tensor:
        """``(K,)`` int64 column of each kept pixel."""
        return self.pixel.long() % self.width

    @classmethod
    def from_mask(cls, image: torch.Tensor, keep: torch.Tensor) -> 'KeptPixels':
        """From dense ``(B, C, H, W)`` values and a ``(B, 1, H, W)`` keep-mask (non-zero =
        kept)."""
        batch, _, height, width = image.shape
        b, _, y, x = torch.nonzero(keep, as_tuple=True)
        return cls(b.int(), (y * width + x).int(), image[b, :, y, x], batch, height, width)

    @classmethod
    def from_indices(cls, frame: torch.Tensor, indices: torch.Tensor) -> 'KeptPixels':
        """From one un-ablated ``(1, C, H, W)`` frame (or B of them) and ``(B, k)`` flat indices,
        each row distinct and ascending (``sampling.draw_kept_indices``): the same pixels in
        the same order as :meth:`from_mask` of the ablated batch, without building it."""
        frames, channels, height, width = frame.shape
        batch, k = indices.shape
        if frames not in (1, batch):
            raise ValueError(f'need one frame or one per sample: {frames} frames, {batch} rows')
        flat = indices.reshape(-1).int()  # int32 indices gather about twice as fast as int64
        b = torch.arange(batch, device=indices.device, dtype=torch.int32).repeat_interleave(k)
        # one row of C values per pixel: a view for a channels-last frame, else one copy
        pixels = frame.permute(0, 2, 3, 1).reshape(frames * height * width, channels)
        source = flat if frames == 1 else flat + b.long() * (height * width)
        return cls(b, flat, pixels.index_select(0, source), batch, height, width)
