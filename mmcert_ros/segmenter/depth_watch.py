"""When the segmenter runs without depth: the RGB-only (degraded) mode and its transitions.

:class:`DepthWatch` keeps the arrival time of the newest depth message (image or cloud) on a
monotonic clock. Depth is *lost* once nothing has arrived for ``timeout_s`` seconds (the
watch's creation counts as an arrival, so a depth sensor that never starts is lost
``timeout_s`` after start-up) and *back* at the next arrival. While it is lost the node
certifies RGB alone (``docs/ros.md``, "RGB-only mode"). ``timeout_s`` = 0 turns the mode off:
depth is never lost and RGB always waits for its depth partner.

Thread-safe: the input callbacks, the timer and diagnostics all call it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: the mode names published on ``mmcert/status`` and in ``/diagnostics``
RGBD, RGB_ONLY = 'rgb-d', 'degraded: rgb-only'


class DepthWatch:
    """The depth input's silence and the mode it implies.

    :param timeout_s: seconds of silence after which depth is lost; 0 = never.
    :param clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_arrival = clock()
        self._lost = False
        self.timeout_s = timeout_s

    @property
    def timeout_s(self) -> float:
        """Seconds of silence before the RGB-only mode (0 = never); may be changed."""
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f'timeout_s must be >= 0 seconds, got {value}')
        self._timeout_s = float(value)

    def arrived(self) -> bool:
        """A depth message arrived; True when that ends a period of lost depth."""
        with self._lock:
            self._last_arrival = self._clock()
            was_lost, self._lost = self._lost, False
            return was_lost

    def check(self) -> bool:
        """Update the mode from the clock; True when depth has just been found lost (the
        caller reports it once)."""
        with self._lock:
            if self._lost or not self._timeout_s:
                return False
            self._lost = self._clock() - self._last_arrival >= self._timeout_s
            return self._lost

    @property
    def lost(self) -> bool:
        """Whether the node is in the RGB-only mode (as of the last :meth:`check`)."""
        return self._lost

    def silence_s(self) -> float:
        """Seconds since the newest depth message arrived (or since the watch started)."""
        with self._lock:
            return self._clock() - self._last_arrival

    @property
    def mode(self) -> str:
        """:data:`RGBD` or :data:`RGB_ONLY`."""
        return RGB_ONLY if self._lost else RGBD
