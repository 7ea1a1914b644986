"""The segmenter node in its own process, fed and observed over real DDS by an rclpy client.

Oracles: the engine run in this process on the same frames with the same checkpoint and seed
(outputs must match exactly), OpenCV-free hand-made encodings, and closed-form certificates
(SciPy binomial tails, exact rationals) for a model whose votes are known.
"""
import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from scipy.stats import binom

from helpers.ros_harness import NodeProcess, image_msg

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

H, W = 48, 64            # RGB size
HD, WD = 24, 32          # a depth size different from the RGB size
SEED = 7
N = 8
PARAMS = {'model.device': 'cpu', 'certify.num_samples': N, 'certify.seed': SEED,
          'model.batch_size': 8, 'qos.reliability': 'reliable'}
RNG = np.random.default_rng(3)
_stamps = itertools.count(1_000_000_000, 50_000_000)


NODE_ARGS = ['--params-file', 'config/mmcert.yaml']   # the conftest's node and client


@pytest.fixture(scope='module')
def checkpoints(tiny_checkpoint, constant_checkpoint):
    return {'random': tiny_checkpoint, 'constant': constant_checkpoint}


@pytest.fixture(scope='module')
def node_params(checkpoints):
    return {'model.checkpoint': checkpoints['random']}


@pytest.fixture(scope='module')
def oracle(checkpoints):
    """The engine in this process, configured like the node."""
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
    from mmcert_ros.models import load_model
    return CertifiedSegmenter(load_model(checkpoints['random']),
                              CertifyConfig(num_samples=N, seed=SEED, batch_size=8))


def random_frame(rgb_size=(H, W), depth_size=(HD, WD)):
    rgb = RNG.integers(0, 256, rgb_size + (3,), dtype=np.uint8)
    depth_mm = RNG.integers(500, 60_000, depth_size).astype(np.uint16)
    depth_mm[RNG.random(depth_size) < 0.1] = 0          # REP 118: no return
    return rgb, depth_mm


def depth_message(depth_mm, encoding, stamp_ns):
    if encoding == '32FC1':
        return image_msg(depth_mm.astype(np.float32) * np.float32(0.001), encoding, stamp_ns)
    return image_msg(depth_mm, encoding, stamp_ns)


def metres(depth_mm):
    depth = depth_mm.astype(np.float32) * np.float32(0.001)
    depth[depth_mm == 0] = np.nan
    return depth


def as_array(msg, channels=1):
    data = np.frombuffer(bytes(msg.data), np.uint8)
    return data.reshape(msg.height, msg.width, channels) if channels > 1 else data.reshape(
        msg.height, msg.width)


def outputs_for(client, stamp_ns):
    return {topic: client.received[topic].get(stamp_ns) for topic in client.OUTPUTS}


def wait_outputs(client, stamp_ns):
    client.spin_until(lambda: all(outputs_for(client, stamp_ns).values()),
                      what=f'all outputs for stamp {stamp_ns}')
    return outputs_for(client, stamp_ns)


def test_every_encoding_gives_all_outputs_with_the_rgb_header(client, oracle):
    from mmcert_ros.segmenter.outputs import radius_image
    from mmcert_ros.segmenter.overlay import render_overlay
    cases = [('rgb8', '16UC1', (HD, WD)), ('bgr8', '32FC1', (H, W)), ('rgba8', 'mono16', (HD, WD)),
             ('bgra8', '32FC1', (HD, WD)), ('mono8', '16UC1', (H, W))]
    for rgb_encoding, depth_encoding, depth_size in cases:
        rgb, depth_mm = random_frame(depth_size=depth_size)
        if rgb_encoding == 'mono8':
            grey = rgb[:, :, 0].copy()
            rgb_msg_array, rgb = grey, np.repeat(grey[:, :, None], 3, axis=2)
        else:
            rgb_msg_array = rgb
        stamp_ns = next(_stamps)
        client.send_pair(image_msg(rgb_msg_array, rgb_encoding, stamp_ns, frame_id='cam_front'),
                         depth_message(depth_mm, depth_encoding, stamp_ns))
        out = wait_outputs(client, stamp_ns)
        expected = oracle.certify(rgb, metres(depth_mm))
        for topic, msg in out.items():
            assert (msg.height, msg.width) == (H, W), topic
            assert msg.header.frame_id == 'cam_front', topic
        assert [out[t].encoding for t in client.OUTPUTS] == ['mono8', 'mono8', 'mono8', 'rgb8']
        np.testing.assert_array_equal(as_array(out['mmcert/segmentation']), expected.labels)
        np.testing.assert_array_equal(as_array(out['mmcert/certification']),
                                      expected.certified.astype(np.uint8) * 255)
        np.testing.assert_array_equal(as_array(out['mmcert/certified_radius']),
                                      radius_image(expected.radius))
        np.testing.assert_array_equal(as_array(out['mmcert/overlay'], 3),
                                      render_overlay(rgb, expected.labels, expected.certified))


def test_invalid_depth_values_are_treated_as_missing_not_as_errors(client, oracle):
    """REP 118: NaN and +-Inf in 32FC1 mean 'no measurement'; the node certifies as usual."""
    rgb, depth_mm = random_frame()
    depth = depth_mm.astype(np.float32) * np.float32(0.001)
    depth[:4] = np.nan
    depth[4:8] = np.inf
    depth[8:10] = -np.inf
    stamp_ns = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), image_msg(depth, '32FC1', stamp_ns))
    out = wait_outputs(client, stamp_ns)
    cleaned = depth.copy()
    cleaned[~np.isfinite(cleaned)] = np.nan
    np.testing.assert_array_equal(as_array(out['mmcert/segmentation']),
                                  oracle.certify(rgb, cleaned).labels)


MALFORMED = [  # (name, kind, which half is bad, field overrides)
    ('rgb data too short', 'size_mismatch', 'rgb', {'data': bytes(H * W * 3 - 1)}),
    ('rgb data too long', 'size_mismatch', 'rgb', {'data': bytes(H * W * 3 + 3)}),
    ('depth zero size', 'empty_image', 'depth', {'height': 0, 'data': b''}),
    ('rgb unknown encoding', 'unknown_encoding', 'rgb', {'encoding': 'rgb16'}),
    ('depth unknown encoding', 'unknown_encoding', 'depth', {'encoding': '8UC3'}),
    ('rgb step too small', 'bad_step', 'rgb', {'step': W * 3 - 1}),
]


def test_malformed_messages_are_reported_and_the_node_keeps_serving(client, node):
    bad_stamps = []
    for name, kind, half, override in MALFORMED * 2:      # every kind twice: logged once
        errors_before = int(client.latest_diagnostics().get('errors_total', 0))
        rgb, depth_mm = random_frame()
        stamp_ns = next(_stamps)
        rgb_msg = image_msg(rgb, 'rgb8', stamp_ns, override=override if half == 'rgb' else None)
        depth_msg = image_msg(depth_mm, '16UC1', stamp_ns,
                              override=override if half == 'depth' else None)
        client.send_pair(rgb_msg, depth_msg)
        bad_stamps.append(stamp_ns)
        # an error is reported at once, at ERROR level
        client.spin_until(lambda: int(client.latest_diagnostics().get('errors_total', 0))
                          > errors_before, what=f'the error report of {name}')
        assert client.diagnostics[-1].status[0].level == DiagnosticStatus.ERROR
        assert client.latest_diagnostics()['last_error'].startswith(kind)
        good_stamp = next(_stamps)                        # the next good frame is served
        rgb, depth_mm = random_frame()
        client.send_pair(image_msg(rgb, 'rgb8', good_stamp),
                         depth_message(depth_mm, '16UC1', good_stamp))
        wait_outputs(client, good_stamp)
    assert node.alive()
    for topic in client.OUTPUTS:
        assert not set(bad_stamps) & set(client.received[topic]), topic
    counts = client.latest_diagnostics()
    for kind, expected in (('size_mismatch', 4), ('empty_image', 2), ('unknown_encoding', 4),
                           ('bad_step', 2)):
        assert counts[f'errors.{kind}'] == str(expected)
    log = node.log()
    for kind in ('size_mismatch', 'empty_image', 'unknown_encoding', 'bad_step'):
        assert len(re.findall(rf'\[{kind}, occurrence \d+\]', log)) == 1, kind


def test_unpaired_stamps_publish_nothing_and_are_counted(client, node):
    rgb, depth_mm = random_frame()
    before = int(client.latest_diagnostics().get('unpaired_rgb', 0))
    rgb_stamp = next(_stamps)
    depth_stamp = rgb_stamp + 40_000_000                   # 40 ms apart: beyond the 20 ms slop
    client.publishers['rgb'].publish(image_msg(rgb, 'rgb8', rgb_stamp))
    client.publishers['depth'].publish(depth_message(depth_mm, '16UC1', depth_stamp))
    good_stamp = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', good_stamp),
                     depth_message(depth_mm, '16UC1', good_stamp))
    wait_outputs(client, good_stamp)
    client.spin_until(lambda: int(client.latest_diagnostics().get('unpaired_rgb', 0)) > before,
                      what='the unpaired counter')
    for topic in client.OUTPUTS:
        assert not {rgb_stamp, depth_stamp} & set(client.received[topic])
    assert 'found no partner within sync.slop' in node.log()


@pytest.mark.parametrize('name, value', [
    ('certify.num_samples', 0),                 # below the declared range
    ('certify.keep_fraction_rgb', 0.0),         # range includes 0, the engine does not
    ('certify.alpha', 1.5),
    ('certify.seed', -2),
    ('certify.ray', [0, 0]),
    ('model.device', 'gpu'),
    ('model.precision', 'fp8'),
    ('model.checkpoint', '/nonexistent/model.pt'),
    ('sync.slop', -0.1),
    ('qos.reliability', 'reliable'),            # read-only after start
    ('certify.num_samples', 'many'),            # wrong type
])
def test_invalid_parameter_values_are_rejected_with_a_reason(client, name, value):
    (result,) = client.set_parameters('mmcert_segmenter', {name: value})
    assert not result.successful
    assert result.reason


def test_corrupt_checkpoint_is_rejected_when_set(client, tmp_path):
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'not a torch file')
    (result,) = client.set_parameters('mmcert_segmenter', {'model.checkpoint': str(corrupt)})
    assert not result.successful and 'corrupt' in result.reason


def exact_delta(n, k, r):
    """1 - prod_i C(n_i - r_i, k_i) / C(n_i, k_i), exactly."""
    keep = Fraction(1)
    for n_i, k_i, r_i in zip(n, k, r):
        keep *= Fraction(math.comb(n_i - r_i, k_i), math.comb(n_i, k_i))
    return 1 - keep


def unanimous_certified(num_samples, n, k, r, alpha, m):
    """Holm on m identical p-values of unanimous votes: all certified iff p <= alpha / m, with
    the selection bound p = q^N + (1 - q)^N of a strict majority (docs/certification.md)."""
    q = 0.5 + float(exact_delta(n, k, r))
    pvalue = binom.sf(num_samples - 1, num_samples, q) + binom.sf(num_samples - 1, num_samples,
                                                                  1 - q)
    return q < 1 and pvalue <= alpha / m


def test_valid_parameters_change_the_next_output(client, checkpoints):
    """Switch to the unanimous model at N = 32: its certificate is known in closed form."""
    from mmcert_ros.certify.config import CertifyConfig
    defaults = CertifyConfig()
    n = (H * W, HD * WD)
    k = (round(defaults.keep_fraction_rgb * n[0]), round(defaults.keep_fraction_depth * n[1]))
    results = client.set_parameters('mmcert_segmenter', {
        'model.checkpoint': str(checkpoints['constant']), 'certify.num_samples': 32,
        'certify.radius_rgb': 1, 'certify.radius_depth': 2})
    assert all(result.successful for result in results), [r.reason for r in results]

    rgb, depth_mm = random_frame()
    stamp_ns = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), depth_message(depth_mm, '16UC1', stamp_ns))
    out = wait_outputs(client, stamp_ns)
    assert (as_array(out['mmcert/segmentation']) == 0).all()
    certified = unanimous_certified(32, n, k, (1, 2), defaults.alpha, H * W)
    assert certified          # the parameters above are chosen so that this holds
    assert (as_array(out['mmcert/certification']) == 255).all()
    # radius map: largest t on the ray (1, 2) certified by Bonferroni (alpha / m per pixel)
    t = 0
    while unanimous_certified(32, n, k, ((t + 1), 2 * (t + 1)), defaults.alpha, H * W):
        t += 1
    assert (as_array(out['mmcert/certified_radius']) == t).all()
    expected_delta = float(exact_delta(n, k, (1, 2)))
    client.spin_until(
        lambda: float(client.latest_diagnostics().get('delta', 'nan'))
        == pytest.approx(expected_delta, rel=1e-5),
        what=f'diagnostics reporting delta = {expected_delta}')
    assert client.latest_diagnostics()['num_samples'] == '32'

    # a budget beyond the certificate: nothing certified from the next frame on
    (result,) = client.set_parameters('mmcert_segmenter', {'certify.radius_rgb': 60})
    assert result.successful
    assert not unanimous_certified(32, n, k, (60, 2), defaults.alpha, H * W)
    stamp_ns = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), depth_message(depth_mm, '16UC1', stamp_ns))
    out = wait_outputs(client, stamp_ns)
    assert (as_array(out['mmcert/certification']) == 0).all()

    # radius output switched off: the next frame has no radius image
    (result,) = client.set_parameters('mmcert_segmenter', {'publish.radius': False})
    assert result.successful
    stamp_ns = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), depth_message(depth_mm, '16UC1', stamp_ns))
    client.spin_until(lambda: stamp_ns in client.received['mmcert/overlay'],
                      what='the next overlay (published after the radius image)')
    assert stamp_ns in client.received['mmcert/segmentation']
    assert stamp_ns not in client.received['mmcert/certified_radius']


@pytest.mark.parametrize('override, message', [
    ({'certify.keep_fraction_rgb': 0.0}, 'certify.keep_fraction_rgb'),
    ({'certify.num_samples': 0}, 'certify.num_samples'),
    ({'model.checkpoint': '/nonexistent/model.pt'}, 'model.checkpoint'),
])
def test_invalid_start_up_values_stop_the_node_with_a_clear_error(tmp_path, fresh_domain_id,
                                                                  override, message):
    # a domain of its own: a second 'mmcert_segmenter' must not meet the module's node
    process = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'bad.log',
                          dict(PARAMS, **override))
    assert process.process.wait(timeout=120) == 2
    process.stop()
    log = process.log()
    assert 'mmcert_segmenter: error:' in log and message in log
    assert 'Traceback' not in log
