"""The segmenter's output images, encoded from a certificate (numpy only, no ROS package).

=========================  ======  ===================================================
topic                      format  content
=========================  ======  ===================================================
``mmcert/segmentation``    mono8   majority-vote class id per pixel (1 = road)
``mmcert/certification``   mono8   255 = certified at the configured radius, 0 = not
``mmcert/certified_radius`` mono8  t on the configured ray (saturates at 254);
                                   255 = not certified even at t = 0
``mmcert/overlay``         rgb8    camera image tinted by :mod:`mmcert_ros.segmenter.overlay`
``mmcert/overlay/compressed`` jpeg the same, as a ``sensor_msgs/CompressedImage``
``mmcert/l2_certification`` mono8  255 = l2-certified (feature-space smoothing) at
                                   ``fs.radius`` with the same label as
                                   ``mmcert/segmentation``, 0 = not (only while
                                   ``fs.sigma`` > 0; :func:`l2_image`)
=========================  ======  ===================================================

Colour images of the same certificate for people: :mod:`mmcert_ros.segmenter.views`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmcert_ros.segmenter.codec import ImageFields, encode_compressed, encode_image
from mmcert_ros.segmenter.overlay import render_overlay

SEGMENTATION = 'mmcert/segmentation'
CERTIFICATION = 'mmcert/certification'
CERTIFIED_RADIUS = 'mmcert/certified_radius'
OVERLAY = 'mmcert/overlay'
#: the topics encoded from the l0 certificate by :func:`output_images`
OUTPUT_TOPICS = (SEGMENTATION, CERTIFICATION, CERTIFIED_RADIUS, OVERLAY)
L2_CERTIFICATION = 'mmcert/l2_certification'
#: ``mmcert/overlay`` as image_transport's ``compressed`` transport sends it
#: (``sensor_msgs/CompressedImage``, jpeg; :func:`compressed_overlay`)
OVERLAY_COMPRESSED = OVERLAY + '/compressed'
#: JPEG quality of :data:`OVERLAY_COMPRESSED` (image_transport's default)
OVERLAY_JPEG_QUALITY = 80
#: per-frame times (``diagnostic_msgs/DiagnosticArray``, header = the frame's RGB header;
#: :func:`mmcert_ros.ros.diagnostics.frame_times_array`), for tools that plot them
FRAME_TIMES = 'mmcert/debug/frame_times'
#: each published frame's mode (``diagnostic_msgs/DiagnosticArray``, header = the frame's RGB
#: header, one status: OK ``rgb-d`` or WARN ``degraded: rgb-only``;
#: :func:`mmcert_ros.ros.diagnostics.mode_status_array`)
STATUS = 'mmcert/status'
#: value of ``mmcert/certified_radius`` where the pixel is not certified at t = 0
NOT_CERTIFIED = 255
CERTIFIED = 255


def radius_image(radius: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 of a radius map in t (-1 = none): t clipped to 254, -1 -> 255."""
    image = np.clip(radius, 0, NOT_CERTIFIED - 1).astype(np.uint8)
    image[radius < 0] = NOT_CERTIFIED
    return image


def output_images(certificate, rgb: np.ndarray,
                  topics: set[str] | frozenset[str]) -> dict[str, ImageFields]:
    """Encode the requested output ``topics`` of one frame.

    :param certificate: a :class:`mmcert_ros.certify.Certificate` at the RGB resolution.
    :param rgb: the ``(H, W, 3)`` uint8 RGB frame (for the overlay).
    """
    makers = {
        SEGMENTATION: lambda: encode_image(
            certificate.labels.astype(np.uint8, copy=False), 'mono8'),
        CERTIFICATION: lambda: encode_image(
            certificate.certified.astype(np.uint8) * np.uint8(CERTIFIED), 'mono8'),
        CERTIFIED_RADIUS: lambda: encode_image(radius_image(certificate.radius), 'mono8'),
        OVERLAY: lambda: encode_image(
            render_overlay(rgb, certificate.labels, certificate.certified), 'rgb8'),
    }
    return encode_requested(makers, topics)


def encode_requested(makers: dict[str, Callable[[], ImageFields]],
                     topics: set[str] | frozenset[str]) -> dict[str, ImageFields]:
    """Run the maker of each requested topic (in the makers' order), and only those.

    :param makers: topic -> a function encoding that topic's image of the frame.
    :raises ValueError: naming every requested topic that has no maker (``unknown output
        topics``), before anything is encoded.
    """
    unknown = set(topics) - set(makers)
    if unknown:
        raise ValueError(f'unknown output topics: {sorted(unknown)}')
    return {topic: make() for topic, make in makers.items() if topic in topics}


def compressed_overlay(certificate, rgb: np.ndarray,
                       rendered: ImageFields | None = None) -> tuple[str, bytes]:
    """``(format, data)`` of :data:`OVERLAY_COMPRESSED`: the overlay of ``mmcert/overlay`` as
    a JPEG (``'rgb8; jpeg compressed bgr8'``, quality :data:`OVERLAY_JPEG_QUALITY`).

    :param rendered: the frame's ``mmcert/overlay`` from :func:`output_images`, if it was
        made (its pixels are compressed instead of rendering the overlay again).
    """
    if rendered is None:
        overlay = render_overlay(rgb, certificate.labels, certificate.certified)
    else:
        overlay = np.frombuffer(rendered.data, np.uint8).reshape(rendered.height,
                                                                 rendered.width, 3)
    return encode_compressed(overlay, 'jpeg', OVERLAY_JPEG_QUALITY)


def l2_image(l2_certificate, labels: np.ndarray) -> ImageFields:
    """``mmcert/l2_certification`` (mono8): 255 where ``l2_certificate`` certifies the pixel
    at its radius *and* its label equals the published ``labels`` (the l0 majority vote);
    0 elsewhere. The mask certifies the l2-smoothed label, which agrees with the published
    label at the clean input (docs/certification.md section 8).

    :param l2_certificate: a :class:`mmcert_ros.certify.l2.L2Certificate` at the RGB size.
    :param labels: ``(H, W)`` published class ids.
    """
    mask = l2_certificate.agreeing(labels)
    return encode_image(mask.astype(np.uint8) * np.uint8(CERTIFIED), 'mono8')
