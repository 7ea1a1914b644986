"""Build ROS sensor messages for the bag writer (``rosbags`` typestore classes).

The message classes come from the ROS 2 Humble typestore: ``std_msgs/Header``,
ROS ``Image``, ROS ``CameraInfo``, ROS ``PointCloud2`` and
``tf2_msgs/TFMessage`` are identical (same RIHS01 type hash) from Humble to Kilted, so the
bags read on every supported distro.
"""
from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore

from mmcert_ros.data.point_cloud import CloudFields
from mmcert_ros.data.projection import Extrinsic
from mmcert_ros.segmenter.codec import ImageFields
from mmcert_ros.segmenter.message_fields import ns_to_sec_nanosec, rectified_camera_info

#: The typestore used to build, serialize, and (for bags without embedded definitions) read.
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINT_CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
TF_TYPE = 'tf2_msgs/msg/TFMessage'
TF_STATIC_TOPIC = '/tf_static'


def header(stamp_ns: int, frame_id: str):
    """``std_msgs/Header`` for a stamp in integer nanoseconds (must be >= 0)."""
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    types = TYPESTORE.types
    stamp = types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
    return types['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def image_message(image: ImageFields, stamp_ns: int, frame_id: str):
    """ROS ``Image`` with the given header around already-encoded image fields."""
    data = np.frombuffer(bytes(image.data), dtype=np.uint8)
    if data.size != image.step * image.height:
        raise ValueError(
            f'image data has {data.size} bytes, expected step * height = '
            f'{image.step} * {image.height}')
    return TYPESTORE.types[IMAGE_TYPE](
        header=header(stamp_ns, frame_id), height=image.height, width=image.width,
        encoding=image.encoding, is_bigendian=image.is_bigendian, step=image.step, data=data)


def camera_info_from_projection(projection: np.ndarray, width: int, height: int,
                                stamp_ns: int, frame_id: str):
    """A camera-info message of a rectified camera from its 3x4 projection matrix P
    (:func:`~mmcert_ros.segmenter.message_fields.rectified_camera_info`)."""
    types = TYPESTORE.types
    roi = types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header(stamp_ns, frame_id), **rectified_camera_info(projection, width, height),
        binning_x=0, binning_y=0, roi=roi)


def point_cloud_message(cloud: CloudFields, stamp_ns: int, frame_id: str):
    """ROS ``PointCloud2`` with the given header around encoded cloud fields."""
    types = TYPESTORE.types
    fields = [types['sensor_msgs/msg/PointField'](name=f.name, offset=f.offset,
                                                  datatype=f.datatype, count=f.count)
              for f in cloud.fields]
    return types[POINT_CLOUD_TYPE](
        header=header(stamp_ns, frame_id), height=cloud.height, width=cloud.width,
        fields=fields, is_bigendian=cloud.is_bigendian, point_step=cloud.point_step,
        row_step=cloud.row_step, data=np.frombuffer(cloud.data, dtype=np.uint8),
        is_dense=cloud.is_dense)


def static_transform_message(extrinsic: Extrinsic, parent: str, child: str, stamp_ns: int):
    """``tf2_msgs/TFMessage`` (for ``/tf_static``) holding the pose of ``child`` in
    ``parent``: ``p_parent = R p_child + t`` (the LiDAR-to-camera extrinsic)."""
    from scipy.spatial.transform import Rotation

    types = TYPESTORE.types
    x, y, z, w = Rotation.from_matrix(extrinsic.rotation).as_quat()
    transform = types['geometry_msgs/msg/Transform'](
        translation=types['geometry_msgs/msg/Vector3'](*(float(v) for v in extrinsic.translation)),
        rotation=types['geometry_msgs/msg/Quaternion'](x=float(x), y=float(y), z=float(z),
                                                       w=float(w)))
    stamped = types['geometry_msgs/msg/TransformStamped'](
        header=header(stamp_ns, parent), child_frame_id=child, transform=transform)
    return types[TF_TYPE](transforms=[stamped])
