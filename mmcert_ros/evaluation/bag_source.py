"""Frames of a recorded bag, paired exactly as the segmenter node pairs live messages.

Messages are replayed in the bag's log-time order (the order a subscriber would have received
them) into :class:`~mmcert_ros.data.pairing.StampPairer`, the node's pairing rule: RGB and depth
by header stamp within ``slop_s``. Ground truth, when asked for, is paired the same way with
the RGB stamp of each RGB-D pair (streams ``rgbd`` and ``gt``). Messages are decoded after
pairing by the node's own :func:`~mmcert_ros.segmenter.pair_to_frame.frame_from_pair`.
Where the bag has ROS ``CameraInfo`` beside the RGB topic (``/ns/image`` ->
``/ns/camera_info``, image_transport's convention), each frame carries the latest one
received, as the node keeps it: ``camera_matrix`` = K and ``extras['projection']`` = P (3x4).

The depth topic may hold ROS ``PointCloud2`` instead of images: each cloud is then
projected with that CameraInfo (required then) and the camera <- cloud transform composed
from the ``/tf_static`` tree (:class:`~mmcert_ros.data.transform_tree.StaticTransformTree`:
the RGB image's frame <- the cloud's frame, chains composed), both as logged before the
cloud (or a fixed extrinsic given by the caller), and its frame carries the in-view points
in ``extras['points']`` (certified as points, ``docs/certification.md``) and their z-buffer
as ``depth``.

Nothing is dropped silently: every message that does not become part of a frame is counted
under a reason in :meth:`BagFrames.skipped` (corrupt or undecodable messages, unpaired
messages, RGB-D pairs without ground truth, ground truth of another size).

Frames are named by the ordinal of their pair in the replay (``000000``, ``000001``, ...;
a pair that cannot be decoded leaves a gap). A *window* ``[first, stop)`` of ordinals (a
time chunk of a long bag) replays the bag from its start through the pairers, so pairing is
exactly that of the whole bag, but decodes and yields only the pairs in the window and stops
reading after ``stop``: windows that tile ``[0, end)`` yield every frame of the whole replay
once, under the same names and stamps.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

from mmcert_ros.bags import BagError, BagReader
from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.bags.messages import (CAMERA_INFO_TYPE, IMAGE_TYPE, POINT_CLOUD_TYPE,
                                      TF_STATIC_TOPIC, TF_TYPE)
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.pairing import Pair, StampPairer
from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.data.transform_tree import StaticTransformTree, TransformLookupError
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.pair_to_frame import FrameDecodeError, frame_from_pair
from mmcert_ros.segmenter.message_fields import stamp_to_ns


class BagFrames:
    """Iterable of :class:`Frame` from an RGB topic, a depth topic and an optional GT topic.

    The bag is checked at construction: every topic must exist (else
    :class:`~mmcert_ros.bags.MissingTopicError` listing the bag's topics), hold
    ROS ``Image`` messages and have at least one (readable) message (else
    :class:`~mmcert_ros.bags.BagError` naming the empty topics).

    :param slop_s: pairing tolerance in seconds (the node's ``sync.slop``).
    :param extrinsic: with a point-cloud depth topic: a fixed LiDAR-to-camera extrinsic
        instead of the bag's ``/tf_static``.
    :param first: the first pair ordinal of the window (see the module docstring).
    :param stop: the ordinal after the window's last pair; None = to the end of the bag.
    """

    kind = 'bag'

    def __init__(self, path: str | Path, rgb_topic: str, depth_topic: str,
                 gt_topic: str | None = None, slop_s: float = 0.02,
                 extrinsic: Extrinsic | None = None, first: int = 0,
                 stop: int | None = None) -> None:
        if first < 0 or (stop is not None and stop <= first):
            raise ValueError(f'bad pair window [{first}, {stop})')
        self.path = Path(path)
        self.first, self.stop = first, stop
        self.topics = {'rgb': rgb_topic, 'depth': depth_topic}
        if gt_topic:
            self.topics['gt'] = gt_topic
        if len(set(self.topics.values())) != len(self.topics):
            raise UserError(f'RGB, depth and ground-truth topics must differ, got {self.topics}')
        self.slop_s = slop_s
        self.extrinsic = extrinsic
        with BagReader(self.path) as bag:
            depth_summary = bag.topics.get(depth_topic)
            #: whether the depth topic holds point clouds
            self.cloud = depth_summary is not None and depth_summary.msgtype == POINT_CLOUD_TYPE
            self.tf_topic = None
            if self.cloud:
                bag.require_topics([depth_topic], POINT_CLOUD_TYPE)
                if extrinsic is None:
                    if TF_STATIC_TOPIC not in bag.topics:
                        raise UserError(f'bag {self.path}: {depth_topic} holds point clouds but '
                                        f'the bag has no {TF_STATIC_TOPIC} with the '
                                        'LiDAR-to-camera transform; give the extrinsic')
                    bag.require_topics([TF_STATIC_TOPIC], TF_TYPE)
                    self.tf_topic = TF_STATIC_TOPIC
            bag.require_topics([topic for role, topic in self.topics.items()
                                if not (self.cloud and role == 'depth')], IMAGE_TYPE)
            counts = {role: bag.topics[topic].count for role, topic in self.topics.items()}
            empty = [topic for role, topic in self.topics.items() if not counts[role]]
            if empty:
                readable = ' readable' if bag.truncated else ''
                raise BagError(f'bag {self.path} has no{readable} message on '
                               f'{", ".join(empty)}: nothing to evaluate')
            info = rgb_topic.rsplit('/', 1)[0] + '/camera_info'
            found = bag.topics.get(info)
            #: the CameraInfo topic beside the RGB topic, if the bag has one
            self.camera_info_topic = (info if found is not None
                                      and found.msgtype == CAMERA_INFO_TYPE else None)
            if self.cloud and self.camera_info_topic is None:
                raise UserError(f'bag {self.path}: {depth_topic} holds point clouds, which need '
                                f'the camera\'s {CAMERA_INFO_TYPE} on {info}; the bag has none')
        #: where a result bag re-publishes these inputs: under their own names (a cloud
        #: topic's z-buffered depth as an image on <topic>/depth)
        self.frame_topics = FrameTopics(rgb=rgb_topic,
                                        depth=(f'{depth_topic}/depth' if self.cloud
                                               else depth_topic),
                                        camera_info=self.camera_info_topic, gt=gt_topic or None)
        #: frames to expect at most (for a progress bar): the smallest topic's message count
        #: (within the window)
        end = min(counts.values()) if stop is None else min(*counts.values(), stop)
        self.expected = max(0, end - self.first)
        self._pairers: dict[str, StampPairer] = {}
        self._problems: Counter[str] = Counter()   # counted while reading: the whole replay
        self._decode_problems: Counter[str] = Counter()   # of the window's pairs

    def describe(self) -> dict:
        """Where the frames come from, for reports."""
        return {'kind': self.kind, 'path': str(self.path), 'topics': dict(self.topics),
                'slop_s': self.slop_s}

    def skipped(self) -> dict[str, int]:
        """Messages not used in a frame so far, by reason.

        Each count is of messages: where a pair is dropped because one of its messages cannot
        be decoded (or its ground truth has another size), that one message is counted. A
        window ending before the bag's end counts only its own pairs' decoding problems; the
        window that reads to the end also counts the reading and pairing of the whole bag, so
        the counts of windows tiling the bag add up to those of one whole replay.
        """
        counts = Counter(self._decode_problems)
        if self.stop is not None:
            return {reason: count for reason, count in sorted(counts.items()) if count}
        counts.update(self._problems)
        rgbd = self._pairers.get('rgbd')
        if rgbd is not None:
            counts['unpaired rgb'] += rgbd.unpaired['rgb']
            counts['unpaired depth'] += rgbd.unpaired['depth']
            for kind, count in rgbd.rejected.items():   # zero or duplicate stamps
                counts[f'rgb/depth message with {kind}'] += count
        gt = self._pairers.get('gt')
        if gt is not None:
            counts['rgb-d pair without ground truth'] += gt.unpaired['rgbd']
            counts['unpaired ground truth'] += gt.unpaired['gt']
            for kind, count in gt.rejected.items():
                counts[f'ground truth or rgb-d pair with {kind}'] += count
        return {reason: count for reason, count in sorted(counts.items()) if count}

    def __iter__(self) -> Iterator[Frame]:
        """Replay the bag once; pending messages at the end count as unpaired.

        :raises BagError: the bag is corrupt (raised where reading breaks).
        """
        rgbd = self._pairers['rgbd'] = StampPairer(self.slop_s)
        gt_pairer = self._pairers['gt'] = (StampPairer(self.slop_s, streams=('rgbd', 'gt'))
                                           if 'gt' in self.topics else None)
        self._problems, self._decode_problems = Counter(), Counter()
        with BagReader(self.path) as bag:
            try:
                yield from self._replay(bag, rgbd, gt_pairer)
            except BagError:   # reading broke off: what was pending counts as unpaired too
                self._flush()
                raise
        self._flush()

    def _flush(self) -> None:
        for pairer in self._pairers.values():
            if pairer is not None:
                pairer.flush()

    def _replay(self, bag: BagReader, rgbd: StampPairer,
                gt_pairer: StampPairer | None) -> Iterator[Frame]:
        """Pair and decode the messages of ``bag`` into frames (see :meth:`__iter__`)."""
        role_of = {topic: role for role, topic in self.topics.items()}
        topics = list(self.topics.values())
        if self.camera_info_topic is not None:
            role_of[self.camera_info_topic] = 'camera_info'
            topics.append(self.camera_info_topic)
        if self.tf_topic is not None:
            role_of[self.tf_topic] = 'tf'
            topics.append(self.tf_topic)
        self._camera_info = None
        transforms = StaticTransformTree()   # the /tf_static transforms logged so far (never
        # changed in place: each cloud keeps the tree of its arrival)
        ordinal = 0   # of the next ready pair
        for item in bag.messages(topics):
            role = role_of[item.topic]
            if role == 'camera_info':
                if item.message is None:
                    self._problems['corrupt camera_info message'] += 1
                else:
                    self._camera_info = item.message
                continue
            if item.message is None:
                self._problems[f'corrupt {role} message'] += 1
                continue
            if role == 'tf':
                transforms = self._with_transforms(transforms, item.message)
                continue
            message = item.message
            if self.cloud and role == 'depth':
                message = _CloudArrival(message, self._camera_info, transforms)
            stamp = stamp_to_ns(item.message.header.stamp)
            if role == 'gt':
                pair = gt_pairer.add('gt', stamp, item.message)
                ready = None if pair is None else (pair['rgbd'], pair['gt'])
            else:
                pair = rgbd.add(role, stamp, message)
                if pair is None:
                    continue
                if gt_pairer is None:
                    ready = (pair, None)
                else:
                    gt_pair = gt_pairer.add('rgbd', pair.rgb_stamp_ns, pair)
                    ready = None if gt_pair is None else (gt_pair['rgbd'], gt_pair['gt'])
            if ready is None:
                continue
            ordinal += 1
            if ordinal <= self.first:
                continue
            frame = self._decode(ordinal - 1, *ready)
            if frame is not None:
                yield frame
            if ordinal == self.stop:
                return

    def _decode(self, index: int, pair: Pair, gt_message) -> Frame | None:
        """The frame of one pair (:func:`~mmcert_ros.segmenter.pair_to_frame.frame_from_pair`), or
        None (counted under its reason) when a message cannot be used."""
        camera_info, extrinsic = self._camera_info, None
        try:
            if self.cloud:
                arrival = pair.depth
                camera_info = arrival.camera_info
                extrinsic = self._extrinsic_of(arrival, pair.rgb.header.frame_id)
                pair = Pair(dict(pair.items, depth=arrival.message), pair.stamps_ns)
            return frame_from_pair(pair, 'points' if self.cloud else 'image', camera_info,
                                   extrinsic, gt_message, name=f'{index:06d}')
        except FrameDecodeError as error:
            if error.kind == 'size_differs_from_rgb':
                what = 'ground truth' if error.stream == 'gt' else error.stream
                self._decode_problems[f'{what} size differs from rgb'] += 1
            else:
                self._decode_problems[f'undecodable {error.stream} message ({error.kind})'] += 1
            return None

    def _extrinsic_of(self, arrival: '_CloudArrival', camera_frame: str) -> Extrinsic | None:
        """The fixed extrinsic, else the camera <- cloud chain of the transforms logged before
        the cloud (None when they do not join the two frames)."""
        if self.extrinsic is not None:
            return self.extrinsic
        try:
            return arrival.transforms.lookup(camera_frame, arrival.message.header.frame_id)
        except TransformLookupError:
            return None

    def _with_transforms(self, tree: StaticTransformTree, message) -> StaticTransformTree:
        """A new tree: ``tree`` (left as it is, for the clouds logged before) plus each
        transform of a ``/tf_static`` message; one that cannot be used (not rigid, a cycle)
        is counted and left out."""
        tree = tree.copy()
        for stamped in message.transforms:
            try:
                tree.add(stamped)
            except ValueError:
                self._problems[f'unusable {TF_STATIC_TOPIC} transform'] += 1
        return tree


@dataclass(frozen=True)
class _CloudArrival:
    """A cloud with the camera_info and the transforms that were current when it was logged."""

    message: object
    camera_info: object | None
    transforms: StaticTransformTree
