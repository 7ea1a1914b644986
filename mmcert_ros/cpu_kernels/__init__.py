"""CPU kernels of the hot path, compiled with Numba: each fuses one stage's many torch
operators into one pass over the data, and gives bit for bit the result of the torch
formulation it replaces on the CPU (which stays the way on accelerators and under autograd,
and is the tests' oracle):

- :mod:`.draws`: the first k distinct draws of the exact-k sampler, ascending
  (:func:`mmcert_ros.certify.l0.sampling.draw_kept_indices`);
- :mod:`.densify`: the densified pyramid of the base network
  (:meth:`mmcert_ros.models.network.SparseRGBDNet.pyramid_inputs`);
- :mod:`.votes`: vote counting on the grid (:class:`mmcert_ros.certify.l0.votes.GridVotes`).

Kernels are compiled on first use (about 4.7 s for all of them on a 2-core Xeon) and kept by
Numba under ``kernels/`` in the package's cache folder (:mod:`mmcert_ros.cache`), so later
processes load them (well under a second); ``NUMBA_CACHE_DIR`` set by the user wins, and with
``MMCERT_ROS_CACHE=off`` Numba's own default applies (``__pycache__`` beside the sources).
``python -m mmcert_ros.cpu_kernels`` compiles them all ahead (``make setup`` does). The
folder is set on Numba's process-wide configuration when this package is imported (Numba has
no per-function cache folder), so Numba functions of other libraries decorated later in the
process cache there too. The kernels run on one thread and release the GIL. Float32
arithmetic is kept float32 and never contracted into fused multiply-adds (Numba's default,
``fastmath=False``), so every rounding is the torch formulation's.
"""
from __future__ import annotations

import os

import numba

from mmcert_ros.cache import cache_folder

if not os.environ.get('NUMBA_CACHE_DIR') and cache_folder() is not None:
    # read when a kernel module decorates its functions, i.e. on their import below this
    numba.config.CACHE_DIR = str(cache_folder() / 'kernels')
