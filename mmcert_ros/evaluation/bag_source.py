"""Frames of a recorded bag, paired exactly as the segmenter node pairs live messages.

Messages are replayed in the bag's log-time order (the order a subscriber would have received
them) into :class:`~mmcert_ros.data.pairing.StampPairer`, the node's pairing rule: RGB and depth
by header stamp within ``slop_s``. Ground truth, when asked for, is paired the same way with
the RGB stamp of each RGB-D pair. Messages are decoded after pairing, like the node's worker.
Where the bag has ``sensor_msgs/CameraInfo`` beside the RGB topic (``/ns/image`` ->
``/ns/camera_info``, image_transport's convention), each frame carries the latest one
received, as the node keeps it: ``camera_matrix`` = K and ``extras['projection']`` = P (3x4).

Nothing is dropped silently: every message that does not become part of a frame is counted
under a reason in :meth:`BagFrames.skipped` (corrupt or undecodable messages, unpaired
messages, RGB-D pairs without ground truth, ground truth of another size).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmcert_ros.bags import BagError, BagReader
from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.bags.messages import CAMERA_INFO_TYPE, IMAGE_TYPE, stamp_to_ns
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.pairing import StampPairer
from mmcert_ros.errors import UserError
from mmcert_ros.ros.image_codec import ImageDecodeError, decode_depth, decode_mask, decode_rgb


class BagFrames:
    """Iterable of :class:`Frame` from an RGB topic, a depth topic and an optional GT topic.

    The bag is checked at construction: every topic must exist (else
    :class:`~mmcert_ros.bags.MissingTopicError` listing the bag's topics), hold
    ``sensor_msgs/msg/Image`` and have at least one (readable) message (else
    :class:`~mmcert_ros.bags.BagError` naming the empty topics).

    :param slop_s: pairing tolerance in seconds (the node's ``sync.slop``).
    """

    kind = 'bag'

    def __init__(self, path: str | Path, rgb_topic: str, depth_topic: str,
                 gt_topic: str | None = None, slop_s: float = 0.02) -> None:
        self.path = Path(path)
        self.topics = {'rgb': rgb_topic, 'depth': depth_topic}
        if gt_topic:
            self.topics['gt'] = gt_topic
        if len(set(self.topics.values())) != len(self.topics):
            raise UserError(f'RGB, depth and ground-truth topics must differ, got {self.topics}')
        self.slop_s = slop_s
        with BagReader(self.path) as bag:
            bag.require_topics(self.topics.values(), IMAGE_TYPE)
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
        #: where a result bag re-publishes these inputs: under their own names
        self.frame_topics = FrameTopics(rgb=rgb_topic, depth=depth_topic,
                                        camera_info=self.camera_info_topic, gt=gt_topic or None)
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
            for kind, count in rgbd.rejected.items():   # zero or duplicate stamps
                counts[f'rgb/depth message with {kind}'] += count
        gt = self._pairers.get('gt')
        if gt is not None:
            counts['rgb-d pair without ground truth'] += gt.unpaired['rgb']
            counts['unpaired ground truth'] += gt.unpaired['depth']
            for kind, count in gt.rejected.items():
                counts[f'ground truth or rgb-d pair with {kind}'] += count
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
        topics = list(self.topics.values())
        if self.camera_info_topic is not None:
            role_of[self.camera_info_topic] = 'camera_info'
            topics.append(self.camera_info_topic)
        self._camera_info = None
        index = 0
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
            stamp = stamp_to_ns(item.message.header)
            if role == 'gt':
                pair = gt_pairer.add('depth', stamp, item.message)
                ready = None if pair is None else (pair.rgb, pair.depth)
            else:
                pair = rgbd.add(role, stamp, item.message)
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
                                      ('depth', pair.depth, decode_depth),
                                      ('gt', gt_message, decode_mask)):
            if message is None:
                continue
            try:
                decoded[role] = decode(message)
            except ImageDecodeError as error:
                self._problems[f'undecodable {role} message ({error.kind})'] += 1
                return None
        gt = decoded.get('gt')
        if gt is not None and gt.shape != decoded['rgb'].shape[:2]:
            self._problems['ground truth size differs from rgb'] += 1
            return None
        info, extras = self._camera_info, {}
        if info is not None:
            extras['projection'] = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
        return Frame(rgb=decoded['rgb'], depth=decoded['depth'],
                     road_mask=None if gt is None else (gt != 0).astype(np.uint8),
                     stamp_ns=pair.rgb_stamp_ns, frame_id=pair.rgb.header.frame_id,
                     camera_matrix=None if info is None else
                     np.asarray(info.k, dtype=np.float64).reshape(3, 3),
                     name=f'{index:06d}', extras=extras)
