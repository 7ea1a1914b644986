"""Launch the certified segmenter (``mmcert_segmenter``).

    ros2 launch mmcert_ros mmcert.launch.py preset:=velodyne
    ros2 launch mmcert_ros mmcert.launch.py rgb_topic:=/cam/image depth_topic:=/cam/depth

Arguments: ``preset`` (a preset of the package's config/: mmcert, carla, realsense, kitti,
velodyne, ouster; its parameter file and its ``mmcert_topics`` remappings), ``params_file``
(a parameter file instead of the preset's; a relative path that does not exist from the
current folder is looked up in the package's share folder, so ``config/velodyne.yaml`` works
from any workspace), ``namespace``, ``node_name``, the topics ``rgb_topic``, ``depth_topic``,
``points_topic``, ``camera_info_topic`` ('' = the preset's topic, else the node's own name;
the compressed RGB input, ``rgb.transport: compressed``, follows ``<rgb topic>/compressed``),
``depth_source``, ``device`` and ``num_samples`` ('' = the parameter file's value) and
``use_sim_time``; ``lifecycle:=true`` starts the managed variant (unconfigured; drive it with
``ros2 lifecycle set``). The parameter file's ``mmcert_segmenter`` section (or ``/**``, or
``/<namespace>/<node_name>``) applies under any namespace and node name.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from mmcert_ros.segmenter.presets import (COMPRESSED_RGB, PRESETS, config_dir, preset_path,
                                          preset_remappings, with_compressed_rgb)
from mmcert_ros.ros.launch_support import LIFECYCLE_FLAG, node_parameters

NODE_NAME = 'mmcert_segmenter'
#: topic argument -> the segmenter input it remaps
TOPIC_ARGUMENTS = {'rgb_topic': 'rgb/image', 'depth_topic': 'depth/image',
                   'points_topic': 'depth/points', 'camera_info_topic': 'rgb/camera_info'}
#: launch argument -> segmenter parameter it sets when not ''
PARAMETER_ARGUMENTS = {'device': 'model.device', 'depth_source': 'depth.source',
                       'num_samples': 'certify.num_samples'}

ARGUMENTS = {
    'preset': ('mmcert', f'parameter file and topics of a source: {", ".join(PRESETS)} or '
               'mmcert (the defaults)'),
    'params_file': ('', "ROS parameter file instead of the preset's (relative paths are also "
                    "looked up in the package's share folder)"),
    'namespace': ('', 'namespace of the node and its topics'),
    'node_name': (NODE_NAME, 'name of the segmenter node'),
    'rgb_topic': ('', "RGB image topic; '' = the preset's, else rgb/image"),
    'depth_topic': ('', "depth image topic (16UC1/mono16 mm or 32FC1 m); '' = the preset's, "
                    'else depth/image'),
    'points_topic': ('', "LiDAR PointCloud2 topic (depth_source points); '' = the preset's, "
                     'else depth/points'),
    'camera_info_topic': ('', "CameraInfo of the RGB camera; '' = the preset's, else "
                          'rgb/camera_info'),
    'depth_source': ('', "image or points (LiDAR clouds); '' = depth.source of the file"),
    'device': ('', "auto, cpu, cuda or cuda:N; '' = model.device of the file"),
    'num_samples': ('', "N, sub-sampled copies per frame; '' = certify.num_samples of the file"),
    'use_sim_time': ('false', 'use the /clock topic as time source'),
    'lifecycle': ('false', 'true = a managed (lifecycle) node, started unconfigured: '
                  '`ros2 lifecycle set <node> configure` loads the model, `activate` subscribes'),
}


def resolve_params_file(value: dict) -> str:
    """The parameter file: ``params_file`` (as given, else under the share folder), else the
    preset's."""
    given = value['params_file']
    if not given:
        return str(preset_path(value['preset']))
    if os.path.isfile(given) or os.path.isabs(given):
        return given
    shared = config_dir().parent / given
    return str(shared) if shared.is_file() else given


def typed(text: str):
    """An integer argument as an int (the node validates every value and names a bad one)."""
    try:
        return int(text)
    except ValueError:
        return text


def segmenter(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = resolve_params_file(value)
    parameters = node_parameters(params_file, NODE_NAME, value['namespace'])
    if value['node_name'] != NODE_NAME:
        parameters.update(node_parameters(params_file, value['node_name'], value['namespace']))
    parameters['use_sim_time'] = value['use_sim_time'].lower() in ('true', '1')
    for argument, parameter in PARAMETER_ARGUMENTS.items():
        if value[argument]:
            parameters[parameter] = typed(value[argument])
    remappings = dict(preset_remappings(params_file))
    given = {name: value[argument] for argument, name in TOPIC_ARGUMENTS.items()
             if value[argument]}
    if 'rgb/image' in given:
        remappings.pop(COMPRESSED_RGB, None)   # follows the given topic, not the preset's
    remappings.update(given)
    managed = value['lifecycle'].lower() in ('true', '1')
    return [(LifecycleNode if managed else Node)(
        package='mmcert_ros', executable='segmenter', name=value['node_name'],
        namespace=value['namespace'], output='screen', parameters=[parameters],
        arguments=[LIFECYCLE_FLAG] if managed else [],
        remappings=with_compressed_rgb(list(remappings.items())))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=segmenter)])
