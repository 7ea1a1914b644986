"""Train the base RGB-D network on sub-sampled inputs (synthetic drives or a KITTI Road folder).

Every input is sub-sampled exactly as certification does it (the certification keep
fractions, or with probability --random-keep-probability a random keep fraction in
(0, --random-keep-max]). Writes OUT/last.pt (resumable with --resume OUT/last.pt) and
OUT/best.pt (best majority-vote validation IoU) after every epoch; --install-default copies
best.pt over the package's shipped default model.

Synthetic data: --train-drives drives of --frames-per-drive frames, every --frame-stride-th
simulator frame (drive seeds data_seed + i), and --val-drives validation drives (seeds
data_seed + 100000 + i), rendered once into OUT/frames (or --cache) and reused.

Example (the shipped default model; see docs/model.md):
  mmcert-ros train --out runs/default --epochs 12 --steps-per-epoch 100 --install-default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcert_ros.errors import UserError, user_input
from mmcert_ros.tools.arguments import positive_int

VALIDATION_SEED_OFFSET = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group('data')
    data.add_argument('--data', choices=('synthetic', 'kitti'), default='synthetic',
                      help='training data (default synthetic)')
    data.add_argument('--kitti-root', type=Path, help='KITTI Road folder (with --data kitti)')
    data.add_argument('--data-seed', type=int, default=0,
                      help='first synthetic drive seed (default 0)')
    data.add_argument('--train-drives', type=positive_int, default=16,
                      help='synthetic training drives')
    data.add_argument('--frames-per-drive', type=positive_int, default=16,
                      help='frames rendered per synthetic training drive')
    data.add_argument('--frame-stride', type=positive_int, default=5,
                      help='keep every this many simulator frames (5 = two a second at 10 Hz)')
    data.add_argument('--val-drives', type=positive_int, default=2,
                      help='synthetic validation drives')
    data.add_argument('--val-frames', type=positive_int, default=4,
                      help='validation frames per drive (synthetic) or in all (KITTI)')
    data.add_argument('--width', type=positive_int, default=1242,
                      help='synthetic frame width (pixels)')
    data.add_argument('--height', type=positive_int, default=375,
                      help='synthetic frame height (pixels)')
    data.add_argument('--depth', choices=('dense', 'lidar'), default='dense',
                      help='synthetic depth: dense or a sparse LiDAR pattern (default dense)')
    data.add_argument('--cache', type=Path, help='frame cache directory (default OUT/frames)')
    data.add_argument('--depth-source', choices=('image', 'points'), default='image',
                      help='depth elements: image pixels, or the points of a sparse LiDAR '
                           'depth (needs --depth lidar or KITTI velodyne depth; default image)')
    data.add_argument('--keep-points', type=positive_int, default=128,
                      help='points kept per full frame with --depth-source points (default 128)')
    data.add_argument('--depth-dropout', type=float, default=0.0,
                      help="probability of dropping a sample's whole depth modality "
                           '(trains the RGB-only degraded mode; default 0)')

    train = parser.add_argument_group('training')
    train.add_argument('--out', type=Path, required=True, help='output directory')
    train.add_argument('--epochs', type=int, default=10)
    train.add_argument('--steps-per-epoch', type=int, default=100)
    train.add_argument('--batch-size', type=int, default=8)
    train.add_argument('--crop-width', type=int, default=512,
                       help='crop width in pixels, full height (0 = whole frames)')
    train.add_argument('--lr', type=float, default=3e-3, help='peak learning rate (AdamW)')
    train.add_argument('--weight-decay', type=float, default=1e-4)
    train.add_argument('--keep-fraction-rgb', type=float,
                       help="RGB keep fraction (default: certification's default)")
    train.add_argument('--keep-fraction-depth', type=float,
                       help="depth keep fraction (default: certification's default)")
    train.add_argument('--random-keep-probability', type=float, default=0.25,
                       help='share of samples with a random keep fraction (default 0.25)')
    train.add_argument('--random-keep-max', type=float, default=0.05,
                       help='random RGB keep fractions lie in (0, this] (default 0.05)')
    train.add_argument('--seed', type=int, default=0, help='weights, batches and masks')
    train.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:N' or 'auto'")
    train.add_argument('--threads', type=positive_int,
                       help='CPU threads for torch (default: torch decides; 1 is steadier on a '
                            'shared, busy machine)')
    train.add_argument('--no-amp', action='store_true', help='no mixed precision on CUDA')
    train.add_argument('--val-samples', type=int, default=8,
                       help='sub-samples per validation frame (majority vote)')
    train.add_argument('--net-width', type=int, default=24, help='network width (channels)')
    train.add_argument('--feature-dim', type=int, default=8, help='unit feature length')
    train.add_argument('--align-weight', type=float, default=0.0,
                       help='weight of the prototype-alignment loss term (default 0)')
    train.add_argument('--init-checkpoint', type=Path,
                       help='fine-tune: start from these weights (a cosine-head checkpoint '
                            'gets the antipodal head first)')
    train.add_argument('--resume', type=Path, help='continue from this last.pt')
    train.add_argument('--install-default', action='store_true',
                       help="copy OUT/best.pt over the package's default model when done")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from mmcert_ros.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
    from mmcert_ros.models.network import NetworkConfig
    from mmcert_ros.data.road import CLASS_NAMES
    from mmcert_ros.training.data import TrainingSet
    from mmcert_ros.training.provenance import run_provenance
    from mmcert_ros.training.trainer import TrainConfig, Trainer

    keep_fractions = {name: value for name, value in (
        ('keep_fraction_rgb', args.keep_fraction_rgb),
        ('keep_fraction_depth', args.keep_fraction_depth)) if value is not None}
    with user_input():   # the messages name the setting
        config = TrainConfig(
            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
            crop_width=args.crop_width or None, learning_rate=args.lr,
            weight_decay=args.weight_decay, **keep_fractions,
            random_keep_probability=args.random_keep_probability,
            random_keep_max=args.random_keep_max, seed=args.seed, device=args.device,
            amp=not args.no_amp, val_samples=args.val_samples, align_weight=args.align_weight,
            init_checkpoint=str(args.init_checkpoint or ''),
            depth_source=args.depth_source, keep_points=args.keep_points,
            depth_dropout=args.depth_dropout,
            network=NetworkConfig(num_classes=len(CLASS_NAMES), width=args.net_width,
                                  feature_dim=args.feature_dim))
    if args.depth_source == 'points' and args.data == 'synthetic' and args.depth != 'lidar':
        raise UserError('--depth-source points needs sparse LiDAR depth: add --depth lidar')
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train_frames, val_frames, data = _load_data(args)
    print(f'training frames: {len(train_frames)}, validation frames: {len(val_frames)}')
    train_set = TrainingSet(train_frames, config.crop_width, config.flip)
    provenance = dict(run_provenance(args.command_line), data=data, classes=list(CLASS_NAMES),
                      input_size=[int(train_frames[0].rgb.shape[0]),
                                  int(train_frames[0].rgb.shape[1])])
    trainer = Trainer(config, train_set, val_frames, args.out, provenance)
    if args.resume:
        with user_input('--resume'):
            trainer.resume(args.resume)
        print(f'resumed {args.resume} after epoch {trainer.epoch}')

    def progress(epoch: int, steps: int):
        return tqdm(total=steps, desc=f'epoch {epoch}/{config.epochs}', unit='step',
                    dynamic_ncols=True)

    while trainer.epoch < config.epochs:  # one epoch at a time, to report each as it ends
        report, = trainer.fit(progress, until_epoch=trainer.epoch + 1)
        print(f'epoch {report.epoch}: loss {report.loss:.4f}, train IoU {report.train_iou:.3f}, '
              f'validation {json.dumps({k: round(v, 4) for k, v in report.validation.items()})}, '
              f'{report.seconds:.0f} s', flush=True)
    best = args.out / 'best.pt'
    print(f'checkpoints: {args.out / "last.pt"} (resumable), {best} (best validation)')
    if args.install_default:
        model, payload = load_checkpoint(best)
        save_checkpoint(DEFAULT_CHECKPOINT, model, payload['provenance'])
        print(f'installed {best} as the default model {DEFAULT_CHECKPOINT}')
    return 0


def _load_data(args: argparse.Namespace) -> tuple[list, list, dict]:
    """Training frames, validation frames and the data description for the provenance."""
    from mmcert_ros.training.data import kitti_frames, synthetic_frames

    if args.data == 'kitti':
        if args.kitti_root is None:
            raise UserError('--data kitti needs --kitti-root')
        with user_input('--kitti-root'):
            train, train_description = kitti_frames(args.kitti_root, 'train')
            val, val_description = kitti_frames(args.kitti_root, 'test')
        return train, val[:args.val_frames], {'train': train_description,
                                              'validation': val_description}
    cache = args.cache or args.out / 'frames'

    def drives(seeds: range, frames: int) -> tuple[list, list]:
        loaded, described = [], []
        for seed in seeds:
            drive_frames, description = synthetic_frames(
                seed, frames, args.width, args.height, depth=args.depth,
                frame_stride=args.frame_stride,
                cache_dir=cache / f'drive_{seed}_{args.width}x{args.height}_{args.depth}')
            loaded.extend(drive_frames)
            described.append(description)
        return loaded, described

    train, train_described = drives(range(args.data_seed, args.data_seed + args.train_drives),
                                    args.frames_per_drive)
    first_val = args.data_seed + VALIDATION_SEED_OFFSET
    val, val_described = drives(range(first_val, first_val + args.val_drives), args.val_frames)
    return train, val, {'train': train_described, 'validation': val_described}
