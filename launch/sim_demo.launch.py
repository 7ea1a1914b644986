"""Launch the built-in simulator and the segmenter together; ends when the drive is over.

    ros2 launch mmcert_ros sim_demo.launch.py [preset:=realsense] [num_frames:=20] [device:=cpu]

``preset`` (mmcert, carla, realsense, kitti) selects the parameter file both nodes read, so
sim_drive mimics that source's encodings, sizes and topic names (the LiDAR presets
``velodyne`` and ``ouster`` have no sim_drive section: sim_drive publishes no clouds). The
defaults fit a CPU without losing input: both nodes use reliable QoS (best-effort delivery
of full-size frames loses most of them), sim_drive waits until the segmenter subscribes and
publishes 1 frame per second, and N is 40 (enough to certify at the KITTI size, as in
``mmcert-ros demo``). With ``num_frames`` > 0 the launch shuts down by itself ``linger_s``
seconds after sim_drive has delivered its last frame, time for the segmenter to certify the
frames still in flight. The segmenter logs one line per certified frame; ``rviz:=true``
opens rviz2 on config/mmcert.rviz. Every argument: ``ros2 launch mmcert_ros sim_demo.launch.py
--show-args``.
"""
import shutil
import tempfile
from pathlib import Path

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo,
                            OpaqueFunction, RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmcert_ros.ros.launch_support import node_parameters
from mmcert_ros.segmenter.presets import config_dir, preset_path, preset_remappings

#: name -> (default, description); '' keeps the value of the preset's parameter file
ARGUMENTS = {
    'preset': ('mmcert', 'parameter file of both nodes: mmcert, carla, realsense, kitti or a '
                         '.yaml file with mmcert_topics'),
    'namespace': ('', 'namespace of both nodes and their relative topics'),
    'num_frames': ('0', 'frames sim_drive publishes, then the launch ends; 0 = endless'),
    'width': ('', "RGB width in pixels; '' = the preset's (mmcert: 1242)"),
    'height': ('', "RGB height in pixels; '' = the preset's (mmcert: 375)"),
    'rate_hz': ('1.0', "frames per second sim_drive publishes; '' = the preset's"),
    'num_samples': ('40', "N, sub-sampled copies per frame; '' = the preset's"),
    'checkpoint': ('', "model checkpoint of the segmenter; '' = the shipped default"),
    'device': ('', "segmenter device (auto, cpu, cuda, cuda:N); '' = the preset's"),
    'use_sim_time': ('false', 'both nodes take time from /clock (needs a /clock publisher)'),
    'rviz': ('false', "true = open rviz2 with the package's config/mmcert.rviz (the overlay, "
                      'the views and, with clouds, the labelled points)'),
    'wait_for_subscribers': ('1', 'sim_drive holds its first frame until rgb/image has this '
                                  'many subscribers (1 = the segmenter)'),
    'linger_s': ('10.0', 'seconds the segmenter keeps running after the last frame of a '
                         'finite drive (num_frames > 0) before the launch shuts down'),
}
SIM_OVERRIDES = {'num_frames': int, 'width': int, 'height': int, 'rate_hz': float,
                 'wait_for_subscribers': int}
SEGMENTER_OVERRIDES = {'num_samples': ('certify.num_samples', int),
                       'checkpoint': ('model.checkpoint', str),
                       'device': ('model.device', str)}


def nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = preset_path(value['preset'])
    remappings = preset_remappings(params_file)
    use_sim_time = value['use_sim_time'].lower() in ('true', '1')
    sim = {name: kind(value[name]) for name, kind in SIM_OVERRIDES.items() if value[name]}
    segmenter = {parameter: kind(value[name])
                 for name, (parameter, kind) in SEGMENTER_OVERRIDES.items() if value[name]}
    common = {'qos.reliability': 'reliable', 'use_sim_time': use_sim_time}
    segmenter['log.frames'] = True                  # one line per certified frame

    def node(executable, name, overrides):
        parameters = dict(node_parameters(params_file, name, value['namespace']),
                          **overrides, **common)
        return Node(package='mmcert_ros', executable=executable, name=name,
                    namespace=value['namespace'], output='screen', remappings=remappings,
                    parameters=[parameters])

    sim_drive = node(executable='sim_drive', name='mmcert_sim_drive', overrides=sim)
    actions = [sim_drive,
               node(executable='segmenter', name='mmcert_segmenter', overrides=segmenter)]
    if value['rviz'].lower() in ('true', '1'):
        actions.append(rviz(value['namespace']))
    if sim.get('num_frames'):
        linger_s = float(value['linger_s'])
        actions.append(RegisterEventHandler(OnProcessExit(target_action=sim_drive, on_exit=[
            LogInfo(msg=f'sim_drive is done; shutting down in {linger_s:g} s'),
            TimerAction(period=linger_s,
                        actions=[EmitEvent(event=Shutdown(reason='the drive is over'))])])))
    return actions


def rviz(namespace: str):
    """rviz2 on config/mmcert.rviz, its topics moved into ``namespace``; a log line saying
    how to run it where rviz2 is not installed."""
    config = config_dir() / 'mmcert.rviz'
    if shutil.which('rviz2') is None:
        return LogInfo(msg=f'rviz:=true but rviz2 is not installed here; elsewhere run: '
                           f'rviz2 -d {config}')
    if namespace.strip('/'):
        moved = Path(tempfile.mkdtemp(prefix='mmcert_rviz_')) / 'mmcert.rviz'
        moved.write_text(config.read_text().replace(
            'Value: /mmcert/', f'Value: /{namespace.strip("/")}/mmcert/'))
        config = moved
    return ExecuteProcess(cmd=['rviz2', '-d', str(config)], output='screen')


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=nodes)])
