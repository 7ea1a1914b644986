"""Each input's result in the fleet's output folder, written atomically, found again by key.

``OUT/inputs/<id>/`` holds the input's own ``metrics.json``, ``frames.csv`` and
``curves.png`` (as a one-input evaluation writes them) and ``result.pkl``: the content key
(:func:`~mmcert_ros.fleet.plan.content_key`), the metrics and the pooled state
(:class:`~mmcert_ros.evaluation.runner.Replay`) the fleet report is made of. The folder is
written beside its place and renamed into it, so an input's folder that exists is complete:
a run killed at any moment leaves every finished input reusable and nothing half-written.
"""
from __future__ import annotations

import dataclasses
import pickle
import shutil
from pathlib import Path

from mmcert_ros.evaluation.runner import Replay, write_reports

INPUTS_FOLDER = 'inputs'
STATE_FILE = 'result.pkl'


@dataclasses.dataclass
class InputResult:
    """One input's evaluated figures (``metrics`` as in its metrics.json) and pooled state."""

    key: str
    metrics: dict
    replay: Replay


class ResultStore:
    """The ``inputs/`` folder of a fleet output folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir) / INPUTS_FOLDER

    def folder(self, input_id: str) -> Path:
        return self.root / input_id

    def stored_key(self, input_id: str) -> str | None:
        """The key of the stored result of ``input_id``, or None (none, or unreadable)."""
        stored = self.load(input_id)
        return None if stored is None else stored.key

    def load(self, input_id: str) -> InputResult | None:
        """The stored result of ``input_id``, or None when there is none or it is unreadable."""
        try:
            with (self.folder(input_id) / STATE_FILE).open('rb') as stream:
                stored = pickle.load(stream)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            return None
        return stored if isinstance(stored, InputResult) else None

    def save(self, input_id: str, result: InputResult) -> Path:
        """Write the reports and state of one input and swap them into place atomically."""
        final = self.folder(input_id)
        partial = self.root / f'.{input_id}.partial'
        old = self.root / f'.{input_id}.old'
        for leftover in (partial, old):
            if leftover.exists():
                shutil.rmtree(leftover)
        partial.mkdir(parents=True)
        write_reports(partial, result.metrics, result.replay.rows)
        with (partial / STATE_FILE).open('wb') as stream:
            pickle.dump(result, stream, protocol=pickle.HIGHEST_PROTOCOL)
        if final.exists():
            final.rename(old)
        partial.rename(final)
        if old.exists():
            shutil.rmtree(old)
        return final
