"""sim_drive with ``depth_mode: points`` feeds the segmenter LiDAR clouds over real DDS: the
segmenter (``depth.source: points`` with the drive's LiDAR extrinsic) certifies RGB-D frames
from them, and the labelled points it returns are the scan's in-view points, projected here
with the same calibration."""
import numpy as np
import pytest

from helpers.ros_harness import NodeProcess, RosClient, cloud_fields

pytestmark = pytest.mark.ros
W, H, FRAMES = 96, 32, 4


def test_sim_drive_clouds_are_certified_as_points(tmp_path, fresh_domain_id, tiny_checkpoint):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import PointCloud2

    from mmcert_ros.data.projection import CameraIntrinsics, project_points
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
    drive = SyntheticDrive(0, SceneConfig().with_image_size(W, H))
    extrinsic = drive.lidar_calibration.camera_extrinsic()
    client = RosClient(fresh_domain_id, inputs=False, extra_subscriptions={
        'mmcert/status': DiagnosticArray, 'mmcert/labelled_points': PointCloud2})
    segmenter = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'segmenter.log', {
        'model.device': 'cpu', 'model.checkpoint': tiny_checkpoint, 'certify.num_samples': 8,
        'certify.keep_points': 16, 'qos.reliability': 'reliable', 'depth.source': 'points',
        'depth.extrinsic': ' '.join(f'{v:.12g}' for v in extrinsic.to_values())})
    client.spin_until(lambda: client.subscriptions['mmcert/status'].get_publisher_count(),
                      what='the segmenter')
    sim = NodeProcess('sim_drive', fresh_domain_id, tmp_path / 'sim.log', {
        'width': W, 'height': H, 'rate_hz': 2.0, 'num_frames': FRAMES, 'depth_mode': 'points',
        'wait_for_subscribers': 1})
    try:
        client.spin_until(lambda: len(client.received['mmcert/labelled_points']) >= FRAMES - 1,
                          what='labelled points of the drive')
    finally:
        client.close()
        sim_status, segmenter_status = sim.stop(), segmenter.stop()
    assert sim_status == 0, sim.log()
    assert segmenter_status == 0, segmenter.log()
    modes = {array.status[0].message for array in client.received['mmcert/status'].values()}
    assert modes == {'rgb-d'}, segmenter.log()
    clouds = client.received['mmcert/labelled_points']
    assert {cloud.header.frame_id for cloud in clouds.values()} == {'velodyne'}
    # the first cloud is frame 0's scan (sim_drive starts once the segmenter subscribes; at
    # 2 Hz the engine keeps up): its in-view points, projected here, in order
    scan = drive.lidar_scan(drive.rendering(0))
    expected = project_points(scan[:, :3], CameraIntrinsics(W, H, drive.config.camera.matrix),
                              extrinsic)
    read = cloud_fields(clouds[min(clouds)], ('x', 'y', 'z'))
    np.testing.assert_allclose(np.stack([read['x'], read['y'], read['z']], axis=1),
                               expected.xyz, rtol=1e-6, atol=1e-6)
