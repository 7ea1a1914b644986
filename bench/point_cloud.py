"""Cost of LiDAR input: cloud decode + projection per scan, and certification per frame with
points against depth images.

1. A 120,000-point scan (64 beams x 1875 azimuths over 360 degrees, x/y/z/intensity FLOAT32,
   16-byte points, the Velodyne driver's layout) with KITTI's calibration: time of
   ``decode_xyz`` + ``project_points`` (+ the z-buffer), and of ``sensor_msgs_py``'s
   ``read_points`` for the decode alone where it is importable.
2. One held-out synthetic 1242x375 frame with LiDAR depth, N = 100: ``certify`` with the
   depth image (k = 0.214 % of the pixels) and with the same scan as points
   (k = ``--keep-points``), measured alternately in one run.

    python bench/point_cloud.py --repeats 5 --json docs/figures/point_cloud.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.sim.camera import CameraModel
from mmcert_ros.data.kitti import lidar_calibration
from mmcert_ros.data.point_cloud import decode_xyz, encode_xyz
from mmcert_ros.data.projection import (CameraIntrinsics, points_from_depth_image,
                                        project_points, zbuffer)
from mmcert_ros.sim.synthetic import SyntheticDrive
from mmcert_ros.models import load_model
from mmcert_ros.speed.machine import machine_line


def velodyne_scan(beams: int = 64, azimuths: int = 1875, seed: int = 0) -> np.ndarray:
    """``(beams * azimuths, 3)`` points of a spinning scanner over a flat road 1.73 m below
    and a ring of walls 8 to 60 m away (x forward, y left, z up)."""
    rng = np.random.default_rng(seed)
    elevation = np.radians(np.linspace(-24.8, 2.0, beams))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)[None, :]
    wall = rng.uniform(8, 60, (1, azimuths))
    ground = np.where(elevation < 0, 1.73 / np.tan(-np.minimum(elevation, -1e-3)), np.inf)
    distance = np.minimum(wall, ground)
    x = distance * np.cos(azimuth)
    y = distance * np.sin(azimuth)
    z = np.maximum(distance * np.tan(elevation), -1.73)
    return np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32)


def timed(function, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        function()
        times.append(time.perf_counter() - tic)
    return {'median_s': statistics.median(times), 'best_s': min(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--frame-repeats', type=int, default=2,
                        help='certifications of each kind, alternating')
    parser.add_argument('--keep-points', type=int, default=CertifyConfig.keep_points)
    parser.add_argument('--checkpoint', default='', help="model ('' = the shipped default)")
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load

    camera = CameraModel.kitti()
    calibration = lidar_calibration(camera.matrix)
    intrinsics = CameraIntrinsics(camera.width, camera.height, camera.matrix)
    extrinsic = calibration.camera_extrinsic()
    scan = velodyne_scan()
    cloud = encode_xyz(scan, intensity=np.ones(len(scan)), organized_width=1875)
    decode = timed(lambda: decode_xyz(cloud), args.repeats)
    full = timed(lambda: zbuffer(project_points(decode_xyz(cloud), intrinsics,
                                                extrinsic)), args.repeats)
    in_view = project_points(decode_xyz(cloud), intrinsics, extrinsic).count
    figures = {'scan_points': len(scan), 'in_view_points': in_view,
               'decode': decode, 'decode_project_zbuffer': full,
               'load_average_1min': os.getloadavg()[0]}
    upstream = upstream_decode(cloud, args.repeats)
    if upstream is not None:
        figures['sensor_msgs_py_read_points'] = upstream
    print(f'scan: {len(scan)} points, {in_view} in view')
    print(f"decode_xyz: median {decode['median_s'] * 1e3:.1f} ms; decode + project + z-buffer: "
          f"median {full['median_s'] * 1e3:.1f} ms")
    if upstream is not None:
        print(f"sensor_msgs_py read_points (decode only): median "
              f"{upstream['median_s'] * 1e3:.1f} ms")

    drive = SyntheticDrive(900000)
    frame = drive.frame(0, 'lidar')
    points = points_from_depth_image(frame.depth)
    config = CertifyConfig(num_samples=100, seed=0, keep_points=args.keep_points)
    segmenter = CertifiedSegmenter(load_model(args.checkpoint or None, 'cpu'), config)
    segmenter.certify(frame.rgb, frame.depth)      # warm-up
    per_frame = {'depth_image': [], 'points': []}
    for _ in range(args.frame_repeats):
        for kind, depth in (('depth_image', frame.depth), ('points', points)):
            tic = time.perf_counter()
            segmenter.certify(frame.rgb, depth)
            per_frame[kind].append(time.perf_counter() - tic)
    figures['certify_n100_s'] = {kind: {'median_s': statistics.median(t), 'best_s': min(t)}
                                 for kind, t in per_frame.items()}
    figures['certify_points_over_image'] = (statistics.median(per_frame['points'])
                                            / statistics.median(per_frame['depth_image']))
    figures['n_points'] = points.count
    figures['load_average_1min_end'] = os.getloadavg()[0]
    for kind, values in figures['certify_n100_s'].items():
        print(f"certify N=100 with {kind}: median {values['median_s']:.2f} s, "
              f"best {values['best_s']:.2f} s")
    print(f"points / depth image: {figures['certify_points_over_image']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


def upstream_decode(cloud, repeats: int) -> dict | None:
    """``read_points`` of sensor_msgs_py on the same cloud as an rclpy message, or None."""
    try:
        from sensor_msgs.msg import PointCloud2, PointField
        from sensor_msgs_py.point_cloud2 import read_points
    except ImportError:
        return None
    message = PointCloud2(height=cloud.height, width=cloud.width, point_step=cloud.point_step,
                          row_step=cloud.row_step, is_dense=cloud.is_dense, is_bigendian=False,
                          fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype,
                                             count=f.count) for f in cloud.fields])
    message.data = cloud.data

    def decode():
        records = read_points(message, field_names=('x', 'y', 'z'), skip_nans=True)
        return np.stack([records[n] for n in 'xyz'], axis=1)

    return timed(decode, repeats)


if __name__ == '__main__':
    raise SystemExit(main())
