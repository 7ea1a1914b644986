"""The segmenter's input side without ROS: messages in by stamp, RGB-D pairs out to the worker.

:class:`InputPairing` holds the :class:`~mmcert_ros.data.pairing.StampPairer` (pairing by
header stamp within ``sync.slop``, time faults, expiry after ``sync.max_age``), the
:class:`~mmcert_ros.segmenter.depth_watch.DepthWatch` of the RGB-only mode, and the
drop-oldest :class:`~mmcert_ros.data.latest_slot.LatestSlot` that hands the newest pair to
the one worker thread. The node hands it messages with their stamps and its clock's time;
it knows nothing of topics, QoS or executors.

Threads: :meth:`offer`, :meth:`expire` and :meth:`reset_to` run on the executor's thread,
:meth:`update` on the parameter callback's (its values reach the pairer at the next
:meth:`offer` or :meth:`expire`, so the pairer is only ever touched under one lock),
:meth:`next_pair` on the worker, :meth:`close` and the read-outs anywhere.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mmcert_ros.data.latest_slot import LatestSlot
from mmcert_ros.data.pairing import Pair, StampPairer, TimeJump
from mmcert_ros.segmenter.depth_watch import DepthWatch
from mmcert_ros.segmenter.parameters import NodeSettings


class InputPairing:
    """Pairs RGB and depth messages for the worker (module docstring for the threads).

    :param settings: the ``sync.*`` and ``depth.timeout_s`` values to start with.
    :param on_jump: called with each :class:`~mmcert_ros.data.pairing.TimeJump` (one
        warning per jump).
    :param on_reject: called as ``(kind, stream, stamp_ns, count)`` for every rejected
        message, ``count`` being the kind's total so far (under the pairing lock: do not
        call back into this object).
    :param on_unpaired: called with ``(unpaired, counters, slop_s)`` when the total of
        unpaired messages reaches 1, 10, 100, ...
    :param on_depth_lost: called once each time depth goes silent for ``depth.timeout_s``.
    """

    def __init__(self, settings: NodeSettings, *,
                 on_jump: Callable[[TimeJump], None],
                 on_reject: Callable[[str, str, int, int], None],
                 on_unpaired: Callable[[int, dict, float], None],
                 on_depth_lost: Callable[[], None]) -> None:
        runtime = settings.runtime
        self._lock = threading.Lock()
        self._update_lock = threading.Lock()
        self._pairer = StampPairer(settings.slop_s, jump_back_s=runtime.jump_back_s,
                                   future_tolerance_s=runtime.future_tolerance_s,
                                   max_age_s=runtime.max_age_s, on_jump=on_jump,
                                   on_reject=self._rejected)
        self._on_reject = on_reject
        self._on_unpaired = on_unpaired
        self._on_depth_lost = on_depth_lost
        self._unpaired_next_report = 1
        #: settings whose sync values reach the pairer next; guarded by _update_lock
        self._update: NodeSettings | None = None
        self.depth_watch = DepthWatch(settings.depth.timeout_s)
        self.slot: LatestSlot[Pair] = LatestSlot()

    def offer(self, stream: str, msg: Any, stamp_ns: int, now_ns: int) -> None:
        """One input message (``stream`` ``'rgb'`` or ``'depth'``, its header stamp and the
        node clock's time, nanoseconds). In the RGB-only mode an RGB message is a pair by
        itself; otherwise a completed pair replaces any pair the worker has not taken."""
        if stream == 'rgb' and self.depth_lost():
            self.slot.put(Pair.rgb_only(msg, stamp_ns))
            return
        self._apply_update()
        with self._lock:
            pair = self._pairer.add(stream, stamp_ns, msg, now_ns)
        if pair is not None:
            self.slot.put(pair)
        self._report_unpaired()

    def depth_arrived(self) -> bool:
        """A depth message arrived (call before :meth:`offer`); True when that ends the
        RGB-only mode."""
        return self.depth_watch.arrived()

    def expire(self) -> None:
        """Timer: count messages that waited longer than ``sync.max_age`` as unpaired, and
        enter the RGB-only mode when depth went silent."""
        self._apply_update()
        self.depth_lost()
        with self._lock:
            self._pairer.expire()
        self._report_unpaired()

    def depth_lost(self) -> bool:
        """Whether RGB is certified alone now (``on_depth_lost`` once on entering it)."""
        if self.depth_watch.check():
            self._on_depth_lost()
        return self.depth_watch.lost

    def update(self, settings: NodeSettings) -> None:
        """New ``sync.*`` values (applied to the pairer from the next message or expiry)
        and ``depth.timeout_s`` (at once)."""
        self.depth_watch.timeout_s = settings.depth.timeout_s
        with self._update_lock:
            self._update = settings

    def reset_to(self, now_ns: int, before_ns: int) -> None:
        """The node's clock jumped back from ``before_ns`` to ``now_ns``: pairing restarts."""
        with self._lock:
            self._pairer.reset_to(now_ns, before_ns)

    def counters(self) -> dict:
        """The pairer's counters (paired, unpaired and rejected messages by kind)."""
        with self._lock:
            return self._pairer.counters()

    def rgb_only_silence_s(self) -> float | None:
        """Seconds without depth while in the RGB-only mode; None outside it."""
        return self.depth_watch.silence_s() if self.depth_watch.lost else None

    def next_pair(self) -> Pair | None:
        """The newest pair, waiting for one (worker thread); None once closed."""
        return self.slot.get()

    def close(self) -> None:
        """Wake the worker for good: :meth:`next_pair` returns None once the slot is empty."""
        self.slot.close()

    def _apply_update(self) -> None:
        with self._update_lock:
            settings, self._update = self._update, None
        if settings is None:
            return
        runtime = settings.runtime
        with self._lock:
            self._pairer.slop_s = settings.slop_s
            self._pairer.jump_back_s = runtime.jump_back_s
            self._pairer.future_tolerance_s = runtime.future_tolerance_s
            self._pairer.max_age_s = runtime.max_age_s

    def _rejected(self, kind: str, stream: str, stamp_ns: int) -> None:
        # the pairer's callback, under self._lock
        self._on_reject(kind, stream, stamp_ns, self._pairer.rejected[kind])

    def _report_unpaired(self) -> None:
        with self._lock:
            unpaired = sum(self._pairer.unpaired.values())
            counters = self._pairer.counters()
            slop_s = self._pairer.slop_s
        if unpaired >= self._unpaired_next_report:
            while self._unpaired_next_report <= unpaired:
                self._unpaired_next_report *= 10
            self._on_unpaired(unpaired, counters, slop_s)
