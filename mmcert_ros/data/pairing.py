"""Pair RGB and depth messages by header stamp, and hand work over through a drop-oldest slot.

ROS-free, so the node and offline bag evaluation pair messages with exactly the same rule.

Pairing rule (:class:`StampPairer`): when a message arrives it is paired at once with the
pending message of the other stream whose stamp is nearest to its own (ties: the older one),
provided the stamps differ by at most ``slop``; both are then consumed, so each message is
used at most once. Pairing never waits for a possibly nearer future message, so it adds no
latency; sensors that stamp RGB and depth of one exposure identically always pair exactly.
A pending message is dropped (counted as unpaired) once the other stream has moved more than
``slop`` past it (assuming each stream arrives in stamp order) or when more than
``max_pending`` messages of its stream are waiting (the oldest goes first).
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar('T')

STREAMS = ('rgb', 'depth')


@dataclass(frozen=True)
class Pair:
    """One RGB message and one depth message whose stamps are within the slop."""

    rgb: Any
    depth: Any
    rgb_stamp_ns: int
    depth_stamp_ns: int


class StampPairer:
    """Pair two stamped streams (``'rgb'`` and ``'depth'``) by nearest stamp within a slop.

    Not thread-safe: call it from one thread at a time (the node serializes its subscription
    callbacks). Stamps are integers in nanoseconds.

    :param slop_s: largest accepted stamp difference in seconds (>= 0).
    :param max_pending: messages kept per stream while waiting for a partner (>= 1).
    """

    def __init__(self, slop_s: float, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ValueError(f'max_pending must be >= 1, got {max_pending}')
        self.slop_s = slop_s
        self.max_pending = int(max_pending)
        self._pending: dict[str, list[tuple[int, Any]]] = {s: [] for s in STREAMS}
        self._newest_ns: dict[str, int | None] = {s: None for s in STREAMS}
        self.received = {s: 0 for s in STREAMS}
        self.unpaired = {s: 0 for s in STREAMS}
        self.paired = 0

    @property
    def slop_s(self) -> float:
        """The pairing tolerance in seconds; may be changed between messages."""
        return self._slop_ns / 1e9

    @slop_s.setter
    def slop_s(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f'slop must be a non-negative number of seconds, got {value}')
        self._slop_ns = round(float(value) * 1e9)

    def add_rgb(self, stamp_ns: int, item: Any) -> Pair | None:
        """Offer an RGB message; return the pair it completes, if any."""
        return self.add('rgb', stamp_ns, item)

    def add_depth(self, stamp_ns: int, item: Any) -> Pair | None:
        """Offer a depth message; return the pair it completes, if any."""
        return self.add('depth', stamp_ns, item)

    def add(self, stream: str, stamp_ns: int, item: Any) -> Pair | None:
        """Offer a message of ``stream`` (``'rgb'`` or ``'depth'``); return the completed pair."""
        if stream not in STREAMS:
            raise ValueError(f'unknown stream {stream!r}; expected one of {STREAMS}')
        other = STREAMS[1 - STREAMS.index(stream)]
        stamp_ns = int(stamp_ns)
        self.received[stream] += 1
        newest = self._newest_ns[stream]
        self._newest_ns[stream] = stamp_ns if newest is None else max(newest, stamp_ns)

        pair = None
        partner = self._take_nearest(other, stamp_ns)
        if partner is not None:
            self.paired += 1
            partner_ns, partner_item = partner
            if stream == 'rgb':
                pair = Pair(item, partner_item, stamp_ns, partner_ns)
            else:
                pair = Pair(partner_item, item, partner_ns, stamp_ns)
        else:
            pending = self._pending[stream]
            bisect.insort(pending, (stamp_ns, item), key=lambda entry: entry[0])
            if len(pending) > self.max_pending:
                del pending[0]
                self.unpaired[stream] += 1
        self._expire()
        return pair

    def flush(self) -> int:
        """Count every pending message as unpaired and forget it (end of a bag).

        :returns: how many messages were pending.
        """
        count = 0
        for stream in STREAMS:
            count += len(self._pending[stream])
            self.unpaired[stream] += len(self._pending[stream])
            self._pending[stream].clear()
        return count

    def pending(self, stream: str) -> int:
        """Number of messages of ``stream`` waiting for a partner."""
        return len(self._pending[stream])

    def counters(self) -> dict[str, int]:
        """Message counters: received, unpaired (per stream) and pairs made."""
        return {'received_rgb': self.received['rgb'], 'received_depth': self.received['depth'],
                'unpaired_rgb': self.unpaired['rgb'], 'unpaired_depth': self.unpaired['depth'],
                'paired': self.paired}

    def _take_nearest(self, stream: str, stamp_ns: int) -> tuple[int, Any] | None:
        pending = self._pending[stream]
        best = None
        for index, (candidate_ns, _) in enumerate(pending):
            distance = abs(candidate_ns - stamp_ns)
            if distance <= self._slop_ns and (best is None or distance < best[0]):
                best = (distance, index)
        return None if best is None else pending.pop(best[1])

    def _expire(self) -> None:
        for stream, other in (STREAMS, STREAMS[::-1]):
            newest_other = self._newest_ns[other]
            if newest_other is None:
                continue
            pending = self._pending[stream]
            while pending and pending[0][0] < newest_other - self._slop_ns:
                del pending[0]
                self.unpaired[stream] += 1


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
