"""Bag replay evaluation: figures checked against an independent oracle (SciPy binomial tails,
statsmodels Holm, numpy counting), the curve's shape, the written reports and result bag, and
bad input (missing topics, unpaired / corrupt messages, corrupt bags, no overwrite)."""
import csv
import json
import sqlite3

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from scipy.stats import binom
from statsmodels.stats.multitest import multipletests

from mmcert_ros.bags import BagError, BagReader, BagWriter, MissingTopicError
from mmcert_ros.bags.frames import write_frame
from mmcert_ros.bags.messages import TYPESTORE, image_message
from mmcert_ros.segmenter.message_fields import stamp_to_ns
from mmcert_ros.certify import CertifiedSegmenter, delta
from mmcert_ros.data import Frame
from mmcert_ros.data.depth import metres_to_millimetres, millimetres_to_metres
from mmcert_ros.bags.kitti_to_bag import kitti_to_bag
from mmcert_ros.sim.synthetic import SceneConfig, export_kitti
from mmcert_ros.evaluation import BagFrames, EvaluationIncomplete, KittiFrames, evaluate
from mmcert_ros.evaluation.seeds import frame_seed
from mmcert_ros.segmenter.codec import decode_depth, decode_mask, decode_rgb, encode_image
from mmcert_ros.segmenter.overlay import render_overlay
from mmcert_ros.tools import cli

from helpers.evaluation_inputs import CONFIG, MS, S, TOPICS, LocalBrightness, make_frames


def write_bag(path, frames, storage='mcap', topics=TOPICS):
    with BagWriter(path, storage) as bag:
        for frame in frames:
            write_frame(bag, frame, topics)
    return path


def oracle(frames, config=CONFIG, input_id='drive'):
    """Plain, certified and curve figures computed independently of the evaluation code:
    top counts from the engine (each frame with its own seed, derived from the input's name
    and the frame's stamp), then SciPy p-values, statsmodels Holm and numpy counts."""
    certificates = [
        CertifiedSegmenter(LocalBrightness(), config.replace(
            seed=frame_seed(config.seed, input_id, frame.stamp_ns))).certify_frame(frame)
        for frame in frames]

    def certified_mask(cert, r_rgb, r_depth):
        q = 0.5 + delta(cert.n, cert.k, (r_rgb, r_depth))
        if q >= 1:
            return np.zeros(cert.labels.shape, bool)
        counts = cert.top_counts.ravel()
        tail = binom.sf(counts - 1, cert.num_samples, q)   # the selection bound of
        pvalues = np.minimum(1.0, np.where(                 # docs/certification.md
            2 * counts > cert.num_samples, tail + binom.sf(counts - 1, cert.num_samples, 1 - q),
            cert.num_classes * tail))
        reject = multipletests(pvalues, alpha=config.alpha, method='holm')[0]
        return reject.reshape(cert.labels.shape)

    def pooled(masks):
        tp = tn = fp = fn = wrong = 0
        for frame, cert, mask in zip(frames, certificates, masks):
            road = frame.road_mask == 1
            correct = mask & ((cert.labels == 1) == road)
            wrong += np.sum(mask & ((cert.labels == 1) != road))   # certified but wrong
            tp += np.sum(correct & road)
            tn += np.sum(correct & ~road)
            fn += np.sum(road) - np.sum(correct & road)
            fp += np.sum(~road) - np.sum(correct & ~road)
        return {'pixel_accuracy': (tp + tn) / (tp + tn + fp + fn),
                'f1': 2 * tp / (2 * tp + fp + fn),
                'iou': tp / (tp + fp + fn), 'recall': tp / (tp + fn),
                'wrong_fraction': wrong / max(1, sum(m.sum() for m in masks)),
                'certified_fraction': sum(m.sum() for m in masks) / sum(m.size for m in masks)}

    curve = []
    for t in range(1000):
        masks = [certified_mask(c, t * config.ray[0], t * config.ray[1]) for c in certificates]
        curve.append({'t': t, **pooled(masks)})
        if not any(m.any() for m in masks):
            break
    plain = pooled([np.ones(c.labels.shape, bool) for c in certificates])
    certified = pooled([certified_mask(c, config.radius_rgb, config.radius_depth)
                        for c in certificates])
    return certificates, plain, certified, curve


def run_evaluation(source, out_dir, config=CONFIG, **options):
    segmenter = CertifiedSegmenter(LocalBrightness(), config)
    return evaluate(source, segmenter, out_dir, progress=False, **options)


@pytest.fixture(scope='module')
def frames():
    return make_frames()


@pytest.fixture(scope='module')
def expected(frames):
    # the bag stores depth in whole millimetres: the oracle sees what the bag holds
    stored = [Frame(rgb=f.rgb, depth=millimetres_to_metres(metres_to_millimetres(f.depth)),
                    road_mask=f.road_mask, stamp_ns=f.stamp_ns, name=f.name) for f in frames]
    return oracle(stored)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_metrics_match_the_independent_oracle(tmp_path, frames, expected, storage):
    bag = write_bag(tmp_path / 'drive', frames, storage)
    metrics = run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), tmp_path / 'out')
    certificates, plain, certified, curve = expected
    assert metrics['frames'] == metrics['frames_with_ground_truth'] == 4
    assert metrics['complete'] and metrics['skipped'] == {'total': 0, 'reasons': {}}
    assert (metrics['num_samples'], metrics['alpha']) == (60, 0.001)
    assert metrics['n'] == {'rgb': [16 * 24], 'depth': [8 * 12]}
    assert metrics['k'] == {'rgb': [38], 'depth': [2]}
    assert metrics['radius'] == {'rgb': 1, 'depth': 2} and metrics['ray'] == [1, 2]
    for name in ('pixel_accuracy', 'f1', 'iou', 'recall', 'wrong_fraction'):
        assert metrics['plain'][name] == pytest.approx(plain[name], abs=1e-12)
        assert metrics['certified'][name] == pytest.approx(certified[name], abs=1e-12)
    assert metrics['certified_fraction'] == pytest.approx(certified['certified_fraction'])
    assert len(metrics['curve']) == len(curve) >= 3
    assert curve[0]['wrong_fraction'] > 0          # some pixels are certified but wrong
    for got, want in zip(metrics['curve'], curve):
        assert (got['t'], got['r_rgb'], got['r_depth']) == (want['t'], want['t'], 2 * want['t'])
        for name in ('pixel_accuracy', 'f1', 'iou', 'recall', 'wrong_fraction',
                     'certified_fraction'):
            assert got[name] == pytest.approx(want[name], abs=1e-12), (got['t'], name)
    for stage in ('total', 'sampling', 'inference', 'certification'):
        figures = metrics['latency_s'][stage]
        assert 0 <= figures['p50'] <= figures['p90'] <= figures['p99'] <= figures['max']


@pytest.fixture(scope='module')
def synthetic_kitti(tmp_path_factory):
    root = tmp_path_factory.mktemp('kitti')
    export_kitti(root, seed=2, num_frames=4, config=SceneConfig().with_image_size(96, 32))
    return root


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_and_kitti_folder_of_the_same_frames_give_identical_metrics(
        tmp_path, synthetic_kitti, storage):
    bag = tmp_path / 'bag'
    kitti_to_bag(synthetic_kitti, bag, storage=storage)
    # the same name and stamps: the same per-frame seeds
    from_bag = run_evaluation(BagFrames(bag, '/rgb/image', '/depth/image', '/road_gt/image'),
                              tmp_path / 'from_bag', input_id='drive')
    from_kitti = run_evaluation(KittiFrames(synthetic_kitti), tmp_path / 'from_kitti',
                                input_id='drive')
    assert from_bag['frames'] == from_kitti['frames'] == 4
    assert from_bag['frames_with_ground_truth'] == 4
    assert len(from_bag['curve']) >= 3
    for metrics in (from_bag, from_kitti):
        del metrics['source'], metrics['latency_s']
    assert from_bag == from_kitti

    def rows(folder):
        with (folder / 'frames.csv').open() as stream:
            return [{k: v for k, v in row.items() if not k.endswith('_s') and k != 'name'}
                    for row in csv.DictReader(stream)]
    assert rows(tmp_path / 'from_bag') == rows(tmp_path / 'from_kitti')


def test_certified_curve_never_rises_and_ends_at_zero(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    for config in (CONFIG, CONFIG.replace(ray=(2, 0)), CONFIG.replace(ray=(0, 1))):
        metrics = run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'),
                                 tmp_path / f'out{config.ray}', config=config)
        curve = metrics['curve']
        assert len(curve) >= 3, config.ray
        for name in ('certified_fraction', 'pixel_accuracy', 'f1', 'iou', 'recall'):
            values = [point[name] for point in curve]
            assert all(b <= a for a, b in zip(values, values[1:])), (config.ray, name, values)
            assert values[-1] == 0.0 and values[0] > 0.0
        assert [p['r_rgb'] for p in curve] == [t * config.ray[0] for t in range(len(curve))]


def test_reports_are_written_one_row_per_frame(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    out = tmp_path / 'out'
    metrics = run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), out)
    assert json.loads((out / 'metrics.json').read_text()) == metrics
    with (out / 'frames.csv').open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row['stamp_ns']) for row in rows] == [f.stamp_ns for f in frames]
    assert {'total_s', 'certified_fraction', 'certified_iou', 'plain_iou'} <= set(rows[0])
    fractions = [float(row['certified_fraction']) for row in rows]
    assert np.mean(fractions) == pytest.approx(metrics['certified_fraction'])  # equal frame sizes
    assert (out / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_evaluation_without_ground_truth_reports_certified_fraction_only(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    metrics = run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth'), tmp_path / 'out',
                             max_frames=3)
    assert metrics['frames'] == 3 and metrics['frames_with_ground_truth'] == 0
    assert 'certified' not in metrics and 'plain' not in metrics
    assert set(metrics['curve'][0]) == {'t', 'r_rgb', 'r_depth', 'certified_fraction'}
    assert (tmp_path / 'out' / 'curves.png').is_file()


def test_write_bag_holds_inputs_and_outputs_with_the_frame_stamps(tmp_path, frames, expected):
    bag = write_bag(tmp_path / 'drive', frames)
    out = tmp_path / 'out'
    run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), out, write_bag=True)
    certificates = expected[0]
    outputs = ['/mmcert/segmentation', '/mmcert/certification', '/mmcert/certified_radius',
               '/mmcert/overlay']
    with BagReader(out / 'bag') as result:
        assert next((out / 'bag').glob('*.mcap'))
        assert {name: t.count for name, t in result.topics.items()} == {
            name: 4 for name in ['/cam/rgb', '/cam/depth', '/cam/gt', *outputs]}
        items = list(result.messages(['/cam/rgb', '/cam/depth', '/cam/gt', *outputs]))
    by_topic = {}
    for item in items:
        by_topic.setdefault(item.topic, []).append(item.message)
    for topic, messages in by_topic.items():
        assert ([stamp_to_ns(m.header.stamp) for m in messages]
                == [f.stamp_ns for f in frames]), topic
    for index, (frame, cert) in enumerate(zip(frames, certificates)):
        np.testing.assert_array_equal(decode_rgb(by_topic['/cam/rgb'][index]), frame.rgb)
        assert by_topic['/cam/depth'][index].encoding == '32FC1'  # exactly the evaluated depth
        np.testing.assert_array_equal(decode_depth(by_topic['/cam/depth'][index]),
                                      millimetres_to_metres(metres_to_millimetres(frame.depth)))
        np.testing.assert_array_equal(decode_mask(by_topic['/cam/gt'][index]),
                                      frame.road_mask * 255)
        np.testing.assert_array_equal(decode_mask(by_topic['/mmcert/segmentation'][index]),
                                      cert.labels)
        np.testing.assert_array_equal(decode_mask(by_topic['/mmcert/certification'][index]),
                                      cert.certified.astype(np.uint8) * 255)
        np.testing.assert_array_equal(decode_rgb(by_topic['/mmcert/overlay'][index]),
                                      render_overlay(frame.rgb, cert.labels, cert.certified))


def _write_raw_bag(path, items):
    """An MCAP bag written with rosbags itself: items are (topic, stamp_ns, message or bytes);
    bytes are stored as they are (an undeserializable message)."""
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for topic, stamp, payload in items:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, 'sensor_msgs/msg/Image',
                                                           typestore=TYPESTORE)
            if not isinstance(payload, bytes):
                payload = TYPESTORE.serialize_cdr(payload, 'sensor_msgs/msg/Image')
            writer.write(connections[topic], stamp, payload)


def test_unpaired_and_corrupt_messages_are_skipped_and_counted(tmp_path):
    frames = make_frames(count=9)
    stamp = [f.stamp_ns for f in frames]

    def image(topic, index, array=None, encoding=None, offset_ns=0):
        frame = frames[index]
        if array is None:
            array, encoding = {'/cam/rgb': (frame.rgb, 'rgb8'),
                               '/cam/depth': (frame.depth, '32FC1'),
                               '/cam/gt': (frame.road_mask, 'mono8')}[topic]
        message = image_message(encode_image(array, encoding), stamp[index] + offset_ns, 'cam')
        return topic, stamp[index] + offset_ns, message

    def full(index):
        return [image(topic, index) for topic in ('/cam/rgb', '/cam/depth', '/cam/gt')]

    short_rgb = image('/cam/rgb', 4)
    short_rgb[2].data = short_rgb[2].data[:-1]  # one byte short of step x height
    items = [
        *full(0), *full(1),                                    # two frames
        image('/cam/rgb', 2),                                  # unpaired rgb
        image('/cam/depth', 3), image('/cam/rgb', 3, offset_ns=50 * MS),  # 50 ms > slop
        short_rgb, image('/cam/depth', 4), image('/cam/gt', 4),  # undecodable rgb
        image('/cam/rgb', 5), image('/cam/depth', 5),          # pair without ground truth
        image('/cam/rgb', 6), image('/cam/depth', 6),
        image('/cam/gt', 6, np.zeros((4, 4), np.uint8), 'mono8'),  # gt of another size
        image('/cam/gt', 7),                                   # unpaired ground truth
        *full(8),                                              # a frame
        ('/cam/depth', stamp[8] + 10 * MS, b'\x00\x01\x00\x00broken'),  # corrupt message
    ]
    path = tmp_path / 'drive'
    _write_raw_bag(path, items)
    metrics = run_evaluation(BagFrames(path, '/cam/rgb', '/cam/depth', '/cam/gt'),
                             tmp_path / 'out')
    assert metrics['frames'] == 3  # frames 0, 1 and 8
    assert metrics['skipped']['reasons'] == {
        'corrupt depth message': 1,
        'ground truth size differs from rgb': 1,
        'rgb-d pair without ground truth': 1,
        'undecodable rgb message (size_mismatch)': 1,
        'unpaired depth': 1,
        'unpaired ground truth': 1,
        'unpaired rgb': 2,
    }
    assert metrics['skipped']['total'] == 8
    with (tmp_path / 'out' / 'frames.csv').open() as stream:
        assert [int(row['stamp_ns']) for row in csv.DictReader(stream)] == [
            stamp[0], stamp[1], stamp[8]]


def test_slop_decides_pairing_like_the_node(tmp_path, frames):
    path = tmp_path / 'drive'
    with BagWriter(path) as bag:
        for frame in frames:
            bag.write_image('/cam/rgb', encode_image(frame.rgb, 'rgb8'), frame.stamp_ns, 'cam')
            bag.write_image('/cam/depth', encode_image(frame.depth, '32FC1'),
                            frame.stamp_ns + 15 * MS, 'cam')
    assert run_evaluation(BagFrames(path, '/cam/rgb', '/cam/depth', slop_s=0.02),
                          tmp_path / 'a')['frames'] == 4
    tight = run_evaluation(BagFrames(path, '/cam/rgb', '/cam/depth', slop_s=0.01), tmp_path / 'b')
    assert tight['frames'] == 0
    assert tight['skipped']['reasons'] == {'unpaired depth': 4, 'unpaired rgb': 4}


def test_missing_topic_names_the_topics_of_the_bag(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    with pytest.raises(MissingTopicError) as caught:
        BagFrames(bag, '/cam/rgb', '/camera/depth')
    assert all(topic in str(caught.value) for topic in ('/camera/depth', '/cam/depth', '/cam/gt'))


def test_nothing_is_overwritten_without_force(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    out = tmp_path / 'out'
    source = BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt')
    run_evaluation(source, out, write_bag=True)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
    with pytest.raises(ValueError,
                       match='already holds metrics.json, frames.csv, curves.png, bag'):
        run_evaluation(source, out, write_bag=True, max_frames=1)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()} == before
    metrics = run_evaluation(source, out, write_bag=True, max_frames=1, force=True)
    assert metrics['frames'] == 1
    with BagReader(out / 'bag') as result:
        assert result.topics['/mmcert/segmentation'].count == 1


def test_corrupt_bag_stops_with_a_clear_error_after_writing_the_reports(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames, 'sqlite3')
    with sqlite3.connect(next(bag.glob('*.db3'))) as database:
        database.execute('DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages)')
    out = tmp_path / 'out'
    with pytest.raises(EvaluationIncomplete, match=r'corrupt: only 3 of 4 on /cam/gt.*3 frames'):
        run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), out)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['complete'] is False and 'only 3 of 4' in metrics['error']
    assert metrics['frames'] == 3


def test_cli_reads_the_node_parameter_file_and_reports(tmp_path, tiny_checkpoint, capsys):
    frames = make_frames(count=2, height=64, width=96)
    bag = write_bag(tmp_path / 'drive', frames)
    params = tmp_path / 'mmcert.yaml'
    params.write_text(
        'mmcert_segmenter:\n  ros__parameters:\n'
        f'    model.checkpoint: {tiny_checkpoint}\n    model.batch_size: 8\n'
        '    certify.num_samples: 8\n    certify.seed: 3\n    certify.radius_rgb: 2\n'
        '    sync.slop: 0.01\n    qos.reliability: reliable\n')
    out = tmp_path / 'out'
    argv = ['evaluate', '--bag', str(bag), '--rgb-topic', '/cam/rgb', '--depth-topic',
            '/cam/depth', '--gt-topic', '/cam/gt', '--config', str(params), '--out', str(out),
            '--no-progress']
    assert cli.main(argv) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['config']['num_samples'] == 8 and metrics['config']['seed'] == 3
    assert metrics['source']['slop_s'] == 0.01 and metrics['model'] == str(tiny_checkpoint)
    assert metrics['frames'] == 2 and metrics['radius'] == {'rgb': 2, 'depth': 0}
    printed = capsys.readouterr().out
    assert 'certified IoU' in printed
    assert f"certified but wrong {metrics['certified']['wrong_fraction']:.2%}" in printed

    assert cli.main(argv) == 2  # refuses to overwrite
    assert 'pass --force' in capsys.readouterr().err
    assert cli.main([*argv[:5], '--depth-topic', '/nope', *argv[7:], '--force']) == 2
    error = capsys.readouterr().err
    assert 'no topic /nope' in error and '/cam/depth' in error
    assert cli.main([*argv, '--force', '--seed', '-1', '--max-frames', '1']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['config']['seed'] is None and metrics['frames'] == 1


class InterruptedAfter:
    """A frame source that behaves like Ctrl-C after ``count`` frames."""

    def __init__(self, source, count):
        self.source, self.count = source, count
        self.expected, self.frame_topics = source.expected, source.frame_topics
        self.describe, self.skipped = source.describe, source.skipped

    def __iter__(self):
        for index, frame in enumerate(self.source):
            if index == self.count:
                raise KeyboardInterrupt
            yield frame


def test_interrupted_evaluation_keeps_the_reports_and_bag_of_the_frames_done(tmp_path, frames):
    bag = write_bag(tmp_path / 'drive', frames)
    out = tmp_path / 'out'
    source = InterruptedAfter(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), 2)
    with pytest.raises(KeyboardInterrupt, match='after 2 frames'):
        run_evaluation(source, out, write_bag=True)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert (metrics['frames'], metrics['complete'], metrics['error']) == (2, False, 'interrupted')
    with BagReader(out / 'bag') as result:
        assert result.topics['/mmcert/overlay'].count == 2


def _complete_chunk_messages(mcap_file, cut):
    """Messages in the chunks that end before byte ``cut``, from ``rosbags``' own reader of
    the intact file's summary (independent of the salvage reader)."""
    from rosbags.rosbag2.storage_mcap import McapReader
    reader = McapReader(mcap_file)
    reader.open()
    try:
        return sum(sum(chunk.channel_count.values()) for chunk in reader.chunks
                   if chunk.chunk_start_offset + chunk.chunk_length <= cut)
    finally:
        reader.close()


def _cut_mcap(bag, fraction):
    """Cut the bag's MCAP file at ``fraction`` of its size (as a killed recorder leaves it);
    return the number of messages in the complete chunks before the cut."""
    mcap_file = next(bag.glob('*.mcap'))
    data = mcap_file.read_bytes()
    cut = int(len(data) * fraction)
    readable = _complete_chunk_messages(mcap_file, cut)
    mcap_file.write_bytes(data[:cut])
    return readable


def test_truncated_mcap_is_evaluated_up_to_the_cut_and_marked_incomplete(tmp_path):
    frames = make_frames(count=10, height=240, width=320)   # about 0.35 MB a frame: 4 chunks
    config = CONFIG.replace(num_samples=20, batch_size=20)
    bag = write_bag(tmp_path / 'drive', frames)
    readable = _cut_mcap(bag, 0.6)
    whole, rest = divmod(readable, 3)     # each frame wrote rgb, depth, gt in this order
    assert whole >= 3 and whole < len(frames)
    out = tmp_path / 'out'
    with pytest.raises(EvaluationIncomplete, match=rf'bag {bag} is truncated: .*cut off.*'
                                                   rf'{whole} frames before it'):
        run_evaluation(BagFrames(bag, '/cam/rgb', '/cam/depth', '/cam/gt'), out, config)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['complete'] is False and 'truncated' in metrics['error']
    assert metrics['frames'] == whole
    # the partly written frame's messages count as unpaired, by kind
    partial = {0: {}, 1: {'unpaired rgb': 1}, 2: {'rgb-d pair without ground truth': 1}}[rest]
    assert metrics['skipped']['reasons'] == partial
    # the same figures as a complete bag of the frames before the cut (of the same name:
    # the same per-frame seeds)
    reference = run_evaluation(
        BagFrames(write_bag(tmp_path / 'head' / 'drive', frames[:whole]), '/cam/rgb',
                  '/cam/depth', '/cam/gt'), tmp_path / 'reference', config)
    for key in ('frames', 'plain', 'certified', 'curve', 'certified_fraction'):
        assert metrics[key] == reference[key]
    rows = list(csv.DictReader((out / 'frames.csv').open()))
    assert [row['stamp_ns'] for row in rows] == [str(f.stamp_ns) for f in frames[:whole]]


def test_cli_on_a_truncated_mcap_exits_2_with_one_line_and_keeps_the_reports(
        tmp_path, tiny_checkpoint, capsys):
    frames = make_frames(count=8, height=240, width=320)
    bag = write_bag(tmp_path / 'drive', frames)
    readable = _cut_mcap(bag, 0.7)
    out = tmp_path / 'out'
    assert cli.main(['evaluate', '--bag', str(bag), '--rgb-topic', '/cam/rgb', '--depth-topic',
                     '/cam/depth', '--gt-topic', '/cam/gt', '--model', str(tiny_checkpoint),
                     '--seed', '0', '--out', str(out), '--no-progress']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f'mmcert-ros evaluate: error: bag {bag} '
                                                   'is truncated')
    metrics = json.loads((out / 'metrics.json').read_text())
    assert (metrics['complete'], metrics['frames']) == (False, readable // 3)
    assert metrics['error'] in error[0]


def test_bag_without_messages_on_a_requested_topic_exits_2_naming_it(tmp_path, capsys):
    path = tmp_path / 'empty'
    rgb = image_message(encode_image(np.zeros((4, 6, 3), np.uint8), 'rgb8'), S, 'cam')
    with Writer(path, version=8) as writer:   # topics declared, depth and gt never written
        connections = {topic: writer.add_connection(topic, 'sensor_msgs/msg/Image',
                                                    typestore=TYPESTORE)
                       for topic in ('/cam/rgb', '/cam/depth', '/cam/gt')}
        writer.write(connections['/cam/rgb'], S, TYPESTORE.serialize_cdr(
            rgb, 'sensor_msgs/msg/Image'))
    with pytest.raises(BagError, match=rf'bag {path} has no message on /cam/depth, /cam/gt'):
        BagFrames(path, '/cam/rgb', '/cam/depth', '/cam/gt')
    assert cli.main(['evaluate', '--bag', str(path), '--rgb-topic', '/cam/rgb', '--depth-topic',
                     '/cam/depth', '--out', str(tmp_path / 'out'), '--no-progress']) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f'mmcert-ros evaluate: error: bag {path} has no message on /cam/depth: '
                     'nothing to evaluate']
    assert not (tmp_path / 'out').exists()
