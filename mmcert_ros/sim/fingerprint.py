"""The simulator's source fingerprint: what makes synthetic frames of one version of the
simulator distinguishable from another's (frame caches, the int8 model cache)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def simulator_fingerprint() -> str:
    """A hash of the simulator's source files (``mmcert_ros/sim/*.py`` and the frame and
    depth modules of ``mmcert_ros/data``): frames cached by another version of the simulator
    are rendered afresh, never reused."""
    import mmcert_ros.data
    import mmcert_ros.sim

    digest = hashlib.sha256()
    data = Path(mmcert_ros.data.__file__).parent
    sources = [*Path(mmcert_ros.sim.__file__).parent.glob('*.py'), data / 'frame.py',
               data / 'depth.py']
    for path in sorted(sources):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
