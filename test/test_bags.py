"""The rosbags-based bag layer: what is written reads back (both storages, bare files, ROS 1),
and bad input fails clearly (missing topic lists the bag's topics, corrupt bags name the path,
corrupt messages come back as errors without stopping the stream, nothing is overwritten)."""
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from mmcert_ros.bags import (BagError, BagReader, BagWriter, MissingTopicError,
                             camera_info_from_projection)
from mmcert_ros.bags.messages import TYPESTORE, image_message
from mmcert_ros.segmenter.message_fields import stamp_to_ns
from mmcert_ros.segmenter.codec import decode_depth, decode_mask, decode_rgb, encode_image

S = 1_000_000_000
STAMPS = [7 * S + i * S // 10 for i in range(4)]  # 10 Hz, crossing a second boundary
STORAGE_FILES = {'mcap': 'mcap', 'sqlite3': 'db3'}


def _frames(count=len(STAMPS)):
    rng = np.random.default_rng(3)
    for stamp in STAMPS[:count]:
        yield (stamp, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
               rng.integers(0, 60000, (3, 4), dtype=np.uint16),
               (rng.random((6, 8)) < 0.5).astype(np.uint8) * 255)


def _write_drive(path, storage='mcap'):
    projection = np.arange(12, dtype=np.float64).reshape(3, 4) + 0.5
    with BagWriter(path, storage) as bag:
        for stamp, rgb, depth_mm, gt in _frames():
            bag.write_image('/cam/rgb', encode_image(rgb, 'rgb8'), stamp, 'cam')
            bag.write_image('/cam/depth', encode_image(depth_mm, '16UC1'), stamp, 'cam')
            bag.write_image('/cam/gt', encode_image(gt, 'mono8'), stamp, 'cam')
            bag.write('/cam/info', camera_info_from_projection(projection, 8, 6, stamp, 'cam'))
    return projection


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_written_bag_reads_back_topics_counts_stamps_and_pixels(tmp_path, storage):
    path = tmp_path / 'drive'
    projection = _write_drive(path, storage)
    assert (path / 'metadata.yaml').is_file()
    assert list(path.glob(f'*.{STORAGE_FILES[storage]}'))
    with BagReader(path) as bag:
        assert {name: (t.msgtype, t.count) for name, t in bag.topics.items()} == {
            '/cam/rgb': ('sensor_msgs/msg/Image', 4), '/cam/depth': ('sensor_msgs/msg/Image', 4),
            '/cam/gt': ('sensor_msgs/msg/Image', 4),
            '/cam/info': ('sensor_msgs/msg/CameraInfo', 4)}
        messages = list(bag.messages(['/cam/rgb', '/cam/depth', '/cam/gt', '/cam/info']))
    assert all(m.error is None for m in messages)
    by_topic = {topic: [m for m in messages if m.topic == topic]
                for topic in ('/cam/rgb', '/cam/depth', '/cam/gt', '/cam/info')}
    for topic, items in by_topic.items():
        assert [m.log_time_ns for m in items] == STAMPS, topic
        assert [stamp_to_ns(m.message.header.stamp) for m in items] == STAMPS, topic
        assert all(m.message.header.frame_id == 'cam' for m in items)
    for (stamp, rgb, depth_mm, gt), rgb_msg, depth_msg, gt_msg in zip(
            _frames(), by_topic['/cam/rgb'], by_topic['/cam/depth'], by_topic['/cam/gt']):
        np.testing.assert_array_equal(decode_rgb(rgb_msg.message), rgb)
        expected_m = np.where(depth_mm > 0, depth_mm.astype(np.float32) / np.float32(1000), np.nan)
        np.testing.assert_allclose(decode_depth(depth_msg.message), expected_m, rtol=1e-6)
        np.testing.assert_array_equal(decode_mask(gt_msg.message), gt)
    info = by_topic['/cam/info'][0].message
    assert (info.width, info.height, info.distortion_model) == (8, 6, 'plumb_bob')
    np.testing.assert_array_equal(info.p.reshape(3, 4), projection)
    np.testing.assert_array_equal(info.k.reshape(3, 3), projection[:, :3])
    np.testing.assert_array_equal(info.r.reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(info.d, np.zeros(5))


def test_messages_merge_topics_in_log_time_order(tmp_path):
    path = tmp_path / 'drive'
    _write_drive(path)
    with BagReader(path) as bag:
        times = [m.log_time_ns for m in bag.messages(['/cam/rgb', '/cam/gt'])]
    assert times == sorted(times) and len(times) == 8


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bare_storage_file_and_directory_without_metadata_open(tmp_path, storage):
    path = tmp_path / 'drive'
    _write_drive(path, storage)
    storage_file = next(path.glob(f'*.{STORAGE_FILES[storage]}'))
    with BagReader(storage_file) as bag:
        assert bag.topics['/cam/rgb'].count == 4
    (path / 'metadata.yaml').unlink()
    with BagReader(path) as bag:
        assert len(list(bag.messages(['/cam/depth']))) == 4


def test_ros1_bag_reads_through_the_same_api(tmp_path):
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    image_type = 'sensor_msgs/msg/Image'
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    message = ros1.types[image_type](
        header=ros1.types['std_msgs/msg/Header'](
            seq=0, stamp=ros1.types['builtin_interfaces/msg/Time'](sec=5, nanosec=7),
            frame_id='cam'),
        height=2, width=3, encoding='rgb8', is_bigendian=0, step=9, data=rgb.reshape(-1))
    path = tmp_path / 'drive.bag'
    with Ros1Writer(path) as writer:
        connection = writer.add_connection('/cam/rgb', image_type, typestore=ros1)
        writer.write(connection, 5 * S + 7, ros1.serialize_ros1(message, image_type))
    with BagReader(path) as bag:
        assert bag.topics['/cam/rgb'].msgtype == image_type
        (item,) = bag.messages(['/cam/rgb'])
    assert stamp_to_ns(item.message.header.stamp) == 5 * S + 7
    np.testing.assert_array_equal(decode_rgb(item.message), rgb)


def test_missing_topic_error_lists_the_topics_of_the_bag(tmp_path):
    path = tmp_path / 'drive'
    _write_drive(path)
    with BagReader(path) as bag:
        with pytest.raises(MissingTopicError) as caught:
            bag.messages(['/cam/rgb', '/camera/depth'])
        with pytest.raises(BagError, match='expected sensor_msgs/msg/Image, but /cam/info is'):
            bag.require_topics(['/cam/rgb', '/cam/info'], 'sensor_msgs/msg/Image')
        bag.require_topics(['/cam/rgb', '/cam/gt'], 'sensor_msgs/msg/Image')
    text = str(caught.value)
    assert '/camera/depth' in text and str(path) in text
    for topic in ('/cam/rgb', '/cam/depth', '/cam/gt', '/cam/info'):
        assert topic in text


def test_corrupt_message_is_reported_and_the_stream_goes_on(tmp_path):
    path = tmp_path / 'drive'
    good = image_message(encode_image(np.zeros((2, 2, 3), np.uint8), 'rgb8'), S, 'cam')
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/cam/rgb', good.__msgtype__, typestore=TYPESTORE)
        writer.write(connection, S, TYPESTORE.serialize_cdr(good, good.__msgtype__))
        writer.write(connection, 2 * S, b'\x00\x01\x00\x00garbage')
        writer.write(connection, 3 * S, TYPESTORE.serialize_cdr(good, good.__msgtype__))
    with BagReader(path) as bag:
        items = list(bag.messages(['/cam/rgb']))
    assert [m.log_time_ns for m in items] == [S, 2 * S, 3 * S]
    assert [m.error is None for m in items] == [True, False, True]
    assert items[1].message is None and items[1].error


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'metadata'])
def test_corrupt_bag_fails_with_a_message_naming_it(tmp_path, storage, damage):
    path = tmp_path / 'drive'
    _write_drive(path, storage)
    storage_file = next(path.glob(f'*.{STORAGE_FILES[storage]}'))
    if damage == 'truncate':
        storage_file.write_bytes(storage_file.read_bytes()[:300])
    elif damage == 'garbage':
        storage_file.write_bytes(b'not a bag at all' * 64)
    else:
        (path / 'metadata.yaml').write_text('something: else\n')
    with pytest.raises(BagError, match=str(path)):
        with BagReader(path) as bag:
            list(bag.messages(['/cam/rgb']))


def test_missing_bag_path_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        BagReader(tmp_path / 'nowhere')


def test_writer_never_overwrites_and_leaves_no_partial_bag(tmp_path):
    path = tmp_path / 'drive'
    _write_drive(path)
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(BagError, match='exists already'):
        with BagWriter(path):
            pass
    assert sorted(p.name for p in path.iterdir()) == before

    partial = tmp_path / 'partial'
    with pytest.raises(RuntimeError, match='boom'):
        with BagWriter(partial, 'sqlite3') as bag:
            bag.write_image('/cam/rgb', encode_image(np.zeros((2, 2, 3), np.uint8), 'rgb8'),
                            S, 'cam')
            raise RuntimeError('boom')
    assert not partial.exists()


def test_writer_rejects_bad_input_by_name(tmp_path):
    with pytest.raises(ValueError, match="unknown bag storage 'zip'"):
        BagWriter(tmp_path / 'b', storage='zip')
    with BagWriter(tmp_path / 'b') as bag:
        bag.write_image('/x', encode_image(np.zeros((2, 2), np.uint8), 'mono8'), S, 'cam')
        with pytest.raises(BagError, match='topic /x holds sensor_msgs/msg/Image'):
            bag.write('/x', camera_info_from_projection(np.zeros((3, 4)), 2, 2, S, 'cam'))
        with pytest.raises(ValueError, match='projection matrix must be 3x4'):
            camera_info_from_projection(np.zeros((3, 3)), 2, 2, S, 'cam')
        with pytest.raises(ValueError, match='stamp must be >= 0'):
            bag.write_image('/x', encode_image(np.zeros((2, 2), np.uint8), 'mono8'), -1, 'cam')
    assert Path(tmp_path / 'b' / 'metadata.yaml').is_file()


def test_bag_with_fewer_messages_than_its_index_lists_is_reported_corrupt(tmp_path):
    path = tmp_path / 'drive'
    _write_drive(path, 'sqlite3')
    database = next(path.glob('*.db3'))
    with sqlite3.connect(database) as connection:  # lose the last stored message
        connection.execute('DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages)')
    with BagReader(path) as bag:
        stream = bag.messages(['/cam/rgb', '/cam/depth', '/cam/gt', '/cam/info'])
        with pytest.raises(BagError, match=r'corrupt: only 3 of 4 on /cam/info'):
            for _ in stream:
                pass


def _chunks(mcap_file):
    """``(start offset, end offset, messages)`` of every chunk, read by ``rosbags``' own MCAP
    reader from the file's summary (independent of the salvage reader under test)."""
    from rosbags.rosbag2.storage_mcap import McapReader
    reader = McapReader(mcap_file)
    reader.open()
    try:
        return [(chunk.chunk_start_offset, chunk.chunk_start_offset + chunk.chunk_length,
                 sum(chunk.channel_count.values())) for chunk in reader.chunks]
    finally:
        reader.close()


def _write_big_drive(path, frames=10):
    """MCAP frames large enough (about 0.35 MB each) for rosbags to close several 1 MiB chunks."""
    rng = np.random.default_rng(5)
    with BagWriter(path, 'mcap') as bag:
        for index in range(frames):
            stamp = 7 * S + index * S // 10
            bag.write_image('/cam/rgb', encode_image(
                rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), 'rgb8'), stamp, 'cam')
            bag.write_image('/cam/depth', encode_image(
                rng.integers(0, 60000, (240, 320), dtype=np.uint16), '16UC1'), stamp, 'cam')
    return next(path.glob('*.mcap'))


def test_mcap_cut_in_a_chunk_reads_every_complete_chunk_then_says_where_it_stopped(tmp_path):
    path = tmp_path / 'drive'
    mcap_file = _write_big_drive(path)
    chunks = _chunks(mcap_file)
    assert len(chunks) >= 3
    with BagReader(path) as bag:   # every message of the intact bag, in order
        intact = [(m.topic, m.log_time_ns, bytes(m.message.data))
                  for m in bag.messages(['/cam/rgb', '/cam/depth'])]
    start, end, _ = chunks[2]
    cut = (start + end) // 2                 # in the middle of the third chunk
    mcap_file.write_bytes(mcap_file.read_bytes()[:cut])
    readable = chunks[0][2] + chunks[1][2]   # the messages of the two complete chunks

    with BagReader(path) as bag:
        assert bag.truncated and f'the chunk at byte {start} is cut off' in bag.truncated
        assert sum(topic.count for topic in bag.topics.values()) == readable
        read = []
        with pytest.raises(BagError, match=rf'bag {path} is truncated: .* read the {readable} '
                                           'messages before it'):
            for message in bag.messages(['/cam/rgb', '/cam/depth']):
                read.append((message.topic, message.log_time_ns, bytes(message.message.data)))
    assert read == intact[:readable]


def test_mcap_that_lost_only_its_summary_reads_completely(tmp_path):
    path = tmp_path / 'drive'
    mcap_file = _write_big_drive(path, frames=3)
    data = mcap_file.read_bytes()
    summary_start, = struct.unpack_from('<Q', data, len(data) - 37 + 9)   # from the footer
    assert summary_start > _chunks(mcap_file)[-1][1]
    mcap_file.write_bytes(data[:summary_start + 30])   # the data-end record is just before
    with BagReader(path) as bag:
        assert bag.truncated is None
        assert {name: t.count for name, t in bag.topics.items()} == {'/cam/rgb': 3,
                                                                     '/cam/depth': 3}
        assert len(list(bag.messages(['/cam/rgb', '/cam/depth']))) == 6
