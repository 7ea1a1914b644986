"""The segmenter's l2 certificate (``fs.*``, ``mmcert/l2_certification``) over real DDS.

The node runs in its own process; the oracle is :class:`mmcert_ros.certify.l2.L2Certifier` and
the l0 engine run in this process on the same frame with the same checkpoint, booster, seed
and settings (the published mask must equal ``l2.agreeing(l0.labels)`` exactly). The tiny
model's prototypes are placed so that the test frame's l2 certificate is neither empty nor
full, which makes the comparison discriminating.
"""
import itertools

import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image

from helpers.ros_harness import NodeProcess, image_msg

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

H, W = 48, 64
HD, WD = 24, 32
SEED = 7
L0_SAMPLES = 8
FS_SAMPLES = 256
SIGMA = 0.25
RADIUS = 0.01
L2_TOPIC = 'mmcert/l2_certification'
#: the conftest's client subscribes to the l2 mask too and waits for it
CLIENT_SUBSCRIPTIONS = {L2_TOPIC: Image}
CLIENT_WAIT_TOPICS = ('mmcert/segmentation', L2_TOPIC)
PARAMS = {'model.device': 'cpu', 'certify.num_samples': L0_SAMPLES, 'certify.seed': SEED,
          'model.batch_size': 8, 'qos.reliability': 'reliable', 'publish.overlay': False,
          'fs.sigma': SIGMA, 'fs.radius': RADIUS, 'fs.num_samples': FS_SAMPLES}
_stamps = itertools.count(2_000_000_000, 50_000_000)


def the_frame():
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth_mm = rng.integers(500, 60_000, (HD, WD)).astype(np.uint16)
    depth_mm[rng.random((HD, WD)) < 0.1] = 0
    depth = depth_mm.astype(np.float32) * np.float32(0.001)
    depth[depth_mm == 0] = np.nan
    return rgb, depth_mm, depth


def config():
    from mmcert_ros.certify import CertifyConfig
    return CertifyConfig(num_samples=L0_SAMPLES, seed=SEED, batch_size=8)


def expected_l2(model, booster=None):
    """The oracle: the L2Certifier with the node's settings, and the mask the node must publish."""
    from mmcert_ros.certify import CertifiedSegmenter
    from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
    rgb, _, depth = the_frame()
    l0 = CertifiedSegmenter(model, config()).certify(rgb, depth)
    l2 = L2Certifier(model, L2Settings(sigma=SIGMA, radius=RADIUS),
                     config().replace(num_samples=FS_SAMPLES), booster).certify(rgb, depth)
    return l2, l2.agreeing(l0.labels)


def mixed_model():
    """A tiny SparseRGBDNet with antipodal prototypes placed so that 20 % to 80 % of the pixels
    of the test frame are l2-certified at the test's settings (the features do not depend on the
    prototypes, so the smoothed features are estimated once and the pixels re-certified)."""
    from mmcert_ros.certify.l2.pixel_margin import pixel_margins
    from mmcert_ros.models import NetworkConfig, build_model
    torch.manual_seed(0)
    model = build_model(NetworkConfig(width=4, feature_dim=4)).eval()
    smoothed = expected_l2(model)[0].cells.smoothed
    reference = smoothed.reference.reshape(4, -1)                  # unit u per cell
    mean = reference.mean(axis=1)
    mean /= np.linalg.norm(mean)
    spread = reference - mean[:, None]
    spread -= mean[:, None] * (mean @ spread)                      # orthogonal to the mean
    direction = np.linalg.svd(spread)[0][:, 0]

    def prototypes(angle):   # antipodal, at `angle` from the mean feature: margin ~ pi - 2 angle
        prototype = np.cos(angle) * mean + np.sin(angle) * direction
        return np.stack([prototype, -prototype]).astype(np.float32)

    def certified_share(angle):
        return pixel_margins(smoothed, prototypes(angle), (H, W)).certified_at(
            RADIUS, config().alpha).mean()

    # the middle of the widest range of angles over which the share stays constant between
    # 0.2 and 0.8: far from every jump, so rounding differences between processes (thread
    # counts change float sums in the last bits) cannot move cells across the threshold
    angles = np.linspace(0.0, np.pi / 2, 241)                      # share 1 .. share 0
    shares = np.array([certified_share(angle) for angle in angles])
    best, start = (0, 0), 0
    for end in range(1, len(angles) + 1):
        if end == len(angles) or shares[end] != shares[start]:
            if 0.2 < shares[start] < 0.8 and end - start > best[1] - best[0]:
                best = (start, end)
            start = end
    with torch.no_grad():
        model.prototypes = torch.from_numpy(prototypes(angles[(best[0] + best[1] - 1) // 2]))
    return model


def random_booster(feature_dim=4, seed=1):
    """A booster whose residual branches are not zero (an untrained one is the identity)."""
    from mmcert_ros.models.booster import BoosterConfig, SmoothnessBooster
    torch.manual_seed(seed)
    booster = SmoothnessBooster(BoosterConfig(feature_dim=feature_dim, purifier_width=4,
                                              mapper_width=4, mapper_layers=1))
    with torch.no_grad():
        for layer in (booster.purifier[-1], booster.mapper[-1]):
            layer.weight.normal_(0.0, 0.3)
    return booster.eval()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    from mmcert_ros.models import save_checkpoint
    from mmcert_ros.models.booster import save_booster
    root = tmp_path_factory.mktemp('l2')
    corrupt = root / 'corrupt.pt'
    corrupt.write_bytes(b'not a torch file')
    return {'model': save_checkpoint(root / 'model.pt', mixed_model(), {'purpose': 'l2 test'}),
            'booster': save_booster(root / 'booster.pt', random_booster(), {'sigma': SIGMA}),
            'wide_booster': save_booster(root / 'wide.pt', random_booster(feature_dim=8), {}),
            'corrupt': corrupt}


@pytest.fixture(scope='module')
def model(files):
    from mmcert_ros.models import load_model
    return load_model(files['model'])


@pytest.fixture(scope='module')
def node_params(files):   # the conftest's node and client
    return {'model.checkpoint': files['model']}


def send_test_frame(client, frame_id='cam_front'):
    rgb, depth_mm, _ = the_frame()
    stamp_ns = next(_stamps)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns, frame_id=frame_id),
                     image_msg(depth_mm, '16UC1', stamp_ns, frame_id=frame_id))
    return stamp_ns


def mono8(msg):
    assert msg.encoding == 'mono8'
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


def wait_l2(client, stamp_ns):
    client.spin_until(lambda: stamp_ns in client.received[L2_TOPIC],
                      what=f'{L2_TOPIC} for stamp {stamp_ns}')
    return client.received[L2_TOPIC][stamp_ns]


def test_l2_mask_is_the_l2_certificate_agreeing_with_the_segmentation(client, model):
    l2, mask = expected_l2(model)
    assert 0.1 < mask.mean() < 0.9           # the fixture's model makes the check discriminating
    stamp_ns = send_test_frame(client)
    msg = wait_l2(client, stamp_ns)
    assert msg.header.frame_id == 'cam_front'
    assert (msg.height, msg.width) == (H, W)
    np.testing.assert_array_equal(mono8(msg), mask.astype(np.uint8) * 255)
    client.spin_until(lambda: stamp_ns in client.received['mmcert/segmentation'],
                      what='the segmentation of the same frame')
    assert client.received['mmcert/segmentation'][stamp_ns].header == msg.header

    # diagnostics: the FCSB, score and published fraction of that frame, and the l2 stage time
    summary = l2.summary()
    client.spin_until(lambda: client.latest_diagnostics().get('l2_fcsb_mean') is not None
                      and int(client.latest_diagnostics()['frames_period']) > 0,
                      what='diagnostics of a frame with the l2 certificate')
    values = client.latest_diagnostics()
    assert float(values['l2_fcsb_mean']) == pytest.approx(summary['fcsb']['mean'], rel=1e-5)
    assert float(values['l2_fcsb_min']) == pytest.approx(summary['fcsb']['min'], rel=1e-5)
    assert float(values['l2_score_mean']) == pytest.approx(summary['score_mean'], rel=1e-5)
    assert float(values['l2_certified_fraction']) == pytest.approx(mask.mean(), abs=1e-4)
    assert 0 < float(values['l2_ms']) <= float(values['processing_time_ms'])
    assert values['l2'] == f'sigma={SIGMA:g}, radius={RADIUS:g}, N={FS_SAMPLES}, booster=none'


@pytest.mark.parametrize('name, value', [
    ('fs.sigma', -0.25),
    ('fs.sigma', 11.0),                 # above the declared range
    ('fs.radius', -0.1),
    ('fs.num_samples', -1),
    ('fs.sigma', 'high'),               # wrong type
    ('fs.booster', '/nonexistent/booster.pt'),
])
def test_invalid_fs_values_are_rejected_with_a_reason(client, name, value):
    (result,) = client.set_parameters('mmcert_segmenter', {name: value})
    assert not result.successful
    assert result.reason


@pytest.mark.parametrize('which, reason', [
    ('corrupt', 'corrupt'),
    ('model', 'incompatible'),          # a model checkpoint is not a booster
    ('wide_booster', 'does not fit'),   # 8-dimensional features, the model has 4
])
def test_a_booster_that_does_not_load_is_rejected_when_set(client, files, which, reason):
    (result,) = client.set_parameters('mmcert_segmenter', {'fs.booster': str(files[which])})
    assert not result.successful
    assert 'fs.booster' in result.reason or str(files[which]) in result.reason
    assert reason in result.reason


def test_a_booster_set_at_run_time_is_used_from_the_next_frame(client, model, files):
    from mmcert_ros.models.booster import load_booster
    booster = load_booster(files['booster'])[0]
    boosted, mask = expected_l2(model, booster)
    _, plain_mask = expected_l2(model)
    assert boosted.boosted and not np.array_equal(mask, plain_mask)
    (result,) = client.set_parameters('mmcert_segmenter', {'fs.booster': str(files['booster'])})
    assert result.successful, result.reason
    msg = wait_l2(client, send_test_frame(client))
    np.testing.assert_array_equal(mono8(msg), mask.astype(np.uint8) * 255)
    client.spin_until(lambda: client.latest_diagnostics().get('l2', '').endswith(
        f'booster={files["booster"]}'), what='diagnostics naming the booster')


def test_fs_joint_publishes_both_certificates_of_one_ensemble(client, model, files):
    """With fs.joint the segmentation, certification and l2 mask all come from the one
    ensemble of FS_SAMPLES noisy passes (the library's certify_joint on the same frame)."""
    from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings
    from mmcert_ros.models.booster import load_booster
    rgb, _, depth = the_frame()
    settings = L2Settings(sigma=SIGMA, radius=RADIUS, num_samples=FS_SAMPLES, joint=True)
    l0, l2 = L2Certifier(model, settings, config(), load_booster(files['booster'])[0]
                         ).certify_joint(rgb, depth)
    assert l0.num_samples == FS_SAMPLES
    results = client.set_parameters('mmcert_segmenter', {'fs.joint': True,
                                                         'fs.booster': str(files['booster'])})
    assert all(result.successful for result in results), [r.reason for r in results]
    stamp_ns = send_test_frame(client)
    msg = wait_l2(client, stamp_ns)
    client.spin_until(lambda: stamp_ns in client.received['mmcert/certification'],
                      what='the certification of the same frame')
    np.testing.assert_array_equal(mono8(client.received['mmcert/segmentation'][stamp_ns]),
                                  l0.labels)
    np.testing.assert_array_equal(mono8(client.received['mmcert/certification'][stamp_ns]),
                                  l0.certified.astype(np.uint8) * 255)
    np.testing.assert_array_equal(mono8(msg), l2.agreeing(l0.labels).astype(np.uint8) * 255)
    (result,) = client.set_parameters('mmcert_segmenter', {'fs.joint': False})
    assert result.successful, result.reason


def test_sigma_zero_publishes_nothing_on_the_l2_topic(client):
    (result,) = client.set_parameters('mmcert_segmenter', {'fs.sigma': 0.0})
    assert result.successful, result.reason
    first = send_test_frame(client)
    client.spin_until(lambda: first in client.received['mmcert/segmentation'],
                      what='the segmentation of the first frame with fs.sigma = 0')
    # the worker publishes a frame's l2 mask before it takes the next pair, so once the next
    # frame's segmentation has arrived the first frame's l2 mask would have been sent long ago
    second = send_test_frame(client)
    client.spin_until(lambda: second in client.received['mmcert/segmentation'],
                      what='the segmentation of the second frame with fs.sigma = 0')
    assert not {first, second} & set(client.received[L2_TOPIC])
    client.spin_until(lambda: client.latest_diagnostics().get('l2') == 'off'
                      and 'l2_fcsb_mean' not in client.latest_diagnostics(),
                      what='diagnostics of a last frame without the l2 certificate')


def test_a_missing_booster_at_start_up_stops_the_node_with_a_clear_error(
        tmp_path, fresh_domain_id):
    process = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'bad.log',
                          dict(PARAMS, **{'fs.booster': '/nonexistent/booster.pt'}))
    assert process.process.wait(timeout=120) == 2
    process.stop()
    log = process.log()
    assert 'mmcert_segmenter: error:' in log and 'fs.booster' in log
    assert 'Traceback' not in log
