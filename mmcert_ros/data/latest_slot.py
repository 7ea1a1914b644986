"""A one-item, drop-oldest hand-over between threads (the segmenter's input side and its
worker): the newest item wins, so a slow consumer never builds a backlog."""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar('T')


class LatestSlot(Generic[T]):
    """A one-item, drop-oldest hand-over between a producer and one consumer thread.

    ``put`` never blocks: it replaces a waiting item (counted in ``dropped``). ``get`` blocks
    until an item arrives, the slot is closed, or the timeout passes. The internal lock is
    held only to swap the item, never while the consumer works on it.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, item: T) -> T | None:
        """Store ``item``; return the older item it displaced (``None`` if the slot was empty)."""
        with self._condition:
            displaced = self._item if self._full else None
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._condition.notify()
        return displaced

    def get(self, timeout: float | None = None) -> T | None:
        """Take the newest item, waiting up to ``timeout`` seconds; ``None`` if none or closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self.delivered += 1
            return item

    def close(self) -> None:
        """Wake the consumer for good: ``get`` returns ``None`` once the slot is empty."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed
