"""Run work items as Ray tasks: on a local Ray runtime, or on a cluster joined by address.

Ray is imported only when a :class:`RayExecutor` is entered (``pip install ray``: the
``evaluation`` extra); nothing else in mmcert_ros needs it. Each work item is one task with
``num_cpus=1`` (and ``num_gpus = gpus_per_worker`` when given: the task then sees its GPU
through ``CUDA_VISIBLE_DEVICES`` and the engine's device ``auto`` picks it). A task whose
worker process dies is retried on another worker by Ray (``max_retries``); after the last
retry the input is reported as failed. Tasks report frames done to a small progress actor
that the driver polls, so progress covers the whole cluster.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from mmcert_ros.errors import UserError
from mmcert_ros.fleet.work import ChunkResult, WorkItem, evaluate_chunk

#: seconds between progress polls of the driver
POLL_S = 0.5


def _run_item(item: WorkItem, settings, board) -> ChunkResult:
    """The task body: evaluate one work item, reporting frames done to ``board``."""
    return evaluate_chunk(item, settings,
                          lambda frames: board.report.remote(item.key, frames))


class _ProgressBoard:
    """Frames done per work item, as last reported (a retried task starts again at 0)."""

    def __init__(self) -> None:
        self.frames: dict[tuple, int] = {}

    def report(self, key: tuple, frames: int) -> None:
        self.frames[key] = frames

    def snapshot(self) -> dict[tuple, int]:
        return dict(self.frames)


class RayExecutor:
    """Work items as Ray tasks (see the module docstring).

    :param workers: start a local Ray runtime with this many CPU workers (``--workers``).
    :param address: join this cluster instead (``'auto'``: the one this machine is part of).
    :param gpus_per_worker: GPUs each task asks for (0: CPU only; 0.5: two tasks per GPU).
    :param max_retries: retries of a task whose worker died.
    :param object_store_memory: bytes of the local runtime's object store (None: Ray's
        default, 30 % of the memory).
    """

    def __init__(self, workers: int | None = None, address: str | None = None,
                 gpus_per_worker: float = 0.0, max_retries: int = 3,
                 object_store_memory: int | None = None) -> None:
        self.workers = workers
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self.max_retries = max_retries
        self.object_store_memory = object_store_memory
        self._started = False

    @property
    def description(self) -> str:
        where = f'Ray cluster {self.address}' if self.address else \
            f'local Ray runtime, {self.workers} workers'
        return where + (f', {self.gpus_per_worker:g} GPU per task' if self.gpus_per_worker
                        else '')

    def __enter__(self) -> RayExecutor:
        try:
            import ray
        except ImportError:
            raise UserError('--workers / --ray-address need Ray: pip install ray '
                            "(or the package's 'evaluation' extra)") from None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, num_gpus=None, include_dashboard=False,
                         object_store_memory=self.object_store_memory, log_to_driver=False)
            self._started = True
        if self.gpus_per_worker and not ray.cluster_resources().get('GPU'):
            raise UserError(f'--gpus-per-worker {self.gpus_per_worker:g}: the Ray cluster '
                            'has no GPU')
        return self

    def __exit__(self, *exc_info) -> None:
        if self._started:
            import ray
            ray.shutdown()
            self._started = False

    def run(self, items: Iterable[WorkItem], settings,
            on_progress: Callable[[tuple, int], None]) -> Iterator[ChunkResult]:
        """Submit every item, yield each result as it completes; ``on_progress(item key,
        frames done)`` for every change the tasks report."""
        import ray

        board = ray.remote(num_cpus=0)(_ProgressBoard).remote()
        task = ray.remote(_run_item).options(num_cpus=1, num_gpus=self.gpus_per_worker,
                                             max_retries=self.max_retries,
                                             retry_exceptions=False)
        settings_ref = ray.put(settings)
        pending = {task.remote(item, settings_ref, board): item for item in items}
        seen: dict[tuple, int] = {}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for key, frames in ray.get(board.snapshot.remote()).items():
                    if seen.get(key) != frames:
                        seen[key] = frames
                        on_progress(key, frames)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        result = ChunkResult(item, error=(
                            f'the task failed {self.max_retries + 1} times (worker died?): '
                            f'{str(error).splitlines()[0]}'))
                    yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(board)
