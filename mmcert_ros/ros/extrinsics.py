"""The camera <- LiDAR transform of each cloud, from the node's transform tree.

:class:`CloudExtrinsics` looks up ``p_camera = R p_cloud + t`` between the RGB image's
``header.frame_id`` (the camera's optical frame) and the cloud's ``header.frame_id``, chains
composed and parent frames respected:

* with ``tf2_ros`` installed (a ROS distro): a ``tf2_ros.Buffer`` filled by a
  ``TransformListener`` (``/tf`` and ``/tf_static``), the latest transform;
* without it (the pip wheels): the node's own ``/tf_static`` reader (``tf2_msgs``, latched
  QoS) feeding a :class:`~mmcert_ros.data.transform_tree.StaticTransformTree`, which composes
  the tree the way tf2 does;
* with neither, :attr:`CloudExtrinsics.available` is False (the node then needs
  ``depth.extrinsic``).

Callbacks run on the node's executor; :meth:`CloudExtrinsics.lookup` may be called from the
worker thread (the tree is replaced, never mutated in place, under a lock).
"""
from __future__ import annotations

import threading
from typing import Callable

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.data.transform_tree import StaticTransformTree, TransformLookupError

TF_STATIC = '/tf_static'
#: tf2's static-transform profile: reliable, transient local (late joiners get the tree)
LATCHED = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class CloudExtrinsics:
    """Camera <- cloud transforms for one node (see the module docstring).

    :param node: the node whose executor serves the subscription.
    :param on_bad_transform: called with a one-line reason for a ``/tf_static`` transform
        that cannot be used (not rigid, a cycle, missing names); the rest of the message is
        kept.
    """

    def __init__(self, node: Node, on_bad_transform: Callable[[str], None]) -> None:
        self._on_bad = on_bad_transform
        self._lock = threading.Lock()
        self._tree = StaticTransformTree()
        self._buffer = None
        self._node, self._subscription = node, None
        self.backend = self._start_tf2_ros(node) or self._start_tf_static(node)

    @property
    def available(self) -> bool:
        """Whether transforms can be looked up at all (tf2_ros or tf2_msgs installed)."""
        return self.backend is not None

    def lookup(self, camera_frame: str, cloud_frame: str) -> Extrinsic | None:
        """``p_camera = R p_cloud + t``, or None while no chain of transforms joins them."""
        if self._buffer is not None:
            return self._lookup_tf2_ros(camera_frame, cloud_frame)
        with self._lock:
            tree = self._tree
        try:
            return tree.lookup(camera_frame, cloud_frame)
        except TransformLookupError:
            return None

    def close(self) -> None:
        """Stop listening (the node's lifecycle ``cleanup``)."""
        if self._buffer is not None:
            self._listener.unregister()
        elif self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def _start_tf2_ros(self, node: Node) -> str | None:
        try:
            import tf2_ros
        except ImportError:
            return None
        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        return 'tf2_ros'

    def _lookup_tf2_ros(self, camera_frame: str, cloud_frame: str) -> Extrinsic | None:
        import tf2_ros
        from rclpy.time import Time
        try:
            stamped = self._buffer.lookup_transform(camera_frame, cloud_frame, Time())
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException,
                tf2_ros.ExtrapolationException, tf2_ros.InvalidArgumentException):
            return None
        try:
            return Extrinsic.from_transform(stamped)
        except ValueError as error:
            self._on_bad(f'{camera_frame} <- {cloud_frame}: {error}')
            return None

    def _start_tf_static(self, node: Node) -> str | None:
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            return None
        self._subscription = node.create_subscription(TFMessage, TF_STATIC, self._on_tf_static,
                                                      LATCHED)
        return TF_STATIC

    def _on_tf_static(self, msg) -> None:
        """Add every usable transform of ``msg`` to a copy of the tree, then swap it in."""
        with self._lock:
            tree = self._tree.copy()
        for stamped in msg.transforms:
            try:
                tree.add(stamped)
            except ValueError as error:
                self._on_bad(f'{TF_STATIC} {stamped.header.frame_id} -> '
                             f'{stamped.child_frame_id}: {error}')
        with self._lock:
            self._tree = tree
