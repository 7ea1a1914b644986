"""The smoothness booster: identity at initialisation, MMCert's input contract kept, the base
network frozen by training, reproducible training, checkpoints and the train-booster tool."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mmcert_ros.certify.l0.sampling import subsample
from mmcert_ros.data.frame import Frame
from mmcert_ros.models import CheckpointError, NetworkConfig, build_model, save_checkpoint
from mmcert_ros.models.booster import (BoostedModel, BoosterConfig, SmoothnessBooster,
                                       load_booster, save_booster)
from mmcert_ros.training.booster_training import BoosterTrainConfig, train_booster
from mmcert_ros.tools.cli import main as cli_main

torch.set_num_threads(1)


def _tiny_base(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(NetworkConfig(width=4, feature_dim=8)).eval()


def _randomized_booster(seed: int = 1) -> SmoothnessBooster:
    """A booster whose residual branches are not zero (as after training)."""
    torch.manual_seed(seed)
    booster = SmoothnessBooster(BoosterConfig(feature_dim=8, purifier_width=6, mapper_width=6))
    with torch.no_grad():
        for parameter in booster.parameters():
            parameter.normal_(0.0, 0.3)
    return booster.eval()


def _inputs(batch: int = 3, height: int = 24, width: int = 40, seed: int = 2):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=generator)
    depth = 5 + 30 * torch.rand(batch, 1, height // 2, width // 2, generator=generator)
    return subsample(rgb, depth, 40, 12, generator)


def test_an_untrained_booster_is_the_identity():
    base = _tiny_base()
    inputs = _inputs()
    boosted = BoostedModel(copy.deepcopy(base), SmoothnessBooster(BoosterConfig(feature_dim=8)))
    with torch.no_grad():
        torch.testing.assert_close(boosted.features(*inputs.as_args()),
                                   base.features(*inputs.as_args()), rtol=0, atol=1e-6)
        torch.testing.assert_close(boosted(*inputs.as_args()), base(*inputs.as_args()),
                                   rtol=0, atol=1e-5)


def test_dropped_pixels_cannot_change_the_boosted_output():
    boosted = BoostedModel(_tiny_base(), _randomized_booster())
    inputs = _inputs()
    tampered_rgb = inputs.rgb + (1 - inputs.rgb_keep) * torch.rand_like(inputs.rgb)
    tampered_depth = inputs.depth + (1 - inputs.depth_keep) * 50.0
    with torch.no_grad():
        clean = boosted(*inputs.as_args())
        attacked = boosted(tampered_rgb, inputs.rgb_keep, tampered_depth, inputs.depth_keep)
    assert torch.equal(clean, attacked)


def test_purifier_is_per_pixel_and_stays_in_the_unit_range():
    booster = _randomized_booster()
    rgb = torch.rand(1, 3, 10, 12) * 1.6 - 0.3
    changed = rgb.clone()
    changed[0, :, 4, 5] = torch.tensor([0.9, -0.2, 0.1])
    with torch.no_grad():
        before, after = booster.purify(rgb), booster.purify(changed)
    differs = (before != after).any(dim=1)[0]
    differs[4, 5] = False
    assert not differs.any()  # no other pixel moved
    assert before.min() >= 0 and before.max() <= 1
    with torch.no_grad():  # oracle: the same MLP applied to the pixel alone
        pixel = changed[:, :, 4:5, 5:6]
        alone = (pixel + booster.purifier(pixel)).clamp(0, 1)
    torch.testing.assert_close(after[:, :, 4:5, 5:6], alone)


def test_boosted_features_are_unit_vectors_and_forward_is_the_upsampled_head():
    boosted = BoostedModel(_tiny_base(), _randomized_booster())
    inputs = _inputs()
    with torch.no_grad():
        features = boosted.features(*inputs.as_args())
        logits = boosted(*inputs.as_args())
    torch.testing.assert_close(features.norm(dim=1), torch.ones(features.shape[0],
                                                                *features.shape[2:]))
    expected = F.interpolate(boosted.classify(features), size=inputs.rgb.shape[2:],
                             mode='bilinear', align_corners=False)
    torch.testing.assert_close(logits, expected)


def test_booster_of_another_feature_length_is_refused():
    with pytest.raises(ValueError, match='4-dimensional'):
        BoostedModel(_tiny_base(), SmoothnessBooster(BoosterConfig(feature_dim=4)))


def _frames(count: int = 3, height: int = 24, width: int = 40) -> list[Frame]:
    generator = torch.Generator().manual_seed(5)
    frames = []
    for index in range(count):
        rgb = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
        road = torch.zeros(height, width, dtype=torch.uint8)
        road[height // 2:] = 1
        rgb[height // 2:] //= 3  # a darker road below the middle
        depth = (5 + 20 * torch.rand(height, width, generator=generator)).numpy()
        frames.append(Frame(rgb=rgb, depth=depth, road_mask=road.numpy(), name=f'f{index}'))
    return frames


def test_training_moves_only_the_booster_and_is_reproducible():
    base = _tiny_base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    config = BoosterTrainConfig(sigma=0.25, steps=4, batch_frames=2, copies=2,
                                booster=BoosterConfig(feature_dim=8, purifier_width=4,
                                                      mapper_width=4))
    booster, history = train_booster(base, _frames(), config, log_every=2)
    for name, tensor in base.state_dict().items():  # weights and batch-norm statistics
        assert torch.equal(tensor, before[name]), name
    assert not base.training
    assert any(p.abs().sum() > 0 for p in booster.mapper[-1].parameters())
    assert [entry['step'] for entry in history] == [2, 4]
    assert all(0 <= entry['score'] <= 1 and entry['ce'] > 0 for entry in history)
    again, _ = train_booster(_tiny_base(), _frames(), config, log_every=2)
    for (name, a), b in zip(booster.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_refuses_frames_without_ground_truth_or_of_mixed_sizes():
    config = BoosterTrainConfig(sigma=0.25, steps=1)
    frames = _frames()
    no_gt = Frame(rgb=frames[0].rgb, depth=frames[0].depth, name='bare')
    with pytest.raises(ValueError, match="'bare' has no road mask"):
        train_booster(_tiny_base(), [frames[0], no_gt], config)
    other = _frames(1, height=32)[0]
    with pytest.raises(ValueError, match='another size'):
        train_booster(_tiny_base(), [frames[0], other], config)
    with pytest.raises(ValueError, match='copies'):
        BoosterTrainConfig(sigma=0.25, copies=1)


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    booster = _randomized_booster()
    path = save_booster(tmp_path / 'b.pt', booster, {'sigma': 0.25})
    loaded, provenance = load_booster(path)
    assert provenance == {'sigma': 0.25}
    for a, b in zip(booster.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match='missing') as missing:
        load_booster(tmp_path / 'none.pt')
    assert 'none.pt' in str(missing.value)
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    with pytest.raises(CheckpointError, match='junk.pt is corrupt'):
        load_booster(tmp_path / 'junk.pt')
    save_checkpoint(tmp_path / 'base.pt', _tiny_base(), {})
    with pytest.raises(CheckpointError, match='base.pt is incompatible: not a booster'):
        load_booster(tmp_path / 'base.pt')


def test_train_booster_tool_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / 'booster.pt'
    status = cli_main(['train-booster', '--sigma', '0.12', '--out', str(out), '--steps', '2',
                       '--drives', '1', '--frames-per-drive', '1', '--width', '96',
                       '--height', '32', '--batch-frames', '1', '--copies', '2'])
    assert status == 0
    booster, provenance = load_booster(out)
    assert provenance['sigma'] == 0.12 and provenance['size'] == [96, 32]
    assert provenance['train_config']['steps'] == 2 and provenance['history']
    assert 'wrote' in capsys.readouterr().out


def test_purifying_the_kept_pixels_equals_purifying_the_image_then_masking():
    boosted = BoostedModel(_tiny_base(), _randomized_booster())
    inputs = _inputs()
    with torch.no_grad():
        expected = boosted.booster.purify(inputs.rgb) * inputs.rgb_keep
        torch.testing.assert_close(boosted.purify_kept(inputs.rgb, inputs.rgb_keep), expected)
