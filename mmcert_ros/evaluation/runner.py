"""Run the certification engine over a source of frames and write the reports.

A *frame source* is any iterable of :class:`~mmcert_ros.data.frame.Frame` with
``expected`` (frames to expect, for the progress bar, or None), ``describe() -> dict``,
``skipped() -> {reason: count}`` and ``frame_topics`` (where ``--write-bag`` re-publishes the
inputs): :class:`~mmcert_ros.evaluation.bag_source.BagFrames` and
:class:`~mmcert_ros.evaluation.kitti_source.KittiFrames`.
"""
from __future__ import annotations

import dataclasses
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from mmcert_ros.bags import BagError
from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.certify.l2 import FrameCertification, L2Certifier
from mmcert_ros.errors import UserError
from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.evaluation.l2_metrics import L2Accumulator
from mmcert_ros.evaluation.report import (CURVES_FILE, FRAMES_FILE, METRICS_FILE, REPORT_FILES,
                                          plot_curves, write_frames, write_metrics)
from mmcert_ros.evaluation.result_bag import ResultBag

#: name of the ``--write-bag`` output bag inside the output folder
RESULT_BAG = 'bag'


class FrameSource(Protocol):
    """What :func:`evaluate` needs from a source of frames (see the module docstring)."""

    expected: int | None
    frame_topics: FrameTopics

    def __iter__(self): ...

    def describe(self) -> dict: ...

    def skipped(self) -> dict[str, int]: ...


class EvaluationIncomplete(BagError):
    """The source broke off (corrupt bag); the reports of the frames before were written."""


def evaluate(source: FrameSource, segmenter, out_dir: str | Path, *, model: str = '',
             max_frames: int | None = None, write_bag: bool = False, force: bool = False,
             progress: bool = True, l2: L2Certifier | None = None
             ) -> dict:
    """Certify every frame of ``source`` with ``segmenter`` and write the reports to ``out_dir``.

    Writes ``metrics.json``, ``frames.csv``, ``curves.png`` and, with ``write_bag``, the MCAP
    bag ``out_dir/bag``. Nothing in ``out_dir`` is replaced unless ``force``.

    :param segmenter: a :class:`~mmcert_ros.certify.CertifiedSegmenter` (its config is used
        for every frame and recorded in the report).
    :param model: how the model was chosen (checkpoint path), recorded in the report.
    :param max_frames: stop after this many evaluated frames.
    :param l2: optional :class:`~mmcert_ros.certify.l2.L2Certifier` on the segmenter's
        device (``build_engines(settings).l2``); each frame runs through both as
        :class:`~mmcert_ros.certify.l2.FrameCertification` (with ``fs.joint`` from one
        ensemble: the recorded ``config.num_samples`` is then the l2 N that the l0 votes
        come from). Its pooled figures go into the ``l2`` section of metrics.json and
        ``l2_*`` columns of frames.csv
        (:class:`~mmcert_ros.evaluation.l2_metrics.L2Accumulator`).
    :returns: the content of ``metrics.json``.
    :raises UserError: an output exists and ``force`` is false (nothing is written then).
    :raises EvaluationIncomplete: the source broke off; the reports of the frames evaluated
        before it are written first.
    :raises KeyboardInterrupt: after writing the reports of the frames done so far (and
        closing the result bag cleanly).
    """
    if max_frames is not None and max_frames < 1:
        raise UserError(f'max_frames must be >= 1, got {max_frames}')
    out_dir = Path(out_dir)
    _prepare_output(out_dir, write_bag, force)
    accumulator = MetricsAccumulator()
    l2_accumulator = L2Accumulator() if l2 is not None else None
    rows = []
    failure = None  # why the source broke off, if it did
    interrupted = False
    total = source.expected
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    result_bag = (ResultBag(out_dir / RESULT_BAG, source.frame_topics) if write_bag
                  else nullcontext())
    with tqdm(total=total, unit='frame', desc='evaluate', disable=not progress) as bar, \
            result_bag as bag:
        try:
            for frame in source:
                run = FrameCertification(segmenter, l2, frame)
                certificate = run.l0()
                row = accumulator.add(frame, certificate)
                if l2_accumulator is not None:
                    row.update(l2_accumulator.add(frame, run.l2(), certificate.labels))
                rows.append(row)
                if bag is not None:
                    bag.write(frame, certificate)
                bar.update(1)
                if max_frames is not None and accumulator.frames >= max_frames:
                    break
        except BagError as error:
            failure = str(error)
        except KeyboardInterrupt:
            failure, interrupted = 'interrupted', True

    skipped = source.skipped()
    joint = l2 is not None and l2.settings.joint
    metrics = {
        'source': source.describe(),
        'model': model or 'default',
        'config': {name: list(value) if isinstance(value, tuple) else value
                   for name, value in dataclasses.asdict(l2.config if joint
                                                         else segmenter.config).items()},
        'complete': failure is None,
        'error': failure,
        'skipped': {'total': sum(skipped.values()), 'reasons': skipped},
        **accumulator.summary(),
    }
    if l2_accumulator is not None:
        metrics['l2'] = {**l2_accumulator.summary(), 'joint': joint}
    write_metrics(out_dir / METRICS_FILE, metrics)
    write_frames(out_dir / FRAMES_FILE, rows)
    plot_curves(out_dir / CURVES_FILE, metrics['curve'], _title(metrics))
    if interrupted:
        raise KeyboardInterrupt(f'interrupted after {accumulator.frames} frames; their reports '
                                f'are in {out_dir}')
    if failure is not None:
        raise EvaluationIncomplete(
            f'{failure} (the reports of the {accumulator.frames} frames before it are in '
            f'{out_dir})')
    return metrics


def _prepare_output(out_dir: Path, write_bag: bool, force: bool) -> None:
    """Create ``out_dir``; refuse, or with ``force`` remove, outputs of an earlier run."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f'output folder {out_dir} is a file')
    names = [*REPORT_FILES, RESULT_BAG] if write_bag else list(REPORT_FILES)
    existing = [name for name in names if (out_dir / name).exists()]
    if existing and not force:
        raise UserError(f'output folder {out_dir} already holds {", ".join(existing)}; '
                         'pass --force to overwrite them')
    bag = out_dir / RESULT_BAG
    if RESULT_BAG in existing:
        if not (bag / 'metadata.yaml').is_file():
            raise UserError(f'{bag} exists and is not a rosbag2 bag; not removing it')
        shutil.rmtree(bag)
    out_dir.mkdir(parents=True, exist_ok=True)


def _title(metrics: dict) -> str:
    source = metrics['source']
    config = metrics['config']
    return (f"{Path(source['path']).name}: {metrics['frames']} frames, N={config['num_samples']}, "
            f"alpha={config['alpha']}, keep {config['keep_fraction_rgb']:g} / "
            f"{config['keep_fraction_depth']:g}")
