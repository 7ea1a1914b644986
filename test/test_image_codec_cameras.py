"""Images as cameras send them: YUV 4:2:2, Bayer mosaics and CompressedImage, decoded by
``decode_rgb`` (so by ``frame_from_pair``) and checked against independent oracles: the
BT.601 formulas written out here, mosaics sampled here by hand, OpenCV's own codecs."""
import array
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mmcert_ros.data.pairing import Pair
from mmcert_ros.segmenter.codec import (
    COMPRESSED_FORMATS, DECODED_RGB_ENCODINGS, ImageDecodeError, ImageFields, decode_rgb,
    encode_compressed)
from mmcert_ros.segmenter.pair_to_frame import FrameDecodeError, frame_from_pair

RNG = np.random.default_rng(11)
REPO = Path(__file__).resolve().parents[1]


def fields(height, width, encoding, step, data):
    return ImageFields(height=height, width=width, encoding=encoding, is_bigendian=0,
                       step=step, data=bytes(data))


def padded(rows: np.ndarray, padding: int) -> bytes:
    """``(H, row_bytes)`` uint8 rows followed by ``padding`` junk bytes each."""
    junk = np.full((rows.shape[0], padding), 0xCD, np.uint8)
    return np.concatenate([rows, junk], axis=1).tobytes()


# --- YUV 4:2:2 ---------------------------------------------------------------------------

def bt601_video_range(y, u, v):
    """ITU-R BT.601 YCbCr (Y 16..235, Cb/Cr 16..240) -> RGB uint8, the textbook formulas."""
    c, d, e = 1.164 * (y - 16.0), u - 128.0, v - 128.0
    rgb = np.stack([c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def yuv422_planes(height, width):
    """Random luma per pixel and chroma per horizontal pixel pair, in BT.601's nominal
    ranges (Y 16..235, Cb/Cr 16..240; the RGB results still clip at 0 and 255)."""
    y = RNG.integers(16, 236, (height, width)).astype(np.uint8)
    u = RNG.integers(16, 241, (height, width // 2)).astype(np.uint8)
    v = RNG.integers(16, 241, (height, width // 2)).astype(np.uint8)
    return y, u, v


def pack_yuv422(y, u, v, order):
    """Interleave the planes by hand in byte ``order`` ('UYVY' or 'YUYV'), one row per row."""
    planes = {'Y0': y[:, 0::2], 'Y1': y[:, 1::2], 'U': u, 'V': v}
    names = {'UYVY': ('U', 'Y0', 'V', 'Y1'), 'YUYV': ('Y0', 'U', 'Y1', 'V')}[order]
    return np.stack([planes[name] for name in names], axis=-1).reshape(y.shape[0], -1)


@pytest.mark.parametrize('encoding, order', [('yuv422', 'UYVY'), ('yuv422_yuy2', 'YUYV')])
@pytest.mark.parametrize('padding', [0, 6])
def test_yuv422_decodes_by_the_bt601_formulas(encoding, order, padding):
    height, width = 6, 10
    y, u, v = yuv422_planes(height, width)
    rows = pack_yuv422(y, u, v, order)
    rgb = decode_rgb(fields(height, width, encoding, 2 * width + padding, padded(rows, padding)))
    expected = bt601_video_range(y.astype(float), np.repeat(u, 2, axis=1).astype(float),
                                 np.repeat(v, 2, axis=1).astype(float))
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    # OpenCV computes in 20-bit fixed point: at most one level off the rounded formula
    assert np.abs(rgb.astype(int) - expected).max() <= 1


def test_yuv422_footroom_luma_is_black():
    """Y below 16 (footroom) decodes like Y = 16, whatever the chroma."""
    y = np.tile(np.array([[0, 16, 8, 16, 15, 16]], np.uint8), (2, 1))
    u = np.array([[0, 128, 255]] * 2, np.uint8)
    v = np.array([[255, 40, 128]] * 2, np.uint8)
    rgb = decode_rgb(fields(2, 6, 'yuv422', 12, pack_yuv422(y, u, v, 'UYVY').tobytes()))
    np.testing.assert_array_equal(rgb[:, 0::2], rgb[:, 1::2])


def test_yuv422_byte_orders_differ():
    """The two orders are told apart: UYVY bytes decoded as YUYV give another image."""
    y, u, v = yuv422_planes(4, 8)
    rows = pack_yuv422(y, u, v, 'UYVY').tobytes()
    assert not np.array_equal(decode_rgb(fields(4, 8, 'yuv422', 16, rows)),
                              decode_rgb(fields(4, 8, 'yuv422_yuy2', 16, rows)))


@pytest.mark.parametrize('msg, kind', [
    (fields(2, 3, 'yuv422', 6, bytes(12)), 'odd_width'),
    (fields(2, 4, 'yuv422_yuy2', 7, bytes(14)), 'bad_step'),
    (fields(2, 4, 'yuv422', 8, bytes(15)), 'size_mismatch'),
    (fields(0, 4, 'yuv422', 8, b''), 'empty_image'),
    (fields(2, 4, 'bayer_rggb8', 3, bytes(6)), 'bad_step'),
    (fields(2, 4, 'bayer_grbg8', 4, bytes(9)), 'size_mismatch'),
    (fields(2, 0, 'bayer_bggr8', 0, b''), 'empty_image'),
])
def test_bad_sizes_are_refused_with_their_kind(msg, kind):
    with pytest.raises(ImageDecodeError) as caught:
        decode_rgb(msg)
    assert caught.value.kind == kind
    assert '\n' not in str(caught.value)


# --- Bayer -------------------------------------------------------------------------------

BLOCK = 8


def flat_blocks(rows, cols):
    """An RGB image of ``BLOCK`` x ``BLOCK`` flat tiles of random colours whose three
    channels are far apart (so a red/blue or green swap shows), and the tiles' colours."""
    colours = np.stack([RNG.permutation([20, 120, 230]) for _ in range(rows * cols)])
    colours = colours.reshape(rows, cols, 3).astype(np.uint8)
    return np.repeat(np.repeat(colours, BLOCK, axis=0), BLOCK, axis=1), colours


def mosaic(rgb, pattern):
    """Sample ``rgb`` through a colour filter array: ``pattern`` names the top-left 2x2
    block row-major ('rggb' = R G / G B), as ROS's ``bayer_<pattern>8`` does."""
    channel = {'r': 0, 'g': 1, 'b': 2}
    out = np.empty(rgb.shape[:2], np.uint8)
    for index, letter in enumerate(pattern):
        row, col = divmod(index, 2)
        out[row::2, col::2] = rgb[row::2, col::2, channel[letter]]
    return out


def tile_interiors(image, margin=2):
    """``(rows, cols, n, 3)``: the pixels of every tile at least ``margin`` from its edges."""
    height, width = image.shape[:2]
    tiles = image.reshape(height // BLOCK, BLOCK, width // BLOCK, BLOCK, 3).swapaxes(1, 2)
    inner = tiles[:, :, margin:BLOCK - margin, margin:BLOCK - margin]
    return inner.reshape(inner.shape[0], inner.shape[1], -1, 3)


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('padding', [0, 5])
def test_bayer_demosaics_flat_regions_to_their_colour(pattern, padding):
    source, colours = flat_blocks(4, 5)
    raw = mosaic(source, pattern)
    height, width = raw.shape
    rgb = decode_rgb(fields(height, width, f'bayer_{pattern}8', width + padding,
                            padded(raw, padding)))
    assert rgb.shape == source.shape and rgb.dtype == np.uint8
    error = np.abs(tile_interiors(rgb).astype(int) - colours[:, :, None, :]).max()
    assert error <= 1


def test_the_bayer_check_tells_the_patterns_apart():
    """Decoding a mosaic under any other pattern name misses the colours: the test above
    would catch a wrong OpenCV constant."""
    source, colours = flat_blocks(4, 5)
    raw = mosaic(source, 'rggb')
    for other in ('bggr', 'gbrg', 'grbg'):
        rgb = decode_rgb(fields(*raw.shape, f'bayer_{other}8', raw.shape[1], raw.tobytes()))
        assert np.abs(tile_interiors(rgb).astype(int) - colours[:, :, None, :]).max() > 50


# --- CompressedImage ---------------------------------------------------------------------

def smooth_image(height=48, width=64):
    """A photo-like RGB image (gradients and a disc), which JPEG compresses well."""
    rows, cols = np.mgrid[0:height, 0:width]
    disc = ((rows - height / 2) ** 2 + (cols - width / 3) ** 2 < (height / 4) ** 2) * 90
    image = np.stack([cols * 255 / width, rows * 255 / height, 60 + disc], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


def compressed(fmt, data):
    return SimpleNamespace(header=SimpleNamespace(frame_id='camera', stamp_ns=3), format=fmt,
                           data=data)


def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize('fmt', ['png', 'bgr8; png compressed bgr8', 'rgb8; png compressed bgr8'])
def test_png_written_by_opencv_decodes_exactly(fmt):
    rgb = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    _, data = cv2.imencode('.png', rgb[:, :, ::-1].copy())     # OpenCV writes BGR
    np.testing.assert_array_equal(decode_rgb(compressed(fmt, data.tobytes())), rgb)


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8'])
def test_jpeg_written_by_opencv_decodes_within_its_loss(fmt):
    rgb = smooth_image()
    _, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded = decode_rgb(compressed(fmt, data.tobytes()))
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert psnr(decoded, rgb) > 35


def test_grey_compressed_image_is_replicated_to_three_channels():
    grey = RNG.integers(0, 256, (7, 11), dtype=np.uint8)
    _, data = cv2.imencode('.png', grey)
    rgb = decode_rgb(compressed('mono8; png compressed mono8', data.tobytes()))
    np.testing.assert_array_equal(rgb, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize('container', [bytes, lambda b: array.array('B', b),
                                       lambda b: np.frombuffer(b, np.uint8)])
def test_compressed_data_as_every_message_type_holds_it(container):
    """bytes, array.array('B') (rclpy) and a numpy uint8 array (rosbags)."""
    rgb = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    fmt, data = encode_compressed(rgb, 'png')
    np.testing.assert_array_equal(decode_rgb(compressed(fmt, container(data))), rgb)


def test_rosbags_compressed_image_decodes():
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    CompressedImage = typestore.types['sensor_msgs/msg/CompressedImage']
    Header = typestore.types['std_msgs/msg/Header']
    Time = typestore.types['builtin_interfaces/msg/Time']
    rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    fmt, data = encode_compressed(rgb, 'png')
    msg = CompressedImage(header=Header(stamp=Time(sec=1, nanosec=2), frame_id='cam'),
                          format=fmt, data=np.frombuffer(data, np.uint8))
    raw = typestore.serialize_cdr(msg, CompressedImage.__msgtype__)
    decoded = typestore.deserialize_cdr(raw, CompressedImage.__msgtype__)
    assert isinstance(decoded.data, np.ndarray)
    np.testing.assert_array_equal(decode_rgb(decoded), rgb)


def test_encode_compressed_writes_what_image_transport_writes():
    rgb = smooth_image()
    fmt, data = encode_compressed(rgb)
    assert fmt == 'rgb8; jpeg compressed bgr8' and isinstance(data, bytes)
    assert data[:3] == b'\xff\xd8\xff'                                   # JPEG SOI marker
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert psnr(bgr[:, :, ::-1], rgb) > 35
    fmt, data = encode_compressed(rgb, 'png')
    assert fmt == 'rgb8; png compressed bgr8' and data[:8] == b'\x89PNG\r\n\x1a\n'
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(bgr[:, :, ::-1], rgb)


def test_jpeg_quality_trades_size_for_fidelity():
    rgb = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    low, high = encode_compressed(rgb, quality=20)[1], encode_compressed(rgb, quality=98)[1]
    assert len(low) < len(high)
    decoded = [decode_rgb(compressed('jpeg', data)) for data in (low, high)]
    assert psnr(decoded[0], rgb) < psnr(decoded[1], rgb)


@pytest.mark.parametrize('fmt, data, kind', [
    ('tiff', b'II*\x00', 'unknown_format'),
    ('16UC1; compressedDepth png', b'\x89PNG', 'unknown_format'),
    ('', b'\xff\xd8', 'unknown_format'),
    ('jpeg', b'', 'bad_compressed'),
    ('rgb8; jpeg compressed bgr8', b'not a jpeg at all', 'bad_compressed'),
    ('png', bytes(64), 'bad_compressed'),
])
def test_malformed_compressed_images_raise_with_kind(fmt, data, kind):
    with pytest.raises(ImageDecodeError) as caught:
        decode_rgb(compressed(fmt, data))
    assert caught.value.kind == kind
    assert repr(fmt) in str(caught.value) and '\n' not in str(caught.value)


@pytest.mark.parametrize('args, error, kind', [
    ((np.zeros((4, 4, 3), np.uint8), 'bmp'), ImageDecodeError, 'unknown_format'),
    ((np.zeros((4, 4), np.uint8), 'jpeg'), ImageDecodeError, 'bad_array'),
    ((np.zeros((4, 4, 3), np.float32), 'png'), ImageDecodeError, 'bad_array'),
    ((np.zeros((4, 4, 3), np.uint8), 'jpeg', 0), ValueError, None),
    ((np.zeros((4, 4, 3), np.uint8), 'jpeg', 101), ValueError, None),
])
def test_encode_compressed_refuses(args, error, kind):
    with pytest.raises(error) as caught:
        encode_compressed(*args)
    assert getattr(caught.value, 'kind', None) == kind


# --- the one road, and the one list --------------------------------------------------------

def test_frame_from_pair_takes_compressed_and_bayer_rgb():
    source, colours = flat_blocks(2, 3)
    depth = SimpleNamespace(header=SimpleNamespace(frame_id='camera'), height=16, width=24,
                            encoding='32FC1', is_bigendian=0, step=96,
                            data=np.ones((16, 24), '<f4').tobytes())
    fmt, data = encode_compressed(source, 'png')
    png = compressed(fmt, array.array('B', data))
    frame = frame_from_pair(Pair({'rgb': png, 'depth': depth}, {'rgb': 3, 'depth': 3}))
    np.testing.assert_array_equal(frame.rgb, source)
    assert frame.frame_id == 'camera'
    raw = mosaic(source, 'gbrg')
    bayer = SimpleNamespace(**vars(fields(16, 24, 'bayer_gbrg8', 24, raw.tobytes())),
                            header=SimpleNamespace(frame_id='camera'))
    frame = frame_from_pair(Pair({'rgb': bayer, 'depth': depth}, {'rgb': 3, 'depth': 3}))
    assert frame.rgb.shape == source.shape
    assert np.abs(tile_interiors(frame.rgb).astype(int) - colours[:, :, None, :]).max() <= 1
    with pytest.raises(FrameDecodeError) as caught:
        frame_from_pair(Pair({'rgb': compressed('tiff', data), 'depth': depth},
                             {'rgb': 3, 'depth': 3}))
    assert (caught.value.stream, caught.value.kind) == ('rgb', 'unknown_format')


def test_unknown_encoding_message_lists_every_accepted_encoding():
    with pytest.raises(ImageDecodeError) as caught:
        decode_rgb(fields(2, 2, 'rgb16', 12, bytes(24)))
    assert all(encoding in str(caught.value) for encoding in DECODED_RGB_ENCODINGS)


def test_docs_list_exactly_the_accepted_rgb_inputs():
    """docs/ros.md's rgb/image row names the encodings the codec accepts, in its order, and
    its section on encodings names each of them and each compressed format."""
    text = (REPO / 'docs' / 'ros.md').read_text()
    image_row = next(line for line in text.splitlines() if line.startswith('| `rgb/image` '))
    assert re.findall(r'`([^`]+)`', image_row.split('|')[3]) == list(DECODED_RGB_ENCODINGS)
    section = text.split('### Image encodings and compressed images')[1].split('\n## ')[0]
    named = set(re.findall(r'`([^`]+)`', section))
    assert set(DECODED_RGB_ENCODINGS) | set(COMPRESSED_FORMATS) <= named
