"""The fleet report: pooled figures over every frame of every input, and where they are worst.

Written into the fleet's output folder (every file through a temporary file renamed into
place):

- ``fleet.json``: ``pooled`` (the metrics.json fields of all frames of all evaluated inputs
  pooled, MMCert's definition: pixel counts summed over frames), ``inputs`` (the per-input
  table), ``worst_inputs`` and ``worst_frames`` (lowest certified IoU first; without ground
  truth, lowest certified fraction), ``failed`` (inputs not evaluated, with the reason),
  ``model`` and ``config``.
- ``inputs.csv``: the per-input table; ``report.md``: the same for people.
- ``frames.jsonl`` and ``frames.csv``: every evaluated frame, with its input's id first.
- ``curves.png``: the pooled curve (the MMCert figure); ``spread.png``: each input's curve
  beside the pooled one.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from mmcert_ros.evaluation.report import (plot_curves, replace_text, save_figure, write_frames,
                                          write_metrics)

FLEET_FILE = 'fleet.json'
TABLE_FILE = 'inputs.csv'
MARKDOWN_FILE = 'report.md'
FRAMES_JSONL = 'frames.jsonl'
FRAMES_CSV = 'frames.csv'
CURVES_FILE = 'curves.png'
SPREAD_FILE = 'spread.png'
#: inputs and frames listed as the worst
WORST = 10


@dataclasses.dataclass
class InputOutcome:
    """What became of one input: its metrics and frame rows, or the error; ``reused`` when
    its stored result of an earlier run was taken."""

    id: str
    path: str
    metrics: dict | None = None
    rows: list[dict] = dataclasses.field(default_factory=list)
    error: str | None = None
    reused: bool = False

    @property
    def status(self) -> str:
        if self.metrics is None:
            return 'failed'
        return 'complete' if self.metrics['complete'] else 'incomplete'


def input_row(outcome: InputOutcome) -> dict:
    """One row of the per-input table: frames, skips, certified fraction, certified IoU and
    certified-but-wrong fraction, latency."""
    row = {'id': outcome.id, 'path': outcome.path, 'status': outcome.status,
           'reused': outcome.reused}
    metrics = outcome.metrics
    if metrics is None:
        return {**row, 'error': outcome.error}
    latency = metrics['latency_s'].get('total', {})
    row.update({
        'frames': metrics['frames'], 'skipped': metrics['skipped']['total'],
        'skipped_reasons': metrics['skipped']['reasons'],
        'certified_fraction': metrics['certified_fraction'],
        'certified_iou': metrics.get('certified', {}).get('iou'),
        'certified_wrong_fraction': metrics.get('certified', {}).get('wrong_fraction'),
        'plain_iou': metrics.get('plain', {}).get('iou'),
        **{f'latency_{name}_s': latency.get(name) for name in ('p50', 'p90', 'p99')},
        'error': metrics['error'],
    })
    return row


def _badness(row: dict) -> tuple[bool, float]:
    """Sort key, worst first: rows with a certified IoU by it, then by certified fraction."""
    iou = row.get('certified_iou')
    return (iou is None, iou if iou is not None else row.get('certified_fraction') or 0.0)


def frame_rows(outcomes: Sequence[InputOutcome]) -> list[dict]:
    """Every evaluated frame's row, prefixed with its input's id."""
    return [{'input': outcome.id, **row} for outcome in outcomes for row in outcome.rows]


def worst_frames(rows: Sequence[dict]) -> list[dict]:
    """The :data:`WORST` frames of lowest certified IoU (else certified fraction)."""
    keyed = [{**row, 'certified_iou': row.get('certified_iou')} for row in rows]
    return sorted(keyed, key=_badness)[:WORST]


def write_fleet_report(out_dir: Path, pooled: dict, outcomes: Sequence[InputOutcome],
                       model: str, config: dict) -> dict:
    """Write the fleet report files (module docstring); return the content of fleet.json."""
    table = [input_row(outcome) for outcome in outcomes]
    evaluated = [row for row in table if row['status'] != 'failed']
    rows = frame_rows(outcomes)
    report = {
        'inputs_total': len(outcomes),
        'inputs_evaluated': len(evaluated),
        'complete': all(row['status'] == 'complete' for row in table),
        'model': model or 'default',
        'config': config,
        'pooled': pooled,
        'inputs': table,
        'worst_inputs': sorted(evaluated, key=_badness)[:WORST],
        'worst_frames': [{key: row.get(key) for key in (
            'input', 'index', 'name', 'stamp_ns', 'certified_iou', 'certified_wrong_fraction',
            'certified_fraction', 'plain_iou')} for row in worst_frames(rows)],
        'failed': [{'id': row['id'], 'path': row['path'], 'error': row['error']}
                   for row in table if row['status'] != 'complete'],
    }
    write_metrics(out_dir / FLEET_FILE, report)
    write_frames(out_dir / TABLE_FILE, [{**row, 'skipped_reasons': json.dumps(
        row.get('skipped_reasons', {}))} for row in table])
    replace_text(out_dir / FRAMES_JSONL, ''.join(json.dumps(row) + '\n' for row in rows))
    write_frames(out_dir / FRAMES_CSV, rows)
    replace_text(out_dir / MARKDOWN_FILE, markdown(report))
    if pooled.get('curve'):
        plot_curves(out_dir / CURVES_FILE, pooled['curve'],
                    f"fleet: {len(evaluated)} inputs, {pooled['frames']} frames, "
                    f"N={config['num_samples']}, alpha={config['alpha']}")
        plot_spread(out_dir / SPREAD_FILE, pooled['curve'],
                    {outcome.id: outcome.metrics['curve'] for outcome in outcomes
                     if outcome.metrics is not None and outcome.metrics['curve']})
    return report


def markdown(report: dict) -> str:
    """``report.md``: the headline, the per-input table, the worst inputs and frames."""
    pooled = report['pooled']
    lines = [f"# Fleet evaluation: {report['inputs_evaluated']} of {report['inputs_total']} "
             f"inputs, {pooled.get('frames', 0)} frames", '']
    if pooled.get('frames'):
        headline = f"Pooled certified fraction {pooled['certified_fraction']:.4f}"
        if 'certified' in pooled:
            headline += (f", certified IoU {pooled['certified']['iou']:.4f} (plain IoU "
                         f"{pooled['plain']['iou']:.4f}), certified but wrong "
                         f"{pooled['certified']['wrong_fraction']:.4f} of the certified pixels")
        lines += [headline + f" at r = ({pooled['radius']['rgb']}, "
                  f"{pooled['radius']['depth']}), N = {pooled['num_samples']}, "
                  f"alpha = {pooled['alpha']}.", '']
    lines += ['## Inputs', '',
              '| input | status | frames | skipped | certified fraction | certified IoU | '
              'certified but wrong | latency p50 / p90 / p99 (s) |',
              '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for row in report['inputs']:
        if row['status'] == 'failed':
            lines.append(f"| {row['id']} | failed: {row['error']} | | | | | | |")
            continue
        latency = ' / '.join(_number(row[f'latency_{p}_s']) for p in ('p50', 'p90', 'p99'))
        lines.append(f"| {row['id']} | {row['status']} | {row['frames']} | {row['skipped']} "
                     f"{_reasons(row['skipped_reasons'])}| {_number(row['certified_fraction'])} "
                     f"| {_number(row['certified_iou'])} "
                     f"| {_number(row['certified_wrong_fraction'])} | {latency} |")
    lines += ['', '## Worst inputs', '']
    lines += [f"- {row['id']}: certified IoU {_number(row['certified_iou'])}, certified but "
              f"wrong {_number(row['certified_wrong_fraction'])}, certified fraction "
              f"{_number(row['certified_fraction'])}" for row in report['worst_inputs']]
    lines += ['', '## Worst frames', '']
    lines += [f"- {row['input']} frame {row['name']} (stamp {row['stamp_ns']} ns): certified "
              f"IoU {_number(row['certified_iou'])}, certified but wrong "
              f"{_number(row['certified_wrong_fraction'])}, certified fraction "
              f"{_number(row['certified_fraction'])}" for row in report['worst_frames']]
    return '\n'.join(lines) + '\n'


def plot_spread(path: Path, pooled_curve: Sequence[dict], curves: dict[str, Sequence[dict]]
                ) -> None:
    """``spread.png``: each input's certified IoU (certified fraction without ground truth)
    against the budget, thin, and the pooled curve, thick: how far inputs stray from it."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    key = 'iou' if 'iou' in pooled_curve[0] else 'certified_fraction'
    axis = 'r_rgb' if any(point['r_rgb'] for point in pooled_curve) else 'r_depth'
    figure, ax = pyplot.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, curve in curves.items():
        ax.plot([p[axis] for p in curve], [p.get(key, 0.0) for p in curve], linewidth=0.8,
                alpha=0.6, label=name if len(curves) <= 8 else None)
    ax.plot([p[axis] for p in pooled_curve], [p[key] for p in pooled_curve], color='black',
            linewidth=2.2, label='pooled')
    ax.set_xlabel(f'attack budget {axis}')
    ax.set_ylabel('certified IoU' if key == 'iou' else 'certified fraction')
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize=7)
    ax.set_title(f'spread over {len(curves)} inputs', fontsize=9)
    save_figure(figure, path)


def _number(value) -> str:
    return '-' if value is None else f'{value:.4f}'


def _reasons(reasons: dict) -> str:
    return f"({', '.join(f'{k}: {v}' for k, v in reasons.items())}) " if reasons else ''
