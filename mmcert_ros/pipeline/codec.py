"""Decode and encode ROS ``Image`` payloads with numpy only (no ROS package, no cv_bridge).

Every function works duck-typed on any object with the fields ``height, width, encoding,
is_bigendian, step, data``: a ROS ``Image`` message from the Python client library (``data`` is an
``array.array``), a message deserialized by ``rosbags`` (``data`` is a numpy uint8 array), or
:class:`ImageFields`. Decoded arrays own their memory (the message buffer may be released).

Guarantees:

* A message is accepted only if ``height, width > 0``, ``step >= width * bytes_per_pixel`` and
  ``len(data) == step * height`` exactly; anything else raises :class:`ImageDecodeError`,
  whose ``kind`` is a short stable string for throttled logging and counters.
* Row padding (``step`` larger than the packed row) and ``is_bigendian`` are honoured.
* Depth follows REP 118: ``16UC1``/``mono16`` are millimetres with ``0`` = no measurement;
  ``32FC1`` is metres with NaN/+-Inf = no measurement. Decoded depth is float32 metres with
  every invalid pixel (including non-positive values) set to NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmcert_ros.data.depth import invalid_depth_mask, millimetres_to_metres
from mmcert_ros.errors import MessageDecodeError

#: colour encodings accepted by :func:`decode_rgb`: name -> (channels, RGB channel indices)
RGB_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
}
#: depth encodings accepted by :func:`decode_depth` (lower case) -> element type (u2 =
#: millimetres, f4 = metres)
DECODED_DEPTH_ENCODINGS: dict[str, str] = {'16uc1': 'u2', 'mono16': 'u2', '32fc1': 'f4'}
#: single-channel 8-bit encodings accepted by :func:`decode_mask`
MASK_ENCODINGS = ('mono8', '8uc1')


class ImageDecodeError(MessageDecodeError):
    """A message that cannot be decoded; ``kind`` names the defect for throttled logging.

    Kinds: ``'empty_image'``, ``'unknown_encoding'``, ``'bad_step'``, ``'size_mismatch'``,
    ``'bad_array'`` (encoding side).
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
    """Return the image as ``(H, W, 3)`` uint8 in RGB order.

    Accepts ``rgb8, bgr8, rgba8, bgra8`` (alpha is discarded) and ``mono8`` (grey replicated
    to three channels).
    """
    encoding = _encoding(msg)
    if encoding not in RGB_ENCODINGS:
        raise _unknown_encoding(msg, sorted(RGB_ENCODINGS))
    channels, order = RGB_ENCODINGS[encoding]
    pixels = _pixel_rows(msg, np.dtype('u1'), channels).reshape(msg.height, msg.width, channels)
    return np.ascontiguousarray(pixels[:, :, list(order)])


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
