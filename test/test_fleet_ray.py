"""Fleet evaluation on a real local Ray cluster (2 CPU workers): the same figures, frame for
frame, as the in-process run; a killed worker's task retried; a corrupt input reported while
the rest of the fleet finishes; the command line; no Ray process left behind.

One Ray runtime serves the whole module (starting one costs seconds here)."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip('ray')
pytestmark = pytest.mark.slow   # a real Ray cluster: seconds to start, tens of seconds in all

from helpers.fleet_inputs import (fleet_settings, frame_rows, make_drives,  # noqa: E402
                                  without_timings)

from mmcert_ros.fleet.driver import run_fleet  # noqa: E402
from mmcert_ros.fleet.local import LocalExecutor  # noqa: E402
from mmcert_ros.fleet.ray_cluster import RayExecutor  # noqa: E402
from mmcert_ros.fleet.work import evaluate_input  # noqa: E402
from mmcert_ros.tools import cli  # noqa: E402

TASK_TITLE = b'ray::_run_item'


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if fields[0] != 'Z':
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


@pytest.fixture(scope='module')
def cluster():
    before = set(_descendants(os.getpid()))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             log_to_driver=False)
    yield
    ray.shutdown()
    deadline = time.monotonic() + 20
    while (left := set(_descendants(os.getpid())) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f'Ray left processes behind: {sorted(left)}'


@pytest.fixture(scope='module')
def drives(tmp_path_factory):
    root = tmp_path_factory.mktemp('drives')
    specs = make_drives(root, {'long': 9, 'short': 3}, kitti={'kit': 3})
    broken = root / 'broken.mcap'
    broken.write_bytes(b'\x89MCAP0\r\n' + os.urandom(4000))   # the magic, then garbage
    from mmcert_ros.evaluation.inputs import make_spec
    return specs, make_spec(broken, 'bag', specs[0])


@pytest.fixture(scope='module')
def in_process(drives, tmp_path_factory):
    """Each good input evaluated alone in this process: metrics.json and frames.csv rows."""
    specs, _ = drives
    out = tmp_path_factory.mktemp('single')
    settings = fleet_settings()
    results = {}
    for spec in specs:
        metrics = evaluate_input(spec, settings, out / spec.id, progress=False)
        results[spec.id] = (metrics, frame_rows(out / spec.id / 'frames.csv'))
    return results


def _assert_like_in_process(out: Path, in_process: dict) -> None:
    for input_id, (metrics, rows) in in_process.items():
        folder = out / 'inputs' / input_id
        stored = json.loads((folder / 'metrics.json').read_text())
        assert without_timings(stored) == without_timings(metrics), input_id
        assert frame_rows(folder / 'frames.csv') == rows, input_id


def test_fleet_on_two_workers_equals_the_in_process_run(cluster, drives, in_process, tmp_path):
    specs, broken = drives
    settings = fleet_settings()
    assert in_process['long'][0]['certified']['iou'] > 0.2   # figures worth comparing
    assert len(in_process['long'][0]['curve']) >= 3
    fleet = [specs[0], broken, *specs[1:]]
    seen = []
    report = run_fleet(fleet, settings, tmp_path / 'ray', RayExecutor(), chunk_frames=4,
                       progress=False, on_progress=lambda done, total: seen.append((done, total)))
    _assert_like_in_process(tmp_path / 'ray', in_process)
    # the corrupt input is reported, the fleet finished without it
    assert report['inputs_total'] == 4 and report['inputs_evaluated'] == 3
    assert not report['complete']
    [failed] = report['failed']
    assert failed['id'] == 'broken.mcap' and 'broken.mcap' in failed['error']
    assert [row['status'] for row in report['inputs']] == [
        'complete', 'failed', 'complete', 'complete']
    # pooled figures: the integer counts of the inputs summed
    pooled = report['pooled']
    assert pooled['frames'] == 15
    for part in ('plain', 'certified'):
        for count in ('tp', 'tn', 'fp', 'fn'):
            assert pooled[part][count] == sum(m[part][count] for m, _ in in_process.values())
        counts = pooled[part]
        assert pooled[part]['iou'] == counts['tp'] / (counts['tp'] + counts['fp'] + counts['fn'])
    # ... and exactly what the in-process fleet pools
    local = run_fleet(fleet, settings, tmp_path / 'local', LocalExecutor(), chunk_frames=None,
                      progress=False)
    assert without_timings(local['pooled']) == without_timings(pooled)
    assert ([{k: v for k, v in row.items() if not k.startswith('latency')}
             for row in local['inputs']] ==
            [{k: v for k, v in row.items() if not k.startswith('latency')}
             for row in report['inputs']])
    # per-frame JSONL and CSV: every frame of every input, tagged with its input
    lines = [json.loads(line) for line in (tmp_path / 'ray' / 'frames.jsonl').open()]
    assert [(row['input'], row['name']) for row in lines] == [
        (input_id, row['name']) for input_id, (_, rows) in in_process.items() for row in rows]
    assert frame_rows(tmp_path / 'ray' / 'frames.csv') == [
        {'input': input_id, **row} for input_id, (_, rows) in in_process.items()
        for row in rows]
    worst = report['worst_frames'][0]
    assert worst['certified_iou'] == min(row['certified_iou'] for row in lines)
    for name in ('curves.png', 'spread.png', 'report.md', 'inputs.csv'):
        assert (tmp_path / 'ray' / name).stat().st_size > 0
    assert seen and seen[-1] == (15, 15)   # progress across the cluster, to the end


def test_a_killed_worker_has_its_task_retried(cluster, drives, in_process, tmp_path):
    specs, _ = drives
    killed = []
    stop = threading.Event()

    def kill_one_running_task():
        while not stop.is_set() and not killed:
            for entry in Path('/proc').iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    title = (entry / 'cmdline').read_bytes()
                except OSError:
                    continue
                if title.startswith(TASK_TITLE):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_running_task)
    killer.start()
    try:
        report = run_fleet(specs, fleet_settings(), tmp_path / 'out', RayExecutor(),
                           chunk_frames=3, progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed, 'no task was seen running'
    assert report['complete'] and report['inputs_evaluated'] == 3
    _assert_like_in_process(tmp_path / 'out', in_process)


def test_command_line_with_workers(cluster, drives, in_process, tmp_path, capsys):
    specs, broken = drives
    manifest = tmp_path / 'drives.txt'
    manifest.write_text(f'# two drives\n{specs[1].path} id=short\n\n{specs[2].path} kind=kitti\n')
    argv = ['evaluate', '--manifest', str(manifest), '--bag', str(specs[0].path),
            '--gt-topic', '/road_gt/image', '--workers', '2', '--object-store-mb', '200',
            '--seed', '3', '--config', str(_config(tmp_path)), '--out', str(tmp_path / 'out'),
            '--no-progress']
    assert cli.main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith('evaluate: 3 of 3 inputs, 15 frames, certified fraction')
    _assert_like_in_process(tmp_path / 'out', in_process)
    # a rerun reuses every stored result
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / 'out' / 'fleet.json').read_text())
    assert all(row['reused'] for row in report['inputs'])
    # a corrupt input: reported, the others evaluated, exit status 2 with one line
    assert cli.main([*argv, '--bag', str(broken.path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and 'broken.mcap' in error[0] and '1 of 4 inputs failed' in error[0]


def _config(tmp_path: Path) -> Path:
    """A plain parameter file with the fleet tests' engine settings."""
    path = tmp_path / 'engine.yaml'
    path.write_text('certify.num_samples: 24\ncertify.alpha: 0.05\nmodel.device: cpu\n')
    return path
