"""Ablation-aware training: data handling, the training loop, resume, the train CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmcert_ros.certify.l0.sampling import kept_count
from mmcert_ros.data.frame import Frame
from mmcert_ros.models import NetworkConfig, load_checkpoint, load_model
from mmcert_ros.tools.cli import main
from mmcert_ros.training.data import FrameCache, TrainingSet, cached_frames, synthetic_frames
from mmcert_ros.training.trainer import TrainConfig, Trainer, keep_counts

WIDTH, HEIGHT = 160, 48
TINY_NET = NetworkConfig(width=8, feature_dim=4)


@pytest.fixture(scope='module')
def drive_frames(tmp_path_factory):
    frames, _ = synthetic_frames(7, 10, WIDTH, HEIGHT,
                                 cache_dir=tmp_path_factory.mktemp('cache') / 'drive7')
    return frames


def tiny_config(**changes) -> TrainConfig:
    values = dict(epochs=2, steps_per_epoch=6, batch_size=4, crop_width=96, learning_rate=1e-2,
                  keep_fraction_rgb=0.1, keep_fraction_depth=0.05, random_keep_max=0.2,
                  val_samples=3, network=TINY_NET)
    values.update(changes)
    return TrainConfig(**values)


def test_loss_falls_within_a_few_steps_on_tiny_frames(drive_frames, tmp_path):
    config = tiny_config(epochs=1, steps_per_epoch=40)
    trainer = Trainer(config, TrainingSet(drive_frames, config.crop_width), [], tmp_path, {})
    rng = np.random.default_rng(0)
    losses = [trainer.step(trainer.train_set.batch(rng.integers(0, len(drive_frames), 4), rng))[0]
              for _ in range(40)]
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4]), losses


def test_same_seed_same_weights_and_resume_continues_exactly(drive_frames, tmp_path):
    def trainer(out):
        return Trainer(tiny_config(), TrainingSet(drive_frames, 96), drive_frames[:1],
                       tmp_path / out, {'data': 'test'})

    straight = trainer('straight')
    straight.fit()
    interrupted = trainer('interrupted')
    interrupted.fit(until_epoch=1)
    resumed = trainer('resumed')
    resumed.resume(tmp_path / 'interrupted' / 'last.pt')
    assert resumed.epoch == 1
    resumed.fit()
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert [h['loss'] for h in straight.history] == [h['loss'] for h in resumed.history]
    different = Trainer(tiny_config(seed=1), TrainingSet(drive_frames, 96), [], tmp_path / 'd', {})
    different.fit(until_epoch=1)
    assert not torch.equal(different.model.embed.weight, interrupted.model.embed.weight)


def test_resume_refuses_a_checkpoint_of_other_settings(drive_frames, tmp_path):
    first = Trainer(tiny_config(epochs=1), TrainingSet(drive_frames, 96), [], tmp_path / 'a', {})
    first.fit()
    other = Trainer(tiny_config(epochs=1, batch_size=2), TrainingSet(drive_frames, 96), [],
                    tmp_path / 'b', {})
    with pytest.raises(ValueError, match='batch_size'):
        other.resume(tmp_path / 'a' / 'last.pt')


def test_checkpoints_carry_config_and_provenance(drive_frames, tmp_path):
    trainer = Trainer(tiny_config(epochs=1), TrainingSet(drive_frames, 96), drive_frames[:2],
                      tmp_path, {'data': {'source': 'synthetic'}, 'commit': 'abc'})
    report, = trainer.fit()
    assert set(report.validation) == {'vote_iou', 'vote_accuracy', 'agreement'}
    assert 0.0 <= report.validation['agreement'] <= 1.0
    model, payload = load_checkpoint(tmp_path / 'best.pt')
    provenance = payload['provenance']
    assert provenance['keep_fraction_rgb'] == 0.1 and provenance['seed'] == 0
    assert provenance['data'] == {'source': 'synthetic'} and provenance['commit'] == 'abc'
    assert provenance['train_config']['network'] == TINY_NET.as_dict()
    assert 'training' not in payload  # best.pt carries weights only
    assert 'optimizer' in load_checkpoint(tmp_path / 'last.pt')[1]['training']
    assert model.config == TINY_NET


def test_keep_counts_use_the_certification_fractions_or_scaled_random_ones():
    rng = np.random.default_rng(0)
    fixed = TrainConfig(random_keep_probability=0.0)
    k_rgb, k_depth = keep_counts(fixed, 5, 465750, 465750, rng)
    assert k_rgb == [kept_count(0.0193, 465750)] * 5 == [8989] * 5
    assert k_depth == [kept_count(0.00214, 465750)] * 5 == [997] * 5
    randomized = TrainConfig(random_keep_probability=1.0, random_keep_max=0.05)
    k_rgb, k_depth = keep_counts(randomized, 400, 10_000, 10_000, rng)
    rgb_fractions = np.array(k_rgb) / 10_000
    assert rgb_fractions.min() >= 1 / 10_000 and rgb_fractions.max() <= 0.05
    assert len(set(k_rgb)) > 100  # spread over the range, not a few values
    ratio = np.array(k_depth) / np.maximum(np.array(k_rgb), 1)
    big = np.array(k_rgb) > 200
    np.testing.assert_allclose(ratio[big], 0.00214 / 0.0193, rtol=0.05)


def coordinate_frame(height=24, width=40, depth_size=None) -> Frame:
    """A frame whose pixels encode their own coordinates (to check crops and flips)."""
    rows, cols = np.mgrid[:height, :width]
    rgb = np.stack([rows, cols, np.zeros_like(rows)], axis=2).astype(np.uint8)
    depth_rows, depth_cols = (np.mgrid[:depth_size[0], :depth_size[1]] if depth_size
                              else (rows, cols))
    scale = width / depth_rows.shape[1]
    depth = (1.0 + (depth_cols + 0.5) * scale - 0.5).astype(np.float32)  # 1 + centre column
    road = (cols % 2).astype(np.uint8)
    return Frame(rgb=rgb, depth=depth, road_mask=road)


def test_crops_and_flips_keep_rgb_depth_and_target_aligned():
    frame = coordinate_frame(depth_size=(12, 20))
    train_set = TrainingSet([frame], crop_width=16, flip=True)
    rng = np.random.default_rng(0)
    flipped_seen = unflipped_seen = False
    for _ in range(20):
        batch = train_set.batch([0, 0], rng)
        assert batch.rgb.shape == (2, 3, 24, 16) and batch.target.shape == (2, 24, 16)
        assert batch.depth.shape == (2, 1, 12, 8)
        for b in range(2):
            cols = (batch.rgb[b, 1, 0] * 255).round().long()
            step = int(cols[1] - cols[0])
            flipped_seen |= step == -1
            unflipped_seen |= step == 1
            assert abs(step) == 1
            assert torch.equal(batch.target[b, 0], cols % 2)
            # each depth pixel covers two RGB columns: same place up to one RGB pixel
            depth_centres = batch.depth[b, 0, 0] - 1.0
            rgb_centres = (cols[0::2] + cols[1::2]).float() / 2
            assert torch.all((depth_centres - rgb_centres).abs() <= 1), (depth_centres, cols)
    assert flipped_seen and unflipped_seen


def test_training_set_refuses_frames_without_ground_truth():
    frame = coordinate_frame()
    unlabeled = Frame(rgb=frame.rgb, depth=frame.depth)
    with pytest.raises(ValueError, match='no road mask'):
        TrainingSet([frame, unlabeled])


def test_frame_cache_reuses_matching_frames_and_rerenders_otherwise(tmp_path):
    renders = []

    def render(value):
        def make():
            renders.append(value)
            frame = coordinate_frame()
            return [Frame(rgb=frame.rgb + value, depth=frame.depth, road_mask=frame.road_mask,
                          name=f'f{value}')]
        return make

    cache = FrameCache(tmp_path / 'cache')
    first = cached_frames(cache, {'seed': 1}, render(1))
    again = cached_frames(cache, {'seed': 1}, render(99))
    assert renders == [1]
    np.testing.assert_array_equal(again[0].rgb, first[0].rgb)
    np.testing.assert_array_equal(again[0].depth, first[0].depth)
    assert again[0].name == 'f1'
    changed = cached_frames(cache, {'seed': 2}, render(2))
    assert renders == [1, 2] and changed[0].name == 'f2'
    (tmp_path / 'cache' / 'source.json').write_text('{not json')
    with pytest.raises(ValueError, match='source.json'):
        cached_frames(cache, {'seed': 2}, render(3))


def test_train_cli_writes_checkpoints_with_provenance(tmp_path, capsys):
    out = tmp_path / 'run'
    code = main(['train', '--out', str(out), '--train-drives', '1', '--frames-per-drive', '3',
                 '--val-drives', '1', '--val-frames', '1', '--width', str(WIDTH), '--height',
                 str(HEIGHT), '--epochs', '1', '--steps-per-epoch', '3', '--batch-size', '2',
                 '--crop-width', '64', '--val-samples', '2', '--net-width', '8',
                 '--feature-dim', '4', '--seed', '3'])
    assert code == 0
    printed = capsys.readouterr()
    assert 'epoch 1: loss' in printed.out
    assert 'step' in printed.err  # the progress bar
    payload = load_checkpoint(out / 'best.pt')[1]
    provenance = payload['provenance']
    assert provenance['seed'] == 3
    assert provenance['input_size'] == [HEIGHT, WIDTH]
    assert provenance['classes'] == ['not_road', 'road']
    assert provenance['data']['train'][0]['seed'] == 0
    assert provenance['data']['validation'][0]['seed'] == 100_000
    assert provenance['commit']
    assert provenance['command'].startswith('mmcert-ros train --out ')
    assert json.loads(json.dumps(provenance)) == provenance  # plain JSON data only
    assert load_model(out / 'last.pt').num_classes == 2
    assert (out / 'frames').is_dir()


def test_train_cli_reports_bad_options_clearly(tmp_path, capsys):
    assert main(['train', '--out', str(tmp_path), '--data', 'kitti']) == 2
    assert '--kitti-root' in capsys.readouterr().err
    assert main(['train', '--out', str(tmp_path), '--train-drives', '0']) == 2
    assert '--train-drives' in capsys.readouterr().err


def test_train_cli_trains_on_a_kitti_road_folder(tmp_path):
    kitti = tmp_path / 'kitti'
    assert main(['synth', '--out', str(kitti), '--frames', '4', '--seed', '2', '--width',
                 str(WIDTH), '--height', str(HEIGHT)]) == 0
    out = tmp_path / 'run'
    assert main(['train', '--data', 'kitti', '--kitti-root', str(kitti), '--out', str(out),
                 '--epochs', '1', '--steps-per-epoch', '2', '--batch-size', '2',
                 '--crop-width', '64', '--val-samples', '2', '--net-width', '8',
                 '--feature-dim', '4']) == 0
    data = load_checkpoint(out / 'best.pt')[1]['provenance']['data']
    assert data['train']['source'] == data['validation']['source'] == 'kitti'
    assert (data['train']['frames'], data['validation']['frames']) == (3, 1)  # 25 % test split


def test_fine_tuning_starts_from_a_cosine_checkpoint_with_the_antipodal_head(drive_frames,
                                                                             tmp_path):
    from mmcert_ros.models import build_model, save_checkpoint
    from mmcert_ros.training.head import with_antipodal_head
    torch.manual_seed(5)
    cosine = build_model(NetworkConfig(width=8, feature_dim=4, head='cosine'))
    path = save_checkpoint(tmp_path / 'cosine.pt', cosine, {'purpose': 'test'})
    trainer = Trainer(tiny_config(init_checkpoint=str(path)), TrainingSet(drive_frames, 96), [],
                      tmp_path / 'ft', {})
    expected = with_antipodal_head(cosine).state_dict()
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    wide = save_checkpoint(tmp_path / 'wide.pt', build_model(NetworkConfig(width=4,
                                                                           feature_dim=4)), {})
    with pytest.raises(ValueError, match='has network'):
        Trainer(tiny_config(init_checkpoint=str(wide)), TrainingSet(drive_frames, 96), [],
                tmp_path / 'bad', {})


def test_the_alignment_term_pulls_features_onto_their_prototypes(drive_frames, tmp_path):
    from mmcert_ros.certify.l0.sampling import subsample
    from mmcert_ros.training.alignment import cell_labels, class_balanced_alignment

    def alignment_after(weight):
        config = tiny_config(epochs=1, steps_per_epoch=30, align_weight=weight, seed=3)
        trainer = Trainer(config, TrainingSet(drive_frames, 96), [], tmp_path / str(weight), {})
        trainer.fit()
        batch = trainer.train_set.batch(np.arange(6), np.random.default_rng(9))
        inputs = subsample(batch.rgb, batch.depth, 400, 20, torch.Generator().manual_seed(0))
        with torch.no_grad():
            features = trainer.model.eval().features(*inputs.as_args())
            return float(class_balanced_alignment(features, cell_labels(batch.target),
                                                  trainer.model.prototypes))

    assert alignment_after(2.0) > alignment_after(0.0) + 0.05
    with pytest.raises(ValueError, match='align_weight'):
        tiny_config(align_weight=-1.0)
