"""The l2 certificate with and without the smoothness booster on held-out synthetic frames.

For each sigma, certifies frame 0, stride, ... of synthetic drives 900000.. (seeds no training
run uses) with :class:`mmcert_ros.certify.l2.L2Certifier`, once with the base network alone and
once through the shipped booster for that sigma, and prints the pooled figures: mean Gaussian
robustness score, mean FCSB over cells at several l2 radii, the certified l2 fraction of
pixels (Holm) and the certified IoU at those radii, and the plain IoU of the smoothed labels.

    python bench/booster_fs.py --json docs/figures/booster_fs.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmcert_ros.certify import CertifyConfig, Confusion  # noqa: E402
from mmcert_ros.certify.l2.certifier import L2Certifier, L2Settings  # noqa: E402
from mmcert_ros.evaluation.metrics import certified_confusion, plain_confusion  # noqa: E402
from mmcert_ros.models import load_model  # noqa: E402
from mmcert_ros.models.booster import default_booster_path, load_booster  # noqa: E402
from mmcert_ros.training.data import synthetic_frames  # noqa: E402
from mmcert_ros.speed.machine import machine_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sigmas', type=float, nargs='+', default=[0.12, 0.25, 0.5])
    parser.add_argument('--radii', type=float, nargs='+', default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument('--first-seed', type=int, default=900_000)
    parser.add_argument('--drives', type=int, default=4)
    parser.add_argument('--frames-per-drive', type=int, default=1)
    parser.add_argument('--frame-stride', type=int, default=10)
    parser.add_argument('--width', type=int, default=621)
    parser.add_argument('--height', type=int, default=188)
    parser.add_argument('--num-samples', type=int, default=1000)
    parser.add_argument('--alpha', type=float, default=0.001)
    parser.add_argument('--seed', type=int, default=0, help='noise and mask seed')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--checkpoint', default='',
                        help="base network checkpoint ('' = the shipped default)")
    parser.add_argument('--booster', type=Path,
                        help='booster checkpoint instead of the shipped one (one sigma only)')
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    print(machine_line(), flush=True)  # CPU model, ISA class, load
    if args.booster and len(args.sigmas) != 1:
        parser.error('--booster needs exactly one --sigmas value')
    torch.set_num_threads(args.threads)

    model = load_model(args.checkpoint or None)
    frames = []
    for seed in range(args.first_seed, args.first_seed + args.drives):
        frames += synthetic_frames(seed, args.frames_per_drive, args.width, args.height,
                                   frame_stride=args.frame_stride)[0]
    config = CertifyConfig(num_samples=args.num_samples, alpha=args.alpha, seed=args.seed)
    started = time.perf_counter()
    results = []
    for sigma in args.sigmas:
        booster_path = args.booster or default_booster_path(sigma)
        booster = load_booster(booster_path)[0] if booster_path.is_file() else None
        for boosted in (False, True):
            if boosted and booster is None:
                print(f'no booster at {booster_path}; skipping', flush=True)
                continue
            results.append(evaluate(model, booster if boosted else None, frames, config,
                                    sigma, args.radii))
            results[-1]['booster'] = str(booster_path) if boosted else None
            print_row(results[-1], args.radii)
    figures = {
        'frames': [f.name for f in frames], 'size': f'{args.width}x{args.height}',
        'drive_seeds': [args.first_seed, args.first_seed + args.drives - 1],
        'frames_per_drive': args.frames_per_drive, 'frame_stride': args.frame_stride,
        'num_samples': args.num_samples, 'num_selection': 16, 'alpha': args.alpha,
        'keep_fraction': [config.keep_fraction_rgb, config.keep_fraction_depth],
        'seed': args.seed, 'results': results, 'wall_s': time.perf_counter() - started,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + '\n')
    return 0


def evaluate(model, booster, frames, config, sigma, radii) -> dict:
    """Pooled figures of one (sigma, booster) setting over ``frames``."""
    plain = Confusion()
    certified = {r: Confusion() for r in radii}
    certified_pixels = dict.fromkeys(radii, 0)
    fcsb = {r: [] for r in radii}
    scores, pixels, seconds = [], 0, 0.0
    certifier = L2Certifier(model, L2Settings(sigma=sigma), config, booster)
    for frame in frames:
        cert = certifier.certify_frame(frame)
        plain += plain_confusion(cert.labels, frame.road_mask)
        scores.append(cert.cells.smoothed.score_mean.ravel())
        pixels += cert.labels.size
        seconds += cert.timings['total']
        for r in radii:
            mask = cert.certified_at(r)
            certified_pixels[r] += int(mask.sum())
            certified[r] += certified_confusion(cert.labels, mask, frame.road_mask)
            fcsb[r].append(cert.fcsb_at(r).ravel())
    return {
        'sigma': sigma, 'boosted': booster is not None,
        'score_mean': float(np.concatenate(scores).mean()),
        'plain_iou': plain.iou, 'plain_pixel_accuracy': plain.pixel_accuracy,
        'per_radius': [{'radius': r, 'fcsb_mean': float(np.concatenate(fcsb[r]).mean()),
                        'certified_fraction': certified_pixels[r] / pixels,
                        'certified_iou': certified[r].iou} for r in radii],
        'seconds_per_frame': seconds / len(frames),
    }


def print_row(result: dict, radii) -> None:
    per = result['per_radius']
    print(f"sigma {result['sigma']:<5g} booster {'yes' if result['boosted'] else 'no ':<3} | "
          f"score {result['score_mean']:.4f} | plain IoU {result['plain_iou']:.4f} | FCSB "
          + ' '.join(f"{p['fcsb_mean']:+.3f}" for p in per) + ' | cert. fraction '
          + ' '.join(f"{p['certified_fraction']:.3f}" for p in per) + ' | cert. IoU '
          + ' '.join(f"{p['certified_iou']:.3f}" for p in per)
          + f" | {result['seconds_per_frame']:.1f} s/frame  (radii {list(radii)})", flush=True)


if __name__ == '__main__':
    sys.exit(main())
