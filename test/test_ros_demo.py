"""`mmcert-ros demo` end to end, shrunk (tiny model, small frames, N = 8) to stay fast:
two node processes, overlays on disk, a summary on stdout and in summary.json."""
import json
import subprocess
import sys

import cv2
import pytest

from helpers.ros_harness import REPO, ros_env, shifted_domain, tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]   # nodes over DDS; tens of seconds


def test_demo_records_overlays_and_prints_a_summary(tmp_path, domain_id):
    checkpoint = tiny_checkpoint(tmp_path / 'tiny.pt')
    out = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, '-m', 'mmcert_ros.tools.cli', 'demo', '--frames', '3', '--width', '128',
         '--height', '48', '--num-samples', '8', '--rate', '5', '--checkpoint', str(checkpoint),
         '--out', str(out), '--domain-id', str(shifted_domain(domain_id)),
         '--timeout', '240'],
        cwd=REPO, env=ros_env(domain_id), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ('frames certified', 'certified fraction', 'latency', 'dropped pairs'):
        assert line in result.stdout
    overlays = sorted((out / 'overlays').glob('overlay_*.png'))
    assert len(overlays) >= 3
    assert cv2.imread(str(overlays[0])).shape == (48, 128, 3)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames'] >= 3
    assert set(summary['latency_ms']) == {'p50', 'p90', 'p99', 'max'}
    assert summary['latency_ms']['p50'] > 0
    assert 0.0 <= summary['certified_fraction_mean'] <= 1.0
    assert summary['errors'] == 0 and isinstance(summary['dropped_pairs'], int)
    for log in ('segmenter.log', 'sim_drive.log'):
        assert 'Traceback' not in (out / 'logs' / log).read_text()
