"""Run work items one after the other in this process (the fleet without Ray)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from mmcert_ros.fleet.work import ChunkResult, WorkItem, evaluate_chunk


class LocalExecutor:
    """Evaluates each work item in this process, in order; the same results as a cluster."""

    description = 'in-process'

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def run(self, items: Iterable[WorkItem], settings,
            on_progress: Callable[[tuple, int], None]) -> Iterator[ChunkResult]:
        """Yield each item's result when done; ``on_progress(item key, frames done)``."""
        for item in items:
            yield evaluate_chunk(item, settings,
                                 lambda frames, key=item.key: on_progress(key, frames))
