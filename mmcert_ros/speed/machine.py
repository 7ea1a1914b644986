"""The machine a figure ran on: CPU model, ISA class, flags, load; and the ISA cap that
emulates a narrower x86 CPU on a wider one (``mmcert-ros bench --isa-cap avx2``).

Every benchmark (``mmcert-ros bench``, ``bench/*.py``) names the machine through
:func:`machine_record` / :func:`machine_line`, so the figures in docs/performance.md all say
which CPU, which ISA and which load they were measured under.

The cap is the libraries' own: ``ONEDNN_MAX_CPU_ISA`` (oneDNN, inside PyTorch and inside
OpenVINO's CPU plugin) and ``ATEN_CPU_CAPABILITY`` (PyTorch's ATen kernels). Both are read
once, when the libraries load, so a capped run is a fresh process with them in its
environment (:func:`capped_environment`); :func:`cap_evidence` then reports what the
libraries say they run, which :func:`cap_problems` checks against the cap.
"""
from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

#: ``--isa-cap`` value -> (environment that caps the libraries, oneDNN's ISA word, ATen's)
ISA_CAPS = {'avx2': ({'ONEDNN_MAX_CPU_ISA': 'AVX2', 'ATEN_CPU_CAPABILITY': 'avx2'},
                     'AVX2', 'AVX2')}


def cpu_features() -> list[str]:
    """The CPU flags that decide the reduced-precision speed (Linux; [] elsewhere)."""
    try:
        flags = Path('/proc/cpuinfo').read_text().split('flags', 2)[1].split('\n', 1)[0].split()
    except (OSError, IndexError):
        return []
    return sorted(flag for flag in flags if flag.startswith(
        ('amx', 'avx512_bf16', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx2', 'avx512_fp16')))


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (Linux), else the platform's word."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_class(features: list[str]) -> str:
    """The widest matrix/vector level of ``features``: 'AMX', 'AVX-512 VNNI', 'AVX-512',
    'AVX2 VNNI', 'AVX2' or 'pre-AVX2': the class every figure in docs/performance.md names."""
    present = set(features)
    if any(flag.startswith('amx') for flag in present):
        return 'AMX'
    if 'avx512f' in present:
        return 'AVX-512 VNNI' if 'avx512_vnni' in present else 'AVX-512'
    if 'avx2' in present:
        return 'AVX2 VNNI' if 'avx_vnni' in present else 'AVX2'
    return 'pre-AVX2'


def active_cap(environ: dict | None = None) -> str | None:
    """The ``ISA_CAPS`` key whose whole environment ``environ`` (default ``os.environ``)
    holds, else None."""
    environ = os.environ if environ is None else environ
    for name, (variables, _, _) in ISA_CAPS.items():
        if all(environ.get(key) == value for key, value in variables.items()):
            return name
    return None


def capped_environment(cap: str, environ: dict | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) with the variables of ``cap`` set."""
    return {**(os.environ if environ is None else environ), **ISA_CAPS[cap][0]}


def effective_isa(features: list[str], cap: str | None) -> str:
    """The ISA class a figure ran under: :func:`isa_class` of ``features``, or under a cap
    e.g. 'AVX2 (capped on AVX-512 VNNI)'."""
    native = isa_class(features)
    return native if cap is None else f'{ISA_CAPS[cap][1]} (capped on {native})'


def machine_record(cap: str | None = None) -> dict:
    """CPU model, ISA (:func:`effective_isa`), flags, cores and the 1-, 5- and 15-minute load
    averages now, for a figure's JSON."""
    features = cpu_features()
    record = {'cpu': cpu_model(), 'isa': effective_isa(features, cap),
              'cpu_features': features, 'cores': os.cpu_count(),
              'load_average': list(os.getloadavg())}
    if cap is not None:
        record['isa_cap'] = cap
    return record


def machine_line(record: dict | None = None) -> str:
    """One line naming the machine of ``record`` (default :func:`machine_record` now)."""
    record = record or machine_record(active_cap())
    load = record['load_average']
    return (f"machine: {record['cpu']} ({record['isa']}; {' '.join(record['cpu_features'])}), "
            f"{record['cores']} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _captured_stdout(action) -> str:
    """What ``action()`` writes to file descriptor 1 (C libraries' verbose output)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode='w+') as sink:
        os.dup2(sink.fileno(), 1)
        try:
            action()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        return sink.read()


def torch_onednn_isa() -> str:
    """The ISA oneDNN inside PyTorch reports for a channels-last convolution (its verbose
    'isa:' line), '' where it reports none."""
    import torch

    def convolve():
        image = torch.ones(2, 32, 32, 32).contiguous(memory_format=torch.channels_last)
        weight = torch.ones(32, 32, 3, 3).contiguous(memory_format=torch.channels_last)
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            torch.nn.functional.conv2d(image, weight)

    for line in _captured_stdout(convolve).splitlines():
        if ',isa:' in line:
            return line.split(',isa:', 1)[1].strip()
    return ''


def openvino_kernels() -> list[str]:
    """The kernels (``primitiveType``, e.g. 'brgconv_avx2_f32') OpenVINO's CPU plugin picks
    for a small float32 convolution; [] without OpenVINO."""
    try:
        import numpy as np
        import openvino
        import openvino.opset13 as ops
    except ImportError:
        return []
    image = ops.parameter([1, 16, 32, 32], np.float32)
    weight = ops.constant(np.ones((16, 16, 3, 3), np.float32))
    model = openvino.Model([ops.convolution(image, weight, [1, 1], [1, 1], [1, 1], [1, 1])],
                           [image])
    compiled = openvino.Core().compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    kernels = set()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if 'layerType' in info and info['layerType'].astype(str) == 'Convolution':
            kernels.add(info['primitiveType'].astype(str))
    return sorted(kernels)


def cap_evidence() -> dict:
    """What the loaded libraries say they run: ATen's CPU capability, oneDNN's ISA inside
    PyTorch, OpenVINO's convolution kernels, and the cap variables in the environment."""
    import torch

    variables = sorted({key for variables, _, _ in ISA_CAPS.values() for key in variables})
    return {'aten_cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'torch_onednn_isa': torch_onednn_isa(), 'openvino_convolution': openvino_kernels(),
            'environment': {key: os.environ[key] for key in variables if key in os.environ}}


def cap_problems(cap: str, evidence: dict) -> list[str]:
    """Where ``evidence`` (:func:`cap_evidence`) shows a library running above ``cap``."""
    _, onednn_word, aten_word = ISA_CAPS[cap]
    problems = []
    if evidence['aten_cpu_capability'] != aten_word:
        problems.append(f"ATen runs {evidence['aten_cpu_capability']}, not {aten_word}")
    isa = evidence['torch_onednn_isa']
    if isa != f'Intel {onednn_word}':
        problems.append(f"oneDNN in PyTorch reports {isa or 'no ISA'!r}")
    wide = [kernel for kernel in evidence['openvino_convolution'] if 'avx512' in kernel
            or 'amx' in kernel]
    if wide:
        problems.append(f"OpenVINO convolutions run {', '.join(wide)}")
    return problems
