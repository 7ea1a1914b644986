"""``frame_from_pair``, the one road from a paired RGB + depth message to a Frame (the node's
worker and offline bag evaluation): depth images, point clouds projected with CameraInfo and
an extrinsic, RGB-only pairs, and every failure named by its stream. ROS-free (the messages
are plain objects with the fields of sensor_msgs)."""
from types import SimpleNamespace

import numpy as np
import pytest

from mmcert_ros.data.pairing import Pair
from mmcert_ros.data.point_cloud import encode_xyz
from mmcert_ros.data.projection import CameraIntrinsics, Extrinsic, project_points, zbuffer
from mmcert_ros.segmenter.codec import encode_image
from mmcert_ros.segmenter.pair_to_frame import FrameDecodeError, frame_from_pair
from mmcert_ros.segmenter.message_fields import camera_info_from_k

H, W = 30, 40
K = np.array([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]])
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
# LiDAR axes (x ahead, y left, z up) -> camera optical axes (x right, y down, z ahead)
LIDAR_TO_OPTICAL = Extrinsic(np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]]), [0.0, -0.2, 0.1])


def message(fields, stamp_ns=5, frame_id='camera'):
    """A sensor_msgs-shaped message: ``fields``' attributes plus a header."""
    return SimpleNamespace(**vars(fields), header=SimpleNamespace(frame_id=frame_id,
                                                                  stamp_ns=stamp_ns))


def camera_info(width=W, height=H):
    return SimpleNamespace(width=width, height=height, k=K.reshape(-1).tolist(),
                           p=np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist(),
                           distortion_model='plumb_bob', d=[0.1, -0.05, 0.001, 0.0, 0.0])


def lidar_points(count=500):
    """Points ahead of the LiDAR, most of them in the camera's view, a few behind it."""
    ahead = np.stack([RNG.uniform(2, 20, count), RNG.uniform(-8, 8, count),
                      RNG.uniform(-2, 1, count)], axis=1)
    ahead[:20, 0] *= -1
    return ahead.astype(np.float32)


def pair(rgb, depth, stamp_ns=5):
    return Pair({'rgb': rgb, 'depth': depth}, {'rgb': stamp_ns, 'depth': stamp_ns})


def test_a_depth_image_pair_decodes_to_the_codec_arrays_with_the_camera():
    depth_mm = RNG.integers(1, 5000, (H // 2, W // 2), dtype=np.uint16)
    frame = frame_from_pair(pair(message(encode_image(RGB, 'rgb8')),
                                 message(encode_image(depth_mm, '16UC1'))),
                            camera_info=camera_info())
    np.testing.assert_array_equal(frame.rgb, RGB)
    np.testing.assert_allclose(frame.depth, depth_mm / 1000, rtol=1e-6)
    np.testing.assert_array_equal(frame.camera_matrix, K)
    assert frame.extras['projection'].shape == (3, 4) and 'points' not in frame.extras
    assert (frame.stamp_ns, frame.frame_id) == (5, 'camera')


def test_a_cloud_pair_carries_its_projected_points_and_their_zbuffer():
    points = lidar_points()
    cloud = message(encode_xyz(points, intensity=np.ones(len(points))), frame_id='velodyne')
    frame = frame_from_pair(pair(message(encode_image(RGB, 'rgb8')), cloud), 'points',
                            camera_info(), LIDAR_TO_OPTICAL)
    expected = project_points(points, CameraIntrinsics.from_camera_info(camera_info()),
                              LIDAR_TO_OPTICAL)
    got = frame.extras['points']
    assert 0 < got.count < len(points) and got.count == expected.count
    np.testing.assert_array_equal(got.pixels, expected.pixels)
    np.testing.assert_array_equal(got.depth, expected.depth)
    np.testing.assert_array_equal(frame.depth, zbuffer(expected))


def test_an_rgb_only_pair_has_every_depth_pixel_invalid():
    frame = frame_from_pair(Pair.rgb_only(message(encode_image(RGB, 'bgr8')), 9), 'points')
    assert frame.depth.shape == (H, W) and not frame.depth.any()
    np.testing.assert_array_equal(frame.rgb, RGB)
    assert frame.stamp_ns == 9 and 'points' not in frame.extras


def test_ground_truth_becomes_the_road_mask():
    gt = (RNG.random((H, W)) > 0.5).astype(np.uint8) * 255
    depth = np.ones((H, W), np.float32)
    frame = frame_from_pair(pair(message(encode_image(RGB, 'rgb8')),
                                 message(encode_image(depth, '32FC1'))),
                            gt=message(encode_image(gt, 'mono8')), name='000003')
    np.testing.assert_array_equal(frame.road_mask, gt // 255)
    assert frame.name == '000003'


def failure(*args, **kwargs) -> tuple[str, str]:
    with pytest.raises(FrameDecodeError) as caught:
        frame_from_pair(*args, **kwargs)
    return caught.value.stream, caught.value.kind


def test_every_failure_names_its_stream_and_kind():
    rgb = message(encode_image(RGB, 'rgb8'))
    depth = message(encode_image(np.ones((H, W), np.float32), '32FC1'))
    cloud = message(encode_xyz(lidar_points()), frame_id='velodyne')
    short = SimpleNamespace(**dict(vars(rgb), data=rgb.data[:-1]))
    assert failure(pair(short, depth)) == ('rgb', 'size_mismatch')
    assert failure(pair(rgb, message(encode_image(RGB, 'rgb8')))) == ('depth', 'unknown_encoding')
    assert failure(pair(rgb, cloud), 'points', None, LIDAR_TO_OPTICAL) == ('depth',
                                                                           'no_camera_info')
    assert failure(pair(rgb, cloud), 'points', camera_info()) == ('depth', 'no_extrinsic')
    assert failure(pair(rgb, cloud), 'points', camera_info(W * 2, H * 2), LIDAR_TO_OPTICAL) \
        == ('camera_info', 'size_differs_from_rgb')
    bad_model = SimpleNamespace(**dict(vars(camera_info()), distortion_model='double_sphere'))
    assert failure(pair(rgb, cloud), 'points', bad_model, LIDAR_TO_OPTICAL) == (
        'depth', 'bad_camera_info')
    behind = message(encode_xyz(-np.abs(lidar_points())), frame_id='velodyne')
    assert failure(pair(rgb, behind), 'points', camera_info(), LIDAR_TO_OPTICAL) == (
        'depth', 'none_in_view')
    assert failure(pair(rgb, depth), camera_info=SimpleNamespace(k=[1.0] * 4, p=[])) == (
        'camera_info', 'bad_camera_info')
    gt = message(encode_image(np.zeros((H + 1, W), np.uint8), 'mono8'))
    assert failure(pair(rgb, depth), gt=gt) == ('gt', 'size_differs_from_rgb')
    with pytest.raises(ValueError, match='depth_source'):
        frame_from_pair(pair(rgb, depth), 'lidar')


def test_a_camera_info_from_k_parameter_serves_like_a_message():
    info = camera_info_from_k(K.reshape(-1).tolist(), W, H)
    depth = message(encode_image(np.ones((H, W), np.float32), '32FC1'))
    frame = frame_from_pair(pair(message(encode_image(RGB, 'rgb8')), depth), camera_info=info)
    np.testing.assert_array_equal(frame.camera_matrix, K)
    np.testing.assert_array_equal(frame.extras['projection'], np.hstack([K, np.zeros((3, 1))]))
    points = lidar_points()
    cloud = message(encode_xyz(points), frame_id='velodyne')
    frame = frame_from_pair(pair(message(encode_image(RGB, 'rgb8')), cloud), 'points', info,
                            LIDAR_TO_OPTICAL)
    pinhole = CameraIntrinsics(W, H, K)
    expected = project_points(points, pinhole, LIDAR_TO_OPTICAL)
    np.testing.assert_array_equal(frame.extras['points'].pixels, expected.pixels)
