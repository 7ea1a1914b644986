"""Where a checkpoint came from: source commit, command line, software versions."""
from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def source_commit() -> str:
    """``git describe``-like id of the source tree (``<sha>`` or ``<sha>-dirty``), or
    ``'unknown'`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(['git', '-C', str(_PACKAGE_ROOT), *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
    try:
        sha = git('rev-parse', 'HEAD')
        dirty = bool(git('status', '--porcelain', '--untracked-files=no'))
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return f'{sha}-dirty' if dirty else sha


def run_provenance(command: Sequence[str]) -> dict[str, str]:
    """The command line (as typed), commit, date (UTC, ISO 8601), software versions."""
    return {
        'command': shlex.join(command),
        'commit': source_commit(),
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'torch': str(torch.__version__),
        'python': platform.python_version(),
    }
