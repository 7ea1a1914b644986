"""On-disk cache of the quantized int8 dense part (``precision: int8``, OpenVINO).

Quantizing costs a node about 4.5 s at every start (the ONNX export of the dense part and
NNCF's calibration, :mod:`mmcert_ros.models.quantization`), against about 0.5 s to compile
the result. The int8 model is a pure function of its inputs, so it is kept on disk and read
back at the next start instead of being built again.

**When an entry is used (the staleness rule).** An entry is named by the SHA-256 of
everything the quantized model is a function of (:func:`int8_cache_key`):

- the network: its ``NetworkConfig`` and every tensor of its state dict (name, dtype, shape,
  bytes), so another checkpoint, or the same one retrained, never meets a stale entry;
- the code that exports, calibrates and quantizes it: every source file of
  ``mmcert_ros/models`` and ``mmcert_ros/certify`` and the simulator's fingerprint (the
  calibration frames are synthetic), so any edit there invalidates every entry; likewise
  ``mmcert_ros/cpu_kernels`` (the densification that makes the calibration inputs);
- the versions of torch, onnx, openvino and nncf, and this module's format number.

An entry also records the SHA-256 of its two files; one that is incomplete, altered or
unreadable is ignored with a warning and rebuilt (written again), never used.

**Where.** Under ``int8/<key>/`` in the package's cache folder (:mod:`mmcert_ros.cache`:
``$MMCERT_ROS_CACHE`` if set, else ``$XDG_CACHE_HOME/mmcert_ros``, else
``~/.cache/mmcert_ros``). ``MMCERT_ROS_CACHE=off``
turns the cache off (every start quantizes). A folder that cannot be written costs only the
time: the model is built, used and not kept, with one warning. Entries are written to a
temporary folder and renamed, so a start that is killed half-way leaves no partial entry,
and two nodes starting at once both end with a valid one. Nothing removes old entries; each
is about 0.6 MB for the shipped model (``rm -r`` of the folder is always safe).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from mmcert_ros.cache import cache_folder

#: the layout and key recipe of entries; a change of either raises it
CACHE_FORMAT = 1
#: the libraries whose versions enter the key
KEYED_PACKAGES = ('torch', 'onnx', 'openvino', 'nncf')
_MODEL_FILES = ('model.xml', 'model.bin')
_LOG = logging.getLogger(__name__)


def int8_cache_key(network: nn.Module) -> str:
    """The hex SHA-256 that names the int8 model of ``network`` (a ``SparseRGBDNet``): equal
    keys mean an identical quantized model (see the module docstring for what enters)."""
    import mmcert_ros.certify
    import mmcert_ros.cpu_kernels
    import mmcert_ros.models
    from mmcert_ros.sim.fingerprint import simulator_fingerprint

    digest = hashlib.sha256(f'mmcert_ros int8 cache {CACHE_FORMAT}\n'.encode())
    digest.update(json.dumps(network.config.as_dict(), sort_keys=True).encode())
    for name, tensor in sorted(network.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'\n{name} {tensor.dtype} {tuple(tensor.shape)}\n'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    for package in (mmcert_ros.models, mmcert_ros.certify, mmcert_ros.cpu_kernels):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob('*.py')):
            digest.update(f'\n{path.relative_to(root)}\n'.encode())
            digest.update(path.read_bytes())
    digest.update(f'\nsimulator {simulator_fingerprint()}\n'.encode())
    for package in KEYED_PACKAGES:
        digest.update(f'{package} {_version(package)}\n'.encode())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return 'absent'


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_int8_model(core, network: nn.Module, quantize: Callable[[], object]
                      ) -> tuple[object, bool]:
    """The OpenVINO int8 model of ``network``: read from the cache when it holds a usable
    entry for :func:`int8_cache_key`, else ``quantize()`` and stored there (when the cache is
    on and writable). Returns the model and whether it came from the cache."""
    root = cache_folder()
    if root is None:
        return quantize(), False
    key = int8_cache_key(network)
    entry = root / 'int8' / key
    cached = _read(core, entry)
    if cached is not None:
        return cached, True
    model = quantize()
    _write(model, entry, {'network': network.config.as_dict()})
    return model, False


def _read(core, entry: Path):
    """The model of ``entry``, or None (no entry, or one that fails its check: then a warning
    names the problem and the caller rebuilds)."""
    if not entry.exists():
        return None
    try:
        record = json.loads((entry / 'entry.json').read_text())
        for name in _MODEL_FILES:
            if _sha256(entry / name) != record['files'][name]:
                raise ValueError(f'{name} does not match its recorded SHA-256')
        return core.read_model(str(entry / 'model.xml'), str(entry / 'model.bin'))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        _LOG.warning('int8 model cache entry %s is unusable (%s); quantizing again', entry,
                     error)
        return None


def _write(model, entry: Path, description: dict) -> None:
    """Store ``model`` as ``entry`` (with ``description``, plain data, in its record); a cache
    that cannot be written gets one warning and the caller goes on with the model it has."""
    import openvino

    key = entry.name
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'.{key[:16]}-', dir=entry.parent))
        staging.chmod(0o755)  # readable like any other cache folder (mkdtemp makes 0700)
        try:
            openvino.save_model(model, str(staging / 'model.xml'), compress_to_fp16=False)
            record = {'format': CACHE_FORMAT, 'key': key, **description,
                      'packages': {name: _version(name) for name in KEYED_PACKAGES},
                      'files': {name: _sha256(staging / name) for name in _MODEL_FILES}}
            (staging / 'entry.json').write_text(json.dumps(record, indent=1, sort_keys=True))
            try:
                staging.rename(entry)
            except OSError:  # an entry is there: unusable, or just written by another start
                if not entry.exists():
                    raise
                aside = Path(tempfile.mkdtemp(prefix=f'.{key[:16]}-old-', dir=entry.parent))
                entry.rename(aside / 'entry')
                staging.rename(entry)
                shutil.rmtree(aside, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except (OSError, RuntimeError) as error:
        _LOG.warning('int8 model cache %s cannot be written (%s); the model is used but not '
                     'kept', entry.parent.parent, error)
