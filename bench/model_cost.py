"""Cost of the base network: parameters, GFLOPs and forward time per sample.

Inputs are sub-sampled exactly as certification does it (keep 0.0193 RGB / 0.00214 depth of
a 1242x375 frame), the model is the shipped default (or --checkpoint), in eval mode under
``torch.inference_mode``. The time excludes sub-sampling (the engine's 'sampling' stage);
each figure is the median (and the best) of --repeats timed runs after one warm-up;
the load average at the start is printed, since other processes on a shared machine
distort the figures.

    python bench/model_cost.py                 # default: batch 1 and 16, 1242x375
    python bench/model_cost.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmcert_ros.certify.config import KEEP_FRACTION_DEPTH, KEEP_FRACTION_RGB
from mmcert_ros.certify.l0.sampling import kept_count, make_generator, subsample
from mmcert_ros.models import DEFAULT_CHECKPOINT, load_model
from mmcert_ros.speed.machine import machine_line, machine_record


def sampled_inputs(batch: int, height: int, width: int, keep_rgb: float, keep_depth: float):
    generator = make_generator(0, 'cpu')
    rgb = torch.rand(1, 3, height, width, generator=generator).expand(batch, -1, -1, -1)
    depth = 2 + 60 * torch.rand(1, 1, height, width, generator=generator)
    depth = depth.expand(batch, -1, -1, -1)
    n = height * width
    return subsample(rgb, depth, kept_count(keep_rgb, n), kept_count(keep_depth, n),
                     generator).as_args()


def forward_ms_per_sample(model, inputs, repeats: int) -> dict[str, float]:
    """Median and best of ``repeats`` timed forwards, milliseconds per sample."""
    batch = inputs[0].shape[0]
    with torch.inference_mode():
        model(*inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            times.append((time.perf_counter() - start) / batch * 1e3)
    return {'median': statistics.median(times), 'min': min(times)}


def gflops_per_sample(model, inputs) -> float:
    """Multiply-adds counted as 2 FLOPs (torch's FlopCounterMode: convolutions, matmuls)."""
    counter = FlopCounterMode(display=False)
    # no_grad, not inference_mode: the antipodal head's parametrization fails to read its
    # prototypes under FlopCounterMode in inference mode
    with torch.no_grad(), counter:
        model(*inputs)
    return counter.get_total_flops() / inputs[0].shape[0] / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='', help="checkpoint ('' = shipped default)")
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 16])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch decides)')
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    if args.threads:
        torch.set_num_threads(args.threads)

    checkpoint = Path(args.checkpoint or DEFAULT_CHECKPOINT)
    model = load_model(checkpoint)
    figures = {
        'checkpoint': str(checkpoint), 'file_mb': checkpoint.stat().st_size / 2**20,
        'parameters': sum(p.numel() for p in model.parameters()),
        'frame': f'{args.width}x{args.height}', 'torch': torch.__version__,
        'threads': torch.get_num_threads(), 'machine': machine_record(),
        'load_average_1min': os.getloadavg()[0],
        'gflops_per_sample': gflops_per_sample(
            model, sampled_inputs(1, args.height, args.width, KEEP_FRACTION_RGB,
                                  KEEP_FRACTION_DEPTH)),
        'forward_ms_per_sample': {},
    }
    for batch in args.batches:
        inputs = sampled_inputs(batch, args.height, args.width, KEEP_FRACTION_RGB,
                                KEEP_FRACTION_DEPTH)
        figures['forward_ms_per_sample'][f'batch_{batch}'] = forward_ms_per_sample(
            model, inputs, args.repeats)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
