"""The repository is a well-formed ament_python package that colcon builds and installs."""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DEPENDENCIES = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'python3-numpy',
                        'python3-opencv', 'python3-scipy', 'python3-torch', 'python3-yaml'}


def test_package_xml_is_format_3_and_names_its_dependencies():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'mmcert_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_depends = {element.text for element in root.findall('exec_depend')}
    assert RUNTIME_DEPENDENCIES <= exec_depends
    test_depends = {element.text for element in root.findall('test_depend')}
    assert {'ament_flake8', 'ament_pep257', 'python3-pytest'} <= test_depends
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


@pytest.mark.skipif(shutil.which('colcon') is None and not
                    (Path(sys.executable).parent / 'colcon').exists(), reason='colcon not installed')
def test_colcon_builds_and_installs_the_package(tmp_path):
    colcon = shutil.which('colcon') or str(Path(sys.executable).parent / 'colcon')
    (tmp_path / 'src').mkdir()
    (tmp_path / 'src' / 'mmcert_ros').symlink_to(ROOT)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    subprocess.run([colcon, 'build', '--packages-select', 'mmcert_ros'], cwd=tmp_path,
                   check=True, capture_output=True, env=env, timeout=300)
    install = tmp_path / 'install' / 'mmcert_ros'
    for executable in ('mmcert-ros', 'segmenter', 'sim_drive'):
        assert (install / 'lib' / 'mmcert_ros' / executable).is_file()
    share = install / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'mmcert_ros').is_file()
    assert (share / 'mmcert_ros' / 'package.xml').is_file()
    for folder in ('launch', 'config'):
        assert sorted(p.name for p in (share / 'mmcert_ros' / folder).iterdir()) == \
            sorted(p.name for p in (ROOT / folder).iterdir() if p.suffix in ('.py', '.yaml'))
