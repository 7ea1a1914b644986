"""The joint ensemble (``fs.joint``): both certificates from one set of noisy sub-sampled
passes, against independent oracles; and ``fs.joint: false`` is the pair of separate
ensembles, bit for bit.

Oracles: the step-by-step recipe of docs/feature_smoothing.md replayed with the same
generator; the cosine head's labels on the recorded features, upsampled and counted by brute
force; a model whose per-sample vote has a closed-form law under the noise (one kept pixel,
road iff its noisy value exceeds 1/2: P(road) = Phi((v - 1/2) / sigma)), tested with SciPy's
exact binomial test, and the certified mask against the binomial p-value computed with SciPy.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l2.certifier import FrameCertification, L2Certifier, L2Settings
from mmcert_ros.certify.l0.sampling import kept_count, make_generator
from mmcert_ros.data.frame import Frame
from mmcert_ros.models import NetworkConfig, build_model
from mmcert_ros.certify.upsampling import upsample_bilinear

torch.set_num_threads(1)
CONFIG = CertifyConfig(num_samples=24, alpha=0.01, seed=5, batch_size=8)
SETTINGS = L2Settings(sigma=0.25, radius=0.01, num_samples=40)


def _frame(height=24, width=40, seed=0) -> Frame:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.uniform(2, 40, (height // 2, width // 2)).astype(np.float32)
    depth[0, :3] = np.nan
    return Frame(rgb=rgb, depth=depth)


def _tiny_model():
    torch.manual_seed(0)
    return build_model(NetworkConfig(width=4, feature_dim=4)).eval()


def _same(a, b) -> None:
    """Two certificates (l0 or l2) with identical arrays."""
    for name in ('labels', 'certified', 'radius'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_fs_joint_false_is_the_l0_engine_and_the_l2_recipe_bit_for_bit():
    frame, model = _frame(), _tiny_model()
    run = FrameCertification(CertifiedSegmenter(model, CONFIG),
                             L2Certifier(model, SETTINGS, CONFIG), frame)
    l0, l2 = run.l0(), run.l2()
    alone = CertifiedSegmenter(_tiny_model(), CONFIG).certify(frame.rgb, frame.depth)
    _same(l0, alone)
    np.testing.assert_array_equal(l0.top_counts, alone.top_counts)
    assert l0.num_samples == CONFIG.num_samples
    # the l2 recipe of docs/feature_smoothing.md, step by step, with the same seed
    rgb_t = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255
    depth_t = torch.from_numpy(np.nan_to_num(frame.depth, nan=0.0))[None, None]
    k = (kept_count(CONFIG.keep_fraction_rgb, 24 * 40),
         kept_count(CONFIG.keep_fraction_depth, 12 * 20))
    encoder = fs.kept_pixel_rgbd_encoder(model.features_kept, depth_t, *k, SETTINGS.sigma)
    smoother = fs.FeatureSmoother(encoder, SETTINGS.sigma, CONFIG.batch_size, adds_noise=True)
    recipe = smoother.certify(rgb_t, model.prototypes, SETTINGS.radius, CONFIG.alpha, 16,
                              SETTINGS.num_samples, make_generator(CONFIG.seed, 'cpu'))
    np.testing.assert_array_equal(l2.cells.smoothed.score_mean, recipe.smoothed.score_mean)
    np.testing.assert_array_equal(l2.cells.certified, recipe.certified)
    assert l2.num_samples == SETTINGS.num_samples


def test_the_joint_l2_certificate_is_the_separate_one_for_the_same_seed():
    frame, model = _frame(seed=1), _tiny_model()
    separate = L2Certifier(model, SETTINGS, CONFIG).certify_frame(frame)
    joint_l0, joint = L2Certifier(model, SETTINGS.replace(joint=True), CONFIG).certify_joint(
        frame.rgb, frame.depth)
    _same(joint, separate)
    np.testing.assert_array_equal(joint.cells.smoothed.score_mean,
                                  separate.cells.smoothed.score_mean)
    np.testing.assert_array_equal(joint.cells.smoothed.mean_feature,
                                  separate.cells.smoothed.mean_feature)
    assert joint_l0.num_samples == SETTINGS.num_samples   # the l2 N, not certify.num_samples


class RecordingModel(torch.nn.Module):
    """A tiny network that records every batch of features its l2 path computes."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _tiny_model()
        self.prototypes = self.net.prototypes
        self.batches: list[torch.Tensor] = []

    def features_kept(self, rgb, depth):
        features = self.net.features_kept(rgb, depth)
        self.batches.append(features.clone())
        return features

    def classify(self, features):
        return self.net.classify(features)


def test_the_joint_votes_are_the_heads_labels_on_the_l2_samples():
    frame, model = _frame(seed=2), RecordingModel()
    config = CONFIG.replace(radius_rgb=1)
    l0, l2 = L2Certifier(model, SETTINGS.replace(joint=True), config).certify_joint(
        frame.rgb, frame.depth)
    features = torch.cat(model.batches)
    assert features.shape[0] == 16 + SETTINGS.num_samples        # selection, then estimation
    estimation = torch.nn.functional.normalize(features[16:], dim=1)
    with torch.no_grad():
        logits = upsample_bilinear(model.classify(estimation), (24, 40))
    votes = np.stack([(logits.argmax(dim=1) == c).sum(dim=0).numpy() for c in range(2)])
    np.testing.assert_array_equal(l0.top_counts, votes.max(axis=0))
    np.testing.assert_array_equal(l0.labels, votes.argmax(axis=0))   # ties: smallest class
    # and the l2 statistics come from the same estimation samples
    mean = estimation.double().mean(dim=0).numpy()
    np.testing.assert_allclose(l2.cells.smoothed.mean_feature, mean, atol=1e-12)
    assert l0.radius_budget == (1, 0) and l0.alpha == CONFIG.alpha


class OneKeptPixelVote(torch.nn.Module):
    """Road (feature (1, 0)) in every cell iff the red value of the sample's one kept RGB
    pixel exceeds 1/2, else not road ((-1, 0)); antipodal prototypes. Under the joint
    ensemble a vote is road with probability Phi((v - 1/2) / sigma) on an image of value v."""

    def __init__(self) -> None:
        super().__init__()
        self.prototypes = torch.nn.Parameter(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))

    def features_kept(self, rgb, depth):
        road = (rgb.values[:, 0] > 0.5).double() * 2 - 1          # one kept pixel per sample
        cells = (math.ceil(rgb.height / 8), math.ceil(rgb.width / 8))
        first = road.new_zeros(rgb.batch).index_add_(0, rgb.b, road)
        feature = torch.stack([first, torch.zeros_like(first)], dim=1).float()
        return feature[:, :, None, None].expand(-1, -1, *cells)

    def classify(self, features):
        return torch.nn.functional.conv2d(features, self.prototypes[:, :, None, None])


def _binomial_pvalue(count: int, n: int, q: float, classes: int = 2) -> float:
    """The l0 test's p-value (docs/certification.md, "The selection bound") from SciPy."""
    if q >= 1:
        return 1.0
    tail = stats.binom.sf(count - 1, n, q)
    if 2 * count > n:
        return min(1.0, tail + stats.binom.sf(count - 1, n, 1 - q))
    return min(1.0, classes * tail)


def test_the_joint_l0_votes_follow_the_noisy_ensemble_law_and_certify_as_scipy_says():
    value, sigma, n_samples = 170, 0.25, 60
    rgb = np.full((16, 24, 3), value, np.uint8)
    depth = np.full((8, 12), 5.0, np.float32)
    config = CertifyConfig(num_samples=n_samples, alpha=0.05, batch_size=16,
                           keep_fraction_rgb=1e-6, radius_rgb=2)             # k_rgb = 1
    p_road = stats.norm.cdf((value / 255 - 0.5) / sigma)
    road_votes = 0
    frames = 30
    for seed in range(frames):
        certifier = L2Certifier(OneKeptPixelVote(), L2Settings(sigma=sigma, joint=True),
                                config.replace(seed=seed))
        l0, l2 = certifier.certify_joint(rgb, depth)
        counts = np.unique(l0.top_counts)
        assert counts.size == 1                                # one decision per sample
        road = int(counts[0]) if (l0.labels == 1).all() else n_samples - int(counts[0])
        road_votes += road
        # the l2 score of each cell is the share of road votes of the same samples
        u = l2.cells.smoothed.reference[0].mean()     # +1, -1, or 0 (selection tied 8:8)
        share = 0.5 if u == 0 else road / n_samples if u > 0 else 1 - road / n_samples
        np.testing.assert_allclose(l2.cells.smoothed.score_mean, share, atol=1e-12)
        # the certified mask is the binomial test at q = 1/2 + delta (k_rgb = 1: delta = r/n)
        q = 0.5 + config.radius_rgb / rgb[..., 0].size
        pixels = rgb[..., 0].size
        expected = _binomial_pvalue(int(counts[0]), n_samples, q) <= config.alpha / pixels
        assert l0.certified.all() == expected and l0.certified.any() == expected
    # the votes are taken on noisy inputs: road_votes ~ Binomial(frames * N, Phi(...))
    test = stats.binomtest(road_votes, frames * n_samples, p_road)
    assert test.pvalue > 1e-6, (road_votes, frames * n_samples, p_road)


def test_the_joint_ensemble_refuses_a_model_without_a_head_and_a_lidar_frame():
    class FeaturesOnly(torch.nn.Module):
        prototypes = torch.eye(2)

        def features(self, rgb, rgb_keep, depth, depth_keep):
            return torch.ones(rgb.shape[0], 2, 1, 1)

    with pytest.raises(ValueError, match='fs.joint'):
        L2Certifier(FeaturesOnly(), L2Settings(sigma=0.1, joint=True), CONFIG)
    model = _tiny_model()
    frame = _frame()
    frame.extras['points'] = object()
    run = FrameCertification(CertifiedSegmenter(model, CONFIG),
                             L2Certifier(model, SETTINGS.replace(joint=True), CONFIG), frame)
    with pytest.raises(ValueError, match='LiDAR'):
        run.l0()


def test_the_shared_upload_is_counted_in_the_l0_timings():
    frame, model = _frame(seed=3), _tiny_model()
    run = FrameCertification(CertifiedSegmenter(model, CONFIG),
                             L2Certifier(model, SETTINGS, CONFIG), frame)
    l0 = run.l0()
    alone = CertifiedSegmenter(model, CONFIG).certify(frame.rgb, frame.depth)
    assert set(l0.timings) == set(alone.timings)          # the same stages as the engine alone
    assert l0.timings['preprocess'] > 0                   # the upload, made by this call
    assert l0.timings['total'] >= l0.timings['preprocess'] + l0.timings['inference']
