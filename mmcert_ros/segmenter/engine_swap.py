"""The segmenter's engines across parameter changes, without ROS: swapped between frames.

:class:`EngineSwap` keeps the engines in use and those a parameter change accepted. A change
is built at once (:meth:`EngineSwap.propose`, through
:func:`~mmcert_ros.segmenter.engines.build_engines`, reusing what did not change), so a value
that cannot be used (a checkpoint or booster that does not load, an unavailable device) is
refused with the reason; accepted engines take over at the start of the next frame
(:meth:`EngineSwap.start_frame`). A change that replaces the engine configuration
(``certify.*``, ``model.checkpoint``, ``fs.*``) cancels the frame in flight.

Every frame runs under a :class:`~mmcert_ros.certify.cancel.CancelToken` with the deadline
``certify.time_budget``; :meth:`EngineSwap.close` cancels it with :data:`SHUTDOWN`. One lock
orders changes, frame starts and closing, so a change cancels exactly the frames that
started before it. Thread-safe: the parameter callback proposes, the worker starts and ends
frames, shutdown closes.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from mmcert_ros.certify.cancel import CancelToken
from mmcert_ros.segmenter.engines import Engines, build_engines
from mmcert_ros.segmenter.parameters import NodeSettings

#: why the frame in flight is cancelled at shutdown (not counted as abandoned)
SHUTDOWN = 'shutdown'
#: why it is cancelled by a change of the engine configuration
PARAMETER_CHANGE = 'parameter change'


class EngineSwap:
    """The engines in use (:attr:`engines`) and the accepted ones waiting for the next frame.

    :param settings: the start-up settings (the engines are built here).
    :param model: a base network for ``model.checkpoint: ''`` (see
        :func:`~mmcert_ros.segmenter.engines.build_engines`).
    :param warn: receives the builders' warnings (one line each).
    :raises UserError: the settings cannot be used (the reason names the parameter).
    """

    def __init__(self, settings: NodeSettings, model: torch.nn.Module | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self._model = model
        self._warn = warn
        self._lock = threading.Lock()
        #: the engines in use; changed only by the worker, at a frame start
        self.engines = build_engines(settings, model, warn=warn)
        self._pending: Engines | None = None
        self._token: CancelToken | None = None
        self._closing = False

    @property
    def latest(self) -> NodeSettings:
        """The settings of the newest accepted engines (those in use, or waiting)."""
        with self._lock:
            return (self._pending or self.engines).settings

    def propose(self, settings: NodeSettings) -> bool:
        """Build engines for ``settings`` and have them take over at the next frame.

        :returns: whether they replace the engine configuration (the frame in flight, if
            any, is then cancelled).
        :raises Exception: whatever makes the settings unusable (nothing changes then).
        """
        with self._lock:
            base = self._pending or self.engines
        engines = build_engines(settings, self._model, previous=base, warn=self._warn)
        current = base.settings
        replaced = (settings.certify != current.certify
                    or settings.checkpoint != current.checkpoint
                    or settings.l2 != current.l2)
        with self._lock:
            self._pending = engines
            if replaced and self._token is not None:
                self._token.cancel(PARAMETER_CHANGE)
        return replaced

    def start_frame(self) -> CancelToken | None:
        """Put accepted engines in use and issue the next frame's token (deadline
        ``certify.time_budget``); None once closing (the worker stops)."""
        with self._lock:
            if self._closing:
                return None
            pending, self._pending = self._pending, None
            if pending is not None:
                self.engines = pending
                self.engines.segmenter.config = self.engines.settings.certify
            self._token = CancelToken.with_budget(self.engines.settings.runtime.time_budget_s)
            return self._token

    def end_frame(self) -> None:
        """The frame of the last token is over (published, failed or abandoned)."""
        with self._lock:
            self._token = None

    def close(self) -> bool:
        """Refuse further frames and cancel the one in flight with :data:`SHUTDOWN`;
        returns whether a frame was in flight."""
        with self._lock:
            self._closing = True
            in_flight = self._token is not None
            if in_flight:
                self._token.cancel(SHUTDOWN)
            return in_flight
