"""``camera_info_from_k``: K given as a parameter becomes a camera_info that the frame road and
``CameraIntrinsics`` take like a message; bad values are refused with one-line reasons."""
import numpy as np
import pytest

from mmcert_ros.data.projection import CameraIntrinsics
from mmcert_ros.segmenter.message_fields import camera_info_from_k

K = np.array([[700.0, 0.0, 310.5], [0.0, 690.0, 120.25], [0.0, 0.0, 1.0]])


def test_camera_info_from_k_is_a_pinhole_camera_info():
    info = camera_info_from_k(K.reshape(-1).tolist(), 640, 240)
    assert (info.width, info.height, info.d, info.distortion_model) == (640, 240, (), 'none')
    np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
    assert not hasattr(info, 'header')
    camera = CameraIntrinsics.from_camera_info(info)
    points = np.array([[1.0, -0.5, 4.0], [0.0, 0.0, 2.0]])
    np.testing.assert_allclose(camera.project(points), [[K[0, 0] / 4 + K[0, 2],
                                                         -0.5 * K[1, 1] / 4 + K[1, 2]],
                                                        [K[0, 2], K[1, 2]]])


@pytest.mark.parametrize('k, width, height, message', [
    ([700.0, 0, 310, 0, 690, 120, 0, 0], 640, 240, '9 finite values'),
    ([700.0, 0, 310, 0, 690, 120, 0, 0, float('nan')], 640, 240, '9 finite values'),
    ([0.0, 0, 310, 0, 690, 120, 0, 0, 1], 640, 240, 'fx, fy > 0'),
    ([700.0, 0, 310, 0, -690, 120, 0, 0, 1], 640, 240, 'fx, fy > 0'),
    ([700.0, 0, 310, 0, 690, 120, 0, 1, 1], 640, 240, 'last row 0 0 1'),
    (K.reshape(-1).tolist(), 0, 240, 'size must be positive'),
    (K.reshape(-1).tolist(), 640, -1, 'size must be positive'),
    (K.reshape(-1).tolist(), 640.5, 240, 'whole pixels'),
    (K.reshape(-1).tolist(), True, 240, 'whole pixels'),
    ('seven hundred', 640, 240, '9 finite values'),
    ([[700.0, 0, 310], [0, 690]], 640, 240, '9 finite values'),
])
def test_camera_info_from_k_refuses_with_a_one_line_reason(k, width, height, message):
    with pytest.raises(ValueError, match=message) as caught:
        camera_info_from_k(k, width, height)
    assert '\n' not in str(caught.value)
