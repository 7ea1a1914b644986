"""The one factory from validated settings to the certification engines of a frame pipeline.

:func:`build_engines` turns :class:`~mmcert_ros.segmenter.parameters.NodeSettings` (from
:func:`mmcert_ros.segmenter.settings.load_settings` for the offline tools, from the node's
parameters for the node) into :class:`Engines`: the base model loaded on the resolved device,
the l0 :class:`~mmcert_ros.certify.CertifiedSegmenter`, the ``fs.booster`` loaded and checked
to fit the model, and the :class:`~mmcert_ros.certify.l2.L2Certifier` (None while
``fs.sigma`` is 0). The node (start-up and every accepted parameter change),
``mmcert-ros evaluate``, ``certify`` and ``bench`` all build their engines here, so one
parameter file gives the same engines everywhere. Nothing here imports the ROS client library.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from mmcert_ros.certify import CancelToken, CertifiedSegmenter
from mmcert_ros.certify.l2.certifier import FrameCertification, L2Certifier
from mmcert_ros.data.frame import Frame
from mmcert_ros.device import resolve_device
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.parameters import NodeSettings


@dataclass(frozen=True)
class Engines:
    """The engines of one set of settings; certify a frame with :meth:`start`.

    :ivar settings: the settings they were built from.
    :ivar model: the base network, in eval mode on the device (shared by both engines).
    :ivar segmenter: the l0 engine (its ``config`` is ``settings.certify``).
    :ivar booster: the ``fs.booster`` on the device, checked to fit ``model``; None when
        ``fs.booster`` is ''. Loaded even while ``fs.sigma`` is 0, so that a bad file is
        refused when it is named.
    :ivar l2: the l2 certifier, None while ``fs.sigma`` is 0.
    """

    settings: NodeSettings
    model: torch.nn.Module
    segmenter: CertifiedSegmenter
    booster: torch.nn.Module | None
    l2: L2Certifier | None

    @property
    def device(self) -> torch.device:
        return self.segmenter.device

    def start(self, frame: Frame, cancel: CancelToken | None = None) -> FrameCertification:
        """One frame through both engines: ``run.l0()`` then ``run.l2()``
        (:class:`~mmcert_ros.certify.l2.FrameCertification`)."""
        return FrameCertification(self.segmenter, self.l2, frame, cancel)


def build_engines(settings: NodeSettings, model: torch.nn.Module | None = None,
                  previous: Engines | None = None,
                  warn: Callable[[str], None] | None = None) -> Engines:
    """The engines for ``settings``.

    :param model: a base network to use while ``model.checkpoint`` is '' (embedding, tests);
        it is deep-copied, so the caller's module never moves device. None loads the shipped
        default checkpoint for ''.
    :param previous: engines built before (the node's current ones): their model, l0 engine
        (with its prepared inference copy) and booster are reused when checkpoint, device and
        booster path are unchanged, so a change of e.g. ``certify.num_samples`` reloads
        nothing. A reused l0 engine keeps its config until the caller assigns
        ``engines.segmenter.config = settings.certify`` (the node does at the next frame).
    :param warn: where a new l0 engine reports certifying at other keep fractions than the
        model was trained for (default: Python logging; the node passes its logger).
    :raises UserError: the checkpoint or booster is missing, corrupt or incompatible, or the
        booster does not fit the model (the message names the parameter or file).
    """
    device = resolve_device(settings.certify.device)
    same_model = (previous is not None and previous.device == device
                  and previous.settings.checkpoint == settings.checkpoint)
    if same_model:
        network, segmenter = previous.model, previous.segmenter
    else:
        network = _load_model(settings, model, device)
        segmenter = CertifiedSegmenter(network, settings.certify, warn=warn)
    if same_model and previous.settings.l2.booster == settings.l2.booster:
        booster = previous.booster
    else:
        booster = _load_booster(settings, network, device)
    l2 = None
    if settings.l2.enabled:
        with _named('fs.joint' if settings.l2.joint else 'fs.sigma'):
            l2 = L2Certifier(network, settings.l2, settings.certify, booster)
    return Engines(settings=settings, model=network, segmenter=segmenter, booster=booster,
                   l2=l2)


def voting_config(settings: NodeSettings):
    """The engine configuration the l0 votes come from: ``settings.certify``, or with
    ``fs.joint`` the l2 engine's (its N and fp32 passes; docs/feature_smoothing.md)."""
    if settings.l2.enabled and settings.l2.joint:
        return settings.l2.engine_config(settings.certify)
    return settings.certify


def _load_model(settings: NodeSettings, model: torch.nn.Module | None,
                device: torch.device) -> torch.nn.Module:
    """``model.checkpoint``, else ``model``, else the shipped model of the depth source
    (``points.pt`` for ``depth.source: points``)."""
    if not settings.checkpoint and model is not None:
        return copy.deepcopy(model).to(device).eval()
    from mmcert_ros.models import POINTS_CHECKPOINT, load_model
    shipped = POINTS_CHECKPOINT if settings.depth.source == 'points' else None
    return load_model(settings.checkpoint or shipped, device)


def _load_booster(settings: NodeSettings, model: torch.nn.Module,
                  device: torch.device) -> torch.nn.Module | None:
    """The ``fs.booster`` checkpoint on ``device``, checked to fit ``model``; None for ''."""
    path = settings.l2.booster
    if not path:
        return None
    from mmcert_ros.models.booster import BoostedModel, load_booster
    booster = load_booster(path, device)[0]
    with _named(f'fs.booster {path}'):
        BoostedModel(model, booster)
    return booster


@contextmanager
def _named(what: str) -> Iterator[None]:
    """Re-raise a ``ValueError`` of the block as a :class:`UserError` prefixed with ``what``
    (a parameter and, for a file, its path)."""
    try:
        yield
    except UserError:
        raise
    except ValueError as error:
        raise UserError(f'{what}: {error}') from error
