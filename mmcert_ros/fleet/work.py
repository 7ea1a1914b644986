"""The units of fleet work: one input, or one window of a long input, evaluated in one process.

Everything here runs alike in the driver (the in-process path) and on a Ray worker; it
imports no Ray. The engines (model, MMCert segmenter, l2 certifier) come from the one factory,
:func:`mmcert_ros.segmenter.engines.build_engines`, and are kept for the next work item of the
same settings in the same process (:func:`engines_for`; a Ray worker runs many).
"""
from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path

from mmcert_ros.evaluation.inputs import InputSpec
from mmcert_ros.evaluation.runner import Replay, evaluate, replay
from mmcert_ros.segmenter.engines import Engines


_built: tuple[bytes, Engines] | None = None   # this process's engines and their settings


def engines_for(settings) -> Engines:
    """The engines of ``settings`` (:func:`~mmcert_ros.segmenter.engines.build_engines`),
    built once per process and settings: a Ray worker runs many work items.

    :raises UserError: the checkpoint or booster cannot be loaded.
    """
    global _built
    key = pickle.dumps(settings)
    if _built is None or _built[0] != key:
        from mmcert_ros.segmenter.engines import build_engines
        _built = (key, build_engines(settings))
    return _built[1]


def evaluate_input(spec: InputSpec, settings, out_dir: str | Path, *,
                   max_frames: int | None = None, write_bag: bool = False, force: bool = False,
                   progress: bool = True) -> dict:
    """Evaluate one whole input in this process and write its reports to ``out_dir``
    (:func:`~mmcert_ros.evaluation.runner.evaluate`, with the engines of ``settings``).

    :returns: the content of ``metrics.json``.
    :raises UserError, BagError: as :func:`~mmcert_ros.evaluation.runner.evaluate`, and
        when the input cannot be opened.
    """
    from mmcert_ros.errors import user_input

    with user_input(f'--{spec.kind}'):
        source = spec.open(settings.slop_s)
    engines = engines_for(settings)
    return evaluate(source, engines.segmenter, out_dir, model=engines.settings.checkpoint,
                    input_id=spec.id, max_frames=max_frames, write_bag=write_bag,
                    force=force, progress=progress, l2=engines.l2)


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """The window ``[first, stop)`` (pair ordinals of a bag, frame positions of a KITTI
    folder; ``stop`` None = to the end) of one input, chunk number ``chunk`` of it."""

    input: InputSpec
    chunk: int
    first: int = 0
    stop: int | None = None
    max_frames: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.input.id, self.chunk


@dataclasses.dataclass
class ChunkResult:
    """The outcome of a :class:`WorkItem`: its replay and the source's description, or the
    error that kept the input from being evaluated at all (``replay`` None then)."""

    item: WorkItem
    replay: Replay | None = None
    source: dict | None = None
    error: str | None = None


def evaluate_chunk(item: WorkItem, settings,
                   on_frames: Callable[[int], None] | None = None) -> ChunkResult:
    """Evaluate one work item; never raises for a bad input (the error is in the result).

    :param on_frames: called with the number of frames done so far, after each frame.
    """
    try:
        source = item.input.open(settings.slop_s, item.first, item.stop)
        engines = engines_for(settings)
    except Exception as error:   # a corrupt input must not fail the fleet
        return ChunkResult(item, error=_describe(error))
    done = 0

    def count(frame, certificate) -> None:
        nonlocal done
        done += 1
        if on_frames is not None:
            on_frames(done)

    try:
        outcome = replay(source, engines.segmenter, input_id=item.input.id,
                         max_frames=item.max_frames, l2=engines.l2, on_frame=count)
    except Exception as error:   # e.g. a frame the model refuses: the input failed
        return ChunkResult(item, error=_describe(error))
    return ChunkResult(item, outcome, source.describe())


def _describe(error: Exception) -> str:
    """The message of a user-facing error, else ``Type: message``."""
    from mmcert_ros.errors import UserError

    return str(error) if isinstance(error, UserError) else f'{type(error).__name__}: {error}'
