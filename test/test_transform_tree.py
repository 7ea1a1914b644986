"""The /tf_static tree: chains composed through the common ancestor (as tf2 does), checked on a
hand-computed camera <- base_link -> velodyne tree and against 4x4 matrix products."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mmcert_ros.data.projection import CameraIntrinsics, Extrinsic, project_points
from mmcert_ros.data.transform_tree import StaticTransformTree, TransformLookupError

#: the optical frame in its camera_link (REP 103: optical z = link x, x = -link y, y = -link z)
OPTICAL_IN_LINK = Extrinsic.from_quaternion((0, 0, 0), (-0.5, 0.5, -0.5, 0.5))
CAMERA = CameraIntrinsics(160, 48, np.array([[80.0, 0, 80], [0, 80, 24], [0, 0, 1]]))


def vehicle_tree() -> StaticTransformTree:
    """camera_optical <- camera_link <- base_link -> velodyne, with round numbers: the camera
    2 m ahead of base_link and 1 m up, the LiDAR 1 m ahead and 1.5 m up, axes aligned."""
    tree = StaticTransformTree()
    tree.set('base_link', 'velodyne', Extrinsic(np.eye(3), (1.0, 0.0, 1.5)))
    tree.set('camera_link', 'camera_optical', OPTICAL_IN_LINK)
    tree.set('base_link', 'camera_link', Extrinsic(np.eye(3), (2.0, 0.0, 1.0)))
    return tree


def test_a_three_link_tree_projects_lidar_points_to_the_hand_computed_pixels():
    extrinsic = vehicle_tree().lookup('camera_optical', 'velodyne')
    # velodyne (9, 1, -0.5) is base (10, 1, 1), camera_link (8, 1, 0): optical (-1, 0, 8);
    # velodyne (9, 0.6, -0.1) is camera_link (8, 0.6, 0.4): optical (-0.6, -0.4, 8)
    points = np.array([[9.0, 1.0, -0.5], [9.0, 0.6, -0.1], [-5.0, 0.0, 0.0]])
    np.testing.assert_allclose(extrinsic.apply(points[:2]), [[-1, 0, 8], [-0.6, -0.4, 8]],
                               atol=1e-12)
    projected = project_points(points, CAMERA, extrinsic)
    # u = 80 + 80 x / z, v = 24 + 80 y / z: (70, 24) and (74, 20); the third is behind
    np.testing.assert_array_equal(projected.pixels, [24 * 160 + 70, 20 * 160 + 74])
    np.testing.assert_allclose(projected.depth, [8.0, 8.0])


def test_the_child_frame_alone_is_not_the_camera_transform():
    """base_link -> velodyne is not camera -> velodyne: a lookup by child frame only would
    put the LiDAR 1 m ahead of the camera instead of 1 m behind it."""
    tree = vehicle_tree()
    wrong = Extrinsic(np.eye(3), (1.0, 0.0, 1.5))
    right = tree.lookup('camera_link', 'velodyne')
    np.testing.assert_allclose(right.translation, [-1.0, 0.0, 0.5])
    assert not np.allclose(right.translation, wrong.translation)


def test_lookups_compose_like_4x4_matrices_in_any_direction():
    rng = np.random.default_rng(3)
    tree = StaticTransformTree()
    edges = {('map', 'base_link'), ('base_link', 'camera_link'), ('camera_link', 'optical'),
             ('base_link', 'lidar_mount'), ('lidar_mount', 'velodyne')}
    pose = {}
    for parent, child in edges:
        rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        pose[child] = (parent, Extrinsic(rotation, rng.normal(size=3)))
        tree.set(parent, child, pose[child][1])

    def in_map(frame):   # the oracle: products of homogeneous matrices up to the root
        matrix = np.eye(4)
        while frame != 'map':
            frame, edge = pose[frame]
            matrix = edge.matrix @ matrix
        return matrix

    for target, source in [('optical', 'velodyne'), ('velodyne', 'optical'),
                           ('map', 'velodyne'), ('lidar_mount', 'camera_link')]:
        expected = np.linalg.inv(in_map(target)) @ in_map(source)
        np.testing.assert_allclose(tree.lookup(target, source).matrix, expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup('velodyne', 'velodyne').matrix, np.eye(4))


def test_a_later_transform_replaces_the_child_s_parent():
    tree = vehicle_tree()
    tree.set('base_link', 'velodyne', Extrinsic(np.eye(3), (0.0, 0.0, 2.0)))
    np.testing.assert_allclose(tree.lookup('camera_link', 'velodyne').translation,
                               [-2.0, 0.0, 1.0])
    tree.set('camera_link', 'velodyne', Extrinsic(np.eye(3), (0.5, 0.0, 0.0)))   # re-parented
    np.testing.assert_allclose(tree.lookup('camera_link', 'velodyne').translation, [0.5, 0, 0])


def test_cycles_and_nameless_frames_are_refused_and_change_nothing():
    tree = vehicle_tree()
    before = tree.lookup('camera_optical', 'velodyne').matrix
    with pytest.raises(ValueError, match='cycle'):
        tree.set('camera_optical', 'base_link', Extrinsic(np.eye(3), (0, 0, 0)))
    with pytest.raises(ValueError, match='own parent'):
        tree.set('velodyne', 'velodyne', Extrinsic(np.eye(3), (0, 0, 0)))
    with pytest.raises(ValueError, match='both frame names'):
        tree.set('', 'velodyne', Extrinsic(np.eye(3), (0, 0, 0)))
    np.testing.assert_array_equal(tree.lookup('camera_optical', 'velodyne').matrix, before)


def test_frames_of_different_trees_are_not_joined():
    tree = vehicle_tree()
    tree.set('odom', 'imu', Extrinsic(np.eye(3), (0, 0, 0)))
    with pytest.raises(TransformLookupError, match="'imu' to 'camera_optical'") as error:
        tree.lookup('camera_optical', 'imu')
    assert 'base_link' in str(error.value)          # the message lists the frames seen
    with pytest.raises(TransformLookupError, match='none yet'):
        StaticTransformTree().lookup('camera', 'velodyne')


def test_leading_slashes_name_the_same_frame():
    tree = vehicle_tree()
    np.testing.assert_allclose(tree.lookup('/camera_optical', '/velodyne').matrix,
                               tree.lookup('camera_optical', 'velodyne').matrix)


def test_a_snapshot_does_not_see_later_transforms():
    tree = vehicle_tree()
    snapshot = tree.copy()
    tree.set('base_link', 'velodyne', Extrinsic(np.eye(3), (0.0, 0.0, 2.0)))
    np.testing.assert_allclose(snapshot.lookup('camera_link', 'velodyne').translation,
                               [-1.0, 0.0, 0.5])
