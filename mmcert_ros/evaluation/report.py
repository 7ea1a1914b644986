"""Write the evaluation reports: ``metrics.json``, ``frames.csv`` and ``curves.png``.

Every writer goes through a temporary file renamed into place, so a report that exists is
complete. The plot uses matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

from mmcert_ros.evaluation.accumulate import CURVE_METRICS

METRICS_FILE = 'metrics.json'
FRAMES_FILE = 'frames.csv'
CURVES_FILE = 'curves.png'
#: every report file name, for the no-overwrite check
REPORT_FILES = (METRICS_FILE, FRAMES_FILE, CURVES_FILE)

_CURVE_LABELS = {'pixel_accuracy': 'certified pixel accuracy', 'f1': 'certified F1',
                 'iou': 'certified IoU', 'recall': 'certified recall'}
_PLOTTED = ('pixel_accuracy', 'f1', 'iou')


def write_metrics(path: Path, metrics: dict) -> None:
    """``metrics.json``: the summary, indented, keys in insertion order."""
    replace_text(path, json.dumps(metrics, indent=2) + '\n')


def write_frames(path: Path, rows: Sequence[dict]) -> None:
    """``frames.csv``: one row per frame; columns are the union of the rows' keys in order
    of first appearance (frames without ground truth leave the metric columns empty)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    temporary = path.with_name(path.name + '.tmp')
    with temporary.open('w', newline='') as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns) or ['index'])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def plot_curves(path: Path, curve: Sequence[dict], title: str) -> None:
    """``curves.png``: certified pixel accuracy, F1 and IoU against r_rgb (the MMCert figure),
    and on a second axis (right) the certified-but-wrong fraction of the certified pixels.

    Without ground truth the certified fraction is plotted instead. When the ray does not
    move r_rgb (``ray = (0, a)``), the x axis is r_depth.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    axis = 'r_rgb' if any(point['r_rgb'] for point in curve) else 'r_depth'
    xs = [point[axis] for point in curve]
    with_gt = bool(curve) and all(name in curve[0] for name in CURVE_METRICS)
    series = [(name, _CURVE_LABELS[name]) for name in _PLOTTED] if with_gt else [
        ('certified_fraction', 'certified fraction of pixels')]
    figure, ax = pyplot.subplots(figsize=(6.4, 4.2), dpi=120)
    for (key, label), marker in zip(series, 'os^'):
        ax.plot(xs, [point[key] for point in curve], marker=marker, markersize=3, label=label)
    ray = (curve[1]['r_rgb'], curve[1]['r_depth']) if len(curve) > 1 else None
    ax.set_xlabel(f'attack budget {axis}' + (
        f'  (r = t * ({ray[0]}, {ray[1]}) for (rgb, depth))' if ray else ''))
    ax.set_ylabel('certified metric' if with_gt else 'fraction')
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if with_gt:
        wrong = [point['wrong_fraction'] for point in curve]
        right = ax.twinx()
        handles += right.plot(xs, wrong, color='tab:red', linestyle='--', marker='x',
                              markersize=3, label='certified but wrong (right axis)')
        labels.append(handles[-1].get_label())
        right.set_ylabel('certified-but-wrong fraction of certified pixels')
        right.set_ylim(0.0, max(0.05, 1.2 * max(wrong)))
    ax.legend(handles, labels, loc='best')
    ax.set_title(title, fontsize=9)
    save_figure(figure, path)


def save_figure(figure, path: Path) -> None:
    """Lay out a matplotlib figure, write it as a PNG through a temporary file, close it."""
    from matplotlib import pyplot

    figure.tight_layout()
    temporary = path.with_name(path.name + '.tmp.png')
    figure.savefig(temporary)
    pyplot.close(figure)
    os.replace(temporary, path)


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place."""
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(text)
    os.replace(temporary, path)
