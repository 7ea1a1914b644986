"""The numpy image codec against independent oracles (OpenCV colour conversion, struct-packed
bytes) and the two real message types it meets: rclpy's sensor_msgs Image and rosbags' Image."""
import array
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmcert_ros.segmenter.codec import (
    ImageDecodeError, ImageFields, decode_depth, decode_mask, decode_rgb, encode_image)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def fields(height, width, encoding, step, data, is_bigendian=0):
    return ImageFields(height=height, width=width, encoding=encoding,
                       is_bigendian=is_bigendian, step=step, data=bytes(data))


@pytest.mark.parametrize('encoding, to_rgb', [
    ('rgb8', None),
    ('bgr8', cv2.COLOR_BGR2RGB),
    ('rgba8', cv2.COLOR_RGBA2RGB),
    ('bgra8', cv2.COLOR_BGRA2RGB),
])
def test_colour_encodings_decode_like_opencv(encoding, to_rgb):
    channels = 4 if encoding.endswith('a8') else 3
    raw = RNG.integers(0, 256, (5, 7, channels), dtype=np.uint8)
    msg = fields(5, 7, encoding, 7 * channels, raw.tobytes())
    expected = raw if to_rgb is None else cv2.cvtColor(raw, to_rgb)
    np.testing.assert_array_equal(decode_rgb(msg), expected)


def test_mono8_decodes_to_grey_rgb():
    grey = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    rgb = decode_rgb(fields(4, 6, 'mono8', 6, grey.tobytes()))
    np.testing.assert_array_equal(rgb, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_colour_round_trip(encoding):
    encoded = encode_image(RGB, encoding)
    assert (encoded.height, encoded.width, encoded.encoding) == (5, 7, encoding)
    assert len(encoded.data) == encoded.step * encoded.height
    np.testing.assert_array_equal(decode_rgb(encoded), RGB)


def test_bgra8_encoding_is_bgr_with_opaque_alpha():
    encoded = encode_image(RGB, 'bgra8')
    raw = np.frombuffer(encoded.data, np.uint8).reshape(5, 7, 4)
    np.testing.assert_array_equal(raw[:, :, :3], cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert (raw[:, :, 3] == 255).all()


def test_row_padding_is_skipped():
    raw = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    padded = b''.join(raw[row].tobytes() + b'\xee' * 5 for row in range(3))
    np.testing.assert_array_equal(decode_rgb(fields(3, 4, 'rgb8', 17, padded)), raw)


def test_16uc1_millimetres_little_and_big_endian_with_zero_invalid():
    values = [0, 1, 1500, 65535, 250, 0]
    for endian, flag in (('<', 0), ('>', 1)):
        data = struct.pack(f'{endian}6H', *values)
        depth = decode_depth(fields(2, 3, '16UC1', 6, data, is_bigendian=flag))
        assert depth.dtype == np.float32 and depth.shape == (2, 3)
        expected = np.array([np.nan, 0.001, 1.5, 65.535, 0.25, np.nan], np.float32).reshape(2, 3)
        np.testing.assert_allclose(depth, expected, rtol=1e-6)


def test_mono16_is_millimetres_like_16uc1():
    data = struct.pack('<4H', 1000, 2000, 0, 3)
    depth = decode_depth(fields(2, 2, 'mono16', 4, data))
    np.testing.assert_allclose(depth, [[1.0, 2.0], [np.nan, 0.003]], rtol=1e-6)


def test_32fc1_metres_marks_nan_inf_and_non_positive_invalid():
    values = [1.25, float('nan'), float('inf'), float('-inf'), 0.0, -2.0, 80.0, 0.5]
    for endian, flag in (('<', 0), ('>', 1)):
        data = struct.pack(f'{endian}8f', *values)
        depth = decode_depth(fields(2, 4, '32FC1', 16, data, is_bigendian=flag))
        expected = np.array([1.25, np.nan, np.nan, np.nan, np.nan, np.nan, 80.0, 0.5],
                            np.float32).reshape(2, 4)
        np.testing.assert_array_equal(depth, expected)


def test_depth_round_trips_in_both_units():
    millimetres = RNG.integers(1, 65536, (4, 5)).astype(np.uint16)
    np.testing.assert_allclose(decode_depth(encode_image(millimetres, '16UC1')),
                               millimetres / 1000.0, rtol=1e-6)
    metres = RNG.uniform(0.1, 90, (4, 5)).astype(np.float32)
    np.testing.assert_array_equal(decode_depth(encode_image(metres, '32FC1')), metres)


def test_padded_16bit_rows_with_odd_step():
    rows = [struct.pack('<2H', 10, 20) + b'\x01', struct.pack('<2H', 30, 40) + b'\x02']
    depth = decode_depth(fields(2, 2, '16UC1', 5, b''.join(rows)))
    np.testing.assert_allclose(depth, [[0.01, 0.02], [0.03, 0.04]], rtol=1e-6)


def test_decoded_arrays_are_writable_copies():
    mask = (RNG.random((3, 4)) > 0.5).astype(np.uint8)
    msg = fields(3, 4, 'mono8', 4, mask.tobytes())
    decoded = decode_mask(msg)
    np.testing.assert_array_equal(decoded, mask)
    assert decoded.flags.writeable   # a view of the immutable bytes would be read-only
    for decoder, encoding in ((decode_rgb, 'rgb8'), (decode_depth, '32FC1')):
        array_in = RGB if encoding == 'rgb8' else np.ones((2, 2), np.float32)
        assert decoder(encode_image(array_in, encoding)).flags.writeable


@pytest.mark.parametrize('msg, decoder, kind', [
    (fields(0, 4, 'rgb8', 12, b''), decode_rgb, 'empty_image'),
    (fields(2, 0, '16UC1', 0, b''), decode_depth, 'empty_image'),
    (fields(2, 2, 'rgb16', 12, bytes(24)), decode_rgb, 'unknown_encoding'),
    (fields(2, 2, 'rgb8', 6, bytes(8)), decode_depth, 'unknown_encoding'),
    (fields(2, 2, '16UC1', 4, bytes(8)), decode_mask, 'unknown_encoding'),
    (fields(2, 2, 'rgb8', 5, bytes(10)), decode_rgb, 'bad_step'),
    (fields(2, 2, 'rgb8', 6, bytes(11)), decode_rgb, 'size_mismatch'),
    (fields(2, 2, 'rgb8', 6, bytes(13)), decode_rgb, 'size_mismatch'),
    (fields(2, 2, '32FC1', 8, bytes(12)), decode_depth, 'size_mismatch'),
])
def test_malformed_messages_raise_with_kind(msg, decoder, kind):
    with pytest.raises(ImageDecodeError) as caught:
        decoder(msg)
    assert caught.value.kind == kind
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize('array, encoding', [
    (np.zeros((2, 2), np.float32), '16UC1'),        # metres where millimetres are expected
    (np.zeros((2, 2), np.uint16), '32FC1'),
    (np.zeros((2, 2, 4), np.uint8), 'rgb8'),
    (np.zeros((2, 2, 3), np.float32), 'bgr8'),
    (np.zeros((0, 2), np.uint8), 'mono8'),
])
def test_encode_refuses_arrays_in_the_wrong_unit_or_shape(array, encoding):
    with pytest.raises(ImageDecodeError) as caught:
        encode_image(array, encoding)
    assert caught.value.kind == 'bad_array'


def test_encode_refuses_unknown_encoding():
    with pytest.raises(ImageDecodeError, match='yuv422'):
        encode_image(RGB, 'yuv422')


@pytest.mark.ros
def test_rclpy_image_message_round_trip():
    from sensor_msgs.msg import Image
    msg = encode_image(RGB, 'bgr8').copy_to(Image())
    assert isinstance(msg.data, array.array)
    np.testing.assert_array_equal(decode_rgb(msg), RGB)
    depth = encode_image(np.full((2, 3), 1234, np.uint16), '16UC1').copy_to(Image())
    np.testing.assert_allclose(decode_depth(depth), 1.234, rtol=1e-6)


def test_rosbags_image_message_decodes():
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    Image = typestore.types['sensor_msgs/msg/Image']
    Header = typestore.types['std_msgs/msg/Header']
    Time = typestore.types['builtin_interfaces/msg/Time']
    encoded = encode_image(RGB, 'rgba8')
    msg = Image(header=Header(stamp=Time(sec=1, nanosec=2), frame_id='cam'),
                height=encoded.height, width=encoded.width, encoding=encoded.encoding,
                is_bigendian=0, step=encoded.step,
                data=np.frombuffer(encoded.data, np.uint8))
    raw = typestore.serialize_cdr(msg, Image.__msgtype__)
    decoded = typestore.deserialize_cdr(raw, Image.__msgtype__)
    np.testing.assert_array_equal(decode_rgb(decoded), RGB)


def test_codec_imports_no_rclpy():
    code = ('import sys, mmcert_ros.segmenter.codec, mmcert_ros.ros; '
            'sys.exit(1 if "rclpy" in sys.modules else 0)')
    assert subprocess.run([sys.executable, '-c', code]).returncode == 0


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, max_side=9).map(
    lambda shape: shape[:2] + (3,))), st.sampled_from(['rgb8', 'bgr8', 'rgba8', 'bgra8']),
    st.integers(0, 7))
def test_any_colour_image_round_trips_through_padded_rows(rgb, encoding, padding):
    encoded = encode_image(rgb, encoding)
    rows = np.frombuffer(encoded.data, np.uint8).reshape(encoded.height, encoded.step)
    padded = np.concatenate([rows, np.full((encoded.height, padding), 0xAB, np.uint8)], axis=1)
    msg = fields(encoded.height, encoded.width, encoding, encoded.step + padding, padded.tobytes())
    np.testing.assert_array_equal(decode_rgb(msg), rgb)
