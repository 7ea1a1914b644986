"""Decode and encode ROS ``PointCloud2`` payloads with numpy only (no ROS package).

Every function works duck-typed on any object with the fields ``height, width, fields,
is_bigendian, point_step, row_step, data, is_dense`` (each field with ``name, offset,
datatype, count``): a ROS ``PointCloud2`` message from the Python client library, a message
deserialized by ``rosbags``, or :class:`CloudFields`. ROS's Python helper
``point_cloud2.read_points`` gives the same points where it is importable (tested); this
reader needs nothing but numpy.

Guarantees of :func:`decode_xyz`:

* Fields ``x``, ``y``, ``z`` must exist, be FLOAT32 with count 1 and lie inside
  ``point_step``; they may sit at any offsets. Every other field (intensity, ring, time...)
  is ignored.
* ``row_step >= width * point_step`` and ``len(data) == row_step * height`` exactly; row
  padding is skipped. Organized (``height > 1``) and unorganized (``height == 1``) clouds
  both decode to one ``(M, 3)`` array in row-major order.
* ``is_bigendian`` is honoured (the floats are byte-swapped to native order).
* A point with a non-finite coordinate is a missing return: dropped when the cloud says
  ``is_dense: false``; a cloud that claims ``is_dense: true`` and holds one is refused.
* Failures raise :class:`CloudDecodeError` whose ``kind`` is a short stable string (for
  throttled logging and counters, like ``ImageDecodeError``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmcert_ros.errors import MessageDecodeError

#: PointField datatype constants -> numpy element type (little-endian form)
POINT_FIELD_TYPES: dict[int, str] = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4',
                                     7: 'f4', 8: 'f8'}
#: the sensor_msgs/PointField datatype constants the package writes
UINT8 = 2
FLOAT32 = 7
XYZ = ('x', 'y', 'z')


class CloudDecodeError(MessageDecodeError):
    """A cloud that cannot be used; ``kind`` names the defect.

    Kinds: ``'empty_cloud'`` (no points, or no finite point), ``'missing_field'`` (no x, y
    or z), ``'bad_field'`` (x/y/z not FLOAT32 x 1, or outside the point), ``'bad_step'``
    (point_step / row_step too small), ``'size_mismatch'`` (data length), ``'nan_in_dense'``
    (a non-finite point in a cloud that says it is dense).
    """


@dataclass(frozen=True)
class PointFieldSpec:
    """One ROS ``PointField``: name, byte offset in the point, datatype, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class CloudFields:
    """The payload fields of a ROS ``PointCloud2`` (everything but the header)."""

    height: int
    width: int
    fields: tuple[PointFieldSpec, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool

    def copy_to(self, msg, point_field):
        """Set these fields on ``msg`` (e.g. a ROS ``PointCloud2``) and return it.

        :param point_field: the ``PointField`` message class (or any callable taking
            ``name, offset, datatype, count`` keywords), which builds ``msg.fields``.
        """
        msg.height = self.height
        msg.width = self.width
        msg.fields = [point_field(name=f.name, offset=f.offset, datatype=f.datatype,
                                  count=f.count) for f in self.fields]
        msg.is_bigendian = self.is_bigendian
        msg.point_step = self.point_step
        msg.row_step = self.row_step
        msg.data = self.data
        msg.is_dense = self.is_dense
        return msg


def decode_xyz(cloud, source: str = 'cloud') -> np.ndarray:
    """The cloud's finite points as ``(M, 3)`` float32 metres in the cloud's frame.

    :param cloud: any PointCloud2-shaped object (see the module docstring).
    :param source: what the cloud is (topic, file), used in error messages.
    :raises CloudDecodeError: with the kinds listed there.
    """
    height, width = int(cloud.height), int(cloud.width)
    point_step, row_step = int(cloud.point_step), int(cloud.row_step)
    if height * width == 0:
        raise CloudDecodeError('empty_cloud', f'{source}: the cloud has no points '
                                              f'(height {height}, width {width})')
    offsets = _xyz_offsets(cloud.fields, point_step, source)
    if point_step < 1 or row_step < width * point_step:
        raise CloudDecodeError('bad_step', f'{source}: row_step {row_step} is less than width '
                                           f'{width} x point_step {point_step}')
    data = np.frombuffer(_as_bytes(cloud.data), dtype=np.uint8)
    if data.size != row_step * height:
        raise CloudDecodeError('size_mismatch', f'{source}: data holds {data.size} bytes, '
                                                f'expected row_step {row_step} x height {height}')
    order = '>' if cloud.is_bigendian else '<'
    layout = np.dtype({'names': list(XYZ), 'formats': [order + 'f4'] * 3,
                       'offsets': offsets, 'itemsize': point_step})
    rows = data.reshape(height, row_step)[:, :width * point_step]
    records = np.ascontiguousarray(rows).view(layout).reshape(-1)
    points = np.stack([records[name] for name in XYZ], axis=1).astype(np.float32)
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        if cloud.is_dense:
            raise CloudDecodeError('nan_in_dense', f'{source}: the cloud says is_dense but '
                                                   f'{int((~finite).sum())} points are not finite')
        points = points[finite]
    if not len(points):
        raise CloudDecodeError('empty_cloud', f'{source}: no point of the cloud is finite')
    return points


def encode_xyz(points: np.ndarray, intensity: np.ndarray | None = None,
               organized_width: int | None = None) -> CloudFields:
    """A little-endian dense cloud of ``(M, 3)`` metres (and optional float intensity).

    Fields x, y, z (and intensity) are FLOAT32 at offsets 0, 4, 8 (12); the point step is
    16 bytes either way (the layout the Velodyne and Ouster drivers publish).

    :param organized_width: if given, the cloud is organized as ``M / width`` rows.
    :raises ValueError: on a points array that is not ``(M, 3)`` or an intensity of another
        length, or an ``organized_width`` that does not divide M.
    """
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f'points must have shape (M, 3), got {points.shape}')
    width = organized_width or len(points)
    if width < 1 or len(points) % width:
        raise ValueError(f'organized_width {organized_width} does not divide {len(points)}')
    names = list(XYZ) + (['intensity'] if intensity is not None else [])
    record = np.zeros(len(points), dtype=np.dtype({'names': names, 'formats': ['<f4'] * len(names),
                                                   'offsets': [0, 4, 8, 12][:len(names)],
                                                   'itemsize': 16}))
    for axis, name in enumerate(XYZ):
        record[name] = points[:, axis]
    if intensity is not None:
        intensity = np.asarray(intensity, dtype=np.float32).reshape(-1)
        if intensity.shape != (len(points),):
            raise ValueError(f'intensity needs {len(points)} values, got {intensity.size}')
        record['intensity'] = intensity
    fields = tuple(PointFieldSpec(name, 4 * i, FLOAT32) for i, name in enumerate(names))
    return CloudFields(height=len(points) // width, width=width, fields=fields,
                       is_bigendian=False, point_step=16, row_step=16 * width,
                       data=record.tobytes(), is_dense=bool(np.isfinite(points).all()))


def _xyz_offsets(fields: Sequence, point_step: int, source: str) -> list[int]:
    by_name = {str(field.name): field for field in fields}
    missing = [name for name in XYZ if name not in by_name]
    if missing:
        raise CloudDecodeError('missing_field', f'{source}: the cloud has no field '
                                                f'{", ".join(missing)} (fields: '
                                                f'{", ".join(by_name) or "none"})')
    offsets = []
    for name in XYZ:
        field = by_name[name]
        offset, datatype, count = int(field.offset), int(field.datatype), int(field.count)
        if datatype != FLOAT32 or count != 1:
            kind = POINT_FIELD_TYPES.get(datatype, f'type {datatype}')
            raise CloudDecodeError('bad_field', f'{source}: field {name} must be FLOAT32 x 1, '
                                                f'got {kind} x {count}')
        if offset < 0 or offset + 4 > point_step:
            raise CloudDecodeError('bad_field', f'{source}: field {name} at offset {offset} does '
                                                f'not fit in point_step {point_step}')
        offsets.append(offset)
    return offsets


def _as_bytes(data) -> memoryview:
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data).view(np.uint8).reshape(-1))
    return memoryview(data).cast('B')
