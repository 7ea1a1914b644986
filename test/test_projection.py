"""LiDAR-to-camera projection: extrinsic validation, distortion against OpenCV (cv2.projectPoints,
cv2.fisheye.projectPoints), fold-back guards, z-buffer."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmcert_ros.data.point_cloud import CloudDecodeError
from mmcert_ros.data.projection import (MIN_DEPTH_M, CameraIntrinsics, Extrinsic,
                                        project_points, zbuffer)

K = np.array([[700.0, 0.0, 310.5], [0.0, 690.0, 120.25], [0.0, 0.0, 1.0]])
#: ROS convention LiDAR (x forward, y left, z up) -> camera optical (x right, y down, z fwd)
LIDAR_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def test_quaternion_gives_scipy_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        extrinsic = Extrinsic.from_quaternion([0.1, -0.2, 0.3], q)
        np.testing.assert_allclose(extrinsic.rotation, Rotation.from_quat(q).as_matrix(),
                                   atol=1e-12)
        points = rng.normal(size=(5, 3))
        np.testing.assert_allclose(extrinsic.apply(points),
                                   Rotation.from_quat(q).apply(points) + [0.1, -0.2, 0.3])


def test_parameter_forms_agree():
    q = Rotation.from_matrix(LIDAR_TO_OPTICAL).as_quat()
    from_q = Extrinsic.from_values([0.0, -0.08, -0.27, *q])
    from_m = Extrinsic.from_values(from_q.matrix.reshape(-1).tolist())
    np.testing.assert_allclose(from_m.rotation, LIDAR_TO_OPTICAL, atol=1e-12)
    np.testing.assert_allclose(from_m.translation, [0.0, -0.08, -0.27])


@pytest.mark.parametrize('values, message', [
    ([0, 0, 0, 0, 0, 0, 2], 'unit norm'),
    ([0, 0, 0, 0, 0, 0, float('nan')], 'finite'),
    ([1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1.1, 0, 0, 0, 0, 1], 'not a rotation'),
    ([-1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 'not a rotation'),   # reflection
    ([1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1], 'last row'),
    ([1.0, 0, 0, float('inf'), 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 'finite'),
    ([0.0] * 6, '7 values'),
])
def test_bad_extrinsics_refused(values, message):
    with pytest.raises(ValueError, match=message):
        Extrinsic.from_values(values)


@pytest.mark.parametrize('model, d', [
    ('plumb_bob', (-0.28, 0.07, 0.001, -0.0015, 0.02)),
    ('rational_polynomial', (0.4, -0.1, 0.0008, 0.0012, 0.01, 0.7, -0.05, 0.02)),
])
def test_distortion_matches_opencv(model, d):
    camera = CameraIntrinsics(640, 240, K, model, d)
    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(-0.4, 0.4, 200), rng.uniform(-0.15, 0.15, 200),
                              np.ones(200)]) * rng.uniform(2, 40, (200, 1))
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, np.array(d))
    np.testing.assert_allclose(camera.project(points), expected[:, 0], atol=1e-6)


@pytest.mark.ros
def test_camera_info_read_and_checked():
    from sensor_msgs.msg import CameraInfo
    info = CameraInfo(width=640, height=240, k=K.reshape(-1).tolist(),
                      distortion_model='plumb_bob', d=[0.1, 0.0, 0.0, 0.0, 0.0])
    camera = CameraIntrinsics.from_camera_info(info)
    assert (camera.width, camera.height, camera.distortion_model) == (640, 240, 'plumb_bob')
    with pytest.raises(ValueError, match='double_sphere.*not handled'):
        CameraIntrinsics(640, 240, K, 'double_sphere', (0.1, 0, 0, 0))
    with pytest.raises(ValueError, match='fx, fy > 0'):
        CameraIntrinsics(640, 240, np.zeros((3, 3)))
    with pytest.raises(ValueError, match='takes 5 coefficients'):
        CameraIntrinsics(640, 240, K, 'plumb_bob', (0.1,) * 8)


def test_projection_keeps_exactly_the_points_in_view():
    camera = CameraIntrinsics(640, 240, K)
    extrinsic = Extrinsic(LIDAR_TO_OPTICAL, [0.0, 0.0, 0.0])
    rng = np.random.default_rng(2)
    lidar = rng.uniform(-30, 30, (4000, 3))
    projected = project_points(lidar, camera, extrinsic)
    # brute force, point by point
    expected_pixels, expected_depth = [], []
    for point in lidar:
        x, y, z = LIDAR_TO_OPTICAL @ point
        if z <= MIN_DEPTH_M:
            continue
        u, v = round(K[0, 0] * x / z + K[0, 2]), round(K[1, 1] * y / z + K[1, 2])
        if 0 <= u < 640 and 0 <= v < 240:
            expected_pixels.append(v * 640 + u)
            expected_depth.append(z)
    np.testing.assert_array_equal(projected.pixels, expected_pixels)
    np.testing.assert_allclose(projected.depth, expected_depth, rtol=1e-6)
    assert projected.total == 4000 and 0 < projected.count < 4000


def test_projected_points_keep_their_cloud_frame_xyz_in_order():
    camera = CameraIntrinsics(640, 240, K, 'plumb_bob', (-0.2, 0.05, 0.001, -0.002, 0.0))
    extrinsic = Extrinsic(LIDAR_TO_OPTICAL, [0.1, -0.3, 0.2])
    lidar = np.random.default_rng(4).uniform(-30, 30, (4000, 3))
    projected = project_points(lidar, camera, extrinsic)
    assert projected.xyz.dtype == np.float32 and projected.xyz.shape == (projected.count, 3)
    # each row is an input point, in input order, and it projects to its own pixel and depth
    rows = [np.flatnonzero((lidar.astype(np.float32) == point).all(axis=1))[0]
            for point in projected.xyz]
    assert rows == sorted(rows) and len(set(rows)) == projected.count
    cam = extrinsic.apply(lidar[rows])
    uv = np.rint(camera.project(cam)).astype(np.int64)
    np.testing.assert_array_equal(uv[:, 1] * 640 + uv[:, 0], projected.pixels)
    np.testing.assert_allclose(cam[:, 2], projected.depth, rtol=1e-6)


def test_zbuffer_keeps_the_nearest_point_per_pixel():
    camera = CameraIntrinsics(64, 32, [[40, 0, 31.5], [0, 40, 15.5], [0, 0, 1]])
    rng = np.random.default_rng(3)
    cam = np.column_stack([rng.uniform(-0.8, 0.8, 3000), rng.uniform(-0.4, 0.4, 3000),
                           np.ones(3000)]) * rng.uniform(1, 20, (3000, 1))
    projected = project_points(cam, camera, Extrinsic(np.eye(3), np.zeros(3)))
    image = zbuffer(projected)
    expected = np.full(64 * 32, np.nan, dtype=np.float32)
    for pixel, depth in zip(projected.pixels, projected.depth):
        if np.isnan(expected[pixel]) or depth < expected[pixel]:
            expected[pixel] = depth
    np.testing.assert_array_equal(image.reshape(-1), expected)


def test_cloud_behind_the_camera_is_reported():
    camera = CameraIntrinsics(640, 240, K)
    behind = np.column_stack([np.zeros(10), np.zeros(10), -np.arange(1, 11)])
    with pytest.raises(CloudDecodeError) as caught:
        project_points(behind, camera, Extrinsic(np.eye(3), np.zeros(3)), source='/points')
    assert caught.value.kind == 'none_in_view'
    assert '10 behind the camera' in str(caught.value)


def test_fold_back_points_far_outside_the_view_stay_out():
    # strong barrel distortion folds points at ~80 degrees back into the image; they must
    # not be projected into it
    camera = CameraIntrinsics(640, 240, K, 'plumb_bob', (-0.6, 0.1, 0, 0, 0))
    far_side = np.array([[1.5, 0.0, 1.0], [0.01, 0.0, 1.0]])
    assert 0 <= camera.project(far_side)[0, 0] < 640     # the polynomial folds it back in
    projected = project_points(far_side, camera, Extrinsic(np.eye(3), np.zeros(3)))
    assert projected.count == 1 and projected.pixels[0] // 640 == 120


def test_kitti_extrinsic_folds_p2s_offset_and_matches_project_velodyne():
    """A real KITTI Road calibration (um_000000): P2 has a stereo offset, R0_rect a small
    rotation. The extrinsic and K put every point on project_velodyne's pixel and depth."""
    from mmcert_ros.data.kitti import KittiCalibration, project_velodyne
    p2 = np.array([721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791,
                   0, 0, 1, 0.002745884]).reshape(3, 4)
    r0 = np.array([0.9999239, 0.00983776, -0.007445048, -0.009869795, 0.9999421,
                   -0.004278459, 0.007402527, 0.004351614, 0.9999631]).reshape(3, 3)
    tr = np.array([0.007533745, -0.9999714, -0.000616602, -0.004069766, 0.01480249,
                   0.0007280733, -0.9998902, -0.07631618, 0.9998621, 0.00752379, 0.01480755,
                   -0.2717806]).reshape(3, 4)
    calibration = KittiCalibration(p2, r0, tr)
    rng = np.random.default_rng(9)
    scan = rng.uniform([-5, -20, -3], [60, 20, 3], (20000, 3))
    projected = project_points(scan, CameraIntrinsics(1242, 375, calibration.camera_matrix),
                               calibration.camera_extrinsic())
    expected = project_velodyne(scan, calibration, 1242, 375)
    got = zbuffer(projected)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=1e-6)


def test_simulated_scan_projects_back_onto_its_lidar_depth():
    """The simulator's drives as point clouds: lidar_scan, its calibration's extrinsic and K
    give back exactly the returns of the LiDAR depth frame, in the same order."""
    from mmcert_ros.data.projection import points_from_depth_image
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive

    drive = SyntheticDrive(5, SceneConfig().with_image_size(320, 96))
    rendering = drive.rendering(7)
    scan = drive.lidar_scan(rendering)
    camera = CameraIntrinsics(320, 96, drive.config.camera.matrix)
    projected = project_points(scan[:, :3], camera, drive.lidar_calibration.camera_extrinsic())
    expected = points_from_depth_image(drive.lidar_depth(rendering))
    np.testing.assert_array_equal(projected.pixels, expected.pixels)
    np.testing.assert_allclose(projected.depth, expected.depth, rtol=1e-5)
    assert projected.total == len(scan) == expected.count


# --- equidistant (Kannala-Brandt fisheye) ------------------------------------------------

FISHEYE_K = np.array([[200.0, 0.4, 320.5], [0.0, 201.0, 240.25], [0.0, 0.0, 1.0]])
FISHEYE_D = (-0.013, 0.021, -0.0079, 0.0011)


def fisheye_points(count, max_angle, rng):
    """Points 1 to 40 m away at field angles up to ``max_angle`` radians, any azimuth."""
    theta = rng.uniform(0, max_angle, count)
    phi = rng.uniform(-np.pi, np.pi, count)
    rays = np.column_stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                            np.cos(theta)])
    return rays * rng.uniform(1, 40, (count, 1))


def opencv_fisheye(points, k, d):
    """cv2.fisheye.projectPoints; it takes the skew as alpha = K[0, 1] / fx."""
    pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                          k, np.array(d), alpha=k[0, 1] / k[0, 0])
    return pixels[:, 0]


def test_equidistant_matches_opencv_fisheye():
    camera = CameraIntrinsics(640, 480, FISHEYE_K, 'equidistant', FISHEYE_D)
    points = fisheye_points(2000, np.radians(85), np.random.default_rng(4))
    np.testing.assert_allclose(camera.project(points), opencv_fisheye(points, FISHEYE_K,
                                                                      FISHEYE_D),
                               atol=1e-6, rtol=0)


def test_equidistant_keeps_every_point_its_lens_sees():
    """A fisheye sees far beyond the pinhole image (70 degrees off axis lands 240 px from
    the centre here, a pinhole would put it 550 px away): the in-view points are exactly
    those ahead of MIN_DEPTH_M whose cv2.fisheye pixel rounds into the image (these
    coefficients' radius increases up to 90 degrees: no fold-back)."""
    camera = CameraIntrinsics(640, 480, FISHEYE_K, 'equidistant', FISHEYE_D)
    points = fisheye_points(5000, np.radians(89), np.random.default_rng(5))
    projected = project_points(points, camera, Extrinsic(np.eye(3), np.zeros(3)))
    uv = np.rint(opencv_fisheye(points, FISHEYE_K, FISHEYE_D))
    inside = ((uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 480)
              & (points[:, 2] > MIN_DEPTH_M))
    expected = (uv[inside, 1] * 640 + uv[inside, 0]).astype(np.int64)
    np.testing.assert_array_equal(projected.pixels, expected)
    pinhole = CameraIntrinsics(640, 480, FISHEYE_K).project(points[inside])
    assert (np.abs(pinhole[:, 0] - 320) > 480).any()     # beyond the pinhole guard's margin


def test_equidistant_fold_back_stays_out():
    """With k1 = -0.5 the radius theta (1 - theta^2 / 2) peaks at theta = 1 / sqrt(1.5) and
    falls back to the centre: points beyond that angle are out of view."""
    camera = CameraIntrinsics(640, 480, FISHEYE_K, 'equidistant', (-0.5, 0.0, 0.0, 0.0))
    limit = 1 / np.sqrt(1.5)
    angles = np.array([limit - 0.01, limit + 0.01, 1.4])
    points = np.column_stack([np.sin(angles), np.zeros(3), np.cos(angles)]) * 10
    assert (np.abs(camera.project(points)[:, 0] - 320.5) < 320).all()   # all land in the image
    projected = project_points(points, camera, Extrinsic(np.eye(3), np.zeros(3)))
    assert projected.count == 1
    np.testing.assert_allclose(projected.depth, points[:1, 2], rtol=1e-6)


def test_zero_coefficient_equidistant_is_a_pinhole():
    """As image_geometry, which applies no distortion when every coefficient is zero."""
    points = fisheye_points(100, np.radians(30), np.random.default_rng(6))
    fisheye = CameraIntrinsics(640, 480, FISHEYE_K, 'equidistant', (0.0,) * 4)
    np.testing.assert_array_equal(fisheye.project(points),
                                  CameraIntrinsics(640, 480, FISHEYE_K).project(points))


def test_equidistant_takes_four_coefficients():
    with pytest.raises(ValueError, match='equidistant takes 4 coefficients'):
        CameraIntrinsics(640, 480, FISHEYE_K, 'equidistant', (0.1,) * 5)
    info = SimpleNamespace(width=640, height=480, k=FISHEYE_K.reshape(-1).tolist(),
                           distortion_model='equidistant', d=list(FISHEYE_D))
    camera = CameraIntrinsics.from_camera_info(info)
    assert camera.distortion_model == 'equidistant' and camera.d[:4] == FISHEYE_D
