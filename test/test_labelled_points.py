"""mmcert/labelled_points: the in-view LiDAR points with their pixel's label and certification,
checked against a point-by-point projection and read back by two PointCloud2 readers."""
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from mmcert_ros.data.point_cloud import FLOAT32, UINT8, PointFieldSpec, decode_xyz
from mmcert_ros.data.projection import (MIN_DEPTH_M, CameraIntrinsics, Extrinsic,
                                        points_from_depth_image, project_points)
from mmcert_ros.segmenter.labelled_points import (LABELLED_FIELDS, LABELLED_POINT_STEP,
                                                  labelled_cloud)

WIDTH, HEIGHT = 160, 60
K = np.array([[120.0, 0.0, 79.5], [0.0, 118.0, 29.75], [0.0, 0.0, 1.0]])
#: LiDAR (x ahead, y left, z up) -> camera optical (x right, y down, z ahead)
LIDAR_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
TRANSLATION = np.array([0.05, -0.2, 0.1])


def scene(seed=0):
    rng = np.random.default_rng(seed)
    lidar = rng.uniform([-5, -20, -3], [40, 20, 3], (3000, 3)).astype(np.float32)
    projected = project_points(lidar, CameraIntrinsics(WIDTH, HEIGHT, K),
                               Extrinsic(LIDAR_TO_OPTICAL, TRANSLATION))
    certificate = SimpleNamespace(labels=rng.integers(0, 2, (HEIGHT, WIDTH)).astype(np.uint8),
                                  certified=rng.random((HEIGHT, WIDTH)) < 0.5)
    return lidar, projected, certificate


def brute_force(lidar, certificate):
    """(xyz, label, certified) of every in-view point, one point at a time, in input order."""
    rows = []
    for point in lidar:
        x, y, z = LIDAR_TO_OPTICAL @ point.astype(np.float64) + TRANSLATION
        if z <= MIN_DEPTH_M:
            continue
        u, v = round(K[0, 0] * x / z + K[0, 2]), round(K[1, 1] * y / z + K[1, 2])
        if 0 <= u < WIDTH and 0 <= v < HEIGHT:
            rows.append((*point, certificate.labels[v, u], int(certificate.certified[v, u])))
    return rows


def unpack(cloud):
    """Every point of ``cloud`` read field by field at its declared offset and type."""
    codes = {FLOAT32: 'f', UINT8: 'B'}
    return [tuple(struct.unpack_from('<' + codes[f.datatype], cloud.data,
                                     i * cloud.point_step + f.offset)[0]
                  for f in cloud.fields) for i in range(cloud.width)]


def test_layout_follows_the_pointcloud2_rules():
    _, projected, certificate = scene()
    cloud = labelled_cloud(projected, certificate)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('label', 12, 2, 1),
        ('certified', 13, 2, 1)]
    assert (cloud.height, cloud.width) == (1, projected.count) and projected.count > 100
    assert cloud.point_step == LABELLED_POINT_STEP == 16
    assert max(f.offset + 4 if f.datatype == FLOAT32 else f.offset + 1
               for f in LABELLED_FIELDS) <= cloud.point_step
    assert cloud.row_step == cloud.point_step * cloud.width
    assert len(cloud.data) == cloud.row_step * cloud.height
    assert cloud.is_bigendian is False and cloud.is_dense is True


def test_points_carry_their_pixels_label_and_certification():
    lidar, projected, certificate = scene(1)
    expected = brute_force(lidar, certificate)
    got = unpack(labelled_cloud(projected, certificate))
    assert len(got) == len(expected) == projected.count
    assert got == [tuple(np.float32(value) if i < 3 else value for i, value in enumerate(row))
                   for row in expected]
    assert {row[3] for row in got} == {0, 1} and {row[4] for row in got} == {0, 1}


def test_the_packages_reader_decodes_the_xyz():
    lidar, projected, certificate = scene(2)
    message = labelled_cloud(projected, certificate).copy_to(SimpleNamespace(), PointFieldSpec)
    xyz = decode_xyz(message, 'labelled')
    np.testing.assert_array_equal(xyz, projected.xyz)
    expected = np.array([row[:3] for row in brute_force(lidar, certificate)], np.float32)
    np.testing.assert_array_equal(xyz, expected)


@pytest.mark.ros
def test_sensor_msgs_py_reads_every_field():
    point_cloud2 = pytest.importorskip('sensor_msgs_py.point_cloud2',
                                       reason='sensor_msgs_py is not installed '
                                              '(../shared/ros-tools/install .venv)')
    from sensor_msgs.msg import PointCloud2, PointField
    lidar, projected, certificate = scene(3)
    message = labelled_cloud(projected, certificate).copy_to(PointCloud2(), PointField)
    names = ('x', 'y', 'z', 'label', 'certified')
    records = point_cloud2.read_points(message, field_names=names)
    assert records.dtype['label'] == np.uint8 and records.dtype['x'] == np.float32
    assert [tuple(record) for record in records.tolist()] == \
        [tuple(float(np.float32(v)) if i < 3 else int(v) for i, v in enumerate(row))
         for row in brute_force(lidar, certificate)]


def test_points_without_cloud_coordinates_or_of_another_size_are_refused():
    _, projected, certificate = scene()
    depth = np.full((HEIGHT, WIDTH), np.nan, np.float32)
    depth[3, 4] = 7.0
    with pytest.raises(ValueError, match='no cloud coordinates'):
        labelled_cloud(points_from_depth_image(depth), certificate)
    small = SimpleNamespace(labels=certificate.labels[:-1], certified=certificate.certified[:-1])
    with pytest.raises(ValueError, match='the points project into'):
        labelled_cloud(projected, small)
