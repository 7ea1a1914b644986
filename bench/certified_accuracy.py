"""Certified accuracy of a model on held-out synthetic drives.

Frames come from synthetic drives whose seeds (default 900000 + i) no training run uses
(training drives use seeds from --data-seed, validation drives data_seed + 100000 + i), at
1242x375 with dense depth. Each frame is certified by the engine with N samples, alpha,
keep 0.0193 RGB / 0.00214 depth and a fixed sampling seed (reproducible); the pooled
MMCert metrics (docs/certification.md section 7) are computed by
:class:`mmcert_ros.evaluation.accumulate.MetricsAccumulator` along the ray
r = (t, 2 t) and reported at the requested r_rgb, with the plain majority-vote metrics.

    python bench/certified_accuracy.py --json docs/figures/certified_n100.json
    python bench/certified_accuracy.py --num-samples 1000 --drives 3 --frames-per-drive 1

With --keep-points K (needs --depth lidar) the depth modality is the LiDAR scan as points:
the valid pixels of the simulator's LiDAR depth (one return per pixel) are certified as a
point cloud, K points kept per sample, and r_depth counts points.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
from mmcert_ros.data.projection import points_from_depth_image
from mmcert_ros.evaluation.accumulate import MetricsAccumulator
from mmcert_ros.models import DEFAULT_CHECKPOINT, load_model
from mmcert_ros.training.data import synthetic_frames

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
    parser.add_argument('--json', type=Path, help='also write the figures here')
    args = parser.parse_args()

    if args.keep_points is not None and args.depth != 'lidar':
        parser.error('--keep-points needs --depth lidar')
    checkpoint = args.checkpoint or str(DEFAULT_CHECKPOINT)
    config = CertifyConfig(num_samples=args.num_samples, alpha=args.alpha, ray=(1, 2),
                           seed=args.seed, device=args.device,
                           keep_points=args.keep_points or CertifyConfig.keep_points)
    segmenter = CertifiedSegmenter(load_model(checkpoint, args.device), config)
    accumulator = MetricsAccumulator()
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.drives):
        frames, _ = synthetic_frames(seed, args.frames_per_drive, args.width, args.height,
                                     depth=args.depth, frame_stride=args.frame_stride)
        for frame in frames:
            depth = frame.depth if args.keep_points is None else points_from_depth_image(
                frame.depth, frame.name)
            row = accumulator.add(frame, segmenter.certify(frame.rgb, depth))
            print(f"{frame.name}: certified IoU at r=0 {row['certified_iou']:.4f}, "
                  f"plain IoU {row['plain_iou']:.4f}, {row['total_s']:.1f} s", flush=True)
    summary = accumulator.summary()
    curve = {point['r_rgb']: point for point in summary['curve']}
    collapse = next((p['r_rgb'] for p in summary['curve'] if p['certified_fraction'] == 0.0), None)
    figures = {
        'checkpoint': checkpoint, 'frames': summary['frames'],
        'drive_seeds': [args.first_seed, args.first_seed + args.drives - 1],
        'frame_stride': args.frame_stride, 'size': f'{args.width}x{args.height}',
        'depth': args.depth, 'num_samples': args.num_samples, 'alpha': args.alpha,
        'keep_fraction': [config.keep_fraction_rgb, config.keep_fraction_depth],
        'keep_points': args.keep_points,
        'sampling_seed': args.seed, 'plain': summary['plain'],
        'certified': {str(r): _point(curve.get(r)) for r in args.radii},
        'first_r_rgb_with_nothing_certified': collapse,
        'latency_s': summary['latency_s']['total'], 'wall_s': time.perf_counter() - started,
    }
    plain = figures['plain']
    print(f"\nplain (majority vote): IoU {plain['iou']:.4f}, F1 {plain['f1']:.4f}, "
          f"pixel accuracy {plain['pixel_accuracy']:.4f}")
    print(f"{'r_rgb':>5} {'r_depth':>7} {'cert. acc':>9} {'cert. F1':>8} {'cert. IoU':>9} "
          f"{'certified':>9}")
    for r in args.radii:
        point = figures['certified'][str(r)]
        print(f"{r:>5} {2 * r:>7} {point['pixel_accuracy']:>9.4f} {point['f1']:>8.4f} "
              f"{point['iou']:>9.4f} {point['certified_fraction']:>9.4f}")
    print(f'nothing certified from r_rgb = {collapse}; {figures["frames"]} frames, N = '
          f'{args.num_samples}, median {figures["latency_s"]["p50"]:.1f} s per frame')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    return 0


def _point(point: dict | None) -> dict:
    """A curve point, or all zeros where the curve already ended (nothing certified)."""
    if point is None:
        return {'pixel_accuracy': 0.0, 'f1': 0.0, 'iou': 0.0, 'recall': 0.0,
                'certified_fraction': 0.0}
    return {key: point[key] for key in ('pixel_accuracy', 'f1', 'iou', 'recall',
                                        'certified_fraction')}


if __name__ == '__main__':
    raise SystemExit(main())
