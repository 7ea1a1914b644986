"""Evaluating bags whose depth is a LiDAR cloud: kitti2bag's /points against an oracle that
projects the velodyne files by hand, missing extrinsics and bad clouds."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from mmcert_ros.bags import BagReader, BagWriter
from mmcert_ros.bags.messages import point_cloud_message
from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.data.kitti import KittiCalibration
from mmcert_ros.data.point_cloud import encode_xyz
from mmcert_ros.data.projection import ProjectedPoints
from mmcert_ros.sim.synthetic import SceneConfig, export_kitti
from mmcert_ros.evaluation import BagFrames, evaluate
from mmcert_ros.tools import cli

WIDTH, HEIGHT, FRAMES = 160, 48, 3
CONFIG = CertifyConfig(num_samples=12, keep_points=40, radius_rgb=1, radius_depth=2, seed=5,
                       batch_size=12)


class NearRoad(torch.nn.Module):
    """Toy contract model: a pixel is road iff its 8-column band keeps a point nearer than
    12 m (the road ahead), so the votes depend on the kept points."""

    num_classes = 2

    def forward(self, rgb, rgb_keep, depth, depth_keep):
        near = (depth_keep > 0) & (depth < 12.0)
        batch, _, height, width = depth.shape
        bands = near.view(batch, height, width // 8, 8).any(dim=3).any(dim=1)
        road = bands.repeat_interleave(8, dim=1)[:, None, :].expand(batch, height, width)
        return torch.stack([(~road).float(), road.float()], dim=1)


@pytest.fixture(scope='module')
def cloud_bag(tmp_path_factory):
    root = tmp_path_factory.mktemp('kitti')
    names = export_kitti(root, seed=11, num_frames=FRAMES, depth='lidar',
                         config=SceneConfig().with_image_size(WIDTH, HEIGHT))
    bag = root / 'bag'
    assert cli.main(['kitti2bag', str(root), str(bag), '--no-progress']) == 0
    return root, names, bag


def _hand_projected(root, name) -> ProjectedPoints:
    """In-view points of a velodyne file in file order, projected with P2 @ R0 @ Tr."""
    base = root / 'training'
    scan = np.fromfile(base / 'velodyne' / f'{name}.bin', dtype='<f4').reshape(-1, 4)[:, :3]
    matrix = KittiCalibration.read(base / 'calib' / f'{name}.txt').velodyne_to_image()
    uvw = np.hstack([scan.astype(np.float64), np.ones((len(scan), 1))]) @ matrix.T
    z = uvw[:, 2]
    u, v = np.rint(uvw[:, 0] / z), np.rint(uvw[:, 1] / z)
    keep = (z > 0.1) & (u >= 0) & (u < WIDTH) & (v >= 0) & (v < HEIGHT)
    return ProjectedPoints((v[keep] * WIDTH + u[keep]).astype(np.int64),
                           z[keep].astype(np.float32), HEIGHT, WIDTH, len(scan))


def test_cloud_bag_certifies_the_projected_points(tmp_path, cloud_bag):
    root, names, bag = cloud_bag
    source = BagFrames(bag, '/rgb/image', '/points', '/road_gt/image')
    metrics = evaluate(source, CertifiedSegmenter(NearRoad(), CONFIG), tmp_path / 'eval',
                       progress=False)
    assert metrics['frames'] == FRAMES and metrics['skipped']['total'] == 0
    oracle = CertifiedSegmenter(NearRoad(), CONFIG)
    frames = list(BagFrames(bag, '/rgb/image', '/points', '/road_gt/image'))
    for frame, name in zip(frames, names):
        expected_points = _hand_projected(root, name)
        points = frame.extras['points']
        np.testing.assert_array_equal(points.pixels, expected_points.pixels)
        np.testing.assert_allclose(points.depth, expected_points.depth, rtol=1e-6)
        rgb = cv2.imread(str(root / 'training' / 'image_2' / f'{name}.png'))[:, :, ::-1]
        got = CertifiedSegmenter(NearRoad(), CONFIG).certify_frame(frame)
        want = oracle.certify(np.ascontiguousarray(rgb), expected_points)
        assert got.n == want.n == (WIDTH * HEIGHT, expected_points.count)
        np.testing.assert_array_equal(got.top_counts, want.top_counts)
    assert metrics['n']['depth'] == sorted({f.extras['points'].count for f in frames})


def test_cloud_bag_without_transform_needs_an_extrinsic(tmp_path, cloud_bag, capsys):
    _, _, bag = cloud_bag
    stripped = tmp_path / 'no_tf'
    with BagReader(bag) as reader, BagWriter(stripped) as writer:
        for item in reader.messages([t for t in reader.topics if t != '/tf_static']):
            writer.write(item.topic, item.message, item.log_time_ns)
    argv = ['evaluate', '--bag', str(stripped), '--depth-topic', '/points', '--seed', '0',
            '--out', str(tmp_path / 'eval'), '--no-progress', '--max-frames', '1']
    assert cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'no /tf_static' in error
    assert cli.main([*argv, '--extrinsic', '1', '2', '3']) == 2
    assert '--extrinsic' in capsys.readouterr().err
    # the sim's calibration: velodyne (x fwd, y left, z up) 0.08 m above, 0.27 m behind
    extrinsic = ['0', '-0.08', '-0.27', '0.5', '-0.5', '0.5', '-0.5']
    assert cli.main([*argv, '--extrinsic', *extrinsic]) == 0
    # or the node's own parameter in the config file, as the segmenter reads it
    config = tmp_path / 'points.yaml'
    config.write_text("mmcert_segmenter:\n  ros__parameters:\n    depth:\n"
                      f"      source: points\n      extrinsic: '{' '.join(extrinsic)}'\n")
    assert cli.main([*argv, '--config', str(config), '--force']) == 0


def test_bad_clouds_are_counted_by_kind(tmp_path, cloud_bag):
    _, _, bag = cloud_bag
    broken = tmp_path / 'broken'
    with BagReader(bag) as reader, BagWriter(broken) as writer:
        clouds = 0
        for item in reader.messages(list(reader.topics)):
            message = item.message
            if item.topic == '/points':
                clouds += 1
                if clouds == 1:      # all points behind the camera
                    message = point_cloud_message(encode_xyz(np.array([[-5.0, 0, 0]])),
                                                  item.log_time_ns, 'velodyne')
                elif clouds == 2:    # no z field
                    cloud = encode_xyz(np.ones((4, 3)))
                    message = point_cloud_message(replace(cloud, fields=cloud.fields[:2]),
                                                  item.log_time_ns, 'velodyne')
            writer.write(item.topic, message, item.log_time_ns)
    source = BagFrames(broken, '/rgb/image', '/points')
    assert len(list(source)) == FRAMES - 2
    assert source.skipped() == {'undecodable depth message (missing_field)': 1,
                                'undecodable depth message (none_in_view)': 1}


def test_cloud_bag_with_a_tf_tree_projects_through_the_chain(tmp_path, cloud_bag):
    """The bag's camera <- velodyne transform replaced by camera <- camera_link <- base_link ->
    velodyne (the same composition): the frames project exactly as the calibration files say."""
    from mmcert_ros.bags.messages import static_transform_message
    from mmcert_ros.data.projection import Extrinsic
    root, names, bag = cloud_bag
    chained = tmp_path / 'tree'
    with BagReader(bag) as reader, BagWriter(chained) as writer:
        for item in reader.messages(list(reader.topics)):
            if item.topic != '/tf_static':
                writer.write(item.topic, item.message, item.log_time_ns)
                continue
            (stamped,) = item.message.transforms
            camera, lidar = stamped.header.frame_id, stamped.child_frame_id
            lidar_in_camera = Extrinsic.from_transform(stamped).matrix
            camera_in_link = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.]])
            link_in_base = np.array([[1, 0, 0, 1.5], [0, 1, 0, 0], [0, 0, 1, 1.2], [0, 0, 0, 1]])
            lidar_in_base = link_in_base @ camera_in_link @ lidar_in_camera
            for matrix, parent, child in [(camera_in_link, 'camera_link', camera),
                                          (link_in_base, 'base_link', 'camera_link'),
                                          (lidar_in_base, 'base_link', lidar)]:
                writer.write('/tf_static', static_transform_message(
                    Extrinsic.from_matrix(matrix), parent, child, item.log_time_ns),
                    item.log_time_ns)
    frames = list(BagFrames(chained, '/rgb/image', '/points', '/road_gt/image'))
    assert len(frames) == FRAMES
    for frame, name in zip(frames, names):
        expected = _hand_projected(root, name)
        np.testing.assert_array_equal(frame.extras['points'].pixels, expected.pixels)
        np.testing.assert_allclose(frame.extras['points'].depth, expected.depth, rtol=1e-5)
