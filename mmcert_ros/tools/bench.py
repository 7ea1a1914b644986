"""Benchmark the certification core on one 1242x375 frame pair (figures and ratios).

Reports per-stage times of certifying one frame with the shipped model, the certification
step (p-values + Holm + radius map) against Holm by sorting per-pixel p-values, and drawing
the N exact-k masks against numpy.random.choice per sample (the MMCert reference code's way).
Targets: certification < 20 ms and >= 10x; sampling < 300 ms and >= 4x.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcert_ros.errors import user_input
from mmcert_ros.tools.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--width', type=positive_int, default=1242, help='frame width (default 1242)')
    parser.add_argument('--height', type=positive_int, default=375, help='frame height (default 375)')
    parser.add_argument('--num-samples', type=positive_int, default=100, help='N (default 100)')
    parser.add_argument('--checkpoint', default='', help="model checkpoint ('' = shipped default)")
    parser.add_argument('--skip-engine', action='store_true',
                        help='skip the end-to-end engine run (no model needed)')
    parser.add_argument('--json', type=Path, metavar='FILE', help='also write the figures as JSON')


def run(args: argparse.Namespace) -> int:
    import platform

    import torch

    from mmcert_ros.benchmark.core import bench_certification, bench_engine, bench_sampling
    from mmcert_ros.certify.config import CertifyConfig

    config = CertifyConfig(num_samples=args.num_samples, seed=0)
    figures: dict[str, object] = {
        'frame': f'{args.width}x{args.height}', 'num_samples': config.num_samples,
        'batch_size': config.batch_size, 'torch_threads': torch.get_num_threads(),
        'cpu': platform.processor() or platform.machine(), 'torch': torch.__version__}
    figures['certification'] = bench_certification(config, args.height, args.width)
    figures['sampling'] = bench_sampling(config, args.height, args.width)
    if not args.skip_engine:
        from mmcert_ros.data.synthetic import SceneConfig, drive
        from mmcert_ros.models import load_model

        scene = SceneConfig().with_image_size(args.width, args.height)
        frame = next(drive(seed=0, num_frames=1, config=scene))
        model = load_model(args.checkpoint or None, 'cpu')
        figures['engine'] = bench_engine(model, frame, config)
    print(format_report(figures))
    if args.json:
        with user_input('--json'):
            args.json.write_text(json.dumps(figures, indent=2) + '\n')
        print(f'figures written to {args.json}')
    return 0


def format_report(figures: dict) -> str:
    """Human-readable table of the figures, with the targets next to them."""
    cert, sampling = figures['certification'], figures['sampling']
    lines = [
        f"mmcert-ros bench: {figures['frame']}, N = {figures['num_samples']}, "
        f"batch {figures['batch_size']}, {figures['torch_threads']} torch threads",
        '',
        f"certification (p-values + Holm + radius map, {cert['pixels']} px)",
        f"  histogram Holm        {cert['certification_s'] * 1e3:9.2f} ms   (target < 20 ms)",
        f"  sorted p-value Holm   {cert['sorted_holm_s'] * 1e3:9.2f} ms",
        f"  speed-up              {cert['certification_speedup']:9.1f} x    (target >= 10 x)",
        'exact-k masks, both modalities, N samples',
        f"  rejection sampler     {sampling['sampling_s'] * 1e3:9.2f} ms   (target < 300 ms)",
        f"  numpy.random.choice   {sampling['numpy_choice_s'] * 1e3:9.2f} ms",
        f"  speed-up              {sampling['sampling_speedup']:9.1f} x    (target >= 4 x)",
    ]
    if 'engine' in figures:
        lines.append('engine, one frame end to end (shipped model, CPU)')
        for stage, seconds in figures['engine'].items():
            lines.append(f'  {stage[:-2]:<21} {seconds * 1e3:9.1f} ms')
    return '\n'.join(lines)
