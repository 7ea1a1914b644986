"""CertifiedSegmenter on tiny deterministic models whose votes can be counted by hand."""
import importlib.util

import numpy as np
import pytest
import torch
from statsmodels.stats.multitest import multipletests

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig, delta, top_count_pvalues
from mmcert_ros.certify.l0.votes import predict_labels
from mmcert_ros.data import Frame


class BrightIsRoad(torch.nn.Module):
    """Class 1 where the kept RGB pixel is bright; dropped pixels vote class 0."""

    num_classes = 2

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        road = (rgb.mean(dim=1) > 0.5).long()
        return torch.nn.functional.one_hot(road, 2).permute(0, 3, 1, 2).float()


class AnyDepthKept(torch.nn.Module):
    """Every pixel votes class 1 iff a valid (non-zero) depth pixel was kept: one vote per
    sample."""

    num_classes = 3

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        batch, _, height, width = rgb.shape
        hit = (depth > 0).flatten(1).any(dim=1).long() + 1  # class 2 if any valid, else 1
        logits = torch.zeros(batch, 3, height, width)
        logits[torch.arange(batch), hit] = 1.0
        return logits


def bright_frame(height=6, width=8):
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[height // 2:] = 230
    return rgb, np.full((3, 4), 5.0, np.float32)


def test_full_keep_counts_are_exact_and_certified():
    rgb, depth = bright_frame()
    config = CertifyConfig(num_samples=30, keep_fraction_rgb=1.0, keep_fraction_depth=1.0,
                           seed=0, batch_size=7)
    cert = CertifiedSegmenter(BrightIsRoad(), config).certify(rgb, depth)
    expected_labels = (rgb.mean(axis=2) > 127).astype(np.uint8)
    np.testing.assert_array_equal(cert.labels, expected_labels)
    assert np.all(cert.top_counts == 30)
    # C * 0.5^30 = 1.9e-9 <= alpha / m for every pixel: all certified at r = 0, radius 0
    assert cert.certified.all() and np.all(cert.radius == 0)
    assert cert.delta == 0.0 and cert.n == (48, 12) and cert.k == (48, 12)


def test_keep_echo_counts_sum_to_n_times_k():
    """With BrightIsRoad on an all-bright image, pixel p votes road iff p was kept."""
    rgb = np.full((10, 12, 3), 255, np.uint8)
    depth = np.ones((5, 6), np.float32)
    config = CertifyConfig(num_samples=40, keep_fraction_rgb=0.25, seed=5, batch_size=16)
    cert = CertifiedSegmenter(BrightIsRoad(), config).certify(rgb, depth)
    k = cert.k[0]
    road_votes = np.where(cert.labels == 1, cert.top_counts, 40 - cert.top_counts)
    assert k == 30 and road_votes.sum() == 40 * k
    assert np.all(cert.top_counts >= 20)


def test_invalid_depth_is_zeroed_and_votes_are_counted_per_sample():
    rgb = np.zeros((4, 4, 3), np.uint8)
    depth = np.array([[np.nan, np.inf], [-1.0, 2.0]], np.float32)  # one valid pixel of four
    config = CertifyConfig(num_samples=400, keep_fraction_depth=0.25, seed=3, batch_size=64)
    cert = CertifiedSegmenter(AnyDepthKept(), config).certify(rgb, depth)
    assert cert.num_classes == 3 and cert.k[1] == 1
    # the single kept depth pixel is the valid one with probability 1/4: class 2 gets ~100 votes
    assert np.all(cert.labels == 1)
    hits = 400 - cert.top_counts[0, 0]
    assert np.all(cert.top_counts == cert.top_counts[0, 0])
    assert 60 <= hits <= 140


def test_certified_mask_is_holm_over_the_frame():
    rgb = np.full((10, 12, 3), 255, np.uint8)
    config = CertifyConfig(num_samples=60, keep_fraction_rgb=0.7, seed=8, alpha=0.05)
    cert = CertifiedSegmenter(BrightIsRoad(), config).certify(rgb, np.ones((5, 6), np.float32))
    pvalues = top_count_pvalues(60, 2, 0.0)[cert.top_counts.ravel()]
    expected = multipletests(pvalues, alpha=0.05, method='holm')[0].reshape(10, 12)
    np.testing.assert_array_equal(cert.certified, expected)
    assert 0 < cert.certified_fraction < 1
    d = delta(cert.n, cert.k, (1, 2))
    pvalues = top_count_pvalues(60, 2, d)[cert.top_counts.ravel()]
    expected = multipletests(pvalues, alpha=0.05, method='holm')[0].reshape(10, 12)
    np.testing.assert_array_equal(cert.certified_at(1, 2), expected)


def test_seed_reproduces_and_batch_size_bounds_memory():
    rgb = np.full((16, 20, 3), 255, np.uint8)
    depth = np.ones((8, 10), np.float32)
    config = CertifyConfig(num_samples=37, keep_fraction_rgb=0.3, seed=12, batch_size=5)
    first = CertifiedSegmenter(BrightIsRoad(), config).certify(rgb, depth)
    second = CertifiedSegmenter(BrightIsRoad(), config).certify(rgb, depth)
    np.testing.assert_array_equal(first.top_counts, second.top_counts)
    fresh = CertifiedSegmenter(BrightIsRoad(), config.replace(seed=None))
    assert not np.array_equal(fresh.certify(rgb, depth).top_counts, first.top_counts)


def test_micro_batches_bound_what_the_model_sees():
    batches = []

    class Recording(BrightIsRoad):
        def forward(self, rgb, rgb_keep, depth, depth_keep):
            batches.append(rgb.shape[0])
            return super().forward(rgb, rgb_keep, depth, depth_keep)

    config = CertifyConfig(num_samples=37, batch_size=5, seed=0)
    cert = CertifiedSegmenter(Recording(), config).certify(*bright_frame())
    assert batches == [5] * 7 + [2]
    assert cert.num_samples == 37 and cert.top_counts.max() <= 37


def test_different_rgb_and_depth_sizes_use_their_own_n():
    rgb, _ = bright_frame(12, 16)
    depth = np.ones((5, 7), np.float32)
    cert = CertifiedSegmenter(BrightIsRoad(), CertifyConfig(num_samples=4, seed=1)).certify_frame(
        Frame(rgb=rgb, depth=depth))
    assert cert.n == (192, 35) and cert.k == (4, 1)
    assert cert.labels.shape == (12, 16) and cert.radius.dtype == np.int16
    assert set(cert.timings) == {'preprocess', 'sampling', 'inference', 'certification', 'total'}


def test_bad_inputs_are_refused_with_a_reason():
    segmenter = CertifiedSegmenter(BrightIsRoad(), CertifyConfig(num_samples=2))
    with pytest.raises(ValueError, match='uint8'):
        segmenter.certify(np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        segmenter.certify(np.zeros((4, 4), np.uint8), np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match='float32 metres'):
        segmenter.certify(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.uint16))

    class WrongSize(torch.nn.Module):
        def forward(self, rgb, *rest):
            return torch.zeros(rgb.shape[0], 2, 3, 3)

    with pytest.raises(ValueError, match='logits of shape'):
        CertifiedSegmenter(WrongSize(), CertifyConfig(num_samples=2)).certify(
            np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32))


def test_device_cannot_change_on_a_running_segmenter():
    segmenter = CertifiedSegmenter(BrightIsRoad(), CertifyConfig())
    segmenter.config = segmenter.config.replace(num_samples=5)
    assert segmenter.config.num_samples == 5
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='is not available here'):
            segmenter.config = segmenter.config.replace(device='cuda')


@pytest.mark.parametrize('num_classes', [2, 3, 5])
def test_predict_labels_equals_argmax_including_ties(num_classes):
    generator = torch.Generator().manual_seed(num_classes)
    logits = torch.randint(0, 3, (4, num_classes, 9, 11), generator=generator).float()  # ties
    assert torch.equal(predict_labels(logits), logits.argmax(dim=1))


def test_kept_pixel_fast_path_gives_the_dense_path_votes():
    from mmcert_ros.models import load_model

    class DenseOnly(torch.nn.Module):
        """The shipped model seen through the dense contract alone."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(*inputs)

    model = load_model(None, 'cpu')
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(48, 160, 3), dtype=np.uint8)
    depth = rng.uniform(2.0, 60.0, size=(24, 80)).astype(np.float32)
    config = CertifyConfig(num_samples=12, keep_fraction_rgb=0.05, keep_fraction_depth=0.02,
                           seed=3, batch_size=5)
    fast = CertifiedSegmenter(model, config).certify(rgb, depth)
    dense = CertifiedSegmenter(DenseOnly(model), config).certify(rgb, depth)
    np.testing.assert_array_equal(fast.top_counts, dense.top_counts)
    np.testing.assert_array_equal(fast.labels, dense.labels)


def _shipped_frame(seed=0, height=60, width=200):
    """A small synthetic road frame (RGB and depth) for the shipped model."""
    from mmcert_ros.sim.synthetic import SceneConfig, drive

    frame = next(drive(seed=seed, num_frames=1,
                       config=SceneConfig().with_image_size(width, height)))
    return frame.rgb, frame.depth


@pytest.mark.parametrize('backend', ['torch', 'openvino'])
def test_fp32_engine_votes_equal_the_previous_path_for_the_same_draws(backend):
    """The exact modes (grid votes, batch norm folded, channels-last; in torch or OpenVINO)
    against the previous hot path kept in the benchmark (its densification, unfolded NCHW
    model, full-resolution int64 labels, scatter_add), fed the same kept indices: identical
    votes."""
    if backend == 'openvino':
        pytest.importorskip('openvino')
    from mmcert_ros.speed.engine_speed import timed_votes
    from mmcert_ros.speed.reference import ReferenceVotes, reference_pyramid_inputs
    from mmcert_ros.certify.l0.engine import certify_votes, draw_sample_indices
    from mmcert_ros.certify.tensors import frame_tensors
    from mmcert_ros.certify.l0.sampling import kept_count, make_generator
    from mmcert_ros.models import load_model
    from mmcert_ros.certify.upsampling import upsample_bilinear

    model = load_model(None, 'cpu')
    rgb, depth = _shipped_frame()
    config = CertifyConfig(num_samples=24, keep_fraction_rgb=0.05, keep_fraction_depth=0.02,
                           seed=7, batch_size=5, backend=backend)
    certificate = CertifiedSegmenter(model, config).certify(rgb, depth)
    rgb_t, depth_t = frame_tensors(rgb, depth, torch.device('cpu'))
    n = (rgb.shape[0] * rgb.shape[1], depth.size)
    k = (kept_count(0.05, n[0]), kept_count(0.02, n[1]))
    draws = draw_sample_indices(24, n, k, make_generator(7, 'cpu'))
    counts = timed_votes(model.eval(), lambda: ReferenceVotes(rgb.shape[:2], upsample_bilinear),
                         rgb_t, depth_t, draws, 5, {}, reference_pyramid_inputs)
    previous = certify_votes(counts, n, k, config)
    assert 0.05 < previous.labels.mean() < 0.95  # both classes are voted for
    np.testing.assert_array_equal(certificate.top_counts, previous.top_counts)
    np.testing.assert_array_equal(certificate.labels, previous.labels)


def test_reduced_precision_and_onnxruntime_modes_agree_with_fp32():
    pytest.importorskip('onnxruntime')
    from mmcert_ros.models import load_model

    model = load_model(None, 'cpu')
    rgb, depth = _shipped_frame(1)
    config = CertifyConfig(num_samples=16, keep_fraction_rgb=0.05, keep_fraction_depth=0.02,
                           seed=2, batch_size=8)
    exact = CertifiedSegmenter(model, config).certify(rgb, depth)
    onnx = CertifiedSegmenter(model, config.replace(backend='onnxruntime')).certify(rgb, depth)
    bf16 = CertifiedSegmenter(model, config.replace(precision='bf16')).certify(rgb, depth)
    assert np.mean(onnx.labels != exact.labels) < 1e-3
    if importlib.util.find_spec('openvino') is not None:
        for precision, tolerance in (('fp32', 1e-3), ('bf16', 0.01)):
            openvino = CertifiedSegmenter(model, config.replace(
                backend='openvino', precision=precision)).certify(rgb, depth)
            assert np.mean(openvino.labels != exact.labels) < tolerance
    assert np.mean(np.abs(onnx.top_counts.astype(int) - exact.top_counts) > 1) == 0
    assert np.mean(bf16.labels != exact.labels) < 0.01
    assert next(model.parameters()).dtype == torch.float32  # the base model is left as it was
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_host_reads_per_frame_do_not_grow_with_the_micro_batches(monkeypatch):
    """GPU readiness, by construction on the CPU: count every Python-level read of a tensor
    value (what forces a device synchronisation on an accelerator) during one frame."""
    from mmcert_ros.models import load_model

    reads = {'n': 0}
    # not Tensor.numpy: it refuses an accelerator tensor (it cannot synchronise one in
    # secret); the CPU kernels hand CPU tensors to Numba through it
    for name in ('item', 'tolist', 'cpu', '__bool__', '__int__', '__float__', '__index__'):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads['n'] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda *a: pytest.fail('the engine synchronised the device'))
    model = load_model(None, 'cpu')
    rgb, depth = _shipped_frame(2)
    per_frame = {}
    for batch_size in (2, 20):  # 20 micro-batches against 2
        segmenter = CertifiedSegmenter(model, CertifyConfig(
            num_samples=40, keep_fraction_rgb=0.05, keep_fraction_depth=0.02, seed=4,
            batch_size=batch_size))
        segmenter.certify(rgb, depth)  # builds the inference copy once
        reads['n'] = 0
        segmenter.certify(rgb, depth)
        per_frame[batch_size] = reads['n']
    assert per_frame[2] == per_frame[20] <= 8, per_frame


def test_an_exported_backend_refuses_a_model_it_cannot_export():
    with pytest.raises(ValueError, match="backend 'onnxruntime' exports SparseRGBDNet"):
        CertifiedSegmenter(BrightIsRoad(), CertifyConfig(backend='onnxruntime'))
