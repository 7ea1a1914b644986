"""The dense trunk and head alone (pyramid in, grid logits out) in every way this package can
run it, side by side: the training module, the inference copy (batch norm folded,
channels-last) in float32 and bfloat16, ``torch.jit.freeze`` of the copy, optionally
``torch.compile``, and the ONNX export in ONNX Runtime and OpenVINO (fp32, bf16, and int8:
post-training quantized, ``mmcert_ros.models.quantization``).

Inputs: one batch of pyramid levels for a 1242x375 frame (random, the trunk's cost does not
depend on the values). Each figure is the median of --repeats interleaved runs after two
warm-ups, in ms per batch, with the largest difference from the training module's logits.

    python bench/trunk_backends.py --threads 1 --batch 16 --repeats 5 [--compile]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import torch

from mmcert_ros.models.calibration import calibration_levels
from mmcert_ros.models import load_model
from mmcert_ros.models.backends import OnnxRuntimeNet, OpenVinoNet, _GridHead
from mmcert_ros.speed.machine import machine_line


def pyramid(batch: int, height: int, width: int) -> list[torch.Tensor]:
    rows, cols = -(-height // 8), -(-width // 8)
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(batch, 7 if level == 0 else 6, -(-rows // 2 ** level),
                       -(-cols // 2 ** level), generator=generator) for level in range(4)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--compile', action='store_true', help='also time torch.compile')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings('ignore')
    model = load_model(None, 'cpu').eval()
    levels = pyramid(args.batch, 375, 1242)
    channels_last = [level.contiguous(memory_format=torch.channels_last) for level in levels]
    folded = model.for_inference(torch.float32)
    bf16 = model.for_inference(torch.bfloat16)
    runs = {'training module': lambda: model.grid_logits_from_levels(levels),
            'folded, channels-last': lambda: folded.grid_logits_from_levels(channels_last),
            'folded, bf16 weights': lambda: bf16.grid_logits_from_levels(channels_last)}
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(_GridHead(folded).eval(), tuple(channels_last)))
        runs['jit.freeze of folded'] = lambda: frozen(*channels_last)
        if args.compile:
            start = time.perf_counter()
            compiled = torch.compile(_GridHead(folded).eval())
            compiled(*channels_last)
            print(f'torch.compile: {time.perf_counter() - start:.1f} s to compile')
            runs['torch.compile of folded'] = lambda: compiled(*channels_last)
    for name, build in (('onnxruntime fp32', lambda: OnnxRuntimeNet(model)),
                        ('openvino fp32', lambda: OpenVinoNet(model, 'fp32')),
                        ('openvino bf16', lambda: OpenVinoNet(model, 'bf16')),
                        ('openvino int8', lambda: OpenVinoNet(
                            model, 'int8', calibration=calibration_levels))):
        try:
            backend = build()
        except ValueError as error:
            print(f'{name}: skipped ({error})')
            continue
        runs[name] = lambda backend=backend: backend.grid_logits_from_levels(levels)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        reference = runs['training module']()
        error = {name: float((run().float() - reference).abs().max())
                 for name, run in runs.items()}
        for name, run in runs.items():
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times['training module'])
    print(f'trunk + head, batch {args.batch}, 1242x375, {torch.get_num_threads()} threads, '
          f'load {os.getloadavg()[0]:.1f}')
    figures = {}
    for name, values in times.items():
        median = statistics.median(values)
        figures[name] = {'ms_per_batch': median * 1e3, 'speedup': base / median,
                         'max_abs_difference': error[name]}
        print(f'  {name:<26} {median * 1e3:8.1f} ms   {base / median:5.2f} x   '
              f'max |diff| {error[name]:.2e}')
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
