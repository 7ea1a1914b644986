"""Launch the built-in simulator and the segmenter together.

    ros2 launch mmcert_ros sim_demo.launch.py [preset:=realsense] [device:=cpu]

``preset`` (mmcert, carla, realsense, kitti) selects the parameter file both nodes read,
so sim_drive mimics that source's encodings, sizes and topic names; ``num_frames`` (0 =
endless) and ``device`` are passed on.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmcert_ros.ros.presets import preset_remappings


def nodes(context):
    preset = LaunchConfiguration('preset').perform(context)
    params_file = os.path.join(get_package_share_directory('mmcert_ros'), 'config',
                               f'{preset}.yaml')
    remappings = preset_remappings(params_file)
    device = LaunchConfiguration('device').perform(context)
    segmenter_overrides = {'model.device': device} if device else {}
    num_frames = int(LaunchConfiguration('num_frames').perform(context))
    return [
        Node(package='mmcert_ros', executable='sim_drive', name='mmcert_sim_drive',
             output='screen', remappings=remappings,
             parameters=[params_file, {'num_frames': num_frames}]),
        Node(package='mmcert_ros', executable='segmenter', name='mmcert_segmenter',
             output='screen', remappings=remappings,
             parameters=[params_file, segmenter_overrides]),
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('preset', default_value='mmcert',
                              description='mmcert, carla, realsense or kitti'),
        DeclareLaunchArgument('device', default_value='',
                              description="segmenter device; '' = the preset's"),
        DeclareLaunchArgument('num_frames', default_value='0',
                              description='frames the simulator publishes; 0 = endless'),
        OpaqueFunction(function=nodes),
    ])
