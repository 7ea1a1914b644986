"""The one road from a paired RGB + depth message to a :class:`~mmcert_ros.data.frame.Frame`.

The segmenter node's worker and offline bag evaluation (:mod:`mmcert_ros.evaluation.bag_source`)
both call :func:`frame_from_pair`, so a message decodes to the same frame live and offline.
ROS-free: messages are duck-typed (live ones from the node, or deserialized by ``rosbags``).

Depth arrives in one of :data:`DEPTH_SOURCES`:

* ``'image'``: an ``Image`` message decoded by :func:`~mmcert_ros.segmenter.codec.decode_depth`
  (metres, at its own size);
* ``'points'``: a ``PointCloud2`` decoded by
  :func:`~mmcert_ros.data.point_cloud.decode_xyz` and projected into the RGB camera with the
  ``CameraInfo`` and the LiDAR-to-camera :class:`~mmcert_ros.data.projection.Extrinsic`
  (:func:`~mmcert_ros.data.projection.project_points`); the frame carries the in-view points
  in ``extras['points']`` (the engine certifies them as points, ``docs/certification.md``)
  and their z-buffer as ``depth``. The CameraInfo's image size must be the RGB size.

A pair without depth (``pair.depth is None``: the node's RGB-only mode) gets a depth image of
zeros at the RGB size: every depth pixel invalid, so no sample carries depth.

With a CameraInfo the frame has ``camera_matrix`` = K and ``extras['projection']`` = P (3x4).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcert_ros.data.frame import Frame
from mmcert_ros.data.pairing import Pair
from mmcert_ros.data.point_cloud import decode_xyz
from mmcert_ros.data.projection import CameraIntrinsics, Extrinsic, project_points, zbuffer
from mmcert_ros.errors import MessageDecodeError
from mmcert_ros.segmenter.codec import decode_depth, decode_mask, decode_rgb
from mmcert_ros.segmenter.message_fields import camera_info_from_k

#: what the depth stream carries: depth images or LiDAR point clouds
DEPTH_SOURCES = ('image', 'points')


class FrameDecodeError(MessageDecodeError):
    """A pair that does not make a frame; ``stream`` says which message is at fault.

    :ivar stream: ``'rgb'``, ``'depth'``, ``'camera_info'`` or ``'gt'``.
    :ivar kind: the decoder's kind (``size_mismatch``, ``missing_field``, ...); for a cloud
        also ``no_camera_info`` / ``no_extrinsic`` (before its calibration) and
        ``bad_camera_info`` (a CameraInfo projection cannot use); ``size_differs_from_rgb``
        (ground truth, or the CameraInfo of a cloud, of another size than the RGB image);
        ``bad_camera_info`` of stream ``camera_info`` (K or P of the wrong length).
    """

    def __init__(self, stream: str, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.stream = stream


def frame_from_pair(pair: Pair, depth_source: str = 'image', camera_info=None,
                    extrinsic: Extrinsic | None = None, gt=None, name: str = '',
                    camera_k: Sequence[float] | None = None) -> Frame:
    """Decode ``pair`` (and its ground truth) into the frame the engine certifies.

    :param pair: RGB and depth messages (``pair.depth`` None: an RGB-only frame); the RGB
        message is an ``Image`` or a ``CompressedImage``, whatever
        :func:`~mmcert_ros.segmenter.codec.decode_rgb` accepts.
    :param depth_source: one of :data:`DEPTH_SOURCES`, what ``pair.depth`` is.
    :param camera_info: the RGB camera's latest ``CameraInfo`` (or the
        :func:`~mmcert_ros.segmenter.message_fields.camera_info_from_k` of a K parameter), or
        None.
    :param extrinsic: LiDAR-to-camera transform (needed with ``'points'``).
    :param gt: optional ground-truth ``Image`` message (mono8, non-zero = road).
    :param name: the frame's name, for reports.
    :param camera_k: K (9 values, row-major; checked beforehand) of a camera that publishes
        no CameraInfo: while ``camera_info`` is None it stands for one, distortion-free, at
        the RGB image's size (:func:`~mmcert_ros.segmenter.message_fields.camera_info_from_k`).
    :raises FrameDecodeError: naming the stream and the defect; nothing is decoded further.
    """
    if depth_source not in DEPTH_SOURCES:
        raise ValueError(f'depth_source must be one of {DEPTH_SOURCES}, got {depth_source!r}')
    rgb = _decoded('rgb', decode_rgb, pair.rgb)
    size = rgb.shape[:2]
    if camera_info is None and camera_k is not None:
        camera_info = camera_info_from_k(camera_k, size[1], size[0])
    extras = {}
    camera_matrix = None
    if camera_info is not None:
        try:
            camera_matrix = np.asarray(camera_info.k, dtype=np.float64).reshape(3, 3)
            extras['projection'] = np.asarray(camera_info.p, dtype=np.float64).reshape(3, 4)
        except ValueError as error:
            raise FrameDecodeError('camera_info', 'bad_camera_info',
                                   f'K must hold 9 values and P 12: {error}') from None
    if pair.depth is None:
        depth = np.zeros(size, dtype=np.float32)
    elif depth_source == 'image':
        depth = _decoded('depth', decode_depth, pair.depth)
    else:
        points = _projected(pair.depth, f'cloud at {pair.depth_stamp_ns} ns', camera_info,
                            extrinsic, pair.rgb.header.frame_id)
        if (points.height, points.width) != size:
            raise FrameDecodeError('camera_info', 'size_differs_from_rgb',
                                   f'camera_info is {points.width}x{points.height} but the RGB '
                                   f'image is {size[1]}x{size[0]}')
        extras['points'], depth = points, zbuffer(points)
    road_mask = None
    if gt is not None:
        mask = _decoded('gt', decode_mask, gt)
        if mask.shape != size:
            raise FrameDecodeError('gt', 'size_differs_from_rgb',
                                   f'ground truth is {mask.shape[1]}x{mask.shape[0]} but the RGB '
                                   f'image is {size[1]}x{size[0]}')
        road_mask = (mask != 0).astype(np.uint8)
    return Frame(rgb=rgb, depth=depth, road_mask=road_mask, stamp_ns=pair.rgb_stamp_ns,
                 frame_id=pair.rgb.header.frame_id, camera_matrix=camera_matrix, name=name,
                 extras=extras)


def _decoded(stream: str, decode, message):
    try:
        return decode(message)
    except MessageDecodeError as error:
        raise FrameDecodeError(stream, error.kind, str(error)) from None


def _projected(cloud, source: str, camera_info, extrinsic: Extrinsic | None,
               camera_frame: str):
    """The in-view points of ``cloud`` (see the module docstring); every failure is the
    cloud's (stream ``'depth'``), as a cloud without a usable calibration cannot be used."""
    if camera_info is None:
        raise FrameDecodeError('depth', 'no_camera_info', f'{source}: no camera_info before it')
    if extrinsic is None:
        raise FrameDecodeError('depth', 'no_extrinsic', f'{source}: no LiDAR-to-camera '
                               f'extrinsic for frame {cloud.header.frame_id!r} (no tf chain '
                               f'joins it to the camera frame {camera_frame!r} yet)')
    try:
        camera = CameraIntrinsics.from_camera_info(camera_info)
    except ValueError as error:
        raise FrameDecodeError('depth', 'bad_camera_info', f'{source}: {error}') from None
    return _decoded('depth', lambda msg: project_points(decode_xyz(msg, source), camera,
                                                        extrinsic, source), cloud)
