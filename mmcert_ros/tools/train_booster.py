"""Train a Gaussian smoothness booster for the l2 certificate, with the base network frozen.

The booster (mmcert_ros/models/booster.py: a per-pixel purifier before the frozen encoder and
a residual feature mapper after it) is trained on noisy, sub-sampled copies of synthetic
frames made exactly as the l2 certificate makes them, to raise the Gaussian robustness score
while keeping the segmentation (docs/feature_smoothing.md, "The booster").

Synthetic drives data_seed .. data_seed + drives - 1 (drives 900000 and up stay held out for
evaluation), --frames-per-drive frames each, one every --frame-stride simulator frames.

Example (the shipped booster for sigma = 0.25):
  mmcert-ros train-booster --sigma 0.25 --install
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcert_ros.errors import user_input
from mmcert_ros.tools.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--sigma', type=float, required=True,
                        help='noise standard deviation to train for (RGB in [0, 1])')
    parser.add_argument('--checkpoint', default='',
                        help="frozen base network ('' = the shipped default model)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--out', type=Path, help='write the booster checkpoint here')
    target.add_argument('--install', action='store_true',
                        help='write it to mmcert_ros/models/weights/booster_sigma<S>.pt')
    data = parser.add_argument_group('data')
    data.add_argument('--data-seed', type=int, default=0, help='first synthetic drive seed')
    data.add_argument('--drives', type=positive_int, default=8, help='synthetic training drives')
    data.add_argument('--frames-per-drive', type=positive_int, default=5)
    data.add_argument('--frame-stride', type=positive_int, default=10)
    data.add_argument('--width', type=positive_int, default=621, help='frame width (pixels)')
    data.add_argument('--height', type=positive_int, default=188, help='frame height (pixels)')
    train = parser.add_argument_group('training')
    train.add_argument('--steps', type=int, default=500)
    train.add_argument('--batch-frames', type=int, default=2)
    train.add_argument('--copies', type=int, default=4,
                       help='noisy sub-sampled copies per frame and step (>= 2)')
    train.add_argument('--lr', type=float, default=2e-3)
    train.add_argument('--score-weight', type=float, default=1.0,
                       help='weight of the robustness-score term')
    train.add_argument('--align-weight', type=float, default=4.0,
                       help='weight of the prototype-alignment (margin) term')
    train.add_argument('--seed', type=int, default=0)
    train.add_argument('--threads', type=positive_int, default=1, help='CPU threads for torch')
    train.add_argument('--device', default='cpu')


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from mmcert_ros.models import DEFAULT_CHECKPOINT, load_model
    from mmcert_ros.models.booster import default_booster_path, save_booster
    from mmcert_ros.training.booster_training import BoosterTrainConfig, train_booster
    from mmcert_ros.training.data import synthetic_frames
    from mmcert_ros.training.provenance import run_provenance

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with user_input():   # the messages name the setting
        config = BoosterTrainConfig(sigma=args.sigma, steps=args.steps,
                                    batch_frames=args.batch_frames, copies=args.copies,
                                    lr=args.lr, score_weight=args.score_weight,
                                    align_weight=args.align_weight, seed=args.seed)
    out = default_booster_path(args.sigma) if args.install else args.out
    model = load_model(args.checkpoint or None, args.device)
    frames, drives = [], []
    for seed in range(args.data_seed, args.data_seed + args.drives):
        rendered, description = synthetic_frames(seed, args.frames_per_drive, args.width,
                                                 args.height, frame_stride=args.frame_stride)
        frames += rendered
        drives.append(description)
    with tqdm(total=config.steps, desc=f'booster sigma={args.sigma:g}', unit='step') as bar:
        def progress(step: int, figures: dict) -> None:
            bar.update(1)
            bar.set_postfix(ce=f"{figures['ce']:.3f}", score=f"{figures['score']:.4f}",
                            align=f"{figures['align']:.3f}")

        booster, history = train_booster(model, frames, config, progress)
    provenance = {
        'sigma': args.sigma, 'base_checkpoint': str(args.checkpoint or DEFAULT_CHECKPOINT),
        'size': [args.width, args.height], 'data': drives, 'train_config': config.as_dict(),
        'history': history, **run_provenance(args.command_line),
    }
    save_booster(out, booster, provenance)
    last = history[-1]
    print(f"booster for sigma {args.sigma:g} after {last['step']} steps: cross-entropy "
          f"{last['ce']:.4f}, score {last['score']:.4f}, alignment {last['align']:.4f} (last "
          f"logged window); wrote {out} "
          f'({Path(out).stat().st_size / 1e3:.0f} kB)')
    return 0
