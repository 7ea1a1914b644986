"""sim_drive -> segmenter -> this process, each node in its own process, over real DDS.

Oracles: the simulator's frames rendered in this process (the drive is a function of its
seed), OpenCV's pixel-centre nearest-neighbour resize for the depth resampling, and the
package's camera model for the intrinsics. Renderings were once seen to differ by one grey
level / millimetre on 0.5 % of the pixels between processes (floating-point summation), so
the comparison allows exactly that: a wrong channel order or unit is far outside it.
"""
import cv2
import numpy as np
import pytest

from helpers.ros_harness import NodeProcess, RosClient, tiny_checkpoint

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

W, H, WD, HD = 128, 48, 64, 24
FRAMES = 5
SEED = 4


@pytest.fixture(scope='module')
def run(tmp_path_factory, domain_id):
    from sensor_msgs.msg import CameraInfo, Image
    root = tmp_path_factory.mktemp('sim')
    checkpoint = tiny_checkpoint(root / 'tiny.pt')
    client = RosClient(domain_id, inputs=False, extra_subscriptions={
        'rgb/image': Image, 'depth/image': Image, 'gt/road_mask': Image,
        'rgb/camera_info': CameraInfo})
    # reliable inputs: sim_drive exits only once the segmenter acknowledged the last frame
    segmenter = NodeProcess('segmenter', domain_id, root / 'segmenter.log', {
        'model.checkpoint': checkpoint, 'model.device': 'cpu', 'certify.num_samples': 8,
        'model.batch_size': 8, 'qos.reliability': 'reliable'})
    # outputs are volatile: this client must hear the segmenter's publishers before the first
    # frame, or a frame processed in a few ms is published before the match and lost
    client.wait_for_node()
    # the drive starts once the segmenter and this client listen to every camera topic and
    # this client to the ground truth
    sim = NodeProcess('sim_drive', domain_id, root / 'sim.log', {
        'num_frames': FRAMES, 'seed': SEED, 'width': W, 'height': H, 'depth_width': WD,
        'depth_height': HD, 'rgb_encoding': 'bgra8', 'depth_encoding': '16UC1',
        'rate_hz': 5.0, 'wait_for_subscribers': 2, 'wait_for_gt_subscribers': 1,
        'frame_id': 'sim_cam'})
    try:
        client.spin_until(lambda: len(client.received['gt/road_mask']) == FRAMES,
                          what='the whole drive')
        client.spin_until(lambda: not sim.alive(), what='sim_drive to exit after the drive')
        # the newest pair always reaches the engine: wait for the last frame's outputs
        last = max(client.received['rgb/image'])
        client.spin_until(lambda: last in client.received['mmcert/segmentation'],
                          what='the last frame processed')
        client.spin_until(lambda: client.latest_diagnostics().get('frames_total') and int(
            client.latest_diagnostics()['frames_total']) == len(
                client.received['mmcert/segmentation']), what='diagnostics of every frame')
        yield client, sim, segmenter
    finally:
        client.close()
        assert segmenter.stop() == 0, segmenter.log()
        sim.stop()


def assert_nearly_equal(actual, expected):
    difference = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
    assert difference.max() <= 1 and np.mean(difference > 0) < 0.02


def test_sim_drive_publishes_the_drive_in_the_requested_encodings(run):
    from mmcert_ros.data.depth import metres_to_millimetres
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
    from mmcert_ros.segmenter.codec import decode_mask
    client, sim, _ = run
    assert sim.process.returncode == 0, sim.log()
    drive = SyntheticDrive(SEED, SceneConfig(frame_rate_hz=5.0).with_image_size(W, H))
    stamps = sorted(client.received['rgb/image'])
    assert len(stamps) == FRAMES
    for index, stamp_ns in enumerate(stamps):
        frame = drive.frame(index)
        rgb_msg = client.received['rgb/image'][stamp_ns]
        assert (rgb_msg.encoding, rgb_msg.height, rgb_msg.width) == ('bgra8', H, W)
        assert rgb_msg.header.frame_id == 'sim_cam'
        bgra = np.frombuffer(bytes(rgb_msg.data), np.uint8).reshape(H, W, 4)
        assert_nearly_equal(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB), frame.rgb)
        depth_msg = client.received['depth/image'][stamp_ns]
        assert (depth_msg.encoding, depth_msg.height, depth_msg.width) == ('16UC1', HD, WD)
        depth_mm = np.frombuffer(bytes(depth_msg.data), '<u2').reshape(HD, WD)
        expected = cv2.resize(metres_to_millimetres(frame.depth), (WD, HD),
                              interpolation=cv2.INTER_NEAREST_EXACT)
        assert_nearly_equal(depth_mm, expected)
        gt = decode_mask(client.received['gt/road_mask'][stamp_ns])
        assert set(np.unique(gt)) <= {0, 255}
        assert np.mean(gt != frame.road_mask.astype(np.uint8) * 255) < 0.01
        info = client.received['rgb/camera_info'][stamp_ns]
        assert (info.width, info.height) == (W, H)
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), frame.camera_matrix)


def test_segmenter_serves_the_drive_with_its_headers(run):
    client, _, segmenter = run
    sent = set(client.received['rgb/image'])
    processed = set(client.received['mmcert/segmentation'])
    assert processed and processed <= sent
    for topic in ('mmcert/segmentation', 'mmcert/certification', 'mmcert/certified_radius'):
        for stamp_ns in processed:
            msg = client.received[topic][stamp_ns]
            assert (msg.height, msg.width, msg.header.frame_id) == (H, W, 'sim_cam')
    diagnostics = client.latest_diagnostics()
    # every pair made was either processed or displaced by a newer one, and counted
    assert int(diagnostics['paired']) == len(processed) + int(diagnostics['dropped_pairs'])
    assert diagnostics['errors_total'] == '0'
    assert segmenter.alive()
