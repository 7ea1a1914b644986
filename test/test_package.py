"""The repository is a well-formed ament_python package that colcon builds, installs and
tests, declaring every ROS package it imports."""
import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DEPENDENCIES = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'python3-numpy',
                        'python3-numba',
                        'python3-opencv', 'python3-scipy', 'python3-torch', 'python3-yaml'}


def dependencies(kind: str) -> set[str]:
    """The keys of ``<kind>`` elements (exec_depend, test_depend) of package.xml."""
    return {element.text for element in
            ElementTree.parse(ROOT / 'package.xml').getroot().findall(kind)}


def ament_index_packages() -> set[str]:
    """ROS packages registered in the ament index of this environment (the venv prefix, where
    the ros-* wheels register, and every AMENT_PREFIX_PATH entry)."""
    prefixes = [sys.prefix, *filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(':'))]
    found = set()
    for prefix in prefixes:
        index = Path(prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages'
        if index.is_dir():
            found |= {path.name for path in index.iterdir()}
    return found - {'mmcert_ros'}


def imported_modules(paths) -> set[str]:
    """Top-level modules that the Python files ``paths`` import (absolute imports)."""
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split('.')[0])
    return modules


def test_package_xml_is_format_3_and_names_its_dependencies():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'mmcert_ros'
    assert root.find('export/build_type').text == 'ament_python'
    assert RUNTIME_DEPENDENCIES <= dependencies('exec_depend')
    assert {'python3-flake8', 'python3-pytest'} <= dependencies('test_depend')
    assert (ROOT / 'test' / 'test_flake8.py').is_file()   # the lint key has its test
    assert (ROOT / 'resource' / 'mmcert_ros').is_file()


def test_cli_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, '-m', 'mmcert_ros.tools.cli', '--help'],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    from mmcert_ros.tools.cli import SUBCOMMANDS
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_certify_package_imports_without_ros():
    code = ('import sys; import mmcert_ros.certify; '
            'assert not any(m.startswith("rclpy") for m in sys.modules), "rclpy imported"')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_every_imported_ros_package_is_declared():
    index = ament_index_packages()
    if not index:
        pytest.skip('no ament index here to tell ROS packages from others')
    runtime = imported_modules([*(ROOT / 'mmcert_ros').rglob('*.py'),
                                *(ROOT / 'launch').glob('*.launch.py')]) & index
    assert 'rclpy' in runtime                     # the oracle sees ROS packages
    # launch_ros comes with a ROS distro or ../shared/ros-tools; a user's pip-only clone has
    # neither, and then the launch files' import of it cannot be told from a non-ROS one.
    if 'launch_ros' in index:
        assert 'launch_ros' in runtime
    assert runtime <= dependencies('exec_depend')
    tests = imported_modules((ROOT / 'test').rglob('*.py')) & index
    assert tests <= dependencies('exec_depend') | dependencies('test_depend')


@pytest.mark.ros
def test_colcon_builds_and_installs_the_package(colcon_workspace):
    install = colcon_workspace.install
    for executable in ('mmcert-ros', 'segmenter', 'sim_drive'):
        assert (install / 'lib' / 'mmcert_ros' / executable).is_file()
    share = install / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'mmcert_ros').is_file()
    assert (share / 'mmcert_ros' / 'package.xml').is_file()
    for folder in ('launch', 'config'):
        assert sorted(p.name for p in (share / 'mmcert_ros' / folder).iterdir()) == \
            sorted(p.name for p in (ROOT / folder).iterdir()
                   if p.suffix in ('.py', '.yaml', '.rviz', '.json', '.xml'))


@pytest.mark.ros
def test_ros2_run_and_pkg_see_the_installed_executables(colcon_workspace):
    listed = colcon_workspace.ros2(0, 'pkg', 'executables', 'mmcert_ros')
    assert listed.stdout.split() == ['mmcert_ros', 'mmcert-ros', 'mmcert_ros', 'segmenter',
                                     'mmcert_ros', 'sim_drive'], listed.stderr
    help_text = colcon_workspace.ros2(0, 'run', 'mmcert_ros', 'mmcert-ros', '--help')
    assert help_text.returncode == 0 and 'kitti2bag' in help_text.stdout, help_text.stderr


@pytest.mark.ros
def test_colcon_test_runs_the_package_tests_in_the_workspace(colcon_workspace):
    """``colcon test`` (the package's own pytest run against the installed package) passes;
    limited to the package and launch-file tests so the suite does not run itself twice."""
    result = subprocess.run(
        ['colcon', 'test', '--merge-install', '--paths', str(ROOT),
         '--build-base', str(colcon_workspace.root / 'build'),
         '--install-base', str(colcon_workspace.install), '--event-handlers', 'console_direct+',
         '--pytest-args', 'test/test_launch_files.py', 'test/test_package.py', '-k',
         'not colcon and not ros2', '-p', 'no:cacheprovider'],
        cwd=colcon_workspace.root, env=dict(colcon_workspace.env(0), PYTHONDONTWRITEBYTECODE='1'),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r'\d+ passed', result.stdout) and ' failed' not in result.stdout, \
        result.stdout[-4000:]
