"""Torch device names: the one place that checks and resolves them.

The node (``model.device``), ``evaluate``, ``certify``, ``demo``, training and the engines
all name their device the same way:

* ``'auto'``: the first CUDA device when CUDA is available, else the CPU (the default of
  the node, ``evaluate`` and ``certify``);
* ``'cpu'``, ``'cuda'`` (the current CUDA device) or ``'cuda:N'``.

:func:`check_device_name` checks the spelling only (no device is touched);
:func:`resolve_device` also checks that the device exists on this machine. Both raise
``ValueError`` whose message starts with ``device``, so a caller can prefix the name of its
setting (``model.device ...``). Importing this module does not load torch (the engine's
settings check device names without it); :func:`resolve_device` loads it.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: how the accepted names are spelled, for help texts and messages
DEVICE_NAMES = "'auto', 'cpu', 'cuda' or 'cuda:N'"
_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def check_device_name(name: object) -> str:
    """``name`` if it is spelled as a device name (see the module doc), else ``ValueError``."""
    if not isinstance(name, str) or not _PATTERN.match(name):
        raise ValueError(f'device must be {DEVICE_NAMES}, got {name!r}')
    return name


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` stands for on this machine ('auto' resolved).

    :raises ValueError: a misspelt name, or a CUDA device this machine does not have (the
        message says how many CUDA devices are visible).
    """
    import torch

    if isinstance(name, torch.device):
        return name
    if check_device_name(name) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f'device {name!r} is not available here '
                             f'({count} CUDA device(s) visible)')
    return device
