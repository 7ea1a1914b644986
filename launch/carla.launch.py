"""Launch the segmenter on CARLA's ego-vehicle cameras (config/carla.yaml).

    ros2 launch mmcert_ros carla.launch.py [namespace:=ego] [device:=cuda]

Runs ``mmcert.launch.py preset:=carla`` (config/carla.yaml and the topics of its
``mmcert_topics`` section); ``namespace``, ``device`` and ``use_sim_time`` (default true:
CARLA publishes /clock) are passed on. The include happens at launch time, so
``--show-args`` lists only these three.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PASSED = {'namespace': '', 'device': '', 'use_sim_time': 'true'}  # name -> CARLA default


def mmcert_launch():
    return PythonLaunchDescriptionSource(os.path.join(
        get_package_share_directory('mmcert_ros'), 'launch', 'mmcert.launch.py'))


def segmenter(context):
    return [IncludeLaunchDescription(mmcert_launch(), launch_arguments={
        'preset': 'carla',
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
