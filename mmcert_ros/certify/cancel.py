"""Stopping a frame in flight: a cancel token the engine checks between micro-batches.

A certificate is all-or-nothing: a frame that is cancelled or runs past its deadline
publishes nothing (a partial vote count certifies nothing about the N-sample ensemble it
was configured for), so the engine raises :class:`FrameCancelled` and keeps no state.
Any thread may call :meth:`CancelToken.cancel`; the engine notices it before its next
micro-batch, so the delay is at most one forward pass.
"""
from __future__ import annotations

import threading
import time


class FrameCancelled(Exception):
    """The frame was abandoned before its certificate was complete.

    :ivar reason: why: the text given to :meth:`CancelToken.cancel`, or
        ``'time budget exceeded'`` for a passed deadline.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancelToken:
    """A thread-safe flag, with an optional deadline, for one or more frames.

    :param deadline_s: ``time.monotonic()`` value after which :meth:`check` raises; None = no
        deadline. Use :meth:`with_budget` for a budget relative to now.
    """

    def __init__(self, deadline_s: float | None = None) -> None:
        self._event = threading.Event()
        self._reason = 'cancelled'
        self.deadline_s = deadline_s

    @classmethod
    def with_budget(cls, budget_s: float | None) -> CancelToken:
        """A token whose deadline is ``budget_s`` seconds from now (None or <= 0: none)."""
        return cls(time.monotonic() + budget_s if budget_s and budget_s > 0 else None)

    def cancel(self, reason: str = 'cancelled') -> None:
        """Ask every frame checking this token to stop at its next micro-batch."""
        self._reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (a passed deadline does not set it)."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`FrameCancelled` if cancelled or past the deadline; else return."""
        if self._event.is_set():
            raise FrameCancelled(self._reason)
        if self.deadline_s is not None and time.monotonic() > self.deadline_s:
            raise FrameCancelled('time budget exceeded')
