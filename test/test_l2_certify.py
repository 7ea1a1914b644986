"""L2Certifier: the per-frame l2 certificate the node and the tools build, against closed forms."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, special

from mmcert_ros.certify import CertifyConfig
from mmcert_ros.certify.l2 import feature_smoothing as fs
from mmcert_ros.certify.l2.confidence import round_down_float32
from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
from mmcert_ros.certify.l2.pixel_margin import FEATURE_NORM_SLACK, pixel_margins
from mmcert_ros.certify.l0.sampling import kept_count, make_generator
from mmcert_ros.models import NetworkConfig, build_model
from mmcert_ros.models.booster import BoosterConfig, SmoothnessBooster
from mmcert_ros.segmenter.parameters import settings_from_parameters

torch.set_num_threads(1)
CONFIG = CertifyConfig(num_samples=64, alpha=0.01, seed=3, batch_size=32)


class ConstantRoadModel(torch.nn.Module):
    """Every cell's feature is the road prototype whatever the input; prototypes antipodal."""

    num_classes = 2
    feature_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.prototypes = torch.nn.Parameter(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))

    def features(self, rgb, rgb_keep, depth, depth_keep):
        batch, _, height, width = rgb.shape
        grid = (batch, 1, math.ceil(height / 8), math.ceil(width / 8))
        return torch.cat([torch.ones(grid), torch.zeros(grid)], dim=1)

    def classify(self, features):
        return F.conv2d(features, self.prototypes[:, :, None, None])


def _frame(height=20, width=36, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    depth = rng.uniform(2, 40, (height // 2, width // 2)).astype(np.float32)
    depth[0, :3] = np.nan
    return rgb, depth


def test_a_noise_proof_encoder_is_certified_up_to_the_closed_form_radius():
    rgb, depth = _frame()
    sigma = 0.25
    cert = L2Certifier(ConstantRoadModel(), L2Settings(sigma=sigma, radius=0.1),
                       CONFIG).certify(rgb, depth)
    cells, pixels = math.ceil(20 / 8) * math.ceil(36 / 8), 20 * 36
    # every pixel's margin is 1 in every sample: score 1 - slack / (2 (1 + slack)) after the
    # norm slack. The KL lower bound s solves N kl(score, s) = ln(m / alpha) over the m pixels
    # (SciPy's root; at score 1 exactly it would be (alpha/m)^(1/N)), and the label holds
    # while R < sigma * Phi^{-1}(s).
    score = 1 - FEATURE_NORM_SLACK / (2 * (1 + FEATURE_NORM_SLACK))
    budget = math.log(pixels / CONFIG.alpha) / CONFIG.num_samples
    lower = optimize.brentq(lambda q: special.rel_entr(score, q)
                            + special.rel_entr(1 - score, 1 - q) - budget, 0.5, score,
                            xtol=1e-15)
    expected = sigma * special.ndtri(lower)
    assert expected < sigma * special.ndtri((CONFIG.alpha / pixels) ** (1 / CONFIG.num_samples))
    assert cert.labels.shape == (20, 36) and (cert.labels == 1).all()
    assert cert.certified.all() and cert.certified_fraction == 1.0
    np.testing.assert_allclose(cert.radius, expected, rtol=1e-6)
    assert cert.certified_at(expected * 0.999).all()
    assert not cert.certified_at(expected * 1.05).any()
    np.testing.assert_allclose(cert.fcsb_at(0.0), 2 * (CONFIG.alpha / cells)
                               ** (1 / CONFIG.num_samples) - 1, rtol=1e-6)
    summary = cert.summary()
    json.dumps(summary)
    assert summary['cells'] == cells and summary['sigma'] == sigma and not summary['boosted']
    assert summary['radius_map']['uncertified_fraction'] == 0.0


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model(NetworkConfig(width=4, feature_dim=8)).eval()


def test_the_l2_certifier_is_the_documented_recipe_and_a_fixed_seed_reproduces_it():
    rgb, depth = _frame()
    model = _tiny_model()
    cert = L2Certifier(model, L2Settings(sigma=0.12, radius=0.01), CONFIG).certify(rgb, depth)
    # the recipe of docs/feature_smoothing.md, step by step
    rgb_t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    depth_t = torch.from_numpy(np.nan_to_num(depth, nan=0.0))[None, None]
    encoder = fs.kept_pixel_rgbd_encoder(model.features_kept, depth_t, kept_count(0.0193, 720),
                                         kept_count(0.00214, 180), 0.12)
    smoother = fs.FeatureSmoother(encoder, 0.12, CONFIG.batch_size, adds_noise=True)
    recipe = smoother.certify(rgb_t, model.prototypes, 0.01, CONFIG.alpha, 16,
                              CONFIG.num_samples, make_generator(CONFIG.seed, 'cpu'))
    pixels = pixel_margins(recipe.smoothed, model.prototypes, (20, 36))
    np.testing.assert_array_equal(cert.labels, pixels.labels)
    np.testing.assert_array_equal(cert.certified, pixels.certified_at(0.01, CONFIG.alpha))
    np.testing.assert_array_equal(cert.radius, round_down_float32(pixels.radius(CONFIG.alpha)))
    np.testing.assert_array_equal(cert.cells.certified, recipe.certified)
    np.testing.assert_array_equal(cert.cells.smoothed.score_mean, recipe.smoothed.score_mean)
    again = L2Certifier(model, L2Settings(sigma=0.12, radius=0.01), CONFIG).certify(rgb, depth)
    np.testing.assert_array_equal(again.cells.smoothed.score_mean, cert.cells.smoothed.score_mean)
    fresh = L2Certifier(model, L2Settings(sigma=0.12, radius=0.01),
                        CONFIG.replace(seed=None)).certify(rgb, depth)
    assert not np.array_equal(fresh.cells.smoothed.score_mean, cert.cells.smoothed.score_mean)


def test_an_untrained_booster_changes_nothing_and_the_certificate_says_it_was_boosted():
    rgb, depth = _frame()
    plain = L2Certifier(_tiny_model(), L2Settings(sigma=0.25), CONFIG).certify(rgb, depth)
    boosted = L2Certifier(_tiny_model(), L2Settings(sigma=0.25, radius=0.0), CONFIG,
                          SmoothnessBooster(BoosterConfig(feature_dim=8))).certify(rgb, depth)
    np.testing.assert_allclose(boosted.cells.smoothed.score_mean,
                               plain.cells.smoothed.score_mean, atol=1e-6)
    np.testing.assert_array_equal(boosted.labels, plain.labels)
    assert boosted.boosted and not plain.boosted


def test_holm_mask_shrinks_with_the_radius_and_contains_the_radius_map():
    rgb, depth = _frame(seed=4)
    cert = L2Certifier(ConstantRoadModel(), L2Settings(sigma=0.5, radius=0.0),
                       CONFIG).certify(rgb, depth)
    previous = cert.certified_at(0.0)
    for radius in (0.05, 0.2, 0.5, 1.0, 2.0):
        mask = cert.certified_at(radius)
        assert not (mask & ~previous).any()
        assert not ((cert.radius > radius) & ~mask).any()
        previous = mask


def test_agreeing_keeps_only_pixels_where_the_published_labels_match():
    rgb, depth = _frame()
    cert = L2Certifier(ConstantRoadModel(), L2Settings(sigma=0.25, radius=0.0),
                       CONFIG).certify(rgb, depth)
    published = np.ones((20, 36), np.uint8)
    published[:5] = 0
    mask = cert.agreeing(published)
    assert not mask[:5].any() and mask[5:].all()


def test_bad_arguments_name_what_is_wrong():
    rgb, depth = _frame()
    model = ConstantRoadModel()
    with pytest.raises(ValueError, match='sigma'):
        L2Certifier(model, L2Settings(sigma=0.0, radius=0.1), CONFIG).certify(rgb, depth)
    with pytest.raises(ValueError, match='radius'):
        L2Certifier(model, L2Settings(sigma=0.25, radius=-1.0), CONFIG).certify(rgb, depth)
    with pytest.raises(ValueError):
        L2Certifier(model, L2Settings(sigma=0.25, radius=0.1), CONFIG).certify(rgb[..., :2], depth)


def test_settings_from_ros_parameters():
    settings = settings_from_parameters(L2Settings, {'fs.sigma': 0.25, 'fs.radius': 0.1,
                                                     'fs.booster': 'b.pt', 'certify.alpha': 0.01})
    assert settings == L2Settings(0.25, 0.1, 'b.pt', 0) and settings.enabled
    assert not L2Settings().enabled
    assert settings.replace(num_samples=500).engine_config(CONFIG).num_samples == 500
    assert settings.engine_config(CONFIG) is CONFIG
    with pytest.raises(ValueError, match='fs.sigmaa'):
        settings_from_parameters(L2Settings, {'fs.sigmaa': 0.25})
    with pytest.raises(ValueError, match='fs.radius'):
        settings_from_parameters(L2Settings, {'fs.radius': -0.5})
    with pytest.raises(ValueError, match='fs.num_samples'):
        L2Settings(num_samples=2.5)


# ------------------------------------------------------------- mmcert-ros certify / evaluate
@pytest.fixture(scope='module')
def drive(tmp_path_factory):
    from mmcert_ros.tools.cli import main
    out = tmp_path_factory.mktemp('synth')
    assert main(['synth', '--out', str(out), '--frames', '2', '--seed', '4', '--width', '96',
                 '--height', '32']) == 0
    return out


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A tiny base network and a booster for it with non-zero residual branches."""
    from mmcert_ros.models import save_checkpoint
    from mmcert_ros.models.booster import save_booster
    folder = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=4, feature_dim=4)).eval()
    booster = SmoothnessBooster(BoosterConfig(feature_dim=4, purifier_width=4, mapper_width=4))
    with torch.no_grad():
        for parameter in booster.parameters():
            parameter.normal_(0.0, 0.3)
    return (save_checkpoint(folder / 'tiny.pt', model, {}),
            save_booster(folder / 'booster.pt', booster, {'sigma': 0.25}))


def _drive_frames(drive):
    from mmcert_ros.evaluation import KittiFrames
    return list(KittiFrames(drive))


def _expected_l2(model_path, booster_path, frame, config, sigma, radius):
    """The published l2 mask, straight from the library (the oracle for the tools)."""
    from mmcert_ros.certify import CertifiedSegmenter
    from mmcert_ros.models import load_model
    from mmcert_ros.models.booster import load_booster
    model = load_model(model_path)
    labels = CertifiedSegmenter(model, config).certify_frame(frame).labels
    cert = L2Certifier(model, L2Settings(sigma=sigma, radius=radius), config,
                       load_booster(booster_path)[0]).certify(frame.rgb, frame.depth)
    return cert, cert.agreeing(labels)


def test_certify_tool_writes_the_l2_mask_and_report(drive, checkpoints, tmp_path, capsys):
    import cv2
    from mmcert_ros.tools.cli import main
    model_path, booster_path = checkpoints
    frame = _drive_frames(drive)[0]
    rgb = drive / 'training' / 'image_2' / f'{frame.name}.png'
    depth = drive / 'training' / 'depth_u16' / f'{frame.name}.png'
    args = ['certify', '--rgb', str(rgb), '--depth', str(depth), '--checkpoint',
            str(model_path), '--num-samples', '16', '--seed', '2', '--alpha', '0.01']
    assert main([*args, '--out', str(tmp_path / 'off')]) == 0
    assert not (tmp_path / 'off' / 'l2_certification.png').exists()
    assert 'l2' not in json.loads((tmp_path / 'off' / 'report.json').read_text())

    out = tmp_path / 'on'
    assert main([*args, '--out', str(out), '--fs-sigma', '0.25', '--fs-radius', '0.02',
                 '--fs-samples', '48', '--fs-booster', str(booster_path)]) == 0
    config = CertifyConfig(num_samples=16, seed=2, alpha=0.01)
    cert, expected = _expected_l2(model_path, booster_path, frame,
                                  config.replace(num_samples=48), 0.25, 0.02)
    image = cv2.imread(str(out / 'l2_certification.png'), cv2.IMREAD_UNCHANGED)
    segmentation = cv2.imread(str(out / 'segmentation.png'), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(image)) <= {0, 255}
    # the published mask needs the l0 labels of the l0 run (N = 16), not of an N = 48 one
    np.testing.assert_array_equal(image == 255, cert.agreeing(segmentation))
    report = json.loads((out / 'report.json').read_text())['l2']
    assert report['sigma'] == 0.25 and report['radius'] == 0.02 and report['num_samples'] == 48
    assert report['boosted'] and report['booster'] == str(booster_path)
    assert report['published_certified_fraction'] == pytest.approx((image == 255).mean())
    assert report['fcsb']['mean'] == pytest.approx(float(cert.cells.fcsb.mean()))
    assert 'l2: certified' in capsys.readouterr().out
    assert main([*args, '--out', str(tmp_path / 'bad'), '--fs-sigma', '0.25',
                 '--fs-booster', str(tmp_path / 'missing.pt')]) == 2
    assert 'fs.booster: no such file' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_evaluate_tool_pools_the_l2_certificate_from_the_config(drive, checkpoints, tmp_path):
    from mmcert_ros.certify import CertifiedSegmenter
    from mmcert_ros.models import load_model
    from mmcert_ros.tools.cli import main
    model_path, booster_path = checkpoints
    params = tmp_path / 'mmcert.yaml'
    params.write_text(
        'mmcert_segmenter:\n  ros__parameters:\n'
        f'    model.checkpoint: {model_path}\n    certify.num_samples: 12\n'
        '    certify.seed: 5\n    certify.alpha: 0.01\n    fs.sigma: 0.12\n'
        f'    fs.radius: 0.01\n    fs.booster: {booster_path}\n    fs.num_samples: 40\n')
    out = tmp_path / 'eval'
    assert main(['evaluate', '--kitti', str(drive), '--config', str(params), '--out', str(out),
                 '--no-progress']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())['l2']
    config = CertifyConfig(num_samples=12, seed=5, alpha=0.01)
    model = load_model(model_path)
    published = certified = pixels = 0
    for frame in _drive_frames(drive):
        labels = CertifiedSegmenter(model, config).certify_frame(frame).labels
        cert = _expected_l2(model_path, booster_path, frame, config.replace(num_samples=40),
                            0.12, 0.01)[0]
        published += int(cert.agreeing(labels).sum())
        certified += int(cert.certified.sum())
        pixels += labels.size
    assert metrics['frames'] == 2 and metrics['sigma'] == 0.12 and metrics['num_samples'] == 40
    assert metrics['joint'] is False
    assert metrics['certified_fraction'] == pytest.approx(published / pixels)
    assert metrics['certified_fraction_any_label'] == pytest.approx(certified / pixels)
    assert 'plain' in metrics and 'certified' in metrics
    header = (out / 'frames.csv').read_text().splitlines()[0]
    assert 'l2_certified_fraction' in header and 'l2_fcsb_mean' in header


@pytest.mark.parametrize('boosted', [False, True])
def test_noise_at_the_kept_pixels_only_is_the_full_noise_recipe_coupled(boosted):
    """The fast encoder's output for its masks and kept-pixel noise equals the documented
    recipe (noise on every pixel, then sub-sampling) for the same masks and any noise at the
    dropped pixels: the recipe depends on the noise only at the kept pixels, so both draw the
    same distribution of features (the certificate means the same)."""
    from mmcert_ros.certify.l0.sampling import draw_kept_indices
    from mmcert_ros.models.booster import BoostedModel

    rgb, depth = _frame()
    model = _tiny_model(3)
    if boosted:
        booster = SmoothnessBooster(BoosterConfig(feature_dim=8))
        with torch.no_grad():  # a booster that does something
            for parameter in booster.parameters():
                parameter.normal_(0.0, 0.1)
        model = BoostedModel(model, booster.eval())
    rgb_t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    depth_t = torch.from_numpy(np.nan_to_num(depth, nan=0.0))[None, None]
    k_rgb, k_depth, sigma, batch = 40, 9, 0.25, 5
    encoder = fs.kept_pixel_rgbd_encoder(model.features_kept, depth_t, k_rgb, k_depth, sigma)
    with torch.no_grad():
        fast = encoder(rgb_t, batch, make_generator(8, 'cpu'))
        generator = make_generator(8, 'cpu')  # replay the fast encoder's draws
        rgb_indices = draw_kept_indices(batch, 720, k_rgb, generator)
        depth_indices = draw_kept_indices(batch, 180, k_depth, generator)
        kept_noise = torch.randn(batch * k_rgb, 3, generator=generator)
        noise = torch.randn(batch, 20 * 36, 3) * 5  # anything at the dropped pixels
        noise[torch.arange(batch).repeat_interleave(k_rgb), rgb_indices.reshape(-1)] = kept_noise
        noisy = rgb_t + sigma * noise.view(batch, 20, 36, 3).permute(0, 3, 1, 2)
        rgb_keep = torch.zeros(batch, 720).scatter_(1, rgb_indices, 1.0).view(batch, 1, 20, 36)
        depth_keep = torch.zeros(batch, 180).scatter_(1, depth_indices, 1.0).view(batch, 1, 10, 18)
        recipe = model.features(noisy.clamp(0.0, 1.0) * rgb_keep, rgb_keep,
                                depth_t * depth_keep, depth_keep)
    torch.testing.assert_close(fast, recipe, rtol=0, atol=1e-5)
