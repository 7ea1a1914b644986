"""The bags ``kitti2bag`` and ``evaluate --write-bag`` write, read with the official MCAP
libraries (``mcap`` + ``mcap-ros2-support``, what Foxglove uses) rather than the package's own
reader: every message decodes, schemas are ``ros2msg``, channels ``cdr``, the summary is
there and agrees with metadata.yaml. Also what the bags record: realistic stamps (the
conversion time unless a start time is given), the offered QoS in rosbag2's YAML form, and
camera_info carried from the input into the result bag.
"""
import time

import numpy as np
import pytest
import yaml

from mmcert_ros.sim.synthetic import SceneConfig, export_kitti
from mmcert_ros.tools import cli
from helpers.ros_harness import tiny_checkpoint

mcap_reader = pytest.importorskip('mcap.reader', reason='pip install mcap')
mcap_ros2_decoder = pytest.importorskip('mcap_ros2.decoder',
                                        reason='pip install mcap-ros2-support')

FRAMES = 2
WIDTH, HEIGHT = 64, 24
START = '2011-09-26T13:02:25.5Z'
START_NS = 1317042145_500_000_000


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """A KITTI folder, its bag with --start-time, its bag with the default start, and the
    result bag of evaluating the first."""
    root = tmp_path_factory.mktemp('mcap')
    export_kitti(root / 'kitti', seed=2, num_frames=FRAMES,
                 config=SceneConfig().with_image_size(WIDTH, HEIGHT))
    assert cli.main(['kitti2bag', str(root / 'kitti'), str(root / 'fixed'), '--no-progress',
                     '--start-time', START]) == 0
    before = time.time_ns()
    assert cli.main(['kitti2bag', str(root / 'kitti'), str(root / 'now'), '--no-progress']) == 0
    after = time.time_ns()
    assert cli.main(['evaluate', '--bag', str(root / 'fixed'), '--gt-topic', '/road_gt/image',
                     '--model', str(tiny_checkpoint(root / 'tiny.pt')), '--device', 'cpu',
                     '--seed', '0', '--out', str(root / 'eval'), '--write-bag',
                     '--no-progress']) == 0
    return {'root': root, 'fixed': root / 'fixed', 'now': root / 'now',
            'result': root / 'eval' / 'bag', 'written_between': (before, after)}


def read_mcap(bag):
    """``(summary, [(schema, channel, message, decoded), ...])`` of the bag's MCAP file."""
    (path,) = bag.glob('*.mcap')
    with open(path, 'rb') as stream:
        reader = mcap_reader.make_reader(
            stream, decoder_factories=[mcap_ros2_decoder.DecoderFactory()])
        summary = reader.get_summary()
        return summary, list(reader.iter_decoded_messages())


def metadata(bag) -> dict:
    return yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']


def stamp_ns(decoded) -> int:
    """A message's header stamp; a /tf_static TFMessage has none: its transform's."""
    header = decoded.transforms[0].header if hasattr(decoded, 'transforms') else decoded.header
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@pytest.mark.parametrize('name', ['fixed', 'now', 'result'])
def test_every_message_decodes_with_the_official_mcap_readers(bags, name):
    summary, items = read_mcap(bags[name])
    assert summary is not None and summary.statistics is not None
    assert summary.statistics.message_count == len(items) > 0
    assert {schema.encoding for schema, _, _, _ in items} == {'ros2msg'}
    assert {channel.message_encoding for _, channel, _, _ in items} == {'cdr'}
    counts = {}
    for schema, channel, message, decoded in items:
        counts[channel.topic] = counts.get(channel.topic, 0) + 1
        assert message.log_time == stamp_ns(decoded)
        if schema.name == 'sensor_msgs/msg/Image':
            assert len(decoded.data) == decoded.step * decoded.height > 0
    recorded = {entry['topic_metadata']['name']: entry['message_count']
                for entry in metadata(bags[name])['topics_with_message_count']}
    assert counts == recorded
    assert dict(summary.statistics.channel_message_counts) == {
        channel_id: counts[channel.topic] for channel_id, channel in summary.channels.items()}


def test_kitti2bag_stamps_start_at_the_given_time_or_now(bags):
    _, fixed = read_mcap(bags['fixed'])
    assert sorted({stamp_ns(decoded) for *_, decoded in fixed}) == [
        START_NS + index * 100_000_000 for index in range(FRAMES)]
    _, now = read_mcap(bags['now'])
    first = min(stamp_ns(decoded) for *_, decoded in now)
    before, after = bags['written_between']
    assert before <= first <= after


@pytest.mark.parametrize('name', ['fixed', 'result'])
def test_metadata_records_the_offered_qos_in_rosbag2_form(bags, name):
    """rmw enums: reliability 1 = reliable; durability 1 = transient local, 2 = volatile;
    history 1 = keep last. /tf_static is latched as tf2's static broadcaster offers it."""
    entries = metadata(bags[name])['topics_with_message_count']
    assert any(entry['topic_metadata']['name'] == '/tf_static' for entry in entries) == (
        name == 'fixed')                                 # kitti2bag writes the calibration
    for entry in entries:
        (profile,) = yaml.safe_load(entry['topic_metadata']['offered_qos_profiles'])
        latched = entry['topic_metadata']['name'] == '/tf_static'
        assert profile['reliability'] == 1 and profile['durability'] == (1 if latched else 2)
        assert profile['history'] == 1 and profile['depth'] == (1 if latched else 10)
        assert set(profile) == {'history', 'depth', 'reliability', 'durability', 'deadline',
                                'lifespan', 'liveliness', 'liveliness_lease_duration',
                                'avoid_ros_namespace_conventions'}


def test_mcap_channels_offer_tf_static_transient_local(bags):
    """What ``ros2 bag play`` reads from an MCAP file: each channel's offered QoS."""
    summary, _ = read_mcap(bags['fixed'])
    durability = {channel.topic: yaml.safe_load(
        channel.metadata['offered_qos_profiles'])[0]['durability']
        for channel in summary.channels.values()}
    assert durability.pop('/tf_static') == 1                      # transient local
    assert durability and set(durability.values()) == {2}         # volatile


def test_result_bag_carries_the_inputs_camera_info(bags):
    def camera_infos(bag):
        return {stamp_ns(decoded): decoded for _, channel, _, decoded in read_mcap(bag)[1]
                if channel.topic == '/rgb/camera_info'}
    given, carried = camera_infos(bags['fixed']), camera_infos(bags['result'])
    assert len(given) == FRAMES and set(carried) == set(given)
    for stamp, info in carried.items():
        np.testing.assert_array_equal(info.p, given[stamp].p)
        np.testing.assert_array_equal(info.k, given[stamp].k)
        assert (info.width, info.height) == (WIDTH, HEIGHT)
