"""The frame's LiDAR points labelled by its certificate, as a ``PointCloud2`` payload (numpy
only, no ROS package).

``mmcert/labelled_points`` (``sensor_msgs/PointCloud2``) holds the in-view points of a frame
certified from a cloud (``depth.source: points``), in the order of
:class:`~mmcert_ros.data.projection.ProjectedPoints`. x, y, z are in the *cloud's* frame, so
the message takes the cloud's header (its ``frame_id`` and stamp), not the RGB one.

Layout (:data:`LABELLED_FIELDS`; little-endian, unorganized: height 1, width = the number
of in-view points; ``point_step`` 16 with 2 bytes of padding, ``row_step`` = 16 x width;
``is_dense`` true, as every in-view point is finite):

=============  =======  =======  =========================================================
field          offset   type     content
=============  =======  =======  =========================================================
x, y, z        0, 4, 8  FLOAT32  metres, the cloud's frame (``ProjectedPoints.xyz``)
label          12       UINT8    class id of the point's pixel in ``mmcert/segmentation``
                                 (1 = road)
certified      13       UINT8    1 = the point's pixel is certified at the configured radius
                                 (``mmcert/certification`` 255), 0 = not
=============  =======  =======  =========================================================

The engine certifies pixels (the points are the depth modality's elements, there is no
per-point certificate), so a point carries the label and certification of the pixel it
projects to; points that share a pixel share them, hidden or not behind a nearer one.
"""
from __future__ import annotations

import numpy as np

from mmcert_ros.data.point_cloud import (FLOAT32, POINT_FIELD_TYPES, UINT8, CloudFields,
                                         PointFieldSpec)
from mmcert_ros.data.projection import ProjectedPoints

LABELLED_POINTS = 'mmcert/labelled_points'
#: the fields of one labelled point (offsets in bytes)
LABELLED_FIELDS = (PointFieldSpec('x', 0, FLOAT32), PointFieldSpec('y', 4, FLOAT32),
                   PointFieldSpec('z', 8, FLOAT32), PointFieldSpec('label', 12, UINT8),
                   PointFieldSpec('certified', 13, UINT8))
#: bytes per labelled point (the fields and 2 bytes of padding, 4-byte aligned)
LABELLED_POINT_STEP = 16
_RECORD = np.dtype({'names': [f.name for f in LABELLED_FIELDS],
                    'formats': ['<' + POINT_FIELD_TYPES[f.datatype] for f in LABELLED_FIELDS],
                    'offsets': [f.offset for f in LABELLED_FIELDS],
                    'itemsize': LABELLED_POINT_STEP})


def labelled_cloud(points: ProjectedPoints, certificate) -> CloudFields:
    """The payload of ``mmcert/labelled_points`` for one frame (layout in the module docstring).

    :param points: the frame's in-view points from
        :func:`~mmcert_ros.data.projection.project_points` (``frame.extras['points']``).
    :param certificate: the frame's :class:`mmcert_ros.certify.Certificate` (``labels`` and
        ``certified`` at the points' image size).
    :raises ValueError: if the points carry no cloud coordinates (``xyz`` None: points made
        from a depth image) or the certificate has another size than the points' image.
    """
    if points.xyz is None:
        raise ValueError('labelled cloud: the points carry no cloud coordinates (xyz); only '
                         'points projected from a cloud can be labelled')
    size = (points.height, points.width)
    if certificate.labels.shape != size or certificate.certified.shape != size:
        raise ValueError(f'labelled cloud: the certificate is {certificate.labels.shape} but '
                         f'the points project into {size}')
    record = np.zeros(points.count, dtype=_RECORD)
    for axis, name in enumerate('xyz'):
        record[name] = points.xyz[:, axis]
    record['label'] = certificate.labels.reshape(-1)[points.pixels]
    record['certified'] = certificate.certified.reshape(-1)[points.pixels]
    return CloudFields(height=1, width=points.count, fields=LABELLED_FIELDS, is_bigendian=False,
                       point_step=LABELLED_POINT_STEP,
                       row_step=LABELLED_POINT_STEP * points.count, data=record.tobytes(),
                       is_dense=bool(np.isfinite(points.xyz).all()))
