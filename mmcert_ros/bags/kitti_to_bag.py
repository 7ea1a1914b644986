"""Convert a KITTI Road folder into a rosbag2 bag (what ``mmcert-ros kitti2bag`` runs).

Per frame, in name order, stamped 100 ms apart (10 Hz, as
:class:`~mmcert_ros.data.kitti.KittiRoad` spaces them) from ``start_ns``: RGB ``rgb8``, depth
``16UC1`` millimetres (0 = invalid), ROS ``CameraInfo`` from the calibration's ``P2`` and,
where the frame has ground truth, ``mono8`` (255 = road). Evaluating the bag gives the same
figures as evaluating the folder: every value survives the conversion exactly.

A frame with a velodyne scan also gets it as ROS ``PointCloud2`` on ``/points``
(frame ``velodyne``; x, y, z and intensity FLOAT32, the reflectance as intensity), and the
calibration as the LiDAR-to-camera extrinsic on ``/tf_static`` (``tf2_msgs/TFMessage``,
parent ``camera``, child ``velodyne``:
:meth:`~mmcert_ros.data.kitti.KittiCalibration.camera_extrinsic`, i.e. ``Tr_velo_to_cam``,
``R0_rect`` and P2's offset). KITTI Road frames come from several drives with their own
calibrations, so a transform is written before the first cloud and again whenever the
calibration changes; a reader applies the latest one logged before each cloud.

A subset with a ``gt_image_2`` folder (``training``) must have the ground truth of every
frame: a missing one stops the conversion before anything is written, naming the files,
instead of writing a bag with fewer ground-truth messages than frames.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmcert_ros.bags.frames import FrameTopics, write_frame
from mmcert_ros.bags.messages import (TF_STATIC_TOPIC, point_cloud_message,
                                      static_transform_message)
from mmcert_ros.bags.writer import BagWriter
from mmcert_ros.data.kitti import KittiCalibration, KittiRoad, read_velodyne
from mmcert_ros.data.point_cloud import encode_xyz

POINTS_TOPIC = '/points'
LIDAR_FRAME = 'velodyne'


def kitti_to_bag(root: str | Path, out: str | Path, *, storage: str = 'mcap',
                 subset: str = 'training', topics: FrameTopics = FrameTopics(),
                 points_topic: str | None = POINTS_TOPIC, start_ns: int = 0,
                 on_frame: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write every frame of a KITTI Road subset to the new bag ``out``.

    :param points_topic: where velodyne scans go (None: not written).
    :param start_ns: header stamp (and log time) of the first frame, nanoseconds since the
        Unix epoch; frame ``i`` is stamped ``start_ns + i * 100 ms``.
    :param on_frame: called with each frame's name after it is written (progress).
    :returns: messages written per topic.
    :raises FileNotFoundError: no KITTI layout, or a frame's file is missing (named), or
        the subset has a ``gt_image_2`` folder and a frame's ground truth is not in it.
    :raises ValueError: a file is unreadable (named); the partial bag is removed.
    :raises BagError: ``out`` exists already.
    """
    dataset = KittiRoad(root, subset)
    check_ground_truth(dataset)
    with BagWriter(out, storage) as bag:
        extrinsic = None
        for name in dataset.names:
            frame = dataset.frame(name)
            frame = dataclasses.replace(frame, stamp_ns=start_ns + frame.stamp_ns)
            paths = dataset.paths(name)
            calibration = KittiCalibration.read(paths['calib'])
            write_frame(bag, frame, topics, depth_encoding='16UC1', projection=calibration.P2)
            if points_topic is not None and paths['velodyne'].is_file():
                current = calibration.camera_extrinsic()
                if extrinsic is None or not np.array_equal(current.matrix, extrinsic.matrix):
                    extrinsic = current
                    bag.write(TF_STATIC_TOPIC, static_transform_message(
                        extrinsic, frame.frame_id, LIDAR_FRAME, frame.stamp_ns), frame.stamp_ns)
                scan = read_velodyne(paths['velodyne'])
                cloud = encode_xyz(scan[:, :3], intensity=scan[:, 3])
                bag.write(points_topic, point_cloud_message(cloud, frame.stamp_ns, LIDAR_FRAME))
            if on_frame is not None:
                on_frame(name)
    return dict(bag.counts)


def check_ground_truth(dataset: KittiRoad) -> None:
    """Every frame of a subset that has a ``gt_image_2`` folder must have its ground truth.

    :raises FileNotFoundError: naming how many are missing and the first files.
    """
    if not (dataset.base / 'gt_image_2').is_dir():
        return
    missing = [str(dataset.paths(name)['gt']) for name in dataset.names
               if not dataset.paths(name)['gt'].is_file()]
    if missing:
        shown = ', '.join(missing[:3]) + (', ...' if len(missing) > 3 else '')
        raise FileNotFoundError(
            f'ground truth missing for {len(missing)} of {len(dataset)} frames: {shown} '
            f'(every frame of {dataset.base} needs one, as its gt_image_2 folder exists)')
