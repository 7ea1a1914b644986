"""A LiDAR stand-in in its own process, for the ROS point-cloud tests: for every RGB image it
hears on ``rgb/image`` with frame_id ``camera`` it publishes :func:`scene_points` as a
``sensor_msgs/PointCloud2`` on ``depth/points`` (frame ``lidar``) with the image's stamp, so
the segmenter pairs them exactly. Killing this process is a LiDAR that stops.

    python test/helpers/ros_cloud_echo.py        (ROS_DOMAIN_ID etc. from the environment)
"""
from __future__ import annotations

import numpy as np

from mmcert_ros.data.point_cloud import encode_xyz

#: size of the RGB images the tests send, and the camera the points are placed for
H, W = 48, 64
K = (50.0, 0.0, W / 2, 0.0, 50.0, H / 2, 0.0, 0.0, 1.0)
#: the LiDAR frame equals the camera's optical frame (depth.extrinsic '0 0 0 0 0 0 1')
IDENTITY = '0 0 0 0 0 0 1'
POINTS = 300
ECHOED_FRAME = 'camera'


def scene_points(count: int = POINTS, seed: int = 5) -> np.ndarray:
    """``(count, 3)`` float32 points 2 to 12 m ahead, every one inside the 64x48 view of K."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(2.0, 12.0, count)
    u, v = rng.uniform(0.5, W - 1.5, count), rng.uniform(0.5, H - 1.5, count)
    return np.stack([(u - K[2]) * z / K[0], (v - K[5]) * z / K[4], z], axis=1).astype(np.float32)


def cloud_message(points: np.ndarray, header):
    """``sensor_msgs/PointCloud2`` of ``points`` (x, y, z, intensity FLOAT32) with ``header``."""
    from sensor_msgs.msg import PointCloud2, PointField

    cloud = encode_xyz(points, intensity=np.ones(len(points)))
    return PointCloud2(header=header, height=cloud.height, width=cloud.width,
                       fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype,
                                          count=f.count) for f in cloud.fields],
                       is_bigendian=cloud.is_bigendian, point_step=cloud.point_step,
                       row_step=cloud.row_step, data=cloud.data, is_dense=cloud.is_dense)


def main() -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    rclpy.init()
    node = rclpy.create_node('cloud_echo')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(PointCloud2, 'depth/points', qos)
    points = scene_points()

    def echo(image) -> None:
        if image.header.frame_id == ECHOED_FRAME:
            header = type(image.header)(stamp=image.header.stamp, frame_id='lidar')
            publisher.publish(cloud_message(points, header))

    node.create_subscription(Image, 'rgb/image', echo, qos)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
