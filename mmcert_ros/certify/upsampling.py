"""The upsampling rule the certificate relies on: grid logits or margins to the RGB size.

Both certificates count and bound pixels through this one rule: the l0 vote counter
(:mod:`mmcert_ros.certify.l0.votes`) counts votes on the network's grid and reads each pixel's
label through its bilinear taps, and the l2 pixel margins
(:mod:`mmcert_ros.certify.l2.pixel_margin`) are the same linear map of the cells' margins.
The base network (:mod:`mmcert_ros.models.network`) upsamples its logits with it, so the
engine's grid counting is bit-identical to upsampling every sample. Only torch is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BilinearTaps:
    """Along one axis: for every output index the two source indices and their weights.

    Half-pixel centres (``align_corners=False``): output ``i`` of ``out`` reads source
    position ``s = max(0, (i + 0.5) in / out - 0.5)``, cells ``low = floor(s)`` and
    ``high = min(low + 1, in - 1)`` with weights ``1 - (s - low)`` and ``s - low`` (computed in
    float64, stored in ``dtype``, float32 unless asked). Clamped positions give ``high`` weight
    exactly 0.
    """

    low: torch.Tensor
    high: torch.Tensor
    weight_low: torch.Tensor
    weight_high: torch.Tensor

    @classmethod
    def build(cls, out_size: int, in_size: int, device: torch.device | str,
              dtype: torch.dtype = torch.float32) -> 'BilinearTaps':
        source = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size)
                  - 0.5).clamp(min=0.0)
        low = source.floor().long().clamp(max=in_size - 1)
        lam = (source - low).clamp(0.0, 1.0)
        return cls(low.to(device), (low + 1).clamp(max=in_size - 1).to(device),
                   (1.0 - lam).to(device, dtype), lam.to(device, dtype))


def upsample_bilinear(grid: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear upsampling of ``(B, C, h, w)`` to ``(B, C, H, W)``, separably: columns first
    (:func:`upsample_columns`), then rows (:func:`upsample_rows`), each output
    ``weight_low * a + weight_high * b`` by elementwise torch ops (one rounding per multiply
    and add, no fused multiply-add), so any subset of pixels computed the same way (the
    engine's grid vote counting) is bit-identical to the full result. Real-valued it equals
    ``F.interpolate(..., mode='bilinear', align_corners=False)``; in float32 it is slightly
    more accurate (weights from float64 source positions). A float64 grid gets float64
    weights."""
    weights = torch.float64 if grid.dtype == torch.float64 else torch.float32
    rows = BilinearTaps.build(int(size[0]), grid.shape[2], grid.device, weights)
    cols = BilinearTaps.build(int(size[1]), grid.shape[3], grid.device, weights)
    return upsample_rows(upsample_columns(grid, cols), rows.low, rows.high,
                         rows.weight_low[:, None], rows.weight_high[:, None])


def upsample_columns(grid: torch.Tensor, cols: BilinearTaps) -> torch.Tensor:
    """First pass of :func:`upsample_bilinear`: ``(B, C, h, w) -> (B, C, h, W)``."""
    return (grid.index_select(3, cols.low) * cols.weight_low.to(grid.dtype)
            + grid.index_select(3, cols.high) * cols.weight_high.to(grid.dtype))


def upsample_rows(wide: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                  weight_low: torch.Tensor, weight_high: torch.Tensor) -> torch.Tensor:
    """Second pass of :func:`upsample_bilinear`: ``wide[..., low, :] * weight_low +
    wide[..., high, :] * weight_high`` (indices along the row axis, weights broadcast)."""
    return (wide[:, :, low] * weight_low.to(wide.dtype)
            + wide[:, :, high] * weight_high.to(wide.dtype))
