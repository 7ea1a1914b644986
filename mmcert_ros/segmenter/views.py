"""Images of a certificate for people to look at (numpy only, no ROS package).

The data topics of :mod:`mmcert_ros.segmenter.outputs` carry values (class ids, 0/255,
t) that look black in an image viewer; these topics show the same certificate in colour,
beside them, at the RGB size and with the RGB header:

=================================  ======  ==============================================
topic                              format  content
=================================  ======  ==============================================
``mmcert/view/segmentation``       rgb8    class colour per pixel (:data:`CLASS_COLOURS`):
                                           road magenta, not road dark grey
``mmcert/view/certified_radius``   rgb8    black = not certified even at t = 0; a
                                           certified pixel's t on a viridis ramp, from
                                           dark violet at t = 0 to yellow at t >=
                                           ``max_radius`` (brighter = larger t)
=================================  ======  ==============================================

Their pixels are for the eye; programs read the mono8 data topics.
"""
from __future__ import annotations

import numpy as np

from mmcert_ros.segmenter.codec import ImageFields, encode_image
from mmcert_ros.segmenter.outputs import encode_requested

VIEW_SEGMENTATION = 'mmcert/view/segmentation'
VIEW_CERTIFIED_RADIUS = 'mmcert/view/certified_radius'
#: the topics encoded by :func:`view_images`
VIEW_TOPICS = (VIEW_SEGMENTATION, VIEW_CERTIFIED_RADIUS)
#: RGB colour of each class id (indexed by id, as :data:`~mmcert_ros.data.road.CLASS_NAMES`):
#: not road dark grey, road magenta (the road colour of the KITTI road benchmark)
CLASS_COLOURS = np.array([(64, 64, 64), (255, 0, 255)], np.uint8)
#: colour of a pixel that is not certified even at t = 0 in ``mmcert/view/certified_radius``
NOT_CERTIFIED_COLOUR = (0, 0, 0)
#: default t drawn in the ramp's top colour (larger t saturate there): the t of a unanimous
#: pixel under the default engine settings (N = 100, alpha 0.001, ray (1, 2)) at 1242x375
DEFAULT_MAX_RADIUS = 16
#: matplotlib's viridis at 0, 1/8, ..., 1 (RGB): the anchors of :data:`RADIUS_RAMP`
_VIRIDIS = np.array([(68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142),
                     (33, 145, 140), (40, 174, 128), (94, 201, 98), (173, 220, 48),
                     (253, 231, 37)], np.float64)
#: ``(256, 3)`` uint8, the colour of t = 0 (row 0) up to t = max_radius (row 255); its luma
#: (:func:`luma`) never decreases along the rows and row 0 is far from black (luma 30)
RADIUS_RAMP = np.rint(np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_VIRIDIS)), _VIRIDIS[:, c])
     for c in range(3)], axis=1)).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Brightness of ``(..., 3)`` RGB values: Rec. 601 luma ``0.299 R + 0.587 G + 0.114 B``."""
    return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


def segmentation_view(labels: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB: :data:`CLASS_COLOURS` of each pixel's class id.

    :param labels: ``(H, W)`` integer class ids.
    :raises ValueError: on a class id without a colour (outside ``0 .. len(CLASS_COLOURS) - 1``).
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_COLOURS)):
        raise ValueError(f'segmentation view: class ids must lie in 0..{len(CLASS_COLOURS) - 1}'
                         f', got {int(labels.min())}..{int(labels.max())}')
    return CLASS_COLOURS[labels]


def radius_view(radius: np.ndarray, max_radius: int = DEFAULT_MAX_RADIUS) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a radius map in t (-1 = not certified at t = 0).

    A pixel with t < 0 is exactly :data:`NOT_CERTIFIED_COLOUR` (black); a pixel with t >= 0
    takes row ``round(255 * min(t, max_radius) / max_radius)`` of :data:`RADIUS_RAMP`, so its
    luma never decreases with t and every t >= ``max_radius`` has the top colour.

    :param radius: ``(H, W)`` integer t, as ``Certificate.radius``.
    :param max_radius: the t drawn in the top colour, >= 1.
    :raises ValueError: if ``max_radius`` < 1.
    """
    if max_radius < 1:
        raise ValueError(f'radius view: max_radius must be >= 1, got {max_radius}')
    radius = np.asarray(radius)
    scaled = np.clip(radius, 0, max_radius).astype(np.float64) * (255.0 / max_radius)
    image = RADIUS_RAMP[np.rint(scaled).astype(np.intp)]
    image[radius < 0] = NOT_CERTIFIED_COLOUR
    return image


def view_images(certificate, topics: set[str] | frozenset[str],
                max_radius: int = DEFAULT_MAX_RADIUS) -> dict[str, ImageFields]:
    """Encode the requested view ``topics`` (of :data:`VIEW_TOPICS`) of one frame, rgb8.

    :param certificate: a :class:`mmcert_ros.certify.Certificate` (``labels``, ``radius``).
    :param max_radius: t drawn in the top colour of ``mmcert/view/certified_radius``.
    :raises ValueError: on a topic outside :data:`VIEW_TOPICS` (nothing is encoded), and as
        :func:`segmentation_view` and :func:`radius_view`.
    """
    return encode_requested({
        VIEW_SEGMENTATION: lambda: encode_image(segmentation_view(certificate.labels), 'rgb8'),
        VIEW_CERTIFIED_RADIUS: lambda: encode_image(
            radius_view(certificate.radius, max_radius), 'rgb8'),
    }, topics)
