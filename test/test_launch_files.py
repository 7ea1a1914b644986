"""Launch and parameter files: what can be checked without the ``launch`` package, and the
files loaded by ``launch`` itself where it is installed (every launch file under the real
``ros2 launch``: test_ros2_launch.py).

Without ``launch`` (a pip install): every launch file parses, names executables that
setup.py installs and parameter files that exist; every parameter file is accepted by the rcl
YAML parser (through rclpy) and its values by the nodes' own validation; mmcert.yaml holds
exactly the segmenter's built-in defaults.
"""
import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
CONFIG_FILES = sorted((ROOT / 'config').glob('*.yaml'))
MMCERT_LAUNCH_ARGUMENTS = {'preset', 'params_file', 'namespace', 'node_name', 'rgb_topic',
                           'depth_topic', 'points_topic', 'camera_info_topic', 'depth_source',
                           'device', 'num_samples', 'use_sim_time', 'lifecycle'}


def console_scripts():
    """``{name: 'module:function'}`` from setup.py's entry points (read with ast)."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    entries = ast.literal_eval(value)
                    return dict(item.replace(' ', '').split('=') for item in entries)
    raise AssertionError('setup.py declares no console_scripts')


def keyword_strings(tree, keyword):
    return {node.value.value for node in ast.walk(tree) if isinstance(node, ast.keyword)
            and node.arg == keyword and isinstance(node.value, ast.Constant)}


def test_the_three_launch_files_exist():
    assert {path.name for path in LAUNCH_FILES} >= {
        'mmcert.launch.py', 'sim_demo.launch.py', 'carla.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_names_installed_executables_and_existing_files(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    scripts = console_scripts()
    for executable in keyword_strings(tree, 'executable'):
        module_name, function = scripts[executable].split(':')
        assert callable(getattr(importlib.import_module(module_name), function))
    assert keyword_strings(tree, 'package') <= {'mmcert_ros'}
    from mmcert_ros.ros.segmenter_node import NODE_NAME as SEGMENTER
    from mmcert_ros.ros.sim_drive_node import NODE_NAME as SIM
    assert keyword_strings(tree, 'name') <= {SEGMENTER, SIM}
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
               and isinstance(node.value, str)}
    for name in filter(re.compile(r'^[\w-]+(\.launch\.py|\.yaml)$').match, strings):
        folder = 'launch' if name.endswith('.py') else 'config'
        assert (ROOT / folder / name).is_file(), name


def test_mmcert_launch_declares_the_documented_arguments():
    tree = ast.parse((ROOT / 'launch' / 'mmcert.launch.py').read_text())
    (arguments,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                    and node.targets[0].id == 'ARGUMENTS']
    assert {key.value for key in arguments.keys} >= MMCERT_LAUNCH_ARGUMENTS


def test_sim_demo_presets_exist():
    """Every preset resolves to the package's file of that name: the source tree's, or the
    installed copy of it (as under ``colcon test``)."""
    from mmcert_ros.segmenter.presets import PRESETS, preset_path
    for preset in PRESETS + ('mmcert',):
        path = preset_path(preset)
        assert path.name == f'{preset}.yaml'
        assert path.read_bytes() == (ROOT / 'config' / path.name).read_bytes()


def flat(section, prefix=''):
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out.update(flat(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def sections(path):
    document = yaml.safe_load(path.read_text())
    return {node: flat(body['ros__parameters']) for node, body in document.items()}


def test_mmcert_yaml_holds_exactly_the_built_in_defaults():
    from mmcert_ros.segmenter.parameters import PARAMETERS
    from mmcert_ros.ros.sim_drive_node import PARAMETERS as SIM_PARAMETERS
    found = sections(ROOT / 'config' / 'mmcert.yaml')
    assert found['mmcert_segmenter'] == {spec.name: spec.default for spec in PARAMETERS}
    assert found['mmcert_sim_drive'] == {spec.name: spec.default for spec in SIM_PARAMETERS}


def test_offline_tools_read_the_same_engine_settings_as_the_node():
    from mmcert_ros.segmenter.parameters import PARAMETERS, NodeSettings
    from mmcert_ros.segmenter.settings import load_settings
    settings = NodeSettings.from_parameters({spec.name: spec.default for spec in PARAMETERS})
    assert load_settings(ROOT / 'config' / 'mmcert.yaml') == settings


@pytest.mark.ros
@pytest.mark.parametrize('path', CONFIG_FILES, ids=lambda path: path.name)
def test_parameter_file_is_valid_for_rcl_and_for_the_nodes(path):
    from rclpy.parameter import parameter_dict_from_yaml_file

    from mmcert_ros.segmenter.parameters import PARAMETERS, NodeSettings
    from mmcert_ros.segmenter.presets import TOPICS_SECTION, preset_remappings
    from mmcert_ros.ros.sim_drive_node import PARAMETERS as SIM_PARAMETERS
    from mmcert_ros.ros.sim_drive_node import SimDriveNode
    found = sections(path)
    assert set(found) <= {'mmcert_segmenter', 'mmcert_sim_drive', TOPICS_SECTION}
    for node in found:    # the rcl parser (what --params-file uses) accepts every section
        assert parameter_dict_from_yaml_file(str(path), target_nodes=[node])
    segmenter = {spec.name: spec.default for spec in PARAMETERS}
    assert set(found.get('mmcert_segmenter', {})) <= set(segmenter)
    segmenter.update(found.get('mmcert_segmenter', {}))
    NodeSettings.from_parameters(segmenter)      # raises on any invalid value
    sim = {spec.name: spec.default for spec in SIM_PARAMETERS}
    assert set(found.get('mmcert_sim_drive', {})) <= set(sim)
    sim.update(found.get('mmcert_sim_drive', {}))
    SimDriveNode.check(sim)
    remaps = preset_remappings(path)
    assert all(topic.startswith('/') for _, topic in remaps)
    if path.stem != 'mmcert':
        depth_input = {'image': 'depth/image', 'points': 'depth/points'}[
            found['mmcert_segmenter'].get('depth.source', 'image')]
        assert {name for name, _ in remaps} == {'rgb/image', 'rgb/image/compressed',
                                                depth_input, 'rgb/camera_info'}


def test_preset_topic_section_errors_name_the_file(tmp_path):
    from mmcert_ros.segmenter.presets import preset_remappings
    bad = tmp_path / 'bad.yaml'
    bad.write_text('mmcert_topics:\n  ros__parameters:\n    lidar: /points\n')
    with pytest.raises(ValueError, match='bad.yaml.*lidar'):
        preset_remappings(bad)


@pytest.mark.ros
def test_mmcert_launch_declares_them_under_launch_where_installed():
    pytest.importorskip('launch_ros', reason='launch_ros is not installed here')
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    mmcert = PythonLaunchDescriptionSource(str(ROOT / 'launch' / 'mmcert.launch.py'))
    declared = {argument.name for argument in
                mmcert.try_get_launch_description_without_context().get_launch_arguments()}
    assert declared >= MMCERT_LAUNCH_ARGUMENTS


@pytest.mark.ros
def test_a_parameter_file_applies_to_its_node_under_any_namespace(tmp_path):
    """What the launch files pass to a node, against rcl's own reading of the file (rclpy's
    parser) for the same node name: the bare name section, overridden by /namespace/name."""
    from rclpy.parameter import parameter_dict_from_yaml_file

    from mmcert_ros.ros.launch_support import node_parameters
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    sync:\n      slop: 0.3\n'
                    'mmcert_segmenter:\n  ros__parameters:\n    certify:\n      ray: [1, 2]\n'
                    '/robot/mmcert_segmenter:\n  ros__parameters:\n    sync:\n      slop: 0.1\n'
                    'other_node:\n  ros__parameters:\n    sync:\n      slop: 0.9\n')
    assert node_parameters(path, 'mmcert_segmenter') == {'sync.slop': 0.3,
                                                         'certify.ray': [1, 2]}
    assert node_parameters(path, 'mmcert_segmenter', '/robot') == {'sync.slop': 0.1,
                                                                   'certify.ray': [1, 2]}
    assert node_parameters(ROOT / 'config' / 'mmcert.yaml', 'nobody') == {}
    rcl = parameter_dict_from_yaml_file(str(ROOT / 'config' / 'kitti.yaml'),
                                        target_nodes=['mmcert_segmenter'])
    assert set(node_parameters(ROOT / 'config' / 'kitti.yaml', 'mmcert_segmenter', 'x')) == \
        set(rcl)


def test_the_compressed_rgb_input_follows_the_rgb_topic():
    """image_transport publishes a camera's compressed images on ``<raw topic>/compressed``:
    a remapped ``rgb/image`` brings ``rgb/image/compressed`` along, unless it is remapped."""
    from mmcert_ros.segmenter.presets import preset_path, preset_remappings, with_compressed_rgb
    assert dict(preset_remappings(preset_path('velodyne')))['rgb/image/compressed'] == \
        '/camera/image_raw/compressed'
    assert with_compressed_rgb([('rgb/image', '/cam/raw/')]) == [
        ('rgb/image', '/cam/raw/'), ('rgb/image/compressed', '/cam/raw/compressed')]
    own = [('rgb/image', '/a'), ('rgb/image/compressed', '/b/jpeg')]
    assert with_compressed_rgb(own) == own
    assert with_compressed_rgb([('depth/image', '/d')]) == [('depth/image', '/d')]
