"""The ``--fs-*`` options of the tools that can run the l2 (feature-space) certificate.

Each option overrides the ``fs.*`` parameter of the same meaning in the ``--config`` file, so
``mmcert-ros certify`` and ``mmcert-ros evaluate`` run with what the node would use.
"""
from __future__ import annotations

import argparse
from typing import Any

#: option (argparse dest) -> the fs.* parameter it overrides
L2_OVERRIDES = {'fs_sigma': 'fs.sigma', 'fs_radius': 'fs.radius', 'fs_booster': 'fs.booster',
                'fs_samples': 'fs.num_samples', 'fs_joint': 'fs.joint'}


def add_l2_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the 'l2 certificate' option group."""
    group = parser.add_argument_group('l2 certificate (feature-space smoothing)')
    group.add_argument('--fs-sigma', type=float, metavar='S',
                       help='Gaussian noise sigma, RGB in [0, 1] (0 = off; default fs.sigma or 0)')
    group.add_argument('--fs-radius', type=float, metavar='R',
                       help='l2 radius of the certified mask (default fs.radius or 0)')
    group.add_argument('--fs-booster', metavar='CKPT',
                       help="smoothness booster checkpoint ('' = none; default fs.booster)")
    group.add_argument('--fs-samples', type=int, metavar='N',
                       help="l2 estimation samples (default fs.num_samples, else the engine's N)")
    group.add_argument('--fs-joint', action=argparse.BooleanOptionalAction, default=None,
                       help='one ensemble for both certificates: the l0 votes from the l2 '
                            'noisy passes (default fs.joint or off)')


def l2_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``{fs.* parameter: value}`` of the ``--fs-*`` options given on the command line."""
    return {name: getattr(args, option) for option, name in L2_OVERRIDES.items()
            if getattr(args, option) is not None}
