"""The package's one on-disk cache folder: the quantized int8 models
(:mod:`mmcert_ros.models.int8_cache`, under ``int8/``) and the compiled CPU kernels
(:mod:`mmcert_ros.cpu_kernels`, under ``kernels/``).

``$MMCERT_ROS_CACHE`` if set, else ``$XDG_CACHE_HOME/mmcert_ros``, else
``~/.cache/mmcert_ros``; ``MMCERT_ROS_CACHE=off`` turns caching off (int8 models are built
at every start, kernels are compiled by each process). Everything in it can be rebuilt:
``rm -r`` of the folder is always safe.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the environment variable naming the cache folder ('off' disables the cache)
CACHE_ENVIRONMENT = 'MMCERT_ROS_CACHE'


def cache_folder() -> Path | None:
    """The cache's root folder (see the module docstring), or None when it is turned off."""
    configured = os.environ.get(CACHE_ENVIRONMENT)
    if configured is not None and configured.strip().lower() == 'off':
        return None
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'mmcert_ros'
