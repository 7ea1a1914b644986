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
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from mmcert_ros.bags import BagError
from mmcert_ros.bags.frames import FrameTopics
from mmcert_ros.certify.l2.certifier import FrameCertification, L2Certifier
from mmcert_ros.data.frame import Frame
from mmcert_ros.errors import UserError
from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.evaluation.l2_metrics import L2Accumulator
from mmcert_ros.evaluation.report import (CURVES_FILE, FRAMES_FILE, METRICS_FILE, REPORT_FILES,
                                          plot_curves, write_frames, write_metrics)
from mmcert_ros.evaluation.result_bag import ResultBag
from mmcert_ros.evaluation.seeds import frame_seed

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
             input_id: str | None = None, max_frames: int | None = None,
             write_bag: bool = False, force: bool = False, progress: bool = True,
             l2: L2Certifier | None = None) -> dict:
    """Certify every frame of ``source`` with ``segmenter`` and write the reports to ``out_dir``.

    Writes ``metrics.json``, ``frames.csv``, ``curves.png`` and, with ``write_bag``, the MCAP
    bag ``out_dir/bag``. Nothing in ``out_dir`` is replaced unless ``force``.

    :param segmenter: a :class:`~mmcert_ros.certify.CertifiedSegmenter` (its config is used
        for every frame and recorded in the report; with a fixed seed each frame gets its
        own, :func:`~mmcert_ros.evaluation.seeds.frame_seed`).
    :param model: how the model was chosen (checkpoint path), recorded in the report.
    :param input_id: the input's name in the per-frame seeds (default: :func:`input_name`
        of the source's path).
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
    total = source.expected
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    result_bag = (ResultBag(out_dir / RESULT_BAG, source.frame_topics) if write_bag
                  else nullcontext())
    with tqdm(total=total, unit='frame', desc='evaluate', disable=not progress) as bar, \
            result_bag as bag:
        def record(frame: Frame, certificate) -> None:
            if bag is not None:
                bag.write(frame, certificate)
            bar.update(1)

        outcome = replay(source, segmenter, input_id=input_id, max_frames=max_frames, l2=l2,
                         on_frame=record)
    metrics = build_metrics(source.describe(), model,
                            l2.config if outcome.joint else segmenter.config, outcome)
    write_reports(out_dir, metrics, outcome.rows)
    if outcome.interrupted:
        raise KeyboardInterrupt(f'interrupted after {outcome.frames} frames; their reports '
                                f'are in {out_dir}')
    if outcome.failure is not None:
        raise EvaluationIncomplete(
            f'{outcome.failure} (the reports of the {outcome.frames} frames before it are in '
            f'{out_dir})')
    return metrics


@dataclasses.dataclass
class Replay:
    """What one pass over a source produced: the pooled figures so far and the frame rows.

    Replays of disjoint windows of one input (or of several inputs) combine with
    :meth:`merge` into exactly the replay of all their frames (the counts are integers; the
    rows are concatenated and renumbered).

    :ivar failure: why the source broke off (a corrupt bag), or None.
    :ivar interrupted: Ctrl-C stopped the replay.
    """

    accumulator: MetricsAccumulator
    l2_accumulator: L2Accumulator | None
    rows: list[dict]
    skipped: dict[str, int]
    failure: str | None = None
    interrupted: bool = False
    #: the certificates came from one joint ensemble (``fs.joint``)
    joint: bool = False

    @property
    def frames(self) -> int:
        return self.accumulator.frames

    def merge(self, later: 'Replay') -> None:
        """Append the replay of the frames after this one's (of the same settings)."""
        self.accumulator.merge(later.accumulator)
        if later.l2_accumulator is not None:
            if self.l2_accumulator is None:
                self.l2_accumulator = L2Accumulator()
            self.l2_accumulator.merge(later.l2_accumulator)
        first = len(self.rows)
        self.rows.extend({**row, 'index': first + number} for number, row in
                         enumerate(later.rows))
        self.skipped = dict(sorted((Counter(self.skipped) + Counter(later.skipped)).items()))
        self.failure = self.failure or later.failure
        self.interrupted = self.interrupted or later.interrupted
        self.joint = self.joint or later.joint


def replay(source: FrameSource, segmenter, *, input_id: str | None = None,
           max_frames: int | None = None, l2: L2Certifier | None = None,
           on_frame: Callable[[Frame, object], object] | None = None) -> Replay:
    """Certify the frames of ``source`` (see :func:`evaluate`) and pool them; writes nothing.

    A :class:`~mmcert_ros.bags.BagError` from the source (corrupt bag) and Ctrl-C end the
    replay early and are recorded in the result (``failure``, ``interrupted``), not raised.

    :param on_frame: called with every frame and its certificate (result bag, progress).
    """
    input_id = input_name(source.describe()['path']) if input_id is None else input_id
    accumulator = MetricsAccumulator()
    l2_accumulator = L2Accumulator() if l2 is not None else None
    joint = l2 is not None and l2.settings.joint
    outcome = Replay(accumulator, l2_accumulator, rows=[], skipped={}, joint=joint)
    config, l2_config = segmenter.config, None if l2 is None else l2.config
    try:
        for frame in source:
            segmenter.config = config.replace(
                seed=frame_seed(config.seed, input_id, frame.stamp_ns))
            if l2 is not None:
                l2.config = l2_config.replace(
                    seed=frame_seed(l2_config.seed, input_id, frame.stamp_ns))
            run = FrameCertification(segmenter, l2, frame)
            certificate = run.l0()
            row = accumulator.add(frame, certificate)
            if l2_accumulator is not None:
                row.update(l2_accumulator.add(frame, run.l2(), certificate.labels))
            outcome.rows.append(row)
            if on_frame is not None:
                on_frame(frame, certificate)
            if max_frames is not None and accumulator.frames >= max_frames:
                break
    except BagError as error:
        outcome.failure = str(error)
    except KeyboardInterrupt:
        outcome.failure, outcome.interrupted = 'interrupted', True
    finally:
        segmenter.config = config
        if l2 is not None:
            l2.config = l2_config
    outcome.skipped = source.skipped()
    return outcome


def build_metrics(source: dict, model: str, config, outcome: Replay) -> dict:
    """The content of ``metrics.json`` (docs/evaluation.md) of a replay whose l0 votes
    came from an engine with ``config`` (with ``fs.joint``: the l2 engine's)."""
    skipped = outcome.skipped
    metrics = {
        'source': source,
        'model': model or 'default',
        'config': {name: list(value) if isinstance(value, tuple) else value
                   for name, value in dataclasses.asdict(config).items()},
        'complete': outcome.failure is None,
        'error': outcome.failure,
        'skipped': {'total': sum(skipped.values()), 'reasons': skipped},
        **outcome.accumulator.summary(),
    }
    if outcome.l2_accumulator is not None:
        metrics['l2'] = {**outcome.l2_accumulator.summary(), 'joint': outcome.joint}
    return metrics


def write_reports(out_dir: Path, metrics: dict, rows: list[dict]) -> None:
    """``metrics.json``, ``frames.csv`` and ``curves.png`` of one input into ``out_dir``."""
    write_metrics(out_dir / METRICS_FILE, metrics)
    write_frames(out_dir / FRAMES_FILE, rows)
    plot_curves(out_dir / CURVES_FILE, metrics['curve'], _title(metrics))


def input_name(path: str | Path) -> str:
    """An input's default name: the last component of its path (``drives/a.mcap`` ->
    ``a.mcap``); the name enters the per-frame seeds and names the input in fleet reports."""
    return Path(path).name


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
