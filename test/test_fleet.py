"""Fleet evaluation without Ray: per-frame seeds, time chunks that tile a bag exactly (frames,
names, skip counts), resuming by content key, manifests, the command line, and Ray never
imported by the node or the tools."""
import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers.evaluation_inputs import CONFIG, TOPICS, LocalBrightness, make_frames
from helpers.fleet_inputs import fleet_settings, frame_rows, make_drives, without_timings

from mmcert_ros.bags import BagWriter
from mmcert_ros.bags.frames import write_frame
from mmcert_ros.certify import CertifiedSegmenter
from mmcert_ros.errors import UserError
from mmcert_ros.evaluation import BagFrames, EvaluationIncomplete
from mmcert_ros.evaluation.inputs import InputSpec, check_unique, make_spec, read_manifest
from mmcert_ros.evaluation.runner import replay
from mmcert_ros.evaluation.seeds import frame_seed
from mmcert_ros.fleet.driver import run_fleet
from mmcert_ros.fleet.local import LocalExecutor
from mmcert_ros.fleet.work import evaluate_input
from mmcert_ros.segmenter.codec import encode_image
from mmcert_ros.tools import cli


@pytest.fixture(scope='module')
def drives(tmp_path_factory):
    return make_drives(tmp_path_factory.mktemp('drives'), {'a': 5, 'b': 2})


def _faulty_bag(path):
    """Six frames, plus an RGB message with no depth partner after frame 1 and ground truth
    of the wrong size at frame 4: an unpaired message and an undecodable pair."""
    frames = make_frames(count=6)
    with BagWriter(path) as bag:
        for index, frame in enumerate(frames):
            if index == 4:
                write_frame(bag, frame, dataclasses.replace(TOPICS, gt=None))
                bag.write_image(TOPICS.gt, encode_image(np.ones((3, 3), np.uint8), 'mono8'),
                                frame.stamp_ns, 'cam')
            else:
                write_frame(bag, frame, TOPICS)
            if index == 1:
                bag.write_image(TOPICS.rgb, encode_image(frame.rgb, 'rgb8'),
                                frame.stamp_ns + 50_000_000, 'cam')
    return path


def _untimed(rows):
    return [{key: value for key, value in row.items() if not key.endswith('_s')}
            for row in rows]


def _replay(source, config=CONFIG, **options):
    certificates = []
    outcome = replay(source, CertifiedSegmenter(LocalBrightness(), config),
                     on_frame=lambda frame, certificate: certificates.append(
                         (frame, certificate)), **options)
    return outcome, certificates


def test_each_frame_is_certified_with_the_seed_of_its_input_and_stamp(tmp_path):
    bag = _faulty_bag(tmp_path / 'drive')
    _, certificates = _replay(BagFrames(bag, TOPICS.rgb, TOPICS.depth, TOPICS.gt),
                              input_id='drive')
    assert len(certificates) == 5
    for frame, certificate in certificates:
        seed = frame_seed(CONFIG.seed, 'drive', frame.stamp_ns)
        assert 0 <= seed < 2 ** 63
        alone = CertifiedSegmenter(LocalBrightness(), CONFIG.replace(seed=seed))
        np.testing.assert_array_equal(alone.certify_frame(frame).top_counts,
                                      certificate.top_counts)
    seeds = {frame_seed(CONFIG.seed, name, frame.stamp_ns)
             for name in ('drive', 'other') for frame, _ in certificates}
    assert len(seeds) == 10   # another input or stamp, another seed
    assert frame_seed(None, 'drive', 5) is None


def test_without_a_seed_every_frame_draws_fresh_entropy(tmp_path):
    bag = _faulty_bag(tmp_path / 'drive')
    unseeded = CONFIG.replace(seed=None)
    runs = [_replay(BagFrames(bag, TOPICS.rgb, TOPICS.depth, TOPICS.gt), unseeded)[1]
            for _ in range(2)]
    assert any(not np.array_equal(a.top_counts, b.top_counts)
               for (_, a), (_, b) in zip(*runs))


def test_windows_tile_the_bag_exactly(tmp_path):
    bag = _faulty_bag(tmp_path / 'drive')
    whole, _ = _replay(BagFrames(bag, TOPICS.rgb, TOPICS.depth, TOPICS.gt))
    assert whole.skipped == {'ground truth size differs from rgb': 1, 'unpaired rgb': 1}
    names = [row['name'] for row in whole.rows]
    assert names == ['000000', '000001', '000002', '000003', '000005']  # 000004: bad gt
    for size in (1, 2, 4):
        merged = None
        for first in range(0, 6, size):
            stop = first + size if first + size < 6 else None
            part, _ = _replay(BagFrames(bag, TOPICS.rgb, TOPICS.depth, TOPICS.gt,
                                        first=first, stop=stop), input_id='drive')
            if merged is None:
                merged = part
            else:
                merged.merge(part)
        assert _untimed(merged.rows) == _untimed(whole.rows), size
        assert merged.skipped == whole.skipped, size
        assert merged.accumulator.summary() == {**whole.accumulator.summary(), 'latency_s':
                                                merged.accumulator.summary()['latency_s']}


def test_local_fleet_in_chunks_equals_each_input_alone_and_resumes(drives, tmp_path):
    settings = fleet_settings()
    alone = {}
    for spec in drives:
        metrics = evaluate_input(spec, settings, tmp_path / 'alone' / spec.id, progress=False)
        alone[spec.id] = (metrics, frame_rows(tmp_path / 'alone' / spec.id / 'frames.csv'))
    out = tmp_path / 'fleet'
    report = run_fleet(drives, settings, out, LocalExecutor(), chunk_frames=2, progress=False)
    assert report['complete'] and report['pooled']['frames'] == 7
    # certified-but-wrong: per input as each alone, pooled as pixel counts (not averaged)
    certified = [metrics['certified'] for metrics, _ in alone.values()]
    pooled = report['pooled']['certified']
    assert pooled['wrong'] == sum(c['wrong'] for c in certified)
    assert pooled['wrong_fraction'] == pytest.approx(
        pooled['wrong'] / sum(c['tp'] + c['tn'] + c['wrong'] for c in certified))
    assert {row['id']: row['certified_wrong_fraction'] for row in report['inputs']} == {
        input_id: metrics['certified']['wrong_fraction'] for input_id, (metrics, _) in
        alone.items()}
    assert 'certified but wrong' in (out / 'report.md').read_text()
    for input_id, (metrics, rows) in alone.items():
        stored = json.loads((out / 'inputs' / input_id / 'metrics.json').read_text())
        assert without_timings(stored) == without_timings(metrics)
        assert frame_rows(out / 'inputs' / input_id / 'frames.csv') == rows
    # a rerun with the same settings reuses both results and touches nothing
    stamps = {path: path.stat().st_mtime_ns for path in (out / 'inputs').rglob('*')}
    again = run_fleet(drives, settings, out, LocalExecutor(), progress=False)
    assert [row['reused'] for row in again['inputs']] == [True, True]
    assert without_timings(again['pooled']) == without_timings(report['pooled'])
    assert {path: path.stat().st_mtime_ns for path in (out / 'inputs').rglob('*')} == stamps
    # an input whose result is gone (a run killed before it finished) is evaluated again
    shutil.rmtree(out / 'inputs' / 'b')
    resumed = run_fleet(drives, settings, out, LocalExecutor(), progress=False)
    assert [row['reused'] for row in resumed['inputs']] == [True, False]
    assert frame_rows(out / 'inputs' / 'b' / 'frames.csv') == alone['b'][1]
    # other settings: refused, nothing touched, unless forced
    other = fleet_settings(**{'certify.num_samples': 20})
    with pytest.raises(UserError, match='other settings or input files for a, b'):
        run_fleet(drives, other, out, LocalExecutor(), progress=False)
    forced = run_fleet(drives, other, out, LocalExecutor(), force=True, progress=False)
    assert forced['pooled']['num_samples'] == 20 and not any(
        row['reused'] for row in forced['inputs'])
    assert not list((out / 'inputs').glob('.*'))   # no partial or old folder left


def test_manifest_lines(tmp_path):
    (tmp_path / 'kitti' / 'training').mkdir(parents=True)
    manifest = tmp_path / 'list.txt'
    manifest.write_text('# comment\n\nbag_a  id=first gt=/gt  # trailing\n'
                        f'{tmp_path / "kitti"} split=test\n')
    defaults = InputSpec(id='', kind='bag', path=tmp_path, rgb_topic='/r', depth_topic='/d')
    first, kitti = read_manifest(manifest, defaults)
    assert (first.id, first.kind, first.path) == ('first', 'bag', tmp_path / 'bag_a')
    assert (first.rgb_topic, first.depth_topic, first.gt_topic) == ('/r', '/d', '/gt')
    assert (kitti.id, kitti.kind, kitti.kitti_split) == ('kitti', 'kitti', 'test')
    manifest.write_text('bag_a colour=red\n')
    with pytest.raises(UserError, match=r'list.txt:1: .colour=red. is not key=value'):
        read_manifest(manifest, defaults)
    manifest.write_text('a/drive\nb/drive\n')
    with pytest.raises(UserError, match="two inputs are named 'drive'"):
        check_unique(read_manifest(manifest, defaults))


def test_command_line_fleet_in_process(drives, tmp_path, capsys):
    argv = ['evaluate', '--bag', *(str(spec.path) for spec in drives), '--gt-topic',
            '/road_gt/image', '--seed', '3', '--out', str(tmp_path / 'out'), '--no-progress',
            '--config', str(_config(tmp_path))]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith('evaluate: 2 of 2 inputs, 7 frames')
    report = json.loads((tmp_path / 'out' / 'fleet.json').read_text())
    assert [row['id'] for row in report['inputs']] == ['a', 'b']
    glob = str(drives[0].path.parent / '[ab]')
    assert cli.main([*argv[:2], glob, *argv[4:]]) == 0   # a quoted glob: the same inputs
    assert capsys.readouterr().out.startswith('evaluate: 2 of 2 inputs, 7 frames')
    for extra, message in ((['--write-bag'], '--write-bag writes the result bag of one input'),
                           (['--input-id', 'x'], '--input-id names one input; 2 are given'),
                           (['--bag', str(tmp_path / 'nope')], 'nope: no such file')):
        assert cli.main([*argv, *extra]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error


def _config(tmp_path):
    path = tmp_path / 'engine.yaml'
    path.write_text('certify.num_samples: 24\ncertify.alpha: 0.05\nmodel.device: cpu\n')
    return path


def test_ray_is_imported_by_nothing_but_the_ray_executor():
    code = ('import sys\n'
            'import mmcert_ros.tools.cli as cli\n'
            'cli.build_parser()\n'
            'import mmcert_ros.fleet.driver, mmcert_ros.fleet.local, '
            'mmcert_ros.fleet.ray_cluster\n'
            'import mmcert_ros.ros.segmenter_node\n'
            'assert "ray" not in sys.modules, "ray imported"\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_a_truncated_bag_in_chunks_is_evaluated_up_to_the_cut_and_reported(tmp_path):
    from test_evaluate import _cut_mcap, write_bag

    bag = write_bag(tmp_path / 'cut', make_frames(count=10, height=240, width=320))
    readable = _cut_mcap(bag, 0.6)
    settings = fleet_settings(**{'certify.num_samples': 8})
    spec = make_spec(bag, 'bag', InputSpec(id='', kind='bag', path=bag, rgb_topic=TOPICS.rgb,
                                           depth_topic=TOPICS.depth, gt_topic=TOPICS.gt))
    with pytest.raises(EvaluationIncomplete):
        evaluate_input(spec, settings, tmp_path / 'alone', progress=False)
    alone = json.loads((tmp_path / 'alone' / 'metrics.json').read_text())
    assert alone['frames'] == readable // 3 and not alone['complete']
    report = run_fleet([spec], settings, tmp_path / 'fleet', LocalExecutor(), chunk_frames=2,
                       progress=False)
    stored = json.loads((tmp_path / 'fleet' / 'inputs' / 'cut' / 'metrics.json').read_text())
    assert without_timings(stored) == without_timings(alone)
    assert frame_rows(tmp_path / 'fleet' / 'inputs' / 'cut' / 'frames.csv') == frame_rows(
        tmp_path / 'alone' / 'frames.csv')
    assert [row['status'] for row in report['inputs']] == ['incomplete']
    assert report['failed'][0]['error'] == alone['error'] and not report['complete']
