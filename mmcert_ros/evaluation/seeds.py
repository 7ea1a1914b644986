"""Per-frame sub-sampling seeds of an evaluation: a function of the frame, not of the run order.

With a fixed seed ``s``, frame ``f`` of input ``i`` is certified with the seed
:func:`frame_seed` ``(s, i, f.stamp_ns)``: the first 63 bits of SHA-256 of
``"s/i/stamp_ns"``. So a frame gets the same sub-samples whether its input is evaluated in
one process, split into time chunks or spread over a cluster, and frames of different
inputs or stamps draw different masks. Without a seed (``None``) every frame draws fresh OS
entropy, as the node does.
"""
from __future__ import annotations

import hashlib


def frame_seed(seed: int | None, input_id: str, stamp_ns: int) -> int | None:
    """The seed of the frame stamped ``stamp_ns`` (ns) of input ``input_id``; None stays None.

    :returns: an integer in ``[0, 2^63)``, or None (fresh entropy per frame).
    """
    if seed is None:
        return None
    digest = hashlib.sha256(f'{int(seed)}/{input_id}/{int(stamp_ns)}'.encode()).digest()
    return int.from_bytes(digest[:8], 'little') >> 1
