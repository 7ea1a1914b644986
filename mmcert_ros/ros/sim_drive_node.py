"""ROS 2 node ``mmcert_sim_drive``: the built-in simulator publishing a synthetic drive.

Publishes, every ``1 / rate_hz`` seconds and all with one header (stamp = the node clock at
render time, so pipeline latency is measured from capture):

* ``rgb/image`` in ``rgb_encoding`` (rgb8, bgr8, rgba8, bgra8, mono8), ``width`` x ``height``;
* ``depth/image`` in ``depth_encoding`` (32FC1 metres with NaN = invalid, or 16UC1/mono16
  millimetres with 0 = invalid; REP 118), ``depth_width`` x ``depth_height`` (0 = RGB size;
  another size is resampled nearest-neighbour, like a driver's decimation);
  with ``depth_mode: points`` instead ``depth/points``: the simulated LiDAR's scan as a
  ``sensor_msgs/PointCloud2`` (x, y, z, intensity FLOAT32; frame ``lidar_frame_id``; its
  camera <- LiDAR extrinsic is the drive's ``lidar_calibration.camera_extrinsic()``),
  stamped like the images;
* ``rgb/camera_info`` (the scaled KITTI intrinsics, no distortion);
* ``gt/road_mask`` (mono8 ground truth, 255 = road, 0 = not road).

Encodings and sizes mimic real sources (``config/carla.yaml``: bgra8 + 32FC1;
``config/realsense.yaml``: rgb8 + 16UC1; ``config/kitti.yaml``). With ``num_frames`` > 0 the
node exits after publishing that many frames; with ``loop_frames`` = K > 0 it repeats the
first K frames (rendered once) with fresh stamps, to feed benchmarks faster than rendering
allows. Its parameters are read-only (set at start).

Start and end: the drive starts only once every output topic has its expected subscribers
(``wait_for_subscribers`` on the three camera topics, ``wait_for_gt_subscribers`` on the
ground truth), so no frame is published into a graph still being discovered; after the last
frame the node waits until every reliable subscriber has acknowledged it (at most
``DELIVERY_TIMEOUT_S``) before it exits. A best-effort subscriber never acknowledges, so
there it cannot know.
"""
from __future__ import annotations

from typing import NoReturn

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from mmcert_ros.data.depth import metres_to_millimetres
from mmcert_ros.data.point_cloud import encode_xyz
from mmcert_ros.data.road import ground_truth_image
from mmcert_ros.segmenter.codec import RGB_ENCODINGS, encode_image
from mmcert_ros.segmenter.message_fields import projection_from_intrinsics, rectified_camera_info
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.parameters import RELIABILITIES, ParameterSpec
from mmcert_ros.ros.parameter_descriptors import declare_parameters
from mmcert_ros.ros.process import exit_process, run_node

NODE_NAME = 'mmcert_sim_drive'
#: depth encodings the simulator publishes (all the segmenter decodes)
PUBLISHED_DEPTH_ENCODINGS = ('32FC1', '16UC1', 'mono16')
DEPTH_MODES = ('dense', 'lidar', 'points')
#: longest wait after the last frame for reliable subscribers to acknowledge it (seconds)
DELIVERY_TIMEOUT_S = 30.0

PARAMETERS = tuple(ParameterSpec(*spec, read_only=True) for spec in (
    ('rate_hz', 10.0, 'frames per second', 0.1, 1000.0),
    ('num_frames', 0, 'frames to publish before exiting; 0 = endless', 0, 10_000_000),
    ('seed', 0, 'drive seed: the same seed gives the same drive', 0, 2 ** 62),
    ('width', 1242, 'RGB width, pixels', 8, 8192),
    ('height', 375, 'RGB height, pixels', 8, 8192),
    ('depth_width', 0, 'depth width, pixels; 0 = the RGB width', 0, 8192),
    ('depth_height', 0, 'depth height, pixels; 0 = the RGB height', 0, 8192),
    ('rgb_encoding', 'rgb8', 'encoding of rgb/image', None, None, ', '.join(RGB_ENCODINGS)),
    ('depth_encoding', '32FC1', 'encoding of depth/image', None, None,
     ', '.join(PUBLISHED_DEPTH_ENCODINGS)),
    ('depth_mode', 'dense', "'dense' z-depth or sparse 'lidar' returns on depth/image, or "
     "'points': the LiDAR scan as a PointCloud2 on depth/points", None, None,
     ', '.join(DEPTH_MODES)),
    ('lidar_frame_id', 'velodyne', 'header frame_id of depth/points (depth_mode points)'),
    ('frame_id', 'camera', 'header frame_id of every message'),
    ('qos.reliability', 'reliable', 'reliability of the publishers', None, None,
     ', '.join(RELIABILITIES)),
    ('wait_for_subscribers', 0, 'hold the drive until rgb/image, depth/image and '
     'rgb/camera_info each have this many subscribers', 0, 1000),
    ('wait_for_gt_subscribers', 0, 'hold the drive until gt/road_mask has this many subscribers',
     0, 1000),
    ('loop_frames', 0, 'repeat the first K frames, rendered once (for fast benchmark feeds); '
     '0 = render every frame', 0, 10_000),
))


def resample_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling by pixel centres (keeps NaN as NaN, invents no values)."""
    rows = np.minimum(((np.arange(height) + 0.5) * image.shape[0] / height).astype(int),
                      image.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * image.shape[1] / width).astype(int),
                      image.shape[1] - 1)
    return image[rows[:, None], cols[None, :]]


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image, uint8."""
    return np.rint(rgb @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)


class SimDriveNode(Node):
    """Publishes a deterministic synthetic drive (see the module docstring)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        values = declare_parameters(self, PARAMETERS)
        self.check(values)
        from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive
        config = SceneConfig(frame_rate_hz=values['rate_hz']).with_image_size(
            values['width'], values['height'])
        self._drive = SyntheticDrive(values['seed'], config)
        self._values = values
        self._depth_size = (values['depth_height'] or values['height'],
                            values['depth_width'] or values['width'])
        reliability = (ReliabilityPolicy.RELIABLE if values['qos.reliability'] == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(depth=5, reliability=reliability)
        self._rgb_pub = self.create_publisher(Image, 'rgb/image', qos)
        self._points = values['depth_mode'] == 'points'
        self._depth_pub = (self.create_publisher(PointCloud2, 'depth/points', qos)
                           if self._points else self.create_publisher(Image, 'depth/image', qos))
        self._info_pub = self.create_publisher(CameraInfo, 'rgb/camera_info', qos)
        self._gt_pub = self.create_publisher(Image, 'gt/road_mask', qos)
        self._index = 0
        self._cache: dict[int, tuple] = {}
        self.done = False
        self.create_timer(1.0 / values['rate_hz'], self._tick)
        self.get_logger().info(
            f'drive {values["seed"]}: {values["width"]}x{values["height"]} '
            f'{values["rgb_encoding"]}, depth {self._depth_size[1]}x{self._depth_size[0]} '
            f'{values["depth_encoding"]} ({values["depth_mode"]}) at {values["rate_hz"]} Hz')

    @staticmethod
    def check(values: dict) -> None:
        """Raise :class:`UserError` naming the parameter if a choice-valued one is not allowed."""
        for name, allowed in (('rgb_encoding', tuple(RGB_ENCODINGS)),
                              ('depth_encoding', PUBLISHED_DEPTH_ENCODINGS),
                              ('depth_mode', DEPTH_MODES),
                              ('qos.reliability', RELIABILITIES)):
            if values[name] not in allowed:
                raise UserError(f'{name} must be one of {allowed}, got {values[name]!r}')

    def _subscribers_ready(self) -> bool:
        """Whether every output topic has its expected number of subscribers."""
        camera = self._values['wait_for_subscribers']
        return (all(publisher.get_subscription_count() >= camera
                    for publisher in (self._rgb_pub, self._depth_pub, self._info_pub))
                and self._gt_pub.get_subscription_count()
                >= self._values['wait_for_gt_subscribers'])

    def _tick(self) -> None:
        if self.done or not self._subscribers_ready():
            return
        header = Image().header
        header.stamp = self.get_clock().now().to_msg()
        header.frame_id = self._values['frame_id']
        loop = self._values['loop_frames']
        index = self._index % loop if loop else self._index
        if index not in self._cache:
            encoded = self._render(index)
            if loop:
                self._cache[index] = encoded
        else:
            encoded = self._cache[index]
        (rgb, depth, gt), matrix = encoded
        for publisher, fields in ((self._rgb_pub, rgb), (self._gt_pub, gt)):
            publisher.publish(fields.copy_to(Image(header=header)))
        if self._points:
            cloud_header = type(header)(stamp=header.stamp,
                                        frame_id=self._values['lidar_frame_id'])
            self._depth_pub.publish(depth.copy_to(PointCloud2(header=cloud_header), PointField))
        else:
            self._depth_pub.publish(depth.copy_to(Image(header=header)))
        self._info_pub.publish(self._camera_info(header, matrix))
        self._index += 1
        if self._values['num_frames'] and self._index >= self._values['num_frames']:
            self.get_logger().info(f'published {self._index} frames; done')
            self.done = True

    def _render(self, index: int):
        """``((rgb, depth, gt) fields, K)`` of frame ``index`` in the configured encodings
        (depth: ImageFields, or the scan's CloudFields with ``depth_mode: points``)."""
        mode = self._values['depth_mode']
        rendering = self._drive.rendering(index)
        frame = self._drive.to_frame(rendering, 'dense' if mode == 'points' else mode)
        rgb_encoding = self._values['rgb_encoding']
        rgb = to_grey(frame.rgb) if rgb_encoding == 'mono8' else frame.rgb
        rgb_fields = encode_image(rgb, rgb_encoding)
        gt_fields = encode_image(ground_truth_image(frame.road_mask), 'mono8')
        if mode == 'points':
            scan = self._drive.lidar_scan(rendering)
            return (rgb_fields, encode_xyz(scan[:, :3], scan[:, 3]), gt_fields), \
                frame.camera_matrix
        depth = frame.depth
        if depth.shape != self._depth_size:
            depth = resample_nearest(depth, *self._depth_size)
        depth_encoding = self._values['depth_encoding']
        if depth_encoding != '32FC1':
            depth = metres_to_millimetres(depth, source='simulated depth')
        return (rgb_fields, encode_image(depth, depth_encoding), gt_fields), frame.camera_matrix

    def wait_for_delivery(self, timeout_s: float = DELIVERY_TIMEOUT_S) -> bool:
        """Wait until every reliable subscriber acknowledged the last frame, at most
        ``timeout_s`` per topic; whether all did."""
        acked = all([publisher.wait_for_all_acked(Duration(seconds=timeout_s))
                     for publisher in (self._rgb_pub, self._depth_pub, self._gt_pub,
                                       self._info_pub)])
        if not acked:
            self.get_logger().warning(f'the last frame was not acknowledged by every reliable '
                                      f'subscriber within {timeout_s:g} s')
        return acked

    def _camera_info(self, header, matrix: np.ndarray) -> CameraInfo:
        fields = rectified_camera_info(projection_from_intrinsics(matrix),
                                       self._values['width'], self._values['height'])
        return CameraInfo(header=header, **{name: value.tolist() if isinstance(value, np.ndarray)
                                            else value for name, value in fields.items()})


def main(args: list[str] | None = None) -> NoReturn:
    """Run until the drive is done (``num_frames``) or shutdown, then end the process with
    its exit status (:func:`~mmcert_ros.ros.process.exit_process`)."""
    exit_process(run_node(NODE_NAME, SimDriveNode, _spin, args))


def _spin(node: SimDriveNode) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while rclpy.ok() and not node.done:
        executor.spin_once(timeout_sec=0.1)
    if rclpy.ok():
        node.wait_for_delivery()


if __name__ == '__main__':
    main()
