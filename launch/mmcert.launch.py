"""Launch the certified segmenter (``mmcert_segmenter``).

    ros2 launch mmcert_ros mmcert.launch.py rgb_topic:=/cam/image depth_topic:=/cam/depth

Arguments: ``params_file`` (default: the package's config/mmcert.yaml), ``namespace``,
``rgb_topic``, ``depth_topic``, ``points_topic``, ``camera_info_topic``, ``depth_source``
('' = keep the params file's ``depth.source``; ``points`` reads ``points_topic``),
``device`` ('' = keep the params file's ``model.device``) and ``use_sim_time``. The parameter
file's ``mmcert_segmenter`` section (or ``/**``, or ``/<namespace>/mmcert_segmenter``) applies
under any namespace.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mmcert_ros.ros.launch_support import node_parameters

ARGUMENTS = {
    'params_file': ('', "ROS parameter file; '' = the package's config/mmcert.yaml"),
    'namespace': ('', 'namespace of the node and its topics'),
    'rgb_topic': ('rgb/image', 'RGB image topic (rgb8, bgr8, rgba8, bgra8, mono8)'),
    'depth_topic': ('depth/image', 'depth image topic (16UC1/mono16 mm or 32FC1 m)'),
    'points_topic': ('depth/points', 'LiDAR sensor_msgs/PointCloud2 topic (depth_source points)'),
    'depth_source': ('', "image or points (LiDAR clouds); '' = depth.source of the params file"),
    'camera_info_topic': ('rgb/camera_info', 'CameraInfo of the RGB camera'),
    'device': ('', "auto, cpu, cuda or cuda:N; '' = model.device of the params file"),
    'use_sim_time': ('false', 'use the /clock topic as time source'),
}


def segmenter(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = value['params_file'] or os.path.join(
        get_package_share_directory('mmcert_ros'), 'config', 'mmcert.yaml')
    parameters = node_parameters(params_file, 'mmcert_segmenter', value['namespace'])
    parameters['use_sim_time'] = value['use_sim_time'].lower() in ('true', '1')
    if value['device']:
        parameters['model.device'] = value['device']
    if value['depth_source']:
        parameters['depth.source'] = value['depth_source']
    return [Node(
        package='mmcert_ros', executable='segmenter', name='mmcert_segmenter',
        namespace=value['namespace'], output='screen', parameters=[parameters],
        remappings=[('rgb/image', value['rgb_topic']), ('depth/image', value['depth_topic']),
                    ('depth/points', value['points_topic']),
                    ('rgb/camera_info', value['camera_info_topic'])])]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=segmenter)])
