"""Split a fleet into work items and name each input's result by its content.

An input whose source expects more than ``chunk_frames`` frames is split into windows of
``chunk_frames`` pairs (bags) or frames (KITTI folders), the last one open-ended, so one
huge bag spreads over the cluster; with ``max_frames`` an input stays whole (which frames
count towards the limit depends on the ones before).

The *content key* of an input's result is the SHA-256 of what the result depends on: the
input (kind, path, topics, subset and split, extrinsic, and the size and modification time
of every file under its path), the model (SHA-256 of the checkpoint file), every setting
that enters certification (the whole ``CertifyConfig``, the l2 settings, the pairing slop)
and ``max_frames``. A rerun reuses a stored result only when its key matches.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from mmcert_ros.evaluation.inputs import InputSpec
from mmcert_ros.fleet.work import WorkItem

#: bumped whenever the stored result format or the figures' definition change
RESULT_FORMAT = 1


def plan_input(spec: InputSpec, expected: int | None, chunk_frames: int | None,
               max_frames: int | None) -> list[WorkItem]:
    """The work items of one input whose source expects ``expected`` frames (None: unknown)."""
    if max_frames is not None or not chunk_frames or expected is None \
            or expected <= chunk_frames:
        return [WorkItem(spec, 0, max_frames=max_frames)]
    count = -(-expected // chunk_frames)
    return [WorkItem(spec, index, index * chunk_frames,
                     None if index == count - 1 else (index + 1) * chunk_frames)
            for index in range(count)]


def content_key(spec: InputSpec, settings, max_frames: int | None) -> str:
    """The content key of ``spec``'s result under ``settings`` (see the module docstring).

    :raises OSError: the input or the checkpoint cannot be read.
    """
    from mmcert_ros.models.checkpoint import DEFAULT_CHECKPOINT

    content = {
        'format': RESULT_FORMAT,
        'input': spec.identity(),
        'files': _fingerprint(spec.path),
        'model': _file_digest(Path(settings.checkpoint or DEFAULT_CHECKPOINT)),
        'certify': dataclasses.asdict(settings.certify),
        'l2': dataclasses.asdict(settings.l2),
        'slop_s': settings.slop_s,
        'max_frames': max_frames,
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _fingerprint(path: Path) -> list:
    """``[relative name, size, mtime ns]`` of the file, or of every file under the folder."""
    files = sorted(p for p in path.rglob('*') if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size,
             p.stat().st_mtime_ns] for p in files]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
