"""Render synthetic RGB-D drives into the KITTI Road layout, or draw a contact sheet.

Examples::

    mmcert-ros synth --out /tmp/synth --frames 20 --seed 3 --depth lidar
    mmcert-ros synth --contact-sheet docs/images/contact_sheet.png --frames 5 --seed 1

With ``--out`` the drive is written as ``DIR/training/{image_2,gt_image_2,calib,velodyne,
depth_u16}`` (frames 0, stride, 2*stride, ... of drive SEED) and reads back with
``mmcert_ros.data.kitti.KittiRoad(DIR)``. With ``--contact-sheet`` one frame of each of
the drives SEED, SEED+1, ... (at 5 s into the drive) is drawn as RGB | depth | road.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcert_ros.errors import UserError, user_input
from mmcert_ros.tools.arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', metavar='DIR', help='write the drive here in KITTI Road layout')
    parser.add_argument('--contact-sheet', metavar='PNG', help='write a contact sheet image here')
    parser.add_argument('--frames', type=positive_int, default=10,
                        help='frames to write, or rows of the contact sheet (default 10)')
    parser.add_argument('--seed', type=int, default=0, help='drive seed (default 0)')
    parser.add_argument('--depth', choices=('dense', 'lidar'), default='dense',
                        help='depth written to depth_u16 / drawn (default dense)')
    parser.add_argument('--width', type=positive_int, default=1242,
                        help='image width (default 1242)')
    parser.add_argument('--height', type=positive_int, default=375,
                        help='image height (default 375)')
    parser.add_argument('--stride', type=positive_int, default=1,
                        help='keep every STRIDE-th frame of the 10 Hz drive (default 1)')
    parser.add_argument('--category', default='um', help='file name prefix (default um)')


def run(args: argparse.Namespace) -> int:
    from mmcert_ros.sim.contact_sheet import contact_sheet, save_png
    from mmcert_ros.data.kitti import NAME_PATTERN
    from mmcert_ros.sim.synthetic import SceneConfig, SyntheticDrive, export_kitti

    if not args.out and not args.contact_sheet:
        raise UserError('give --out DIR and/or --contact-sheet PNG')
    with user_input('--width/--height'):
        config = SceneConfig().with_image_size(args.width, args.height)
    if not NAME_PATTERN.match(f'{args.category}_000000'):
        raise UserError(f'--category must be a lower-case word, got {args.category!r}')
    if args.out:
        with user_input('--out'):
            Path(args.out).mkdir(parents=True, exist_ok=True)
        names = export_kitti(args.out, args.seed, args.frames, config, args.depth,
                             args.category, args.stride)
        print(f'wrote {len(names)} frames of drive {args.seed} ({args.width}x{args.height}, '
              f'{args.depth} depth) to {args.out}/training')
    if args.contact_sheet:
        frames = [SyntheticDrive(args.seed + i, config).frame(50, args.depth)
                  for i in range(args.frames)]
        with user_input('--contact-sheet'):
            path = save_png(args.contact_sheet, contact_sheet(frames))
        print(f'wrote contact sheet of {len(frames)} drives to {path} '
              f'({path.stat().st_size / 1e6:.2f} MB)')
    return 0
