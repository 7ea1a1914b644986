"""A tree of static rigid transforms between named frames, as tf2 keeps ``/tf_static``.

Each edge is one ``geometry_msgs/TransformStamped``: the pose of ``child_frame_id`` in
``header.frame_id``, i.e. the :class:`~mmcert_ros.data.projection.Extrinsic` with
``p_parent = R p_child + t``. :meth:`StaticTransformTree.lookup` composes the chain between
any two frames of one tree, through their nearest common ancestor, the way
``tf2::BufferCore::lookupTransform(target, source)`` does: up from the source to the
ancestor, then down to the target. ROS-free (numpy only).

Guarantees: a frame has at most one parent (a later transform of the same child replaces
the earlier one, as tf2 does); an edge that would close a cycle is refused with
``ValueError`` and leaves the tree unchanged; a lookup between frames of different trees,
or of a frame never seen, raises :class:`TransformLookupError` naming both frames.
"""
from __future__ import annotations

from mmcert_ros.data.projection import Extrinsic

#: the identity transform (a frame to itself)
IDENTITY = Extrinsic.from_quaternion((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


class TransformLookupError(LookupError):
    """No chain of static transforms joins the two frames (yet)."""


class StaticTransformTree:
    """Parent links of the frames seen on ``/tf_static``; see the module docstring."""

    def __init__(self) -> None:
        #: child frame -> (parent frame, pose of the child in the parent)
        self._parents: dict[str, tuple[str, Extrinsic]] = {}

    def set(self, parent: str, child: str, pose: Extrinsic) -> None:
        """Record ``child``'s pose in ``parent`` (replacing any earlier parent of ``child``).

        :raises ValueError: empty or equal frame names, or an edge that closes a cycle.
        """
        parent, child = parent.lstrip('/'), child.lstrip('/')
        if not parent or not child:
            raise ValueError('a transform needs both frame names (header.frame_id and '
                             'child_frame_id)')
        if parent == child:
            raise ValueError(f'frame {child!r} cannot be its own parent')
        if child in self._chain_up(parent):
            raise ValueError(f'{parent} -> {child} would close a cycle of transforms')
        self._parents[child] = (parent, pose)

    def add(self, stamped) -> None:
        """Record one ``geometry_msgs/TransformStamped`` (live or deserialized from a bag).

        :raises ValueError: not a rigid transform, frame names missing, or a cycle.
        """
        self.set(stamped.header.frame_id, stamped.child_frame_id,
                 Extrinsic.from_transform(stamped))

    def copy(self) -> 'StaticTransformTree':
        """An independent tree holding the same transforms (a snapshot)."""
        tree = StaticTransformTree()
        tree._parents = dict(self._parents)
        return tree

    def lookup(self, target: str, source: str) -> Extrinsic:
        """The transform taking points in ``source`` to ``target``: ``p_target = R p_source +
        t`` (for a camera and a LiDAR: ``lookup(camera_optical, velodyne)``).

        :raises TransformLookupError: the frames are not joined by the transforms seen.
        """
        target, source = target.lstrip('/'), source.lstrip('/')
        if target == source:
            return IDENTITY
        up_from_source = self._chain_up(source)
        up_from_target = self._chain_up(target)
        common = next((frame for frame in up_from_source if frame in up_from_target), None)
        if common is None:
            raise TransformLookupError(
                f'no static transform joins {source!r} to {target!r} (frames on /tf_static: '
                f'{", ".join(sorted(self.frames())) or "none yet"})')
        return self._to_ancestor(source, common).then(self._to_ancestor(target, common).inverse())

    def frames(self) -> set[str]:
        """Every frame named by a recorded transform."""
        return set(self._parents) | {parent for parent, _ in self._parents.values()}

    def _chain_up(self, frame: str) -> list[str]:
        """``frame``, its parent, grandparent, ... up to its root."""
        chain = [frame]
        while chain[-1] in self._parents:
            chain.append(self._parents[chain[-1]][0])
        return chain

    def _to_ancestor(self, frame: str, ancestor: str) -> Extrinsic:
        """Pose of ``frame`` in ``ancestor`` (``p_ancestor = R p_frame + t``)."""
        pose = IDENTITY
        while frame != ancestor:
            frame, edge = self._parents[frame]
            pose = pose.then(edge)
        return pose
