"""Depth encodings: uint16 millimetres <-> float32 metres, invalid handling, dtype refusal."""
import numpy as np
import pytest

from mmcert_ros.data.depth import (MAX_MILLIMETRE_DEPTH_M, clean_depth, invalid_depth_mask,
                                   metres_to_millimetres, millimetres_to_metres)


def test_millimetres_to_metres_values_and_zero_is_nan():
    mm = np.array([[0, 1, 1500], [65535, 42, 0]], np.uint16)
    m = millimetres_to_metres(mm)
    assert m.dtype == np.float32 and m.shape == mm.shape
    assert np.isnan(m[0, 0]) and np.isnan(m[1, 2])
    np.testing.assert_allclose(m[0, 1:], [0.001, 1.5], rtol=1e-7)
    np.testing.assert_allclose(m[1, :2], [65.535, 0.042], rtol=1e-7)


def test_every_uint16_value_survives_the_round_trip():
    every = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(metres_to_millimetres(millimetres_to_metres(every)), every)


def test_metres_to_millimetres_rounds_and_marks_unrepresentable_as_zero():
    m = np.array([1.2344, 1.2346, np.nan, np.inf, -np.inf, -1.0, 0.0, 0.0004,
                  MAX_MILLIMETRE_DEPTH_M, 65.5356, 300.0], np.float32)
    mm = metres_to_millimetres(m)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [1234, 1235, 0, 0, 0, 0, 0, 0, 65535, 0, 0]


def test_float64_metres_are_accepted():
    assert metres_to_millimetres(np.array([2.5])).tolist() == [2500]


@pytest.mark.parametrize('bad', [np.zeros(3, np.float32), np.zeros(3, np.int32),
                                 np.zeros(3, np.uint8)])
def test_millimetres_refuse_anything_but_uint16(bad):
    with pytest.raises(ValueError, match=r'cam/depth.*uint16'):
        millimetres_to_metres(bad, source='cam/depth')


@pytest.mark.parametrize('bad', [np.zeros(3, np.uint16), np.zeros(3, np.int64)])
def test_metres_refuse_integer_arrays(bad):
    with pytest.raises(ValueError, match=r'file\.png.*millimetres'):
        metres_to_millimetres(bad, source='file.png')


def test_clean_depth_zeroes_every_invalid_value_and_leaves_input_alone():
    depth = np.array([[1.5, np.nan, np.inf], [-np.inf, -2.0, 0.0]], np.float32)
    before = depth.copy()
    cleaned = clean_depth(depth)
    assert cleaned.dtype == np.float32
    assert cleaned.tolist() == [[1.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert np.array_equal(depth, before, equal_nan=True)
    assert invalid_depth_mask(depth).tolist() == [[False, True, True], [True, True, True]]


def test_clean_depth_refuses_millimetres():
    with pytest.raises(ValueError, match='float'):
        clean_depth(np.ones(4, np.uint16))
