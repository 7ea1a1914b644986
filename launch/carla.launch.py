"""Launch the segmenter on CARLA's ego-vehicle cameras (config/carla.yaml).

    ros2 launch mmcert_ros carla.launch.py [device:=cuda]

Topics and parameters come from config/carla.yaml (section ``mmcert_topics`` for the
remappings); the other arguments are those of mmcert.launch.py.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from mmcert_ros.ros.presets import preset_remappings


def generate_launch_description():
    share = get_package_share_directory('mmcert_ros')
    params_file = os.path.join(share, 'config', 'carla.yaml')
    topics = dict(preset_remappings(params_file))
    passed = ('namespace', 'device', 'use_sim_time')
    defaults = {'namespace': '', 'device': '', 'use_sim_time': 'true'}
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=defaults[name]) for name in passed]
        + [IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'mmcert.launch.py')),
            launch_arguments={
                'params_file': params_file,
                'rgb_topic': topics['rgb/image'],
                'depth_topic': topics['depth/image'],
                'camera_info_topic': topics['rgb/camera_info'],
                **{name: LaunchConfiguration(name) for name in passed},
            }.items())])
