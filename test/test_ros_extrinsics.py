"""The node's camera <- cloud lookups (:class:`CloudExtrinsics`) on a real rclpy node: the
/tf_static messages it is handed build the tree that is looked up, bad transforms are reported
and left out. Where tf2_ros is installed (a ROS distro) the lookups go through its Buffer."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mmcert_ros.bags.messages import TYPESTORE, static_transform_message
from mmcert_ros.data.projection import Extrinsic

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')

OPTICAL_IN_LINK = Extrinsic.from_quaternion((0, 0, 0), (-0.5, 0.5, -0.5, 0.5))


@pytest.fixture
def node(fresh_domain_id):
    from helpers.ros_harness import shifted_domain
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=shifted_domain(fresh_domain_id))
    node = rclpy.create_node('extrinsics_test', context=context)
    yield node
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def tree_message():
    """camera_optical <- camera_link <- base_link -> velodyne in one /tf_static message."""
    transforms = []
    for pose, parent, child in [(Extrinsic(np.eye(3), (1.0, 0.0, 1.5)), 'base_link', 'velodyne'),
                                (OPTICAL_IN_LINK, 'camera_link', 'camera_optical'),
                                (Extrinsic(np.eye(3), (2.0, 0.0, 1.0)), 'base_link',
                                 'camera_link')]:
        transforms += static_transform_message(pose, parent, child, 0).transforms
    return TYPESTORE.types['tf2_msgs/msg/TFMessage'](transforms=transforms)


@pytest.mark.skipif(importlib.util.find_spec('tf2_ros') is not None,
                    reason='tf2_ros is installed: the node uses its Buffer instead')
def test_tf_static_messages_build_the_tree_that_is_looked_up(node):
    from mmcert_ros.ros.extrinsics import CloudExtrinsics
    reasons = []
    extrinsics = CloudExtrinsics(node, reasons.append)
    assert extrinsics.lookup('camera_optical', 'velodyne') is None      # nothing seen yet
    extrinsics._on_tf_static(tree_message())
    found = extrinsics.lookup('camera_optical', 'velodyne')
    # velodyne (9, 1, -0.5) is base (10, 1, 1), camera_link (8, 1, 0), optical (-1, 0, 8)
    np.testing.assert_allclose(found.apply(np.array([[9.0, 1.0, -0.5]])), [[-1, 0, 8]],
                               atol=1e-12)
    bad = tree_message()
    bad.transforms[0].transform.rotation.w = 3.0                          # not a unit quaternion
    bad.transforms[1].header.frame_id = ''
    extrinsics._on_tf_static(bad)
    assert len(reasons) == 2 and 'velodyne' in reasons[0] and 'unit norm' in reasons[0]
    assert 'both frame names' in reasons[1]
    np.testing.assert_allclose(extrinsics.lookup('camera_optical', 'velodyne').matrix,
                               found.matrix)                              # the rest was kept


@pytest.mark.skipif(importlib.util.find_spec('tf2_ros') is None,
                    reason='tf2_ros is not installed here (the PyPI wheels): the node reads '
                           '/tf_static itself, tested above')
def test_a_tf2_ros_buffer_composes_the_published_tree(node):
    import time

    import tf2_ros
    from geometry_msgs.msg import TransformStamped
    from rclpy.executors import SingleThreadedExecutor

    from mmcert_ros.ros.extrinsics import CloudExtrinsics
    extrinsics = CloudExtrinsics(node, lambda reason: None)
    assert extrinsics.backend == 'tf2_ros'
    transforms = []
    for stamped in tree_message().transforms:       # the same tree as rclpy messages
        message = TransformStamped(child_frame_id=stamped.child_frame_id)
        message.header.frame_id = stamped.header.frame_id
        for axis in 'xyz':
            setattr(message.transform.translation, axis,
                    getattr(stamped.transform.translation, axis))
        for axis in 'xyzw':
            setattr(message.transform.rotation, axis, getattr(stamped.transform.rotation, axis))
        transforms.append(message)
    tf2_ros.StaticTransformBroadcaster(node).sendTransform(transforms)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = time.monotonic() + 30
    while (found := extrinsics.lookup('camera_optical', 'velodyne')) is None:
        assert time.monotonic() < deadline, 'tf2_ros never joined velodyne to camera_optical'
        executor.spin_once(timeout_sec=0.1)
    np.testing.assert_allclose(found.apply(np.array([[9.0, 1.0, -0.5]])), [[-1, 0, 8]],
                               atol=1e-9)
