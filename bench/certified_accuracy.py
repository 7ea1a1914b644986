"""Certified accuracy of a model on held-out synthetic drives.

Frames come from synthetic drives whose seeds (default 900000 + i) no training run uses
(training drives use seeds from --data-seed, validation drives data_seed + 100000 + i), at
1242x375 with dense depth. Each frame is certified by the engine with N samples, alpha,
keep 0.0193 RGB / 0.00214 depth and a fixed sampling seed (reproducible); the pooled
MMCert metrics (docs/certification.md section 7) are computed by
:class:`mmcert_ros.evaluation.accumulate.MetricsAccumulator` along the ray
r = (t, 2 t) and reported at the requested r_rgb, with the plain majority-vote metrics and,
beside every certified IoU, the certified-but-wrong fraction (certified pixels whose label
differs from the ground truth, over all certified pixels).

    python bench/certified_accuracy.py --json docs/figures/certified_n100.json
    python bench/certified_accuracy.py --num-samples 1000 --drives 3 --frames-per-drive 1

With --keep-points K (needs --depth lidar) the depth modality is the LiDAR scan as points:
the valid pixels of the simulator's LiDAR depth (one return per pixel) are certified as a
point cloud, K points kept per sample, and r_depth counts points.

With --modes PRECISION/BACKEND,... every frame is certified in each mode with the same draws
(e.g. the int8 ensemble against the fp32 one); the figures of the first mode are the
top-level ones, each mode's are under 'modes', and 'agreement' gives, per further mode, the
fraction of pixels whose label, top count and certification (at r = 0) equal the first mode's:

    python bench/certified_accuracy.py --modes fp32/torch,int8/openvino --json FILE
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.data.projection import points_from_depth_image
from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.models import DEFAULT_CHECKPOINT, load_model
from mmcert_ros.training.data import synthetic_frames
from mmcert_ros.speed.machine import machine_line

HELD_OUT_FIRST_SEED = 900_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', default='', help="checkpoint ('' = shipped default)")
    parser.add_argument('--first-seed', type=int, default=HELD_OUT_FIRST_SEED)
    parser.add_argument('--drives', type=int, default=4)
    parser.add_argument('--frames-per-drive', type=int, default=5)
    parser.add_argument('--frame-stride', type=int, default=10)
    parser.add_argument('--width', type=int, default=1242)
    parser.add_argument('--height', type=int, default=375)
    parser.add_argument('--depth', choices=('dense', 'lidar'), default='dense')
    parser.add_argument('--keep-points', type=int,
                        help='certify the LiDAR depth as points, this many kept per sample')
    parser.add_argument('--num-samples', type=int, default=100)
    parser.add_argument('--alpha', type=float, default=0.001)
    parser.add_argument('--radii', type=int, nargs='+', default=[0, 5, 10, 15],
                        help='r_rgb values to report (r_depth = 2 r_rgb)')
    parser.add_argument('--seed', type=int, default=0, help='sampling seed')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--modes', type=mode_list, default=[('fp32', 'torch')],
                        help='PRECISION/BACKEND pairs, comma-separated (default fp32/torch)')
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load

    if args.keep_points is not None and args.depth != 'lidar':
        parser.error('--keep-points needs --depth lidar')
    checkpoint = args.checkpoint or str(DEFAULT_CHECKPOINT)
    config = CertifyConfig(num_samples=args.num_samples, alpha=args.alpha, ray=(1, 2),
                           seed=args.seed, device=args.device,
                           keep_points=args.keep_points or CertifyConfig.keep_points)
    model = load_model(checkpoint, args.device)
    names = [f'{precision}/{backend}' for precision, backend in args.modes]
    segmenters = {name: CertifiedSegmenter(model, config.replace(
        precision=precision, backend=backend)) for name, (precision, backend)
        in zip(names, args.modes)}
    accumulators = {name: MetricsAccumulator() for name in names}
    agreement = {name: {'labels': [], 'top_counts': [], 'certified': []} for name in names[1:]}
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.drives):
        frames, _ = synthetic_frames(seed, args.frames_per_drive, args.width, args.height,
                                     depth=args.depth, frame_stride=args.frame_stride)
        for frame in frames:
            depth = frame.depth if args.keep_points is None else points_from_depth_image(
                frame.depth, frame.name)
            certificates = {}
            for name, segmenter in segmenters.items():
                certificates[name] = segmenter.certify(frame.rgb, depth)
                row = accumulators[name].add(frame, certificates[name])
                print(f"{frame.name} {name}: certified IoU at r=0 {row['certified_iou']:.4f}, "
                      f"certified but wrong {row['certified_wrong_fraction']:.2%}, "
                      f"plain IoU {row['plain_iou']:.4f}, {row['total_s']:.1f} s", flush=True)
            first = certificates[names[0]]
            for name in names[1:]:
                for key in agreement[name]:
                    agreement[name][key].append(float(np.mean(
                        getattr(certificates[name], key) == getattr(first, key))))
    per_mode = {name: _figures(accumulator.summary(), args.radii)
                for name, accumulator in accumulators.items()}
    figures = {
        'checkpoint': checkpoint, 'frames': accumulators[names[0]].summary()['frames'],
        'drive_seeds': [args.first_seed, args.first_seed + args.drives - 1],
        'frame_stride': args.frame_stride, 'size': f'{args.width}x{args.height}',
        'depth': args.depth, 'num_samples': args.num_samples, 'alpha': args.alpha,
        'keep_fraction': [config.keep_fraction_rgb, config.keep_fraction_depth],
        'keep_points': args.keep_points,
        'sampling_seed': args.seed, **per_mode[names[0]],
        'wall_s': time.perf_counter() - started,
    }
    if len(names) > 1:
        figures['modes'] = per_mode
        figures['agreement'] = {name: {key: float(np.mean(values)) for key, values in
                                       fractions.items()} for name, fractions in agreement.items()}
    for name in names:
        _print_mode(name, per_mode[name], args.radii, figures['frames'], args.num_samples)
    for name, fractions in figures.get('agreement', {}).items():
        print(f"{name} against {names[0]}, mean fraction of pixels per frame with the same "
              f"label {fractions['labels']:.5f}, top count {fractions['top_counts']:.5f}, "
              f"certification at r = 0 {fractions['certified']:.5f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


def mode_list(text: str) -> list[tuple[str, str]]:
    """``--modes``: comma-separated PRECISION/BACKEND pairs, each a valid CertifyConfig."""
    modes = []
    for item in text.split(','):
        precision, _, backend = item.partition('/')
        try:
            CertifyConfig(precision=precision, backend=backend or 'torch')
        except ValueError as error:
            raise argparse.ArgumentTypeError(f'{item!r}: {error}') from None
        modes.append((precision, backend or 'torch'))
    return modes


def _figures(summary: dict, radii: list[int]) -> dict:
    """The plain metrics, the certified ones at ``radii``, the collapse and the latency."""
    curve = {point['r_rgb']: point for point in summary['curve']}
    return {'plain': summary['plain'],
            'certified': {str(r): _point(curve.get(r)) for r in radii},
            'first_r_rgb_with_nothing_certified': next(
                (p['r_rgb'] for p in summary['curve'] if p['certified_fraction'] == 0.0), None),
            'latency_s': summary['latency_s']['total']}


def _print_mode(name: str, figures: dict, radii: list[int], frames: int,
                num_samples: int) -> None:
    plain = figures['plain']
    print(f"\n{name}: plain (majority vote): IoU {plain['iou']:.4f}, F1 {plain['f1']:.4f}, "
          f"pixel accuracy {plain['pixel_accuracy']:.4f}")
    print(f"{'r_rgb':>5} {'r_depth':>7} {'cert. acc':>9} {'cert. F1':>8} {'cert. IoU':>9} "
          f"{'certified':>9} {'cert. wrong':>11}")
    for r in radii:
        point = figures['certified'][str(r)]
        print(f"{r:>5} {2 * r:>7} {point['pixel_accuracy']:>9.4f} {point['f1']:>8.4f} "
              f"{point['iou']:>9.4f} {point['certified_fraction']:>9.4f} "
              f"{point['wrong_fraction']:>11.4f}")
    print(f"nothing certified from r_rgb = {figures['first_r_rgb_with_nothing_certified']}; "
          f"{frames} frames, N = {num_samples}, median {figures['latency_s']['p50']:.1f} s "
          'per frame')


def _point(point: dict | None) -> dict:
    """A curve point, or all zeros where the curve already ended (nothing certified)."""
    if point is None:
        return {'pixel_accuracy': 0.0, 'f1': 0.0, 'iou': 0.0, 'recall': 0.0,
                'wrong_fraction': 0.0, 'certified_fraction': 0.0}
    return {key: point[key] for key in ('pixel_accuracy', 'f1', 'iou', 'recall',
                                        'wrong_fraction', 'certified_fraction')}


if __name__ == '__main__':
    raise SystemExit(main())
