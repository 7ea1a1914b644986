"""A segmenter in a namespace, fed as many cameras send images (image_transport's
``compressed`` transport) over real DDS, and what viewers get from it.

Oracles: the engine in this process on the image OpenCV decodes from the same bytes (PNG:
the sent pixels; JPEG: OpenCV's decoding), ``view_images`` of that certificate, and OpenCV's
JPEG encoding of the overlay rendered here (quality 80) for the compressed overlay.
"""
import itertools

import cv2
import numpy as np
import pytest

from helpers.ros_harness import SETTLE_S, NodeProcess, RosClient, image_msg, stamp

pytestmark = pytest.mark.ros

H, W = 32, 48
N, SEED = 8, 11
NAMESPACE = 'cam'
PARAMS = {'model.device': 'cpu', 'certify.num_samples': N, 'certify.seed': SEED,
          'model.batch_size': 8, 'qos.reliability': 'reliable', 'rgb.transport': 'compressed',
          'view.max_radius': 4}
OUT = f'/{NAMESPACE}/mmcert/'
_stamps = itertools.count(3_000_000_000, 50_000_000)


@pytest.fixture(scope='module')
def served(tiny_checkpoint, tmp_path_factory, domain_id):
    """(node process, client): the node in namespace ``cam`` reading
    ``/cam/rgb/image/compressed``; the client sends there and to ``/cam/depth/image``."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from mmcert_ros.segmenter.views import VIEW_TOPICS
    node = NodeProcess('segmenter', domain_id, tmp_path_factory.mktemp('views') / 'node.log',
                       dict(PARAMS, **{'model.checkpoint': tiny_checkpoint}),
                       extra_args=['-r', f'__ns:=/{NAMESPACE}'])
    subscriptions = {f'{OUT}segmentation': Image, f'{OUT}status': DiagnosticArray,
                     f'{OUT}overlay/compressed': CompressedImage,
                     **{f'/{NAMESPACE}/{topic}': Image for topic in VIEW_TOPICS}}
    client = RosClient(domain_id, inputs=False, extra_subscriptions=subscriptions)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    client.publishers = {
        'rgb': client.node.create_publisher(CompressedImage,
                                            f'/{NAMESPACE}/rgb/image/compressed', qos),
        'depth': client.node.create_publisher(Image, f'/{NAMESPACE}/depth/image', qos)}
    try:
        client.spin_until(lambda: all(p.get_subscription_count() for p in
                                      client.publishers.values())
                          and all(client.subscriptions[t].get_publisher_count()
                                  for t in subscriptions), what='the node to connect')
        client.spin_for(SETTLE_S)
        yield node, client
    finally:
        client.close()
        assert node.stop() == 0, node.log()


@pytest.fixture(scope='module')
def oracle(tiny_checkpoint):
    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
    from mmcert_ros.models import load_model
    return CertifiedSegmenter(load_model(tiny_checkpoint),
                              CertifyConfig(num_samples=N, seed=SEED, batch_size=8))


def compressed(rgb: np.ndarray, fmt: str, stamp_ns: int, data: bytes | None = None):
    from sensor_msgs.msg import CompressedImage

    from mmcert_ros.segmenter.codec import encode_compressed
    format_string, encoded = encode_compressed(rgb, fmt)
    msg = CompressedImage(format=format_string, data=encoded if data is None else data)
    msg.header.stamp = stamp(stamp_ns)
    msg.header.frame_id = 'cam_optical'
    return msg


def send(client, rgb_msg, stamp_ns):
    depth = np.full((H, W), 4000, np.uint16)
    client.publishers['rgb'].publish(rgb_msg)
    client.publishers['depth'].publish(image_msg(depth, '16UC1', stamp_ns))


def pixels(msg, channels=3):
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, channels)


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_compressed_images_are_certified_and_shown_to_viewers(served, oracle, fmt):
    from mmcert_ros.segmenter.overlay import render_overlay
    from mmcert_ros.segmenter.views import VIEW_CERTIFIED_RADIUS, VIEW_SEGMENTATION, view_images
    _, client = served
    rgb = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    stamp_ns = next(_stamps)
    msg = compressed(rgb, fmt, stamp_ns)
    send(client, msg, stamp_ns)
    topics = [f'{OUT}segmentation', f'{OUT}overlay/compressed',
              f'/{NAMESPACE}/{VIEW_SEGMENTATION}', f'/{NAMESPACE}/{VIEW_CERTIFIED_RADIUS}']
    client.spin_until(lambda: all(stamp_ns in client.received[t] for t in topics),
                      what=f'the outputs of a {fmt} frame')
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    if fmt == 'png':
        np.testing.assert_array_equal(decoded, rgb)
    expected = oracle.certify(np.ascontiguousarray(decoded), np.full((H, W), 4.0, np.float32))
    segmentation = client.received[f'{OUT}segmentation'][stamp_ns]
    assert segmentation.header.frame_id == 'cam_optical'
    np.testing.assert_array_equal(pixels(segmentation, 1)[..., 0], expected.labels)
    views = view_images(expected, {VIEW_SEGMENTATION, VIEW_CERTIFIED_RADIUS}, 4)
    for topic, fields in views.items():
        got = client.received[f'/{NAMESPACE}/{topic}'][stamp_ns]
        assert (got.encoding, got.height, got.width) == ('rgb8', H, W)
        assert bytes(got.data) == bytes(fields.data), topic
    overlay = client.received[f'{OUT}overlay/compressed'][stamp_ns]
    assert overlay.format == 'rgb8; jpeg compressed bgr8'
    rendered = render_overlay(np.ascontiguousarray(decoded), expected.labels, expected.certified)
    ok, jpeg = cv2.imencode('.jpg', np.ascontiguousarray(rendered[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok and bytes(overlay.data) == jpeg.tobytes()   # the overlay of this certificate


def test_statuses_carry_the_namespace_and_the_node_as_hardware_id(served):
    _, client = served
    client.spin_until(lambda: any(a.status and a.status[0].name.startswith(f'{NAMESPACE}/')
                                  for a in client.diagnostics), what='a namespaced report')
    (report,) = [a.status[0] for a in client.diagnostics
                 if a.status and a.status[0].name.startswith(f'{NAMESPACE}/')][-1:]
    assert report.name == f'{NAMESPACE}/mmcert_segmenter: pipeline'
    assert report.hardware_id == f'/{NAMESPACE}/mmcert_segmenter'
    assert 'num_samples' in {value.key for value in report.values}
    client.spin_until(lambda: client.received[f'{OUT}status'], what='a frame status')
    status = next(iter(client.received[f'{OUT}status'].values())).status[0]
    assert status.name == f'{NAMESPACE}/mmcert_segmenter: mode'
    assert status.hardware_id == f'/{NAMESPACE}/mmcert_segmenter'


def test_an_undecodable_compressed_image_is_reported_and_the_node_keeps_serving(served):
    from mmcert_ros.ros.diagnostics import values_of
    node, client = served
    rgb = np.zeros((H, W, 3), np.uint8)
    bad_ns = next(_stamps)
    send(client, compressed(rgb, 'jpeg', bad_ns, data=b'\xff\xd8 not a jpeg'), bad_ns)
    client.spin_until(lambda: any(int(values_of(a).get('errors.bad_compressed', 0)) >= 1
                                  for a in client.diagnostics
                                  if a.status and a.status[0].name.startswith(NAMESPACE)),
                      what='the bad_compressed counter')
    good_ns = next(_stamps)
    send(client, compressed(rgb, 'png', good_ns), good_ns)
    client.spin_until(lambda: good_ns in client.received[f'{OUT}segmentation'],
                      what='a good frame after the bad one')
    assert bad_ns not in client.received[f'{OUT}segmentation']
    assert 'bad_compressed' in node.log() and node.alive()
