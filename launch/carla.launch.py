"""Launch the segmenter on CARLA's ego-vehicle cameras (config/carla.yaml).

    ros2 launch mmcert_ros carla.launch.py [namespace:=ego] [device:=cuda]

Runs mmcert.launch.py with config/carla.yaml as parameter file and the topics of its
``mmcert_topics`` section; ``namespace``, ``device`` and ``use_sim_time`` (default true:
CARLA publishes /clock) are passed on. The include happens at launch time, so
``--show-args`` lists only these three.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from mmcert_ros.pipeline.presets import preset_remappings

PASSED = {'namespace': '', 'device': '', 'use_sim_time': 'true'}  # name -> CARLA default


def share_path(*parts):
    return os.path.join(get_package_share_directory('mmcert_ros'), *parts)


def mmcert_launch():
    return PythonLaunchDescriptionSource(share_path('launch', 'mmcert.launch.py'))


def segmenter(context):
    params_file = share_path('config', 'carla.yaml')
    topics = dict(preset_remappings(params_file))
    return [IncludeLaunchDescription(mmcert_launch(), launch_arguments={
        'params_file': params_file,
        'rgb_topic': topics['rgb/image'],
        'depth_topic': topics['depth/image'],
        'camera_info_topic': topics['rgb/camera_info'],
        **{name: LaunchConfiguration(name).perform(context) for name in PASSED},
    }.items())]


def generate_launch_description():
    described = {argument.name: argument.description for argument in
                 mmcert_launch().try_get_launch_description_without_context()
                 .get_launch_arguments()}
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=described[name])
         for name, default in PASSED.items()]
        + [OpaqueFunction(function=segmenter)])
