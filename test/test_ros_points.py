"""The segmenter with ``depth.source: points`` over real DDS, three processes: the node, a
LiDAR stand-in (``ros_cloud_echo.py``: one PointCloud2 per RGB image, same stamp) and this
test's rclpy client (RGB images, CameraInfo, malformed clouds).

Oracles: the engine in this process on the same RGB and the same points projected here
(outputs must match exactly, fixed seed), exact rationals for the point-count delta, and the
engine on RGB with all-invalid depth for the RGB-only mode. Killing the LiDAR process turns
the node to ``degraded: rgb-only`` (WARN in /diagnostics, WARN per frame on mmcert/status)
while it keeps publishing; restarting it brings RGB-D certification back.
"""
import importlib.util
import itertools
import signal
import subprocess
import sys
import time
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from mmcert_ros.ros.diagnostics import values_of

from helpers.ros_cloud_echo import (ECHOED_FRAME, IDENTITY, H, K, W, POINTS, cloud_message,
                                    scene_points)
from helpers.ros_harness import (REPO, WAIT_S, NodeProcess, RosClient, cloud_fields, image_msg,
                                 ros_env, stamp, tiny_checkpoint)

pytestmark = pytest.mark.ros   # the node over Fast DDS, a LiDAR process and a client
SEED, N, KEEP_POINTS, R_DEPTH = 7, 8, 16, 3
TIMEOUT_S = 1.0
STATUS = 'mmcert/status'
LABELLED_POINTS = 'mmcert/labelled_points'
PARAMS = {'model.device': 'cpu', 'certify.num_samples': N, 'certify.seed': SEED,
          'model.batch_size': 8, 'qos.reliability': 'reliable', 'publish.overlay': False,
          'depth.source': 'points', 'depth.extrinsic': IDENTITY, 'depth.timeout_s': TIMEOUT_S,
          'certify.keep_points': KEEP_POINTS, 'certify.radius_depth': R_DEPTH}
RGB = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
_stamps = itertools.count(1_000_000_000, 100_000_000)


class CloudEcho:
    """``ros_cloud_echo.py`` in its own process (the LiDAR)."""

    def __init__(self, domain_id, log_path):
        self._log = open(log_path, 'ab')
        script = REPO / 'test' / 'helpers' / 'ros_cloud_echo.py'
        self.process = subprocess.Popen([sys.executable, str(script)],
                                        cwd=REPO, env=ros_env(domain_id), stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)      # no goodbye: a LiDAR that dies
        self.process.wait(timeout=30)
        self._log.close()


class Client(RosClient):
    """RGB + CameraInfo + clouds of our own in, outputs and mmcert/status recorded."""

    def __init__(self, domain_id):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        super().__init__(domain_id, inputs=False, extra_subscriptions={
            STATUS: DiagnosticArray, LABELLED_POINTS: PointCloud2})
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {'rgb': self.node.create_publisher(Image, 'rgb/image', qos),
                           'camera_info': self.node.create_publisher(CameraInfo,
                                                                     'rgb/camera_info', qos),
                           'cloud': self.node.create_publisher(PointCloud2, 'depth/points', qos)}

    def send_rgb(self, frame_id=ECHOED_FRAME, stamp_ns=None) -> int:
        from sensor_msgs.msg import CameraInfo
        stamp_ns = next(_stamps) if stamp_ns is None else stamp_ns
        info = CameraInfo(width=W, height=H, k=list(K), distortion_model='plumb_bob',
                          d=[0.0] * 5, p=[K[0], 0.0, K[2], 0.0, 0.0, K[4], K[5], 0.0,
                                          0.0, 0.0, 1.0, 0.0])
        info.header.stamp, info.header.frame_id = stamp(stamp_ns), 'camera'
        self.publishers['camera_info'].publish(info)
        self.publishers['rgb'].publish(image_msg(RGB, 'rgb8', stamp_ns, frame_id))
        return stamp_ns

    def feed_until(self, predicate, what):
        """Send an RGB image every 0.2 s until ``predicate()`` (at most ``WAIT_S``)."""
        deadline = time.monotonic() + WAIT_S
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {WAIT_S} s waiting for {what}')
            self.send_rgb()
            self.spin_for(0.2)

    def status_of(self, stamp_ns) -> DiagnosticStatus | None:
        array = self.received[STATUS].get(stamp_ns)
        return None if array is None else array.status[0]

    def frames_in_mode(self, mode, since_ns=0) -> list[int]:
        """Stamps after ``since_ns`` with a segmentation and an ``mmcert/status`` of ``mode``."""
        return sorted(stamp_ns for stamp_ns, array in self.received[STATUS].items()
                      if stamp_ns > since_ns and array.status[0].message == mode
                      and stamp_ns in self.received['mmcert/segmentation'])


@pytest.fixture(scope='module')
def graph(tmp_path_factory, domain_id):
    root = tmp_path_factory.mktemp('points')
    checkpoint = tiny_checkpoint(root / 'tiny.pt')
    node = NodeProcess('segmenter', domain_id, root / 'node.log',
                       dict(PARAMS, **{'model.checkpoint': checkpoint}))
    echo = CloudEcho(domain_id, root / 'echo.log')
    client = Client(domain_id)
    client.spin_until(lambda: client.publishers['rgb'].get_subscription_count() >= 2
                      and client.subscriptions[STATUS].get_publisher_count() > 0,
                      what='the node and the LiDAR to connect')
    state = {'echo': echo}
    yield node, client, state, root, checkpoint
    client.close()
    state['echo'].kill()
    assert node.stop() == 0, node.log()


@pytest.fixture(scope='module')
def oracle(graph):
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
    from mmcert_ros.models import load_model
    return CertifiedSegmenter(load_model(graph[4]), CertifyConfig(
        num_samples=N, seed=SEED, batch_size=8, keep_points=KEEP_POINTS,
        radius_depth=R_DEPTH))


def assert_outputs_match(client, stamp_ns, certificate):
    from mmcert_ros.segmenter.codec import decode_mask as decoded
    assert np.array_equal(decoded(client.received['mmcert/segmentation'][stamp_ns]),
                          certificate.labels)
    assert np.array_equal(decoded(client.received['mmcert/certification'][stamp_ns]) == 255,
                          certificate.certified)


def test_clouds_pair_with_rgb_and_are_certified_as_points(graph, oracle):
    from mmcert_ros.data.projection import CameraIntrinsics, Extrinsic, project_points
    _, client, _, _, _ = graph
    client.feed_until(lambda: client.frames_in_mode('rgb-d'), 'an RGB-D frame')
    stamp_ns = client.frames_in_mode('rgb-d')[-1]
    status = client.status_of(stamp_ns)
    assert status.level == DiagnosticStatus.OK
    assert {item.key: item.value for item in status.values} == {'mode': 'rgb-d',
                                                                'depth_source': 'points'}
    points = project_points(scene_points(), CameraIntrinsics(W, H, np.array(K).reshape(3, 3)),
                            Extrinsic.from_values([float(v) for v in IDENTITY.split()]))
    assert points.count == POINTS                      # every point of the scene is in view
    certificate = oracle.certify(RGB, points)
    assert_outputs_match(client, stamp_ns, certificate)
    # the same points, labelled with their pixels' certificate, in the cloud's own frame
    client.spin_until(lambda: stamp_ns in client.received[LABELLED_POINTS],
                      what='the labelled points of the frame')
    cloud = client.received[LABELLED_POINTS][stamp_ns]
    assert cloud.header.frame_id == 'lidar'                # the echo's cloud frame
    read = cloud_fields(cloud, ('x', 'y', 'z', 'label', 'certified'))
    np.testing.assert_allclose(np.stack([read['x'], read['y'], read['z']], axis=1),
                               scene_points(), rtol=1e-6)
    pixels = points.pixels
    np.testing.assert_array_equal(read['label'], certificate.labels.reshape(-1)[pixels])
    np.testing.assert_array_equal(read['certified'],
                                  certificate.certified.reshape(-1)[pixels].astype(np.uint8))
    # delta of the published mask: R_DEPTH points of n = POINTS (r_rgb = 0), exact rationals;
    # the report of the last frame (an RGB-only frame's delta counts depth pixels: 0.0068)
    exact = 1 - Fraction(comb(POINTS - R_DEPTH, KEEP_POINTS), comb(POINTS, KEEP_POINTS))
    client.spin_until(lambda: client.latest_diagnostics().get('delta') == f'{float(exact):.6g}'
                      and client.latest_diagnostics().get('depth_source') == 'points',
                      what=f'a report of the RGB-D frame from points, delta {float(exact):.6g}')


def bad_clouds(header):
    """``(kind, PointCloud2)`` of clouds the node must refuse."""
    from sensor_msgs.msg import PointCloud2
    yield 'missing_field', PointCloud2(header=header, height=1, width=2, fields=[],
                                       point_step=16, row_step=32, data=bytes(32), is_dense=True)
    yield 'none_in_view', cloud_message(-scene_points(), header)   # all behind the camera


def test_malformed_clouds_are_reported_and_the_node_keeps_serving(graph):
    from std_msgs.msg import Header
    node, client, _, _, _ = graph
    refused = []
    for kind, msg in bad_clouds(Header(frame_id='lidar')):
        stamp_ns = next(_stamps)
        msg.header.stamp = stamp(stamp_ns)
        seen = len(client.diagnostics)
        client.publishers['cloud'].publish(msg)   # first: depth is then present, the image pairs
        client.spin_for(0.3)
        client.send_rgb(frame_id='not_echoed', stamp_ns=stamp_ns)   # the LiDAR stays silent
        # an ERROR report counting the error (its message names only the period's last
        # error, which on a loaded machine can be another one of the same period)
        client.spin_until(lambda: any(array.status[0].level == DiagnosticStatus.ERROR
                                      and int(values_of(array).get(f'errors.{kind}', 0)) >= 1
                                      for array in client.diagnostics[seen:]),
                          what=f'an ERROR report of the {kind} cloud')
        assert int(client.latest_diagnostics()[f'errors.{kind}']) >= 1
        refused.append(stamp_ns)
    since = max(refused)
    client.feed_until(lambda: client.frames_in_mode('rgb-d', since), 'a good frame after them')
    for topic in ('mmcert/segmentation', 'mmcert/certification', STATUS):
        assert not set(refused) & set(client.received[topic]), topic
    for kind in ('missing_field', 'none_in_view'):
        assert any(kind in line and 'depth/points' in line and '[ERROR]' in line
                   for line in node.log().splitlines()), kind
    assert node.alive()


def test_extrinsic_changes_are_validated_at_run_time(graph):
    _, client, _, _, _ = graph
    (result,) = client.set_parameters('mmcert_segmenter', {'depth.extrinsic': '1 2 3'})
    assert not result.successful and 'extrinsic must be 7 values' in result.reason
    if not any(importlib.util.find_spec(name) for name in ('tf2_ros', 'tf2_msgs')):
        # the PyPI wheels here: the node cannot read tf
        (result,) = client.set_parameters('mmcert_segmenter', {'depth.extrinsic': ''})
        assert not result.successful and 'nor tf2_msgs is installed' in result.reason
    (result,) = client.set_parameters('mmcert_segmenter', {'depth.source': 'image'})
    assert not result.successful                  # read-only: the subscription is fixed
    (result,) = client.set_parameters('mmcert_segmenter', {'depth.extrinsic': IDENTITY})
    assert result.successful


def test_a_lidar_that_stops_degrades_to_rgb_only_and_comes_back(graph, oracle, domain_id):
    node, client, state, root, _ = graph
    client.feed_until(lambda: client.frames_in_mode('rgb-d'), 'an RGB-D frame')
    state['echo'].kill()
    killed_after = max(client.received[STATUS])
    client.feed_until(lambda: client.frames_in_mode('degraded: rgb-only', killed_after),
                      'RGB-only frames after the LiDAR died')
    client.spin_until(lambda: client.latest_diagnostics().get('mode') == 'degraded: rgb-only',
                      what='an RGB-only report')
    report = client.diagnostics[-1].status[0]
    assert report.level == DiagnosticStatus.WARN and 'degraded: rgb-only' in report.message
    degraded = client.frames_in_mode('degraded: rgb-only', killed_after)
    status = client.status_of(degraded[-1])
    assert status.level == DiagnosticStatus.WARN and status.message == 'degraded: rgb-only'
    # certified from RGB alone: exactly the engine on RGB with every depth pixel invalid
    assert_outputs_match(client, degraded[-1],
                         oracle.certify(RGB, np.zeros((H, W), dtype=np.float32)))
    assert 'degraded: rgb-only' in node.log()

    state['echo'] = CloudEcho(domain_id, root / 'echo.log')   # the LiDAR comes back
    last_degraded = max(client.received[STATUS])
    client.feed_until(lambda: client.frames_in_mode('rgb-d', last_degraded),
                      'RGB-D frames once the LiDAR is back')
    client.spin_until(lambda: client.latest_diagnostics().get('mode') == 'rgb-d',
                      what='an RGB-D report after the recovery')
    assert 'degraded' not in client.diagnostics[-1].status[0].message
    assert 'RGB-D certification resumed' in node.log()
    assert node.alive()


def test_clouds_get_the_shipped_points_model_by_default(fresh_domain_id):
    """``model.checkpoint: ''`` with ``depth.source: points`` loads ``points.pt``, the model
    trained on point-sampled input (the node built in this process)."""
    import rclpy
    import torch
    from rclpy.parameter import Parameter

    from mmcert_ros.models import POINTS_CHECKPOINT, load_model
    from mmcert_ros.ros.segmenter_node import SegmenterNode
    from helpers.ros_harness import shifted_domain
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=shifted_domain(fresh_domain_id))
    node = SegmenterNode(context=context, parameter_overrides=[
        Parameter('depth.source', value='points'), Parameter('depth.extrinsic', value=IDENTITY),
        Parameter('model.device', value='cpu')])
    try:
        loaded = node._engines.segmenter.model.state_dict()
        shipped = load_model(POINTS_CHECKPOINT).state_dict()
        assert loaded.keys() == shipped.keys()
        assert all(torch.equal(loaded[key], shipped[key]) for key in shipped)
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
