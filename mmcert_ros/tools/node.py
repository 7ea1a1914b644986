"""Run a ROS 2 node of the package (segmenter, sim_drive) with ROS arguments passed through.

`mmcert-ros node segmenter|sim_drive [ROS args...]` runs the same executables as
`ros2 run mmcert_ros segmenter` / `sim_drive`, for installs without the `ros2` CLI.
Everything after the node name is passed to ROS, e.g.

    mmcert-ros node segmenter --ros-args -p certify.num_samples:=32 -r rgb/image:=/cam/image
    mmcert-ros node sim_drive --ros-args --params-file config/realsense.yaml

`--preset carla|realsense|kitti|velodyne|ouster|FILE.yaml` loads that parameter file and
remaps the input topics to those its `mmcert_topics` section names (ROS args given after it
still win); with sim_drive this mimics the source, encodings, sizes and topic names:

    mmcert-ros node --preset carla sim_drive &
    mmcert-ros node --preset carla segmenter
"""
from __future__ import annotations

import argparse
import importlib

from mmcert_ros.errors import user_input
from mmcert_ros.segmenter.presets import PRESETS

#: node name on the command line -> module under mmcert_ros.ros providing main(args)
NODES = {
    'segmenter': 'segmenter_node',
    'sim_drive': 'sim_drive_node',
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--preset', metavar='NAME|FILE',
                        help=f'{", ".join(PRESETS)} or a parameter file with mmcert_topics')
    parser.add_argument('node', choices=sorted(NODES), help='which node to run')
    parser.add_argument('ros_args', nargs=argparse.REMAINDER,
                        help='arguments for ROS (--ros-args -p name:=value -r from:=to ...)')


def preset_arguments(preset: str) -> list[str]:
    """ROS arguments loading a preset: its parameter file and its topic remappings (the same
    input names for the segmenter and the outputs of sim_drive, so the two meet)."""
    from mmcert_ros.segmenter.presets import preset_path, preset_remappings
    from mmcert_ros.ros.process import check_params_file
    path = preset_path(preset)
    check_params_file(path)
    arguments = ['--ros-args', '--params-file', str(path)]
    for name, topic in preset_remappings(path):
        arguments += ['-r', f'{name}:={topic}']
    return arguments + ['--']


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f'mmcert_ros.ros.{NODES[args.node]}')
    with user_input('--preset'):
        preset = preset_arguments(args.preset) if args.preset else []
    return module.main([f'mmcert-ros-{args.node}', *preset, *args.ros_args])
