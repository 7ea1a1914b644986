"""Pair two stamped streams by header stamp.

ROS-free, so the node and offline bag evaluation pair messages with exactly the same rule.
A pairer is built for two named streams (``('rgb', 'depth')`` by default; offline
evaluation also pairs ``('rgbd', 'gt')``: RGB-D pairs with ground truth), and every counter,
pending queue and :class:`Pair` is keyed by those names.

Pairing rule (:class:`StampPairer`): when a message arrives it is paired at once with the
pending message of the other stream whose stamp is nearest to its own (ties: the older one),
provided the stamps differ by at most ``slop``; both are then consumed, so each message is
used at most once. Pairing never waits for a possibly nearer future message, so it adds no
latency; sensors that stamp RGB and depth of one exposure identically always pair exactly.

A pending message is dropped and counted as unpaired when it can no longer pair:

* the other stream's latest stamp is more than ``slop`` past it but less than the jump
  threshold (a stamp further away belongs to another time line and proves nothing);
* more than ``max_pending`` messages of its stream are waiting (the oldest goes first);
* it has waited longer than ``max_age_s`` (by the pairer's monotonic clock; :meth:`expire`
  runs this check from a timer too, so the last message of a stream is counted as well);
* a time jump (below) leaves it on the old time line.

Stamp faults. A message is rejected, counted under its kind in :attr:`rejected` and never
paired, if its stamp is zero after its stream had a message (``stamp_zero``: the driver did
not stamp it; a first stamp of 0 is a recording that starts at t = 0, as ``kitti2bag``
writes), equal to the previous stamp of its stream while that message is still pending or was
used (``stamp_duplicate``; a copy re-sent after its predecessor waited ``max_age_s`` in vain
is taken: the predecessor is gone, and the copy can still meet its partner) or, when the caller
passes the clock
(``now_ns``), more than ``future_tolerance_s`` ahead of it (``stamp_in_future``). A stamp
more than ``jump_back_s`` behind the previous one of its stream is a *time jump* (a bag loop,
a restarted replay, a sim-time reset): the pending messages of the old time line are
dropped (counted as unpaired) and the jump is reported once, through ``on_jump``; when the
other stream follows onto the new time line it is not reported again. :meth:`reset_to`
does the same for a jump of the clock itself (ROS time under ``use_sim_time``).
"""
from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

#: the streams of the RGB-D pairer (the default of :class:`StampPairer`)
STREAMS = ('rgb', 'depth')
#: kinds of rejected stamps, counted in :attr:`StampPairer.rejected`
STAMP_FAULTS = ('stamp_zero', 'stamp_duplicate', 'stamp_in_future')


@dataclass(frozen=True)
class Pair:
    """One message of each of a pairer's two streams, their stamps within the slop.

    :ivar items: ``{stream name: message}``.
    :ivar stamps_ns: ``{stream name: header stamp, nanoseconds}``.

    The RGB-D names have properties: ``rgb``, ``depth``, ``rgb_stamp_ns``,
    ``depth_stamp_ns``. :meth:`rgb_only` is the pair of the node's RGB-only (degraded) mode:
    its ``depth`` and ``depth_stamp_ns`` are None.
    """

    items: Mapping[str, Any]
    stamps_ns: Mapping[str, int | None]

    def __getitem__(self, stream: str) -> Any:
        return self.items[stream]

    @classmethod
    def rgb_only(cls, rgb: Any, stamp_ns: int) -> 'Pair':
        """An RGB message without depth (nothing paired)."""
        return cls({'rgb': rgb, 'depth': None}, {'rgb': int(stamp_ns), 'depth': None})

    @property
    def rgb(self) -> Any:
        return self.items['rgb']

    @property
    def depth(self) -> Any:
        return self.items['depth']

    @property
    def rgb_stamp_ns(self) -> int:
        return self.stamps_ns['rgb']

    @property
    def depth_stamp_ns(self) -> int | None:
        return self.stamps_ns['depth']


@dataclass(frozen=True)
class TimeJump:
    """A backward jump of the stamps (or of the clock) that reset the pairing state.

    :ivar source: the stream whose stamp jumped (its name) or ``'clock'``.
    :ivar from_ns: the stamp (or clock time) before the jump, nanoseconds.
    :ivar to_ns: the stamp (or clock time) after it, nanoseconds.
    :ivar dropped: pending messages of the old time line dropped by the reset.
    """

    source: str
    from_ns: int
    to_ns: int
    dropped: int

    def describe(self) -> str:
        """One line naming the jump, for a log message."""
        what = 'ROS time' if self.source == 'clock' else f'{self.source} stamps'
        return (f'{what} jumped back {(self.from_ns - self.to_ns) / 1e9:.3f} s '
                f'(from {self.from_ns / 1e9:.3f} s to {self.to_ns / 1e9:.3f} s): '
                f'pairing state reset, {self.dropped} pending message(s) dropped')


class _Pending(NamedTuple):
    stamp_ns: int
    arrived_s: float
    item: Any


class StampPairer:
    """Pair two named stamped streams by nearest stamp within a slop.

    Not thread-safe: call it from one thread at a time (the node holds a lock around every
    call). Stamps are integers in nanoseconds.

    :param slop_s: largest accepted stamp difference in seconds (>= 0).
    :param streams: the two stream names (distinct), e.g. ``('rgb', 'depth')``.
    :param max_pending: messages kept per stream while waiting for a partner (>= 1).
    :param jump_back_s: a stamp this many seconds behind the previous one of its stream is a
        time jump (> 0, and larger than ``slop_s`` for the rule to make sense).
    :param future_tolerance_s: with ``now_ns`` given to :meth:`add`, a stamp more than this
        ahead of it is rejected as ``stamp_in_future``; 0 = no check.
    :param max_age_s: seconds a message may wait for a partner; None = no limit (offline
        replay, where arrival times mean nothing).
    :param clock: monotonic seconds for the ages (injectable for tests).
    :param on_jump: called with every reported :class:`TimeJump`.
    :param on_reject: called with ``(kind, stream, stamp_ns)`` for every rejected message.
    """

    def __init__(self, slop_s: float, max_pending: int = 8, *,
                 streams: tuple[str, str] = STREAMS, jump_back_s: float = 1.0,
                 future_tolerance_s: float = 0.0, max_age_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_jump: Callable[[TimeJump], None] | None = None,
                 on_reject: Callable[[str, str, int], None] | None = None) -> None:
        if max_pending < 1:
            raise ValueError(f'max_pending must be >= 1, got {max_pending}')
        if len(streams) != 2 or streams[0] == streams[1]:
            raise ValueError(f'a pairer needs two distinct stream names, got {streams!r}')
        self.streams = tuple(streams)
        self.slop_s = slop_s
        self.max_pending = int(max_pending)
        self.jump_back_s = jump_back_s
        self.future_tolerance_s = future_tolerance_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._on_jump = on_jump
        self._on_reject = on_reject
        self._pending: dict[str, list[_Pending]] = {s: [] for s in self.streams}
        self._last_ns: dict[str, int | None] = {s: None for s in self.streams}
        #: streams whose latest message waited ``max_age_s`` in vain and was dropped
        self._last_expired: set[str] = set()
        #: streams still on the old time line after a reported jump to ``_epoch_ns``
        self._following: set[str] = set()
        self._epoch_ns = 0
        self.received = {s: 0 for s in self.streams}
        self.unpaired = {s: 0 for s in self.streams}
        self.rejected = dict.fromkeys(STAMP_FAULTS, 0)
        self.paired = 0
        self.time_jumps = 0

    # -- settings -----------------------------------------------------------------------

    @property
    def slop_s(self) -> float:
        """The pairing tolerance in seconds; may be changed between messages."""
        return self._slop_ns / 1e9

    @slop_s.setter
    def slop_s(self, value: float) -> None:
        self._slop_ns = _nanoseconds('slop', value, allow_zero=True)

    @property
    def jump_back_s(self) -> float:
        """Backward stamp step, seconds, treated as a time jump; may be changed."""
        return self._jump_ns / 1e9

    @jump_back_s.setter
    def jump_back_s(self, value: float) -> None:
        self._jump_ns = _nanoseconds('jump_back_s', value, allow_zero=False)

    @property
    def future_tolerance_s(self) -> float:
        """Seconds a stamp may lead the caller's clock (0 = no check); may be changed."""
        return self._future_ns / 1e9

    @future_tolerance_s.setter
    def future_tolerance_s(self, value: float) -> None:
        self._future_ns = _nanoseconds('future_tolerance_s', value, allow_zero=True)

    @property
    def max_age_s(self) -> float | None:
        """Seconds a message may wait for a partner (None = no limit); may be changed."""
        return self._max_age_s

    @max_age_s.setter
    def max_age_s(self, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f'max_age_s must be a positive number of seconds or None, '
                             f'got {value}')
        self._max_age_s = None if value is None else float(value)

    # -- messages -----------------------------------------------------------------------

    def add_rgb(self, stamp_ns: int, item: Any, now_ns: int | None = None) -> Pair | None:
        """Offer an RGB message; return the pair it completes, if any."""
        return self.add('rgb', stamp_ns, item, now_ns)

    def add_depth(self, stamp_ns: int, item: Any, now_ns: int | None = None) -> Pair | None:
        """Offer a depth message; return the pair it completes, if any."""
        return self.add('depth', stamp_ns, item, now_ns)

    def add(self, stream: str, stamp_ns: int, item: Any,
            now_ns: int | None = None) -> Pair | None:
        """Offer a message of ``stream`` (one of :attr:`streams`); return the completed pair.

        :param now_ns: the receiver's clock in nanoseconds, for the ``stamp_in_future``
            check; None or <= 0 (a sim clock not running yet) = no check.
        """
        if stream not in self.streams:
            raise ValueError(f'unknown stream {stream!r}; expected one of {self.streams}')
        stamp_ns = int(stamp_ns)
        self.received[stream] += 1
        fault = self._fault(stream, stamp_ns, now_ns)
        if fault is not None:
            self.rejected[fault] += 1
            if self._on_reject is not None:
                self._on_reject(fault, stream, stamp_ns)
            self.expire()
            return None
        last = self._last_ns[stream]
        if last is not None and stamp_ns < last - self._jump_ns:
            self._jumped(stream, last, stamp_ns)
        self._last_ns[stream] = stamp_ns
        self._last_expired.discard(stream)

        other = self.streams[1 - self.streams.index(stream)]
        pair = None
        partner = self._take_nearest(other, stamp_ns)
        if partner is not None:
            self.paired += 1
            pair = Pair({stream: item, other: partner.item},
                        {stream: stamp_ns, other: partner.stamp_ns})
        else:
            pending = self._pending[stream]
            bisect.insort(pending, _Pending(stamp_ns, self._clock(), item),
                          key=lambda entry: entry.stamp_ns)
            if len(pending) > self.max_pending:
                del pending[0]
                self.unpaired[stream] += 1
        self._expire_passed()
        self.expire()
        return pair

    def reset_to(self, now_ns: int, from_ns: int) -> TimeJump | None:
        """The clock jumped back from ``from_ns`` to ``now_ns``: drop what waits on the old time
        line and report the jump, unless the stamps already showed it (then None).
        """
        ahead = [s for s in self.streams if self._last_ns[s] is not None
                 and self._last_ns[s] > int(now_ns) + self._jump_ns]
        if not ahead:
            return None
        return self._report(TimeJump('clock', int(from_ns), int(now_ns),
                                     self._drop_ahead_of(int(now_ns))), set(ahead))

    def expire(self) -> int:
        """Drop (count as unpaired) every message that waited longer than ``max_age_s``.

        :returns: how many were dropped.
        """
        if self._max_age_s is None:
            return 0
        oldest_arrival = self._clock() - self._max_age_s
        dropped = 0
        for stream in self.streams:
            latest = self._last_ns[stream]
            if any(entry.stamp_ns == latest and entry.arrived_s < oldest_arrival
                   for entry in self._pending[stream]):
                self._last_expired.add(stream)
            dropped += self._drop(stream, lambda entry: entry.arrived_s < oldest_arrival)
        return dropped

    def flush(self) -> int:
        """Count every pending message as unpaired and forget it (end of a bag).

        :returns: how many messages were pending.
        """
        count = 0
        for stream in self.streams:
            count += len(self._pending[stream])
            self.unpaired[stream] += len(self._pending[stream])
            self._pending[stream].clear()
        return count

    def pending(self, stream: str) -> int:
        """Number of messages of ``stream`` waiting for a partner."""
        return len(self._pending[stream])

    def counters(self) -> dict[str, int]:
        """Running counters: ``received_<stream>``, ``unpaired_<stream>``, pairs made, rejected
        stamps by kind and reported time jumps. Per stream, received = paired + unpaired + rejected
        (of that stream) + pending."""
        return {**{f'received_{s}': self.received[s] for s in self.streams},
                **{f'unpaired_{s}': self.unpaired[s] for s in self.streams},
                'paired': self.paired, **self.rejected, 'time_jumps': self.time_jumps}

    # -- internals ----------------------------------------------------------------------

    def _fault(self, stream: str, stamp_ns: int, now_ns: int | None) -> str | None:
        if stamp_ns <= 0 and self._last_ns[stream] is not None:
            return 'stamp_zero'
        if stamp_ns == self._last_ns[stream] and stream not in self._last_expired:
            return 'stamp_duplicate'
        if self._future_ns and now_ns is not None and now_ns > 0 \
                and stamp_ns > now_ns + self._future_ns:
            return 'stamp_in_future'
        return None

    def _jumped(self, stream: str, last_ns: int, stamp_ns: int) -> None:
        """``stream`` stepped back from ``last_ns`` to ``stamp_ns`` by more than the threshold."""
        dropped = self._drop_ahead_of(stamp_ns)
        if stream in self._following and stamp_ns >= self._epoch_ns - self._jump_ns:
            self._following.discard(stream)       # follows a jump already reported
            return
        self._report(TimeJump(stream, last_ns, stamp_ns, dropped), set(self.streams) - {stream})

    def _report(self, jump: TimeJump, following: set[str]) -> TimeJump:
        self._epoch_ns = jump.to_ns
        self._following = following
        self.time_jumps += 1
        if self._on_jump is not None:
            self._on_jump(jump)
        return jump

    def _drop_ahead_of(self, stamp_ns: int) -> int:
        """Drop (count as unpaired) pending messages more than the jump threshold ahead."""
        return sum(self._drop(stream, lambda entry: entry.stamp_ns > stamp_ns + self._jump_ns)
                   for stream in self.streams)

    def _drop(self, stream: str, stale: Callable[[_Pending], bool]) -> int:
        """Drop (count as unpaired) the pending messages of ``stream`` that are ``stale``."""
        pending = self._pending[stream]
        keep = [entry for entry in pending if not stale(entry)]
        dropped = len(pending) - len(keep)
        self.unpaired[stream] += dropped
        pending[:] = keep
        return dropped

    def _take_nearest(self, stream: str, stamp_ns: int) -> _Pending | None:
        pending = self._pending[stream]
        best = None
        for index, entry in enumerate(pending):
            distance = abs(entry.stamp_ns - stamp_ns)
            if distance <= self._slop_ns and (best is None or distance < best[0]):
                best = (distance, index)
        return None if best is None else pending.pop(best[1])

    def _expire_passed(self) -> None:
        """Drop messages the other stream has moved more than ``slop`` past, on its time line."""
        for stream, other in (self.streams, self.streams[::-1]):
            latest = self._last_ns[other]
            if latest is not None:
                self._drop(stream, lambda entry: latest - self._jump_ns <= entry.stamp_ns
                           < latest - self._slop_ns)


def _nanoseconds(name: str, value: float, allow_zero: bool) -> int:
    if not (value >= 0 if allow_zero else value > 0) or value == float('inf'):
        bound = 'non-negative' if allow_zero else 'positive'
        raise ValueError(f'{name} must be a {bound} number of seconds, got {value}')
    return round(float(value) * 1e9)
