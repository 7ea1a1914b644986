"""The view images (mmcert/view/*): what a person looking at them relies on."""
from types import SimpleNamespace

import numpy as np
import pytest

from mmcert_ros.data.road import CLASS_NAMES, ROAD_CLASS
from mmcert_ros.segmenter.codec import decode_rgb
from mmcert_ros.segmenter.outputs import OUTPUT_TOPICS, encode_requested
from mmcert_ros.segmenter.views import (CLASS_COLOURS, RADIUS_RAMP, VIEW_CERTIFIED_RADIUS,
                                        VIEW_SEGMENTATION, VIEW_TOPICS, luma, radius_view,
                                        segmentation_view, view_images)


def certificate(labels, radius):
    return SimpleNamespace(labels=np.asarray(labels, np.uint8),
                           radius=np.asarray(radius, np.int16))


def test_view_topics_sit_beside_the_data_topics():
    assert VIEW_TOPICS == ('mmcert/view/segmentation', 'mmcert/view/certified_radius')
    assert not set(VIEW_TOPICS) & set(OUTPUT_TOPICS)


def test_palette_has_one_colour_per_class_road_vivid_not_road_dark_grey():
    assert len(CLASS_COLOURS) == len(CLASS_NAMES)
    view = segmentation_view(np.array([[ROAD_CLASS, 0]]))
    assert view.tolist() == [[[255, 0, 255], [64, 64, 64]]]
    road, other = CLASS_COLOURS[ROAD_CLASS].astype(int), CLASS_COLOURS[0].astype(int)
    assert other[0] == other[1] == other[2] and luma(other) < 80          # dark grey
    assert road.max() - road.min() == 255 and luma(road) > luma(other) + 40  # saturated, lighter
    with pytest.raises(ValueError, match='class ids must lie in 0..1'):
        segmentation_view(np.array([[2]]))


def test_not_certified_is_exactly_black_and_certified_never_is():
    image = radius_view(np.array([[-1, 0, 3, 500, -1]]), max_radius=10)
    assert image[0, 0].tolist() == image[0, 4].tolist() == [0, 0, 0]
    assert (luma(image[0, 1:4]) >= 30).all()                      # t = 0 is visibly not black
    np.testing.assert_array_equal(image[0, 1], RADIUS_RAMP[0])
    np.testing.assert_array_equal(image[0, 3], RADIUS_RAMP[-1])   # t beyond max saturates


@pytest.mark.parametrize('max_radius', [1, 4, 10, 37, 254, 1000])
def test_brightness_is_monotone_in_the_radius(max_radius):
    ramp = np.arange(0, max_radius + 6)
    brightness = luma(radius_view(ramp[None, :], max_radius)[0])
    assert (np.diff(brightness) >= 0).all()
    assert brightness[0] < brightness[min(max_radius, 1)] or max_radius > 255
    assert brightness[max_radius] == brightness[-1] == luma(RADIUS_RAMP[-1])
    assert luma(RADIUS_RAMP[-1]) > 6 * luma(RADIUS_RAMP[0])


def test_brightness_strictly_grows_on_a_small_ramp():
    brightness = luma(radius_view(np.arange(11)[None, :], max_radius=10)[0])
    assert (np.diff(brightness) > 0).all()


def test_max_radius_must_be_positive():
    with pytest.raises(ValueError, match='max_radius must be >= 1'):
        radius_view(np.zeros((1, 1)), max_radius=0)


def test_view_images_are_rgb8_at_the_certificate_size():
    labels = np.random.default_rng(0).integers(0, 2, (5, 7))
    radius = np.random.default_rng(1).integers(-1, 20, (5, 7))
    images = view_images(certificate(labels, radius), set(VIEW_TOPICS), max_radius=12)
    assert list(images) == list(VIEW_TOPICS)
    for topic, expected in ((VIEW_SEGMENTATION, segmentation_view(labels)),
                            (VIEW_CERTIFIED_RADIUS, radius_view(radius, 12))):
        image = images[topic]
        assert (image.height, image.width, image.encoding, image.step) == (5, 7, 'rgb8', 21)
        np.testing.assert_array_equal(decode_rgb(image), expected)
    assert set(view_images(certificate(labels, radius), {VIEW_SEGMENTATION})) == \
        {VIEW_SEGMENTATION}
    with pytest.raises(ValueError, match="unknown output topics: \\['mmcert/overlay'\\]"):
        view_images(certificate(labels, radius), {VIEW_SEGMENTATION, 'mmcert/overlay'})


def test_encode_requested_runs_only_the_requested_makers():
    made = []
    makers = {'a': lambda: made.append('a') or 1, 'b': lambda: made.append('b') or 2}
    assert encode_requested(makers, {'b'}) == {'b': 2} and made == ['b']
    with pytest.raises(ValueError, match='unknown output topics'):
        encode_requested(makers, {'a', 'c'})
    assert made == ['b']
