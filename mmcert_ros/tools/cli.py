"""``mmcert-ros``: the single entry point for every tool of the package.

Each subcommand lives in ``mmcert_ros/tools/<name>.py`` and provides
``add_arguments(parser)`` and ``run(args) -> int``; its module docstring's first line is the
help text. Heavy imports (torch, the ROS client library) stay inside ``run`` so
``mmcert-ros --help`` is fast.

A user error, whether a bad option (argparse) or a :class:`~mmcert_ros.errors.UserError` from
``run`` (a missing or unusable file, a value out of range, an output that exists), ends the
command with one line ``mmcert-ros <command>: error: <reason>`` on stderr and exit status 2.
Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mmcert_ros.errors import UserError

#: subcommand name -> module under mmcert_ros.tools
SUBCOMMANDS = {
    'bench': 'bench',
    'node': 'node',
    'demo': 'demo',
    'train': 'train',
    'certify': 'certify',
    'evaluate': 'evaluate',
    'kitti2bag': 'kitti2bag',
    'synth': 'synth',
    'train-booster': 'train_booster',
}


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog='mmcert-ros',
        description='Certified-robust RGB-D road segmentation (MMCert) for ROS 2.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND',
                                       parser_class=OneLineParser)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f'mmcert_ros.tools.{module_name}')
        summary = (module.__doc__ or name).strip().splitlines()[0]
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:   # --help (0) or a bad option (2, one line printed)
        return int(stop.code or 0)
    args.command_line = ['mmcert-ros', *argv]  # as typed, for provenance records
    try:
        return int(args._run(args) or 0)
    except UserError as error:
        message = ' '.join(str(error).split())    # one line, whatever the reason holds
        print(f'mmcert-ros {args.command}: error: {message}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
