"""Training on point-sampled depth: the certification sampler, fixed point counts, whole-
modality depth dropout, and the CLI's checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcert_ros.certify.l0.sampling import make_generator
from mmcert_ros.tools import cli
from mmcert_ros.training.data import Batch
from mmcert_ros.training.trainer import TrainConfig, drop_depth, keep_counts, point_inputs


def _batch(size=4, height=12, width=40, seed=0) -> tuple[Batch, list[int]]:
    rng = np.random.default_rng(seed)
    depth = np.zeros((size, 1, height, width), np.float32)
    counts = []
    for index in range(size):
        valid = rng.random((height, width)) < 0.2
        depth[index, 0][valid] = rng.uniform(1, 80, valid.sum())
        counts.append(int(valid.sum()))
    return Batch(torch.rand(size, 3, height, width), torch.from_numpy(depth),
                 torch.zeros(size, height, width, dtype=torch.long)), counts


def test_point_inputs_keep_exactly_k_valid_points_per_sample():
    batch, counts = _batch()
    k_points = [5, 17, 1, 10_000]       # the last is more than the crop has: all are kept
    inputs = point_inputs(batch, [30, 30, 30, 30], k_points, make_generator(0, 'cpu'))
    for index in range(4):
        kept = inputs.depth_keep[index, 0] > 0
        assert int(kept.sum()) == min(k_points[index], counts[index])
        # kept pixels carry exactly the crop's depth there, nothing else is kept
        assert torch.equal(inputs.depth[index, 0][kept], batch.depth[index, 0][kept])
        assert bool((batch.depth[index, 0][kept] > 0).all())
        assert int(inputs.rgb_keep[index].sum()) == 30


def test_point_counts_scale_with_the_crop_and_the_random_factor():
    config = TrainConfig(depth_source='points', keep_points=128, random_keep_probability=0.0)
    _, k_points = keep_counts(config, 3, 1000, 1000, np.random.default_rng(0), crop_share=0.5)
    assert k_points == [64, 64, 64]
    config = config.__class__(depth_source='points', keep_points=128, random_keep_probability=1.0)
    k_rgb, k_points = keep_counts(config, 50, 10_000, 10_000, np.random.default_rng(1))
    assert len(set(k_points)) > 10
    for k_r, k_p in zip(k_rgb, k_points):   # the same random factor on both modalities
        factor = k_r / (config.keep_fraction_rgb * 10_000)
        assert abs(k_p - max(1.0, 128 * factor)) <= 1


def test_depth_dropout_removes_the_whole_modality_of_chosen_samples():
    batch, _ = _batch()
    inputs = point_inputs(batch, [30] * 4, [8] * 4, make_generator(1, 'cpu'))
    dropped = drop_depth(inputs, np.array([True, False, True, False]))
    for index, gone in enumerate([True, False, True, False]):
        if gone:
            assert not dropped.depth[index].any() and not dropped.depth_keep[index].any()
        else:
            assert torch.equal(dropped.depth[index], inputs.depth[index])
            assert torch.equal(dropped.depth_keep[index], inputs.depth_keep[index])
    assert torch.equal(dropped.rgb, inputs.rgb)


@pytest.mark.parametrize('options, message', [
    ({'depth_source': 'lidar'}, "depth_source must be 'image' or 'points'"),
    ({'keep_points': 0}, 'keep_points must be >= 1'),
    ({'depth_dropout': 1.0}, 'depth_dropout must lie in'),
])
def test_bad_point_training_settings_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_cli_refuses_points_without_lidar_depth(tmp_path, capsys):
    assert cli.main(['train', '--out', str(tmp_path / 'run'), '--depth-source', 'points']) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'add --depth lidar' in error


def test_shipped_points_model_beats_road_below_the_horizon_on_unseen_drives():
    """The shipped LiDAR-points model on frames of drives no training run uses, certified as
    points; and with its whole depth modality missing (the degraded mode it was trained for
    with depth dropout)."""
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig, plain_confusion
    from mmcert_ros.evaluation.metrics import Confusion
    from mmcert_ros.certify.l0.sampling import draw_keep_masks
    from mmcert_ros.data.projection import points_from_depth_image
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
    from mmcert_ros.models import POINTS_CHECKPOINT, load_model

    scene = SceneConfig()
    model = load_model(POINTS_CHECKPOINT)
    segmenter = CertifiedSegmenter(model, CertifyConfig(num_samples=8, seed=0, keep_points=128))
    points, rgb_only, baseline = Confusion(), Confusion(), Confusion()
    horizon = np.arange(scene.camera.height)[:, None] > scene.camera.cy
    generator = make_generator(0, 'cpu')
    for seed in (900_123, 900_456):
        frame = SyntheticDrive(seed, scene).frame(30, 'lidar')
        depth = points_from_depth_image(frame.depth)
        points += plain_confusion(segmenter.certify(frame.rgb, depth).labels, frame.road_mask)
        rgb = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255
        keep = draw_keep_masks(1, rgb[0, 0].numel(), 8989, generator, 'cpu',
                               torch.float32).view(1, 1, *rgb.shape[2:])
        nothing = torch.zeros_like(keep)
        with torch.inference_mode():
            labels = model(rgb * keep, keep, nothing, nothing).argmax(1)[0].numpy()
        rgb_only += plain_confusion(labels, frame.road_mask)
        baseline += plain_confusion(np.broadcast_to(horizon, frame.road_mask.shape)
                                    .astype(np.uint8), frame.road_mask)
    assert points.iou > 0.8 and points.iou > baseline.iou + 0.3, (points, baseline)
    assert rgb_only.iou > baseline.iou + 0.2, (rgb_only, baseline)
