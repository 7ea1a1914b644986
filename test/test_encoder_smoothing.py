"""certify_encoder: the FS certificate over any torch encoder, against closed forms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import ndtr, ndtri

from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l2.encoder_smoothing import certify_encoder, smoothed_encoder
from mmcert_ros.certify.l0.sampling import make_generator
from mmcert_ros.models.booster import BoosterConfig, SmoothnessBooster

torch.set_num_threads(1)
SIGMA = 0.5


class HalfSpaceEncoder(torch.nn.Module):
    """Location p's feature is ``+v_p`` if ``<a_p, x> > 0`` else ``-v_p``: ``(B, D, P)``.

    Its smoothing has a closed form: with u_p = v_p, ``<u_p, g_p(x)> = 2 Phi(s_p / sigma) - 1``
    for the signed distance ``s_p = <a_p, x> / |a_p|`` to the hyperplane, and the worst point
    within l2 radius R is ``x - R a_p / |a_p|``, where it is ``2 Phi((s_p - R) / sigma) - 1``:
    exactly the FCSB of the true score, so the FS bound is tight for this encoder.
    """

    def __init__(self, normals: torch.Tensor, directions: torch.Tensor) -> None:
        super().__init__()
        self.normals = normals            # (P, d)
        self.directions = directions      # (P, D) unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = torch.where(x @ self.normals.T > 0, 1.0, -1.0)            # (B, P)
        return (side[:, None, :] * self.directions.T[None]).to(x.dtype)  # (B, D, P)

    def distances(self, x: torch.Tensor) -> np.ndarray:
        return (self.normals @ x / self.normals.norm(dim=1)).numpy().astype(np.float64)


@pytest.fixture(scope='module')
def half_spaces():
    generator = torch.Generator().manual_seed(0)
    dim = 20
    normals = torch.randn(4, dim, generator=generator, dtype=torch.float64)
    directions = F.normalize(torch.randn(4, 6, generator=generator, dtype=torch.float64), dim=1)
    encoder = HalfSpaceEncoder(normals, directions)
    x = torch.randn(dim, generator=generator, dtype=torch.float64)
    # move x to signed distances 0.2, -0.6, 1.0, 1.5 from the hyperplanes (0.4 to 3 sigma)
    units = normals / normals.norm(dim=1, keepdim=True)
    targets = torch.tensor([0.2, -0.6, 1.0, 1.5], dtype=torch.float64)
    x = x + units.T @ torch.linalg.solve(units @ units.T, targets - units @ x)
    np.testing.assert_allclose(encoder.distances(x), targets.numpy(), atol=1e-12)
    return encoder, x


def test_fcsb_of_a_half_space_encoder_is_sound_and_tight(half_spaces):
    encoder, x = half_spaces
    distances = encoder.distances(x)
    cert = certify_encoder(encoder, x, SIGMA, radius=0.1, alpha=0.001, num_samples=4000,
                           seed=1, batch_size=1000)
    signs = np.sign(distances)
    np.testing.assert_allclose(cert.reference, encoder.directions.T.numpy() * signs, atol=1e-12)
    true_score = ndtr(np.abs(distances) / SIGMA)
    np.testing.assert_allclose(cert.smoothed.score_mean, true_score,
                               atol=4 * np.sqrt(0.25 / 4000))
    for radius in (0.0, 0.1, 0.3):
        worst = 2 * ndtr((np.abs(distances) - radius) / SIGMA) - 1   # <u, g(x')> at the worst x'
        bound = cert.fcsb_at(radius)
        assert np.all(bound <= worst), (radius, bound, worst)        # sound
        assert np.all(bound >= worst - 0.12), (radius, bound, worst)  # and tight
    np.testing.assert_array_equal(cert.fcsb, cert.fcsb_at(0.1))
    # where <u, g(x')> reaches 0: at the hyperplane, |s_p| away; the certified radius is below
    radius = cert.certified_radius(0.0)
    assert np.all(radius < np.abs(distances)) and np.all(radius > 0.6 * np.abs(distances))
    np.testing.assert_allclose(radius, SIGMA * ndtri(cert.smoothed.score_lower(0.001)),
                               rtol=1e-12)


def test_the_bound_holds_at_the_worst_point_measured_by_monte_carlo(half_spaces):
    encoder, x = half_spaces
    distances = encoder.distances(x)
    radius = 0.15
    cert = certify_encoder(encoder, x, SIGMA, radius=radius, num_samples=2000, seed=2,
                           batch_size=1000)
    for p in range(4):
        unit = encoder.normals[p] / encoder.normals[p].norm()
        worst_x = x - radius * np.sign(distances[p]) * unit
        noise = torch.randn(20000, 20, generator=torch.Generator().manual_seed(p),
                            dtype=torch.float64)
        features = encoder(worst_x + SIGMA * noise)[:, :, p]
        measured = float((features.mean(dim=0).numpy() * cert.reference[:, p]).sum())
        assert cert.fcsb[p] <= measured + 4 * np.sqrt(1 / 20000)


def test_token_features_on_the_last_axis_give_the_same_certificate(half_spaces):
    encoder, x = half_spaces

    def tokens(z):                                            # (B, P, D): features last
        return encoder(z).transpose(1, 2)

    first = certify_encoder(encoder, x, SIGMA, num_samples=200, seed=3)
    second = certify_encoder(tokens, x, SIGMA, num_samples=200, seed=3, feature_axis=-1)
    np.testing.assert_array_equal(first.fcsb, second.fcsb)
    np.testing.assert_array_equal(first.reference, second.reference)


class TinyVisionEncoder(torch.nn.Module):
    """(B, 3, H, W) images -> (B, 4, H/4, W/4) feature maps, like a vision tower's patches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patches = torch.nn.Conv2d(3, 4, 4, stride=4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patches(images)


def _random_booster():
    torch.manual_seed(1)
    booster = SmoothnessBooster(BoosterConfig(feature_dim=4, purifier_width=4, mapper_width=4,
                                              mapper_layers=1))
    with torch.no_grad():
        for layer in (booster.purifier[-1], booster.mapper[-1]):
            layer.weight.normal_(0.0, 0.3)
    return booster.eval()


def test_a_booster_plugs_in_around_a_vision_encoder():
    image = torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(4))
    encoder, booster = TinyVisionEncoder(), _random_booster()
    cert = certify_encoder(encoder, image, 0.1, radius=0.05, num_samples=64, booster=booster,
                           seed=5)
    assert cert.fcsb.shape == (4, 6) and cert.reference.shape == (4, 4, 6)
    # the documented composition, step by step: purify, encode, normalise, map, smooth

    def composed(noisy, generator):
        return booster.map(F.normalize(encoder(booster.purify(noisy)), dim=1))

    smoother = fs.FeatureSmoother(composed, 0.1, 16)
    generator = make_generator(5, 'cpu')
    reference = smoother.select_reference(image[None], 16, generator)
    smoothed = smoother.estimate(image[None], reference, 64, generator)
    np.testing.assert_allclose(cert.smoothed.score_mean, smoothed.score_mean, rtol=1e-12)
    np.testing.assert_allclose(cert.fcsb, smoothed.fcsb(0.05, 0.001), rtol=1e-12)
    plain = certify_encoder(encoder, image, 0.1, radius=0.05, num_samples=64, seed=5)
    assert not np.allclose(plain.smoothed.score_mean, cert.smoothed.score_mean)
    # a cosine head on top: antipodal prototypes along the first reference vector
    axis = torch.from_numpy(cert.reference[:, 0, 0]).float()
    head = cert.certify_head(torch.stack([axis, -axis]))
    assert head.labels[0, 0] == 0 and head.margin[0, 0] == pytest.approx(np.pi, abs=1e-3)


def test_smoothed_encoder_and_bad_arguments(half_spaces):
    encoder, x = half_spaces
    wrapped = smoothed_encoder(encoder)
    batch = x[None].expand(3, -1)
    torch.testing.assert_close(wrapped(batch, make_generator(0, 'cpu')), encoder(batch))
    with pytest.raises(ValueError, match='alpha'):
        certify_encoder(encoder, x, SIGMA, alpha=0.0)
    with pytest.raises(ValueError, match='method'):
        certify_encoder(encoder, x, SIGMA, method='normal')
    with pytest.raises(ValueError, match='sigma'):
        certify_encoder(encoder, x, 0.0)
    with pytest.raises(ValueError, match='radius'):
        certify_encoder(encoder, x, SIGMA, radius=-1.0, num_samples=4)
