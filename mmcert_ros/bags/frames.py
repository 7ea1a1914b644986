"""Write :class:`~mmcert_ros.data.frame.Frame` inputs into a bag as ROS image topics.

One frame becomes, all with the frame's stamp and frame_id: the RGB image (``rgb8``), the
depth image (``16UC1`` millimetres or ``32FC1`` metres, REP 118 invalid values), the ground
truth when the frame has one (``mono8``, 255 = road, 0 = not road) and, when a projection
matrix is known, ROS ``CameraInfo``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.bags.messages import camera_info_from_projection
from mmcert_ros.bags.writer import BagWriter
from mmcert_ros.data.depth import metres_to_millimetres
from mmcert_ros.data.frame import Frame
from mmcert_ros.data.road import ground_truth_image
from mmcert_ros.segmenter.codec import encode_image
from mmcert_ros.segmenter.message_fields import projection_from_intrinsics

#: depth encodings :func:`write_frame` writes (the node decodes these and ``mono16``)
WRITTEN_DEPTH_ENCODINGS = ('16UC1', '32FC1')


@dataclass(frozen=True)
class FrameTopics:
    """Topic names of a frame's parts; ``None`` leaves that part out.

    The defaults are the segmenter node's input topics in the root namespace, so
    ``ros2 bag play`` of such a bag feeds ``mmcert_segmenter`` without remapping.
    """

    rgb: str = '/rgb/image'
    depth: str = '/depth/image'
    camera_info: str | None = '/rgb/camera_info'
    gt: str | None = '/road_gt/image'


def write_frame(bag: BagWriter, frame: Frame, topics: FrameTopics, depth_encoding: str = '16UC1',
                projection: np.ndarray | None = None) -> None:
    """Append one frame's messages to ``bag``.

    :param depth_encoding: ``'16UC1'`` (uint16 mm, rounded; beyond 65.535 m becomes invalid)
        or ``'32FC1'`` (float32 metres, exact).
    :param projection: 3x4 projection matrix for ``camera_info``; defaults to ``K [I | 0]``
        from ``frame.camera_matrix``; no camera_info is written when neither is known.
    """
    if depth_encoding not in WRITTEN_DEPTH_ENCODINGS:
        raise ValueError(f'depth encoding must be one of {WRITTEN_DEPTH_ENCODINGS}, '
                         f'got {depth_encoding!r}')
    stamp, frame_id = frame.stamp_ns, frame.frame_id
    bag.write_image(topics.rgb, encode_image(frame.rgb, 'rgb8'), stamp, frame_id)
    depth = (metres_to_millimetres(frame.depth, source=f'frame {frame.name!r} depth')
             if depth_encoding == '16UC1' else frame.depth)
    bag.write_image(topics.depth, encode_image(depth, depth_encoding), stamp, frame_id)
    if topics.camera_info is not None:
        if projection is None and frame.camera_matrix is not None:
            projection = projection_from_intrinsics(frame.camera_matrix)
        if projection is not None:
            height, width = frame.rgb_size
            bag.write(topics.camera_info,
                      camera_info_from_projection(projection, width, height, stamp, frame_id))
    if topics.gt is not None and frame.road_mask is not None:
        bag.write_image(topics.gt, encode_image(ground_truth_image(frame.road_mask), 'mono8'),
                        stamp, frame_id)
