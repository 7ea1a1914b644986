"""The base network, its checkpoints and the shipped default model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcert_ros.models import (DEFAULT_CHECKPOINT, CheckpointError, NetworkConfig, build_model,
                               load_checkpoint, load_model, read_checkpoint, save_checkpoint)
from mmcert_ros.certify.kept_pixels import KeptPixels
from mmcert_ros.models.network import cell_sums, encode_depth


def sparse_inputs(batch=2, height=40, width=72, depth_size=None, seed=0,
                  rgb_fraction=0.05, depth_fraction=0.02):
    """Random sub-sampled inputs following the model contract."""
    generator = torch.Generator().manual_seed(seed)
    depth_height, depth_width = depth_size or (height, width)
    rgb_keep = (torch.rand(batch, 1, height, width, generator=generator) < rgb_fraction).float()
    depth_keep = (torch.rand(batch, 1, depth_height, depth_width, generator=generator)
                  < depth_fraction).float()
    rgb = torch.rand(batch, 3, height, width, generator=generator) * rgb_keep
    depth = (1 + 60 * torch.rand(batch, 1, depth_height, depth_width, generator=generator))
    return rgb, rgb_keep, depth * depth_keep, depth_keep


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    net = build_model(NetworkConfig(num_classes=3, width=8, feature_dim=4))
    # non-trivial batch-norm statistics, then eval mode as certification uses it
    with torch.no_grad():
        net.train()
        for seed in range(3):
            net(*sparse_inputs(seed=seed))
    return net.eval()


def test_output_shape_and_classes_follow_the_rgb_size(model):
    rgb, rgb_keep, depth, depth_keep = sparse_inputs(depth_size=(17, 31))
    with torch.no_grad():
        logits = model(rgb, rgb_keep, depth, depth_keep)
    assert logits.shape == (2, 3, 40, 72)
    assert model.num_classes == 3
    assert torch.isfinite(logits).all()


def test_features_are_unit_vectors_and_forward_is_their_upsampled_cosine_head(model):
    inputs = sparse_inputs()
    with torch.no_grad():
        features = model.features(*inputs)
        logits = model(*inputs)
    assert features.shape == (2, 4, 5, 9)  # ceil(40 / 8), ceil(72 / 8)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(2, 5, 9))
    expected = F.interpolate(model.classify(features), size=(40, 72), mode='bilinear',
                             align_corners=False)
    torch.testing.assert_close(logits, expected)
    # cosine head: |logit| <= temperature, with equality only for a feature on a prototype
    scale = model.log_scale.exp().item()
    assert logits.abs().max().item() <= scale * (1 + 1e-5)
    prototypes = F.normalize(model.prototypes, dim=1)
    on_prototype = prototypes[1][None, :, None, None].expand(1, 4, 1, 1)
    torch.testing.assert_close(model.classify(on_prototype)[0, 1, 0, 0], torch.tensor(scale))


def test_dropped_pixels_cannot_change_the_output(model):
    """The certificate is only sound if the model reads nothing but the kept pixels."""
    rgb, rgb_keep, depth, depth_keep = sparse_inputs()
    noise = sparse_inputs(seed=7, rgb_fraction=1.0, depth_fraction=1.0)
    tampered_rgb = torch.where(rgb_keep > 0, rgb, noise[0])
    tampered_depth = torch.where(depth_keep > 0, depth, noise[2])
    with torch.no_grad():
        reference = model(rgb, rgb_keep, depth, depth_keep)
        tampered = model(tampered_rgb, rgb_keep, tampered_depth, depth_keep)
        changed_kept = rgb.clone()
        kept = rgb_keep[0, 0].nonzero()[0]
        changed_kept[0, :, kept[0], kept[1]] = 1.0 - changed_kept[0, :, kept[0], kept[1]]
        moved = model(changed_kept, rgb_keep, depth, depth_keep)
    torch.testing.assert_close(tampered, reference, rtol=0, atol=0)
    assert not torch.equal(moved, reference)


def test_kept_invalid_depth_counts_as_dropped(model):
    rgb, rgb_keep, depth, depth_keep = sparse_inputs()
    kept = depth_keep[0, 0].nonzero()[:3]
    depth_zero, depth_nan, dropped = depth.clone(), depth.clone(), depth_keep.clone()
    for y, x in kept.tolist():
        depth_zero[0, 0, y, x] = 0.0
        depth_nan[0, 0, y, x] = float('nan')
        dropped[0, 0, y, x] = 0.0
    with torch.no_grad():
        reference = model(rgb, rgb_keep, depth_zero * dropped, dropped)
        torch.testing.assert_close(model(rgb, rgb_keep, depth_zero, depth_keep), reference)
        torch.testing.assert_close(model(rgb, rgb_keep, depth_nan, depth_keep), reference)


def test_samples_of_a_batch_are_independent_in_eval_mode(model):
    inputs = sparse_inputs(batch=3)
    with torch.no_grad():
        batched = model(*inputs)
        single = model(*(tensor[1:2] for tensor in inputs))
    torch.testing.assert_close(batched[1:2], single, rtol=1e-5, atol=1e-5)


def test_cell_sums_match_a_brute_force_loop():
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 2, size=(2, 1, 13, 21)).astype(np.float32)
    keep = (rng.uniform(size=(2, 1, 13, 21)) < 0.3).astype(np.float32)
    image[0, 0, 0, 0], keep[0, 0, 0, 0] = 0.0, 1.0  # a kept invalid depth pixel
    grid = (4, 5)
    kept = KeptPixels.from_mask(torch.from_numpy(image), torch.from_numpy(keep))
    sums = cell_sums(kept, grid, encode_depth).numpy()
    expected = np.zeros((2, 2, 4, 5))
    for b in range(2):
        for y in range(13):
            for x in range(21):
                if keep[b, 0, y, x] and image[b, 0, y, x] > 0:
                    cell = (y * 4 // 13, x * 5 // 21)
                    expected[b, 0][cell] += min(1.0, 3.0 / max(image[b, 0, y, x], 3.0))
                    expected[b, 1][cell] += 1.0
    np.testing.assert_allclose(sums, expected, rtol=1e-6, atol=1e-6)


def test_inputs_of_the_wrong_shape_are_refused_with_the_field_named(model):
    rgb, rgb_keep, depth, depth_keep = sparse_inputs()
    with pytest.raises(ValueError, match='rgb_keep'):
        model(rgb, rgb_keep[:, :, :-1], depth, depth_keep)
    with pytest.raises(ValueError, match='depth_keep'):
        model(rgb, rgb_keep, depth, depth_keep[:, :, 1:])
    with pytest.raises(ValueError, match='rgb must'):
        model(rgb[:, :2], rgb_keep, depth, depth_keep)


def test_network_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match='num_classes'):
        NetworkConfig(num_classes=1)
    with pytest.raises(ValueError, match='feature_dim'):
        NetworkConfig(feature_dim=0)
    with pytest.raises(ValueError, match="'depth'"):
        NetworkConfig.from_dict({'depth': 3})


def test_checkpoint_round_trip_restores_outputs_and_provenance(model, tmp_path):
    provenance = {'seed': 5, 'keep_fraction_rgb': 0.0193, 'classes': ['a', 'b', 'c']}
    path = save_checkpoint(tmp_path / 'model.pt', model, provenance,
                           training={'epoch': 2})
    restored, payload = load_checkpoint(path)
    assert payload['provenance'] == provenance
    assert payload['training'] == {'epoch': 2}
    assert restored.config == model.config
    assert not restored.training
    inputs = sparse_inputs()
    with torch.no_grad():
        torch.testing.assert_close(restored(*inputs), model(*inputs), rtol=0, atol=0)
    assert not (tmp_path / 'model.pt.partial').exists()


def test_missing_checkpoint_is_reported_as_missing(tmp_path):
    path = tmp_path / 'nowhere.pt'
    with pytest.raises(CheckpointError, match='missing') as caught:
        load_model(path)
    assert caught.value.kind == 'missing'
    assert str(path) in str(caught.value)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all', b'PK\x03\x04truncated zip'])
def test_corrupt_checkpoint_is_reported_as_corrupt(tmp_path, content):
    path = tmp_path / 'broken.pt'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='corrupt') as caught:
        load_model(path)
    assert caught.value.kind == 'corrupt'
    assert str(path) in str(caught.value)


def test_truncated_checkpoint_is_reported_as_corrupt(model, tmp_path):
    path = save_checkpoint(tmp_path / 'model.pt', model, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='corrupt'):
        load_model(path)


def test_incompatible_checkpoints_say_why(model, tmp_path):
    foreign = tmp_path / 'foreign.pt'
    torch.save({'weights': torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match='incompatible: not an mmcert_ros checkpoint'):
        load_model(foreign)

    path = save_checkpoint(tmp_path / 'model.pt', model, {})
    payload = read_checkpoint(path)
    payload['format_version'] = 99
    torch.save(payload, tmp_path / 'future.pt')
    with pytest.raises(CheckpointError, match='incompatible: format version 99'):
        load_model(tmp_path / 'future.pt')

    payload = read_checkpoint(path)
    payload['network'] = dict(payload['network'], width=16)  # weights are for width 8
    torch.save(payload, tmp_path / 'resized.pt')
    with pytest.raises(CheckpointError, match='incompatible: weights do not fit') as caught:
        load_model(tmp_path / 'resized.pt')
    assert caught.value.kind == 'incompatible'

    payload = read_checkpoint(path)
    payload['provenance'] = {'when': __import__('datetime').date(2024, 1, 1)}
    torch.save(payload, tmp_path / 'objects.pt')
    with pytest.raises(CheckpointError,
                       match=r'refused: not a plain-tensor checkpoint \(it would run code'):
        load_model(tmp_path / 'objects.pt')

    payload = read_checkpoint(path)
    payload['network'] = dict(payload['network'], colour_space='lab')
    torch.save(payload, tmp_path / 'unknown_key.pt')
    with pytest.raises(CheckpointError, match='colour_space'):
        load_model(tmp_path / 'unknown_key.pt')


def test_shipped_default_checkpoint_loads_and_is_small():
    assert DEFAULT_CHECKPOINT.is_file(), f'the package must ship {DEFAULT_CHECKPOINT}'
    assert DEFAULT_CHECKPOINT.stat().st_size < 20 * 1024 * 1024
    model = load_model(None)
    assert model.num_classes == 2
    provenance = read_checkpoint(DEFAULT_CHECKPOINT)['provenance']
    for key in ('keep_fraction_rgb', 'keep_fraction_depth', 'input_size', 'classes', 'data',
                'seed', 'commit', 'command'):
        assert key in provenance, key
    assert load_model('').config == model.config
    assert next(load_model(None, 'auto').parameters()).device.type in ('cpu', 'cuda')


def test_shipped_model_beats_road_below_the_horizon_on_unseen_drives():
    """Frames of drives no training run uses (seeds >= 900000), at the training size."""
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig, plain_confusion
    from mmcert_ros.evaluation.metrics import Confusion
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive

    scene = SceneConfig()
    segmenter = CertifiedSegmenter(load_model(None), CertifyConfig(num_samples=8, seed=0))
    model, baseline = Confusion(), Confusion()
    horizon = np.arange(scene.camera.height)[:, None] > scene.camera.cy
    for seed in (900_123, 900_456):
        frame = SyntheticDrive(seed, scene).frame(30)
        below = np.broadcast_to(horizon, frame.road_mask.shape).astype(np.uint8)
        model += plain_confusion(segmenter.certify_frame(frame).labels, frame.road_mask)
        baseline += plain_confusion(below, frame.road_mask)
    assert model.iou > 0.8, model
    assert model.iou > baseline.iou + 0.3, (model, baseline)
    assert model.pixel_accuracy > baseline.pixel_accuracy + 0.2, (model, baseline)


def test_forward_kept_equals_forward_on_the_ablated_batch():
    from mmcert_ros.certify.l0.sampling import draw_kept_indices, make_generator, subsample

    model = build_model(NetworkConfig(width=8)).eval()
    rgb = torch.rand(1, 3, 40, 72)
    depth = torch.rand(1, 1, 30, 50) * 40
    depth[0, 0, :5] = 0.0  # invalid rows
    inputs = subsample(rgb.expand(4, -1, -1, -1), depth.expand(4, -1, -1, -1), 60, 20,
                       make_generator(1, 'cpu'))
    generator = make_generator(1, 'cpu')
    rgb_indices = draw_kept_indices(4, 40 * 72, 60, generator)
    depth_indices = draw_kept_indices(4, 30 * 50, 20, generator)
    with torch.no_grad():
        dense = model(*inputs.as_args())
        sparse = model.forward_kept(rgb, rgb_indices, depth, depth_indices)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-6)


def _kept_batch(seed=0, batch=3, height=40, width=72):
    from mmcert_ros.certify.l0.sampling import draw_kept_indices, make_generator

    generator = make_generator(seed, 'cpu')
    rgb = torch.rand(1, 3, height, width, generator=generator)
    depth = torch.rand(1, 1, height // 2, width // 2, generator=generator) * 40
    return (rgb, draw_kept_indices(batch, height * width, 90, generator), depth,
            draw_kept_indices(batch, depth[0, 0].numel(), 20, generator))


def test_forward_kept_is_the_bilinear_upsampling_of_the_grid_logits(model):
    from mmcert_ros.certify.upsampling import upsample_bilinear

    inputs = _kept_batch()
    with torch.no_grad():
        grid = model.grid_logits_kept(*inputs)
        assert grid.shape == (3, 3, 5, 9)
        assert torch.equal(model.forward_kept(*inputs), upsample_bilinear(grid, (40, 72)))


@pytest.mark.parametrize('dtype,tolerance', [(torch.float32, 1e-4), (torch.bfloat16, 0.3)])
def test_inference_copy_folds_batch_norm_and_keeps_the_original(model, dtype, tolerance):
    inputs = _kept_batch(1)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    inference = model.for_inference(dtype)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in inference.modules())
    assert inference.embed.weight.dtype == dtype
    assert inference.stage1[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model.grid_logits_kept(*inputs)
        got = inference.grid_logits_kept(*inputs).float()
    torch.testing.assert_close(got, expected, rtol=0, atol=tolerance * expected.abs().max())
    for key, value in model.state_dict().items():  # the original is untouched
        assert torch.equal(value, state[key])


def test_onnx_export_runs_in_onnxruntime_with_the_torch_outputs(model, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime')
    from mmcert_ros.models.backends import OnnxRuntimeNet, export_onnx
    from mmcert_ros.certify.kept_pixels import KeptPixels

    path = tmp_path / 'tiny.onnx'
    export_onnx(model, path)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    rgb, rgb_indices, depth, depth_indices = _kept_batch(2, batch=4, height=56, width=100)
    with torch.no_grad():  # another batch and frame size than the export's example
        levels = model.pyramid_inputs(KeptPixels.from_indices(rgb, rgb_indices),
                                      KeptPixels.from_indices(depth, depth_indices))
        expected = model.grid_logits_from_levels(levels)
    (got,) = session.run(['grid_logits'], {f'level{i}': level.contiguous().numpy()
                                           for i, level in enumerate(levels)})
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)
    backend = OnnxRuntimeNet(model)
    torch.testing.assert_close(backend.grid_logits_kept(rgb, rgb_indices, depth, depth_indices),
                               expected, rtol=0, atol=1e-4)


def test_joint_densification_equals_the_per_modality_one_bit_for_bit(model):
    """pyramid_inputs sums both modalities in one buffer; the benchmark's reference sums each
    on its own and concatenates: the same float32 values, invalid depth included."""
    from mmcert_ros.speed.reference import reference_pyramid_inputs
    from mmcert_ros.certify.kept_pixels import KeptPixels

    rgb, rgb_indices, depth, depth_indices = _kept_batch(3, batch=5, height=61, width=99)
    depth[0, 0, ::3] = 0.0  # invalid depth: weight 0
    kept = (KeptPixels.from_indices(rgb, rgb_indices),
            KeptPixels.from_indices(depth, depth_indices))
    joint, separate = model.pyramid_inputs(*kept), reference_pyramid_inputs(*kept)
    assert [level.shape[1] for level in joint] == [7, 6, 6, 6]
    for got, expected in zip(joint, separate):
        assert torch.equal(got, expected)


@pytest.mark.parametrize('size,depth_size,kept', [
    ((61, 99), (30, 49), (90, 20)),    # odd sizes, depth smaller than RGB, cells left empty
    ((8, 8), (8, 8), (64, 64)),        # one cell, every pixel kept (including both borders)
    ((17, 9), (40, 23), (1, 1)),       # a single kept pixel, depth larger than RGB
    ((375, 1242), (375, 1242), (300, 40)),  # the KITTI size: grid 47 x 156 does not divide it
])
def test_densification_equals_the_per_pixel_division_formula(model, size, depth_size, kept):
    """pyramid_inputs reads each kept pixel's cell from a per-frame-size lookup table; the
    benchmark's reference divides per pixel ((floor(y rows / H), floor(x cols / W))): the same
    float32 values bit for bit, with the last row and column and invalid depth kept."""
    from mmcert_ros.speed.reference import reference_pyramid_inputs
    from mmcert_ros.certify.l0.sampling import draw_kept_indices, make_generator
    from mmcert_ros.certify.kept_pixels import KeptPixels
    from mmcert_ros.models.network import cell_of_pixel

    generator = make_generator(sum(size) + kept[0], 'cpu')
    (height, width), (depth_height, depth_width) = size, depth_size
    rgb = torch.rand(1, 3, height, width, generator=generator).contiguous(
        memory_format=torch.channels_last)
    depth = torch.rand(1, 1, depth_height, depth_width, generator=generator) * 40
    depth[0, 0, :, ::4] = 0.0  # invalid depth: weight 0
    rgb_indices = draw_kept_indices(4, height * width, kept[0], generator)
    depth_indices = draw_kept_indices(4, depth_height * depth_width, kept[1], generator)
    rgb_indices[0, -1] = height * width - 1  # the bottom-right pixel: last row and column
    depth_indices[0, -1] = depth_height * depth_width - 1
    pixels = (KeptPixels.from_indices(rgb, rgb_indices),
              KeptPixels.from_indices(depth, depth_indices))
    with torch.no_grad():
        joint, reference = model.pyramid_inputs(*pixels), reference_pyramid_inputs(*pixels)
    for got, expected in zip(joint, reference):
        assert got.shape == expected.shape
        assert torch.equal(got, expected)
    grid = joint[0].shape[2:]
    table = cell_of_pixel(depth_height, depth_width, tuple(grid), torch.device('cpu'))
    y, x = np.divmod(np.arange(depth_height * depth_width), depth_width)
    np.testing.assert_array_equal(table.numpy(), (y * grid[0] // depth_height) * grid[1]
                                  + x * grid[1] // depth_width)


def test_kept_pixels_from_one_frame_per_sample_read_each_sample_its_own_frame():
    from mmcert_ros.certify.kept_pixels import KeptPixels

    frames = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).view(2, 2, 3, 4)
    indices = torch.tensor([[0, 11], [5, 6]])
    pixels = KeptPixels.from_indices(frames, indices)
    assert pixels.values.tolist() == [[0.0, 12.0], [11.0, 23.0], [29.0, 41.0], [30.0, 42.0]]
    assert pixels.y.tolist() == [0, 2, 1, 1] and pixels.x.tolist() == [0, 3, 1, 2]
    with pytest.raises(ValueError, match='one frame or one per sample'):
        KeptPixels.from_indices(frames, torch.tensor([[0], [1], [2]]))


def test_densification_passes_the_gradients_of_the_per_pixel_formula(model):
    """With gradients recorded (booster training, noisy kept RGB values) the levels are written
    through copies: values and gradients equal the reference's."""
    import dataclasses

    from mmcert_ros.speed.reference import reference_pyramid_inputs
    from mmcert_ros.certify.kept_pixels import KeptPixels

    rgb, rgb_indices, depth, depth_indices = _kept_batch(5, batch=2, height=37, width=53)
    pixels = KeptPixels.from_indices(rgb, rgb_indices)
    depth_pixels = KeptPixels.from_indices(depth, depth_indices)
    gradients = []
    for densify in (model.pyramid_inputs, reference_pyramid_inputs):
        values = pixels.values.clone().requires_grad_(True)
        levels = densify(dataclasses.replace(pixels, values=values), depth_pixels)
        sum((level * (index + 1)).sum() for index, level in enumerate(levels)).backward()
        gradients.append(values.grad)
    assert gradients[0].abs().sum() > 0
    assert torch.equal(gradients[0], gradients[1])
