"""Frames of a recorded bag, paired exactly as the segmenter node pairs live messages.

Messages are replayed in the bag's log-time order (the order a subscriber would have received
them) into :class:`~mmcert_ros.data.pairing.StampPairer`, the node's pairing rule: RGB and depth
by header stamp within ``slop_s``. Ground truth, when asked for, is paired the same way with
the RGB stamp of each RGB-D pair. Messages are decoded after pairing, like the node's worker.

The depth topic may hold ``sensor_msgs/PointCloud2`` instead of images: each cloud is then
projected with the latest ``sensor_msgs/CameraInfo`` of the camera-info topic and the latest
LiDAR-to-camera transform on ``/tf_static`` logged before it (or a fixed extrinsic given by
the caller), and its frame carries the in-view points in ``extras['points']`` (certified as
points, ``docs/certification.md``) and their z-buffer as ``depth``.

Nothing is dropped silently: every message that does not become part of a frame is counted
under a reason in :meth:`BagFrames.skipped` (corrupt or undecodable messages, unpaired
messages, RGB-D pairs without ground truth, ground truth of another size).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmcert_ros.bags import BagError, BagReader
from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.bags.messages import (CAMERA_INFO_TYPE, IMAGE_TYPE, POINT_CLOUD_TYPE, TF_TYPE,
                                      TF_STATIC_TOPIC, extrinsic_from_transform, stamp_to_ns)
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.point_cloud import CloudDecodeError, decode_xyz
from mmcert_ros.data.projection import CameraIntrinsics, Extrinsic, project_points, zbuffer
from mmcert_ros.data.pairing import StampPairer
from mmcert_ros.errors import MessageDecodeError, UserError
from mmcert_ros.ros.image_codec import decode_depth, decode_mask, decode_rgb


class BagFrames:
    """Iterable of :class:`Frame` from an RGB topic, a depth topic and an optional GT topic.

    The bag is checked at construction: every topic must exist (else
    :class:`~mmcert_ros.bags.MissingTopicError` listing the bag's topics), hold
    ``sensor_msgs/msg/Image`` and have at least one (readable) message (else
    :class:`~mmcert_ros.bags.BagError` naming the empty topics).

    :param slop_s: pairing tolerance in seconds (the node's ``sync.slop``).
    :param camera_info_topic: with a point-cloud depth topic: the RGB camera's CameraInfo.
    :param extrinsic: with a point-cloud depth topic: a fixed LiDAR-to-camera extrinsic
        instead of the bag's ``/tf_static``.
    """

    kind = 'bag'

    def __init__(self, path: str | Path, rgb_topic: str, depth_topic: str,
                 gt_topic: str | None = None, slop_s: float = 0.02,
                 camera_info_topic: str = '/rgb/camera_info',
                 extrinsic: Extrinsic | None = None) -> None:
        self.path = Path(path)
        self.topics = {'rgb': rgb_topic, 'depth': depth_topic}
        if gt_topic:
            self.topics['gt'] = gt_topic
        if len(set(self.topics.values())) != len(self.topics):
            raise UserError(f'RGB, depth and ground-truth topics must differ, got {self.topics}')
        self.slop_s = slop_s
        #: where a result bag re-publishes these inputs: under their own names
        self.frame_topics = FrameTopics(rgb=rgb_topic, depth=depth_topic, camera_info=None,
                                        gt=gt_topic or None)
        self.extrinsic = extrinsic
        self.context_topics: dict[str, str] = {}   # topic -> role, for point-cloud depth
        with BagReader(self.path) as bag:
            depth_summary = bag.topics.get(depth_topic)
            self.cloud = depth_summary is not None and depth_summary.msgtype == POINT_CLOUD_TYPE
            if self.cloud:
                bag.require_topics([camera_info_topic], CAMERA_INFO_TYPE)
                self.context_topics[camera_info_topic] = 'camera_info'
                if extrinsic is None:
                    if TF_STATIC_TOPIC not in bag.topics:
                        raise UserError(f'bag {self.path}: {depth_topic} holds point clouds but '
                                        f'the bag has no {TF_STATIC_TOPIC} with the '
                                        'LiDAR-to-camera transform; give the extrinsic')
                    bag.require_topics([TF_STATIC_TOPIC], TF_TYPE)
                    self.context_topics[TF_STATIC_TOPIC] = 'tf'
                bag.require_topics([depth_topic], POINT_CLOUD_TYPE)
                # a result bag re-publishes the clouds' z-buffered depth as an image
                self.frame_topics = FrameTopics(rgb=rgb_topic, depth=f'{depth_topic}/depth',
                                                camera_info=None, gt=gt_topic or None)
            bag.require_topics([t for r, t in self.topics.items()
                                if not (self.cloud and r == 'depth')], IMAGE_TYPE)
            counts = {role: bag.topics[topic].count for role, topic in self.topics.items()}
            empty = [topic for role, topic in self.topics.items() if not counts[role]]
            if empty:
                readable = ' readable' if bag.truncated else ''
                raise BagError(f'bag {self.path} has no{readable} message on '
                               f'{", ".join(empty)}: nothing to evaluate')
        #: frames to expect at most (for a progress bar): the smallest topic's message count
        self.expected = min(counts.values())
        self._pairers: dict[str, StampPairer] = {}
        self._problems: Counter[str] = Counter()

    def describe(self) -> dict:
        """Where the frames come from, for reports."""
        return {'kind': self.kind, 'path': str(self.path), 'topics': dict(self.topics),
                'slop_s': self.slop_s}

    def skipped(self) -> dict[str, int]:
        """Messages not used in a frame so far, by reason.

        Each count is of messages: where a pair is dropped because one of its messages cannot
        be decoded (or its ground truth has another size), that one message is counted.
        """
        counts = Counter(self._problems)
        rgbd = self._pairers.get('rgbd')
        if rgbd is not None:
            counts['unpaired rgb'] += rgbd.unpaired['rgb']
            counts['unpaired depth'] += rgbd.unpaired['depth']
        gt = self._pairers.get('gt')
        if gt is not None:
            counts['rgb-d pair without ground truth'] += gt.unpaired['rgb']
            counts['unpaired ground truth'] += gt.unpaired['depth']
        return {reason: count for reason, count in sorted(counts.items()) if count}

    def __iter__(self) -> Iterator[Frame]:
        """Replay the bag once; pending messages at the end count as unpaired.

        :raises BagError: the bag is corrupt (raised where reading breaks).
        """
        rgbd = self._pairers['rgbd'] = StampPairer(self.slop_s)
        gt_pairer = self._pairers['gt'] = StampPairer(self.slop_s) if 'gt' in self.topics else None
        self._problems = Counter()
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
        role_of.update(self.context_topics)
        context = {'camera_info': None, 'tf': {}}   # the latest of each, in log order
        index = 0
        for item in bag.messages(role_of):
            role = role_of[item.topic]
            if item.message is None:
                self._problems[f'corrupt {role} message'] += 1
                continue
            if role == 'camera_info':
                context['camera_info'] = item.message
                continue
            if role == 'tf':
                context['tf'] = dict(context['tf'], **{t.child_frame_id: t
                                                      for t in item.message.transforms})
                continue
            message = item.message
            if self.cloud and role == 'depth':
                message = _CloudArrival(message, context['camera_info'],
                                        context['tf'].get(message.header.frame_id))
            stamp = stamp_to_ns(item.message.header)
            if role == 'gt':
                pair = gt_pairer.add('depth', stamp, item.message)
                ready = None if pair is None else (pair.rgb, pair.depth)
            else:
                pair = rgbd.add(role, stamp, message)
                if pair is None:
                    continue
                if gt_pairer is None:
                    ready = (pair, None)
                else:
                    gt_pair = gt_pairer.add('rgb', pair.rgb_stamp_ns, pair)
                    ready = None if gt_pair is None else (gt_pair.rgb, gt_pair.depth)
            if ready is None:
                continue
            frame = self._decode(index, *ready)
            if frame is not None:
                index += 1
                yield frame

    def _decode(self, index: int, pair, gt_message) -> Frame | None:
        """The frame of one pair, or None (counted) when a message cannot be decoded."""
        decoded = {}
        for role, message, decode in (('rgb', pair.rgb, decode_rgb),
                                      ('depth', pair.depth,
                                       self._project if self.cloud else decode_depth),
                                      ('gt', gt_message, decode_mask)):
            if message is None:
                continue
            try:
                decoded[role] = decode(message)
            except MessageDecodeError as error:
                self._problems[f'undecodable {role} message ({error.kind})'] += 1
                return None
        gt = decoded.get('gt')
        if gt is not None and gt.shape != decoded['rgb'].shape[:2]:
            self._problems['ground truth size differs from rgb'] += 1
            return None
        points = decoded['depth'] if self.cloud else None
        if points is not None and (points.height, points.width) != decoded['rgb'].shape[:2]:
            self._problems['camera_info size differs from rgb'] += 1
            return None
        return Frame(rgb=decoded['rgb'], depth=zbuffer(points) if self.cloud else decoded['depth'],
                     road_mask=None if gt is None else (gt != 0).astype(np.uint8),
                     stamp_ns=pair.rgb_stamp_ns, frame_id=pair.rgb.header.frame_id,
                     name=f'{index:06d}', extras={} if points is None else {'points': points})

    def _project(self, arrival: '_CloudArrival'):
        """The in-view points of a cloud, with the camera and transform of its arrival."""
        source = f'cloud at {stamp_to_ns(arrival.message.header)} ns'
        if arrival.camera_info is None:
            raise CloudDecodeError('no_camera_info', f'{source}: no camera_info before it')
        extrinsic = self.extrinsic
        if extrinsic is None:
            if arrival.transform is None:
                raise CloudDecodeError('no_extrinsic', f'{source}: no {TF_STATIC_TOPIC} '
                                       f'transform for frame {arrival.message.header.frame_id}')
            try:
                extrinsic = extrinsic_from_transform(arrival.transform)
            except ValueError as error:
                raise CloudDecodeError('bad_extrinsic', f'{source}: {error}') from None
        try:
            camera = CameraIntrinsics.from_camera_info(arrival.camera_info)
        except ValueError as error:
            raise CloudDecodeError('bad_camera_info', f'{source}: {error}') from None
        return project_points(decode_xyz(arrival.message, source), camera, extrinsic, source)


@dataclass(frozen=True)
class _CloudArrival:
    """A cloud with the camera_info and transform that were current when it was logged."""

    message: object
    camera_info: object | None
    transform: object | None
