"""Decode and encode ROS ``Image`` and ``CompressedImage`` payloads (numpy and OpenCV; no ROS
package, no cv_bridge).

Every function works duck-typed on any object with the fields ``height, width, encoding,
is_bigendian, step, data`` (an ``Image``) or ``format, data`` and no ``encoding`` (a
``CompressedImage``): a message from the Python client library (``data`` is an
``array.array``), a message deserialized by ``rosbags`` (``data`` is a numpy uint8 array),
:class:`ImageFields`, or anything whose ``data`` is ``bytes``. Decoded arrays own their memory
(the message buffer may be released).

Guarantees:

* An ``Image`` is accepted only if ``height, width > 0``, ``step >= width * bytes_per_pixel``
  and ``len(data) == step * height`` exactly; anything else raises :class:`ImageDecodeError`,
  whose ``kind`` is a short stable string for throttled logging and counters.
* Row padding (``step`` larger than the packed row) and ``is_bigendian`` are honoured.
* Colour comes out as ``(H, W, 3)`` uint8 RGB whatever the encoding
  (:data:`DECODED_RGB_ENCODINGS`) or compression (:data:`COMPRESSED_FORMATS`).
* Depth follows REP 118: ``16UC1``/``mono16`` are millimetres with ``0`` = no measurement;
  ``32FC1`` is metres with NaN/+-Inf = no measurement. Decoded depth is float32 metres with
  every invalid pixel (including non-positive values) set to NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from mmcert_ros.data.depth import invalid_depth_mask, millimetres_to_metres
from mmcert_ros.errors import MessageDecodeError

#: interleaved 8-bit colour encodings, decoded by reordering channels and written by
#: :func:`encode_image`: name -> (channels, RGB channel indices)
RGB_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
}


class Conversion(NamedTuple):
    """How an encoding OpenCV converts is laid out: ``bytes_per_pixel`` (of the packed row),
    ``width_multiple`` (the width must be a multiple of it) and the ``cv2.cvtColor`` code."""

    bytes_per_pixel: int
    width_multiple: int
    code: int


#: encodings decoded to RGB by ``cv2.cvtColor`` (names of ``sensor_msgs/image_encodings``).
#: ``yuv422`` is UYVY (bytes U Y0 V Y1) and ``yuv422_yuy2`` is YUYV (Y0 U Y1 V): two pixels
#: share one U, V pair, so the width is even; OpenCV converts them with BT.601 video-range
#: coefficients (luma below 16, the footroom, is black). A ROS Bayer name gives the top-left
#: 2x2 block row-major (``bayer_rggb8``: R G / G B); OpenCV names a pattern by the second
#: row's second and third pixels, so ROS RGGB is OpenCV ``BayerBG`` (cv_bridge's mapping;
#: proved in test_image_codec_cameras on hand-sampled mosaics). Bayer images are demosaiced
#: bilinearly at their own size.
CONVERTED_RGB_ENCODINGS: dict[str, Conversion] = {
    'yuv422': Conversion(2, 2, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': Conversion(2, 2, cv2.COLOR_YUV2RGB_YUY2),
    'bayer_rggb8': Conversion(1, 1, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': Conversion(1, 1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': Conversion(1, 1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': Conversion(1, 1, cv2.COLOR_BayerGB2RGB),
}
#: every ``Image`` encoding :func:`decode_rgb` accepts (the list its errors name)
DECODED_RGB_ENCODINGS: tuple[str, ...] = tuple(RGB_ENCODINGS) + tuple(CONVERTED_RGB_ENCODINGS)
#: compression schemes of ``CompressedImage`` that :func:`decode_rgb` accepts (the scheme is
#: the format string itself, ``'jpeg'``, or its word after ``;``, ``'rgb8; jpeg compressed
#: bgr8'``, as image_transport's compressed plugin writes it)
COMPRESSED_FORMATS = ('jpeg', 'png')
#: depth encodings accepted by :func:`decode_depth` (lower case) -> element type (u2 =
#: millimetres, f4 = metres)
DECODED_DEPTH_ENCODINGS: dict[str, str] = {'16uc1': 'u2', 'mono16': 'u2', '32fc1': 'f4'}
#: single-channel 8-bit encodings accepted by :func:`decode_mask`
MASK_ENCODINGS = ('mono8', '8uc1')


class ImageDecodeError(MessageDecodeError):
    """A message that cannot be decoded; ``kind`` names the defect for throttled logging.

    Kinds: ``'empty_image'``, ``'unknown_encoding'``, ``'bad_step'``, ``'size_mismatch'``,
    ``'odd_width'`` (a ``yuv422`` image of odd width); for a ``CompressedImage``
    ``'unknown_format'`` (not jpeg or png) and ``'bad_compressed'`` (empty, or data that does
    not decode); ``'bad_array'`` (encoding side).
    """


@dataclass(frozen=True)
class ImageFields:
    """The payload fields of a ROS ``Image`` (everything but the header)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes

    def copy_to(self, msg):
        """Set these fields on ``msg`` (e.g. a ROS ``Image`` message) and return it."""
        msg.height = self.height
        msg.width = self.width
        msg.encoding = self.encoding
        msg.is_bigendian = self.is_bigendian
        msg.step = self.step
        msg.data = self.data
        return msg


def decode_rgb(msg) -> np.ndarray:
    """Return the image of an ``Image`` or a ``CompressedImage`` as ``(H, W, 3)`` uint8 RGB.

    * ``rgb8, bgr8, rgba8, bgra8`` (alpha is discarded) and ``mono8`` (grey replicated to
      three channels): the bytes themselves, reordered;
    * ``yuv422`` (UYVY), ``yuv422_yuy2`` (YUYV): BT.601 video range, even width only;
      ``bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8``: demosaiced bilinearly
      (:data:`CONVERTED_RGB_ENCODINGS`);
    * a ``CompressedImage`` (a message with ``format`` and no ``encoding``):
      :func:`decode_compressed`.
    """
    if _is_compressed(msg):
        return decode_compressed(msg)
    encoding = _encoding(msg)
    if encoding in CONVERTED_RGB_ENCODINGS:
        return _converted(msg, CONVERTED_RGB_ENCODINGS[encoding])
    if encoding not in RGB_ENCODINGS:
        raise _unknown_encoding(msg, DECODED_RGB_ENCODINGS)
    channels, order = RGB_ENCODINGS[encoding]
    pixels = _pixel_rows(msg, np.dtype('u1'), channels).reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def decode_compressed(msg) -> np.ndarray:
    """Return a ``CompressedImage`` (fields ``format, data``) as ``(H, W, 3)`` uint8 RGB.

    ``format`` names the scheme as image_transport's compressed plugin writes it (``'jpeg'``,
    ``'png'``, ``'rgb8; jpeg compressed bgr8'``, ``'mono8; png compressed mono8'``...); the
    data is decoded by ``cv2.imdecode`` into colour: grey images come out replicated to three
    channels, alpha is dropped, 16-bit PNGs are reduced to their high byte. The size is the
    compressed image's own, pixels as stored (an EXIF orientation tag is ignored).

    :raises ImageDecodeError: kind ``'unknown_format'`` (the scheme is not one of
        :data:`COMPRESSED_FORMATS`) or ``'bad_compressed'`` (no data, or data that does not
        decode).
    """
    fmt = str(msg.format)
    _check_format(fmt)
    buffer = _as_uint8(msg.data)
    image = _imdecode(buffer)
    if image is None:
        raise ImageDecodeError('bad_compressed', f'compressed image {fmt!r}: its {buffer.size} '
                                                 f'bytes do not decode')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> tuple[str, bytes]:
    """Compress ``(H, W, 3)`` uint8 RGB as image_transport's compressed plugin does.

    :param fmt: ``'jpeg'`` or ``'png'`` (lossless).
    :param quality: JPEG quality, 1 to 100 (a PNG is lossless whatever it is).
    :returns: ``(format, data)`` for a ``CompressedImage``: ``'rgb8; jpeg compressed bgr8'``
        (or ``png``) and the encoded bytes.
    :raises ImageDecodeError: kind ``'bad_array'`` or ``'unknown_format'``.
    :raises ValueError: a quality outside 1 to 100.
    """
    _check_array(rgb, fmt, np.uint8, 3)
    if fmt not in COMPRESSED_FORMATS:
        raise ImageDecodeError('unknown_format', f'cannot compress to {fmt!r}; accepted: '
                                                 f'{", ".join(COMPRESSED_FORMATS)}')
    if not 1 <= quality <= 100:
        raise ValueError(f'JPEG quality must be 1 to 100, got {quality}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    _, buffer = cv2.imencode(f'.{fmt}', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    return f'rgb8; {fmt} compressed bgr8', buffer.tobytes()


def decode_depth(msg) -> np.ndarray:
    """Return depth as ``(H, W)`` float32 metres, NaN where there is no valid measurement.

    Accepts ``16UC1`` and ``mono16`` (millimetres, 0 = invalid) and ``32FC1`` (metres;
    NaN, +-Inf and values <= 0 = invalid).
    """
    encoding = _encoding(msg)
    if encoding not in DECODED_DEPTH_ENCODINGS:
        raise _unknown_encoding(msg, ['16UC1', '32FC1', 'mono16'])
    kind = DECODED_DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(('>' if msg.is_bigendian else '<') + kind)
    raw = _pixel_rows(msg, dtype, 1).reshape(msg.height, msg.width)
    if kind == 'u2':
        return millimetres_to_metres(raw.astype(np.uint16), source=f'{msg.encoding} depth')
    depth = raw.astype(np.float32)
    depth[invalid_depth_mask(depth)] = np.nan
    return depth


def decode_mask(msg) -> np.ndarray:
    """Return a single-channel 8-bit image (``mono8`` or ``8UC1``) as ``(H, W)`` uint8."""
    if _encoding(msg) not in MASK_ENCODINGS:
        raise _unknown_encoding(msg, ['mono8', '8UC1'])
    return _pixel_rows(msg, np.dtype('u1'), 1).reshape(msg.height, msg.width).copy()


def encode_image(array: np.ndarray, encoding: str) -> ImageFields:
    """Pack ``array`` into little-endian, unpadded image fields of ``encoding``.

    The array must already be in the canonical unit of the encoding, so units never mix:

    * ``rgb8, bgr8, rgba8, bgra8``: ``(H, W, 3)`` uint8 **RGB** (reordered here; alpha 255);
    * ``mono8``: ``(H, W)`` uint8;
    * ``16UC1``/``mono16``: ``(H, W)`` uint16 millimetres (convert metres with
      :func:`mmcert_ros.data.depth.metres_to_millimetres`);
    * ``32FC1``: ``(H, W)`` float32 metres.

    :raises ImageDecodeError: kind ``'unknown_encoding'`` or ``'bad_array'``.
    """
    key = encoding.lower()
    if key in RGB_ENCODINGS and key != 'mono8':
        _check_array(array, encoding, np.uint8, 3)
        channels, order = RGB_ENCODINGS[key]
        packed = np.empty(array.shape[:2] + (channels,), np.uint8)
        packed[:, :, list(order)] = array
        if channels == 4:
            packed[:, :, 3] = 255
    elif key in ('mono8', '8uc1'):
        _check_array(array, encoding, np.uint8, 2)
        packed = array
    elif key in ('16uc1', 'mono16'):
        _check_array(array, encoding, np.uint16, 2)
        packed = array.astype('<u2', copy=False)
    elif key == '32fc1':
        _check_array(array, encoding, np.float32, 2)
        packed = array.astype('<f4', copy=False)
    else:
        raise ImageDecodeError('unknown_encoding',
                               f'cannot encode to unknown encoding {encoding!r}')
    height, width = array.shape[:2]
    data = np.ascontiguousarray(packed).tobytes()
    return ImageFields(height=height, width=width, encoding=encoding, is_bigendian=0,
                       step=len(data) // height, data=data)


def _check_array(array, encoding: str, dtype, ndim: int) -> None:
    if not isinstance(array, np.ndarray):
        raise ImageDecodeError(
            'bad_array', f'{encoding}: expected a numpy array, got {type(array).__name__}')
    shape_ok = array.ndim == ndim and (ndim == 2 or array.shape[2] == 3)
    if not shape_ok or array.dtype != dtype or array.size == 0:
        expected = '(H, W)' if ndim == 2 else '(H, W, 3) RGB'
        raise ImageDecodeError(
            'bad_array', f'{encoding}: expected a non-empty {expected} {np.dtype(dtype).name} '
            f'array, got shape {array.shape} dtype {array.dtype}')


def _is_compressed(msg) -> bool:
    """A ``CompressedImage`` has a ``format`` and, unlike an ``Image``, no ``encoding``."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def _check_format(fmt: str) -> None:
    """Refuse a ``CompressedImage`` format whose scheme is not one of
    :data:`COMPRESSED_FORMATS`: the whole string, or its first word after the last ``;``."""
    words = fmt.rpartition(';')[2].split()
    if not words or words[0].lower() not in COMPRESSED_FORMATS:
        raise ImageDecodeError(
            'unknown_format', f'unsupported compressed format {fmt!r}; accepted: '
            f'{" or ".join(COMPRESSED_FORMATS)} (e.g. \'rgb8; jpeg compressed bgr8\')')


def _imdecode(buffer: np.ndarray) -> np.ndarray | None:
    """The BGR image ``cv2.imdecode`` makes of ``buffer``, or None where it makes none."""
    if not buffer.size:
        return None
    try:
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None


def _converted(msg, conversion: Conversion) -> np.ndarray:
    """Decode an encoding of :data:`CONVERTED_RGB_ENCODINGS` with OpenCV."""
    per_pixel = conversion.bytes_per_pixel
    pixels = _pixel_rows(msg, np.dtype('u1'), per_pixel)
    height, width = int(msg.height), int(msg.width)
    if width % conversion.width_multiple:
        raise ImageDecodeError('odd_width', f'{msg.encoding} packs {conversion.width_multiple} '
                                            f'pixels together: width {width} is not a multiple of '
                                            f'{conversion.width_multiple}')
    shape = (height, width) if per_pixel == 1 else (height, width, per_pixel)
    return cv2.cvtColor(pixels.reshape(shape), conversion.code)


def _encoding(msg) -> str:
    return str(msg.encoding).lower()


def _unknown_encoding(msg, accepted) -> ImageDecodeError:
    return ImageDecodeError(
        'unknown_encoding',
        f'unsupported encoding {msg.encoding!r}; accepted: {", ".join(accepted)}')


def _pixel_rows(msg, dtype: np.dtype, channels: int) -> np.ndarray:
    """Validate the geometry of ``msg`` and return its packed pixel elements, row padding removed.

    The result is a contiguous 1-D array of ``height * width * channels`` elements; it may
    share memory with ``msg.data`` (callers that return it unchanged must copy).
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError('empty_image', f'image has zero size ({height}x{width})')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            'bad_step', f'step {step} is shorter than a {msg.encoding} row of {width} pixels '
            f'({row_bytes} bytes)')
    buffer = _as_uint8(msg.data)
    if buffer.size != step * height:
        raise ImageDecodeError(
            'size_mismatch', f'data has {buffer.size} bytes, expected step x height = '
            f'{step} x {height} = {step * height}')
    rows = buffer.reshape(height, step)[:, :row_bytes]
    return np.ascontiguousarray(rows).view(dtype).ravel()


def _as_uint8(data) -> np.ndarray:
    """View ``data`` (bytes, array.array('B'), numpy uint8 array, list of ints) as uint8."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)
