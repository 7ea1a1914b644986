"""The float32 l2 radius map never exceeds the float64 certified supremum it stores."""
from __future__ import annotations

import numpy as np
import torch

from mmcert_ros.certify import CertifyConfig
from mmcert_ros.certify.l2.confidence import round_down_float32
from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings

torch.set_num_threads(1)


def test_round_down_never_exceeds_and_loses_at_most_one_ulp():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 2, 100_000), rng.exponential(1e-3, 10_000),
                             [0.0, 1.0, 0.1, np.inf]])
    rounded = round_down_float32(values)
    assert rounded.dtype == np.float32 and rounded.shape == values.shape
    assert np.all(rounded.astype(np.float64) <= values)
    # the largest float32 not above the value: the next float32 up exceeds it
    finite = np.isfinite(values)
    up = np.nextafter(rounded[finite], np.float32(np.inf)).astype(np.float64)
    assert np.all(up > values[finite])
    nearest = values.astype(np.float32).astype(np.float64)
    assert (nearest > values).sum() > 10_000  # a plain cast would overstate these
    assert round_down_float32(np.array([0.1]))[0] == np.nextafter(np.float32(0.1), np.float32(0))


class FixedFeatureModel(torch.nn.Module):
    """Each 1/8 cell's feature is a fixed vector near class 0's prototype whatever the input,
    so every sample has the same margins and the pixel radii take many distinct float64
    values."""

    num_classes = 2
    feature_dim = 6

    def __init__(self, cells: tuple[int, int]) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(4)
        self.cell_features = 0.1 * torch.randn(self.feature_dim, *cells, generator=generator)
        self.cell_features[0] = 1.0
        self.prototypes = torch.nn.Parameter(torch.eye(2, self.feature_dim)
                                             * torch.tensor([[1.0], [-1.0]]))

    def features(self, rgb, rgb_keep, depth, depth_keep):
        return self.cell_features.expand(rgb.shape[0], -1, -1, -1)


def test_the_l2_radius_map_is_rounded_down_from_the_pixel_radii():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    depth = rng.uniform(2, 40, (24, 40)).astype(np.float32)
    config = CertifyConfig(num_samples=64, alpha=0.05, seed=2, batch_size=32)
    cert = L2Certifier(FixedFeatureModel((6, 10)), L2Settings(sigma=0.5, radius=0.0),
                       config).certify(rgb, depth)
    exact = cert.pixels.radius(config.alpha)
    assert cert.radius.dtype == np.float32 and (exact > 0).mean() > 0.2
    assert np.all(cert.radius.astype(np.float64) <= exact)
    np.testing.assert_array_equal(cert.radius, round_down_float32(exact))
    assert (exact.astype(np.float32).astype(np.float64) > exact).any()  # the case that matters
