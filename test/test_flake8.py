"""Lint, as ROS 2 packages ship it (their ``test_flake8.py``): flake8 over the package, the
launch files, the benchmark scripts and the tests, with the settings of setup.cfg."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_flake8_finds_nothing():
    result = subprocess.run([sys.executable, '-m', 'flake8', 'mmcert_ros', 'launch', 'bench',
                             'test', 'setup.py'], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f'flake8 found:\n{result.stdout}{result.stderr}'
