"""PointCloud2 decoding: the numpy reader against sensor_msgs_py, layouts, bad clouds."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mmcert_ros.data.point_cloud import (CloudDecodeError, CloudFields, PointFieldSpec,
                                         decode_xyz, encode_xyz)

FLOAT32, UINT16, FLOAT64 = 7, 4, 8


def _cloud(records: np.ndarray, fields, height: int = 1, big_endian: bool = False,
           dense: bool = False, row_padding: int = 0) -> CloudFields:
    """A cloud holding ``records`` (a structured array) laid out as given."""
    width = len(records) // height
    step = records.dtype.itemsize
    rows = records.tobytes()
    if row_padding:
        rows = b''.join(rows[i * width * step:(i + 1) * width * step] + b'\xab' * row_padding
                        for i in range(height))
    return CloudFields(height=height, width=width, fields=tuple(fields), is_bigendian=big_endian,
                       point_step=step, row_step=width * step + row_padding, data=rows,
                       is_dense=dense)


def _layout(order: str = '<'):
    """x/y/z at unusual offsets between other fields, point_step 32, plus intensity and ring."""
    dtype = np.dtype({'names': ['intensity', 'x', 'ring', 'y', 'z'],
                      'formats': [order + 'f4', order + 'f4', order + 'u2', order + 'f4',
                                  order + 'f4'],
                      'offsets': [0, 6, 10, 16, 24], 'itemsize': 32})
    fields = [PointFieldSpec('intensity', 0, FLOAT32), PointFieldSpec('x', 6, FLOAT32),
              PointFieldSpec('ring', 10, UINT16), PointFieldSpec('y', 16, FLOAT32),
              PointFieldSpec('z', 24, FLOAT32)]
    return dtype, fields


def _records(count: int, order: str = '<', seed: int = 0) -> np.ndarray:
    dtype, _ = _layout(order)
    rng = np.random.default_rng(seed)
    records = np.zeros(count, dtype=dtype)
    for name in ('x', 'y', 'z'):
        records[name] = rng.uniform(-50, 50, count)
    records['intensity'] = rng.uniform(0, 255, count)
    records['ring'] = rng.integers(0, 64, count)
    return records


def _expected(records: np.ndarray) -> np.ndarray:
    return np.stack([records[n].astype(np.float32) for n in 'xyz'], axis=1)


@pytest.mark.parametrize('height', [1, 4])
@pytest.mark.parametrize('order', ['<', '>'])
def test_any_offsets_step_organization_and_byte_order(height, order):
    records = _records(48, order)
    _, fields = _layout(order)
    cloud = _cloud(records, fields, height=height, big_endian=order == '>', row_padding=5)
    np.testing.assert_array_equal(decode_xyz(cloud), _expected(records))


def test_nan_points_dropped_when_not_dense_refused_when_dense():
    records = _records(10)
    records['y'][[2, 7]] = np.nan
    _, fields = _layout()
    points = decode_xyz(_cloud(records, fields, dense=False))
    np.testing.assert_array_equal(points, _expected(records)[[0, 1, 3, 4, 5, 6, 8, 9]])
    with pytest.raises(CloudDecodeError) as caught:
        decode_xyz(_cloud(records, fields, dense=True), source='/points')
    assert caught.value.kind == 'nan_in_dense' and '/points' in str(caught.value)
    assert '2 points' in str(caught.value)


@pytest.mark.parametrize('mutate, kind', [
    (lambda c: replace(c, fields=c.fields[:1] + c.fields[2:]), 'missing_field'),
    (lambda c: replace(c, fields=c.fields[:1] + (PointFieldSpec('x', 6, FLOAT64),)
                       + c.fields[2:]), 'bad_field'),
    (lambda c: replace(c, fields=c.fields[:4] + (PointFieldSpec('z', 30, FLOAT32),)),
     'bad_field'),
    (lambda c: replace(c, data=c.data[:-1]), 'size_mismatch'),
    (lambda c: replace(c, row_step=c.row_step - 1), 'bad_step'),
    (lambda c: replace(c, width=0, data=b''), 'empty_cloud'),
])
def test_bad_clouds_raise_by_kind(mutate, kind):
    _, fields = _layout()
    cloud = mutate(_cloud(_records(6), fields))
    with pytest.raises(CloudDecodeError) as caught:
        decode_xyz(cloud)
    assert caught.value.kind == kind


def test_cloud_of_nan_points_only_is_empty():
    records = _records(4)
    records['x'] = np.nan
    with pytest.raises(CloudDecodeError) as caught:
        decode_xyz(_cloud(records, _layout()[1]))
    assert caught.value.kind == 'empty_cloud'


def test_encode_round_trip_with_intensity_and_organization():
    points = np.random.default_rng(3).normal(size=(12, 3)).astype(np.float32)
    cloud = encode_xyz(points, intensity=np.arange(12), organized_width=4)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (3, 4, 16, True)
    np.testing.assert_array_equal(decode_xyz(cloud), points)
    with pytest.raises(ValueError, match='does not divide'):
        encode_xyz(points, organized_width=5)


# --- the same points as sensor_msgs_py.point_cloud2.read_points (real upstream code) ------

def _upstream():
    return pytest.importorskip('sensor_msgs_py.point_cloud2',
                               reason='sensor_msgs_py is not installed '
                                      '(../shared/ros-tools/install .venv)')


def _message(records: np.ndarray, fields, height: int = 1, big_endian: bool = False):
    from sensor_msgs.msg import PointCloud2, PointField
    width = len(records) // height
    message = PointCloud2(height=height, width=width, is_bigendian=big_endian,
                          point_step=records.dtype.itemsize,
                          row_step=records.dtype.itemsize * width, is_dense=False,
                          fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype,
                                             count=f.count) for f in fields])
    message.data = records.tobytes()
    return message


@pytest.mark.ros
@pytest.mark.parametrize('height', [1, 6])
@pytest.mark.parametrize('order', ['<', '>'])
def test_same_points_as_sensor_msgs_py(height, order):
    point_cloud2 = _upstream()
    records = _records(60, order, seed=5)
    records['z'][[3, 17, 40]] = np.nan
    message = _message(records, _layout(order)[1], height=height, big_endian=order == '>')
    ours = decode_xyz(message)   # the rclpy message itself, duck-typed
    # read_points byte-swaps a big-endian message's buffer in place: read ours first
    upstream = point_cloud2.read_points(message, field_names=('x', 'y', 'z'), skip_nans=True)
    expected = np.stack([upstream[n].astype(np.float32) for n in 'xyz'], axis=1)
    assert ours.shape == (57, 3)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.ros
def test_encoded_cloud_reads_back_with_sensor_msgs_py():
    point_cloud2 = _upstream()
    points = np.random.default_rng(8).uniform(-20, 20, (30, 3)).astype(np.float32)
    encoded = encode_xyz(points, intensity=np.ones(30))
    from sensor_msgs.msg import PointField
    fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
              for f in encoded.fields]
    message = _message(np.frombuffer(encoded.data, dtype=point_cloud2.dtype_from_fields(
        fields, point_step=encoded.point_step)), encoded.fields)
    upstream = point_cloud2.read_points(message, field_names=('x', 'y', 'z'))
    np.testing.assert_array_equal(np.stack([upstream[n] for n in 'xyz'], axis=1), points)
