"""Evaluate many inputs, in this process or on Ray, into one fleet report.

:func:`run_fleet` keys every input by content (:func:`~mmcert_ros.fleet.plan.content_key`),
takes the stored result of an input whose key matches (a rerun resumes), splits the others
into work items (:func:`~mmcert_ros.fleet.plan.plan_input`), hands them to an executor
(:class:`~mmcert_ros.fleet.local.LocalExecutor` or
:class:`~mmcert_ros.fleet.ray_cluster.RayExecutor`), merges each input's windows in order as
soon as all are in and stores the input's result atomically
(:class:`~mmcert_ros.fleet.store.ResultStore`), then pools all inputs into the fleet report
(:mod:`mmcert_ros.fleet.fleet_report`). An input that cannot be opened or evaluated is reported
as failed; the others go on.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from mmcert_ros.errors import UserError
from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.evaluation.inputs import InputSpec, check_unique
from mmcert_ros.evaluation.runner import Replay, build_metrics
from mmcert_ros.segmenter.engines import voting_config
from mmcert_ros.fleet import DEFAULT_CHUNK_FRAMES
from mmcert_ros.fleet.plan import content_key, plan_input
from mmcert_ros.fleet.fleet_report import InputOutcome, write_fleet_report
from mmcert_ros.fleet.store import InputResult, ResultStore
from mmcert_ros.fleet.work import ChunkResult, WorkItem


def run_fleet(specs: Sequence[InputSpec], settings, out_dir: str | Path, executor, *,
              chunk_frames: int | None = DEFAULT_CHUNK_FRAMES, max_frames: int | None = None,
              force: bool = False, progress: bool = True,
              on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Evaluate ``specs`` with ``settings`` and write the fleet report into ``out_dir``.

    :param executor: where work items run (entered here).
    :param chunk_frames: split inputs expecting more frames than this (None: never).
    :param max_frames: evaluate at most this many frames of each input.
    :param force: recompute every input, replacing stored results.
    :param on_progress: called with (frames done, frames expected) whenever progress moves.
    :returns: the content of ``fleet.json``.
    :raises UserError: duplicate input ids, or ``out_dir`` holds results of other settings
        or input files for some input and ``force`` is false (nothing is run then).
    :raises KeyboardInterrupt: after storing the inputs done and writing their report.
    """
    check_unique(specs)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f'output folder {out_dir} is a file')
    store = ResultStore(out_dir)
    outcomes = {spec.id: InputOutcome(spec.id, str(spec.path)) for spec in specs}
    results: dict[str, InputResult] = {}
    keys: dict[str, str] = {}
    stale = []
    for spec in specs:
        try:
            keys[spec.id] = content_key(spec, settings, max_frames)
        except OSError as error:
            outcomes[spec.id].error = f'{spec.path}: {error.strerror or error}'
            continue
        stored = store.load(spec.id)
        if stored is not None and not force:
            if stored.key == keys[spec.id]:
                results[spec.id] = stored
                outcomes[spec.id].reused = True
            else:
                stale.append(spec.id)
    if stale:
        raise UserError(f'{store.root} holds results of other settings or input files for '
                        f'{", ".join(stale)}; pass --force to replace them, or another --out')
    items, expected = _plan([spec for spec in specs if spec.id in keys
                             and spec.id not in results], settings, chunk_frames, max_frames,
                            outcomes)
    out_dir.mkdir(parents=True, exist_ok=True)
    interrupted = False
    try:
        _run(items, expected, settings, executor, store, keys, results, outcomes, progress,
             on_progress)
    except KeyboardInterrupt:
        interrupted = True
    for input_id, result in results.items():
        outcomes[input_id].metrics = result.metrics
        outcomes[input_id].rows = result.replay.rows
    ordered = [outcomes[spec.id] for spec in specs]
    pooled = Replay(MetricsAccumulator(), None, rows=[], skipped={})
    for spec in specs:
        if spec.id in results:
            pooled.merge(results[spec.id].replay)
    metrics = build_metrics({'kind': 'fleet', 'inputs': len(results)}, settings.checkpoint,
                            voting_config(settings), pooled)
    report = write_fleet_report(out_dir, metrics, ordered, settings.checkpoint,
                                metrics['config'])
    if interrupted:
        raise KeyboardInterrupt(f'interrupted after {len(results)} of {len(specs)} inputs; '
                                f'their results and report are in {out_dir}')
    return report


def _plan(specs, settings, chunk_frames, max_frames, outcomes
          ) -> tuple[list[WorkItem], dict[tuple, int]]:
    """The work items of ``specs`` and the frames each expects; inputs that cannot be
    opened get their error in ``outcomes`` and no item."""
    items, expected = [], {}
    for spec in specs:
        try:
            whole = spec.open(settings.slop_s).expected
        except Exception as error:   # a corrupt input must not fail the fleet
            outcomes[spec.id].error = str(error) or type(error).__name__
            continue
        for item in plan_input(spec, whole, chunk_frames, max_frames):
            items.append(item)
            end = whole if item.stop is None else min(whole, item.stop)
            expected[item.key] = min(max(0, end - item.first), max_frames or end)
    return items, expected


def _run(items, expected, settings, executor, store, keys, results, outcomes, progress,
         on_progress) -> None:
    """Run the items, storing each input's result as soon as all its windows are in."""
    chunks_of: dict[str, int] = {}
    for item in items:
        chunks_of[item.input.id] = chunks_of.get(item.input.id, 0) + 1
    arrived: dict[str, list[ChunkResult]] = {}
    done: dict[tuple, int] = {}
    total = sum(expected.values())
    inputs = len(chunks_of)
    with tqdm(total=total, unit='frame', desc='evaluate fleet', disable=not progress) as bar, \
            executor:
        bar.set_postfix_str(f'inputs 0/{inputs}, {executor.description}')

        def moved(key: tuple, frames: int) -> None:
            done[key] = frames
            bar.n = sum(done.values())
            bar.refresh()
            if on_progress is not None:
                on_progress(bar.n, total)

        finished = 0
        for result in executor.run(items, settings, moved):
            input_id = result.item.input.id
            if result.replay is not None:
                moved(result.item.key, result.replay.frames)
            arrived.setdefault(input_id, []).append(result)
            if len(arrived[input_id]) < chunks_of[input_id]:
                continue
            _finish(arrived.pop(input_id), settings, store, keys[input_id], results,
                    outcomes[input_id])
            finished += 1
            bar.set_postfix_str(f'inputs {finished}/{inputs}, {executor.description}')


def _finish(chunks: list[ChunkResult], settings, store: ResultStore, key: str,
            results: dict, outcome: InputOutcome) -> None:
    """Merge one input's windows in order and store the result (or record its error)."""
    chunks.sort(key=lambda chunk: chunk.item.chunk)
    errors = [chunk.error for chunk in chunks if chunk.error is not None]
    if errors:
        outcome.error = errors[0]
        return
    merged = chunks[0].replay
    for chunk in chunks[1:]:
        merged.merge(chunk.replay)
    metrics = build_metrics(chunks[0].source, settings.checkpoint, voting_config(settings),
                            merged)
    result = InputResult(key, metrics, merged)
    store.save(chunks[0].item.input.id, result)
    results[chunks[0].item.input.id] = result
