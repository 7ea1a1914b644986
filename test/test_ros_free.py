"""The offline path needs no ROS: nothing outside mmcert_ros/ros/ imports a ROS package, and
`mmcert-ros synth -> kitti2bag -> evaluate` and `mmcert-ros certify` run in a process where
the ROS packages cannot be imported at all."""
import ast
import json
import subprocess
import sys
from pathlib import Path

from helpers.ros_harness import REPO

#: the ROS client library and the message packages the node uses
ROS_PACKAGES = ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs',
                'builtin_interfaces', 'sensor_msgs_py', 'launch', 'launch_ros')
#: runs ``mmcert_ros.tools.cli.main(argv)`` with every ROS package made unimportable
WITHOUT_ROS = '''
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(','))

class NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in BLOCKED:
            raise ImportError(f'{name} cannot be imported in this test (no ROS)')
        return None

sys.meta_path.insert(0, NoRos())
if sys.argv[2] == '--import':
    __import__(sys.argv[3])
from mmcert_ros.tools.cli import main
sys.exit(main(sys.argv[2:]))
'''


def without_ros(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', WITHOUT_ROS, ','.join(ROS_PACKAGES), *argv],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth of the code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition('.')[0])
    return names


def test_nothing_outside_the_ros_package_imports_ros():
    package = REPO / 'mmcert_ros'
    offenders = {str(path.relative_to(REPO)): sorted(imported_modules(path) & set(ROS_PACKAGES))
                 for path in package.rglob('*.py')
                 if (package / 'ros') not in path.parents}
    assert len(offenders) > 60                       # the walk saw the package
    assert {path: found for path, found in offenders.items() if found} == {}
    # the oracle sees ROS imports where they are
    assert 'rclpy' in imported_modules(package / 'ros' / 'segmenter_node.py')


def test_the_blocker_really_blocks():
    result = without_ros('--import', 'rclpy')
    assert result.returncode != 0 and 'rclpy cannot be imported in this test' in result.stderr


def test_synth_kitti2bag_evaluate_and_certify_run_without_ros(tmp_path, tiny_checkpoint):
    kitti, bag, out = tmp_path / 'kitti', tmp_path / 'bag', tmp_path / 'evaluate'
    steps = {
        'synth': ['synth', '--out', str(kitti), '--frames', '2', '--seed', '4',
                  '--width', '96', '--height', '32'],
        'kitti2bag': ['kitti2bag', str(kitti), str(bag), '--no-progress'],
        'evaluate': ['evaluate', '--bag', str(bag), '--gt-topic', '/road_gt/image',
                     '--model', str(tiny_checkpoint), '--seed', '0', '--out', str(out),
                     '--no-progress', '--fs-sigma', '0.25', '--fs-samples', '8'],
    }
    for step, argv in steps.items():
        result = without_ros(*argv)
        assert result.returncode == 0, f'{step}: {result.stderr}'
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['frames'] == 2 and metrics['complete'] and 'l2' in metrics

    training = kitti / 'training'
    certify_out = tmp_path / 'certify'
    result = without_ros(
        'certify', '--rgb', str(next((training / 'image_2').glob('*.png'))),
        '--depth', str(next((training / 'depth_u16').glob('*.png'))),
        '--gt', str(next((training / 'gt_image_2').glob('*.png'))),
        '--checkpoint', str(tiny_checkpoint), '--num-samples', '8', '--seed', '0',
        '--out', str(certify_out), '--fs-sigma', '0.25', '--fs-samples', '8')
    assert result.returncode == 0, result.stderr
    report = json.loads((certify_out / 'report.json').read_text())
    assert report['num_samples'] == 8 and 'certified' in report and 'l2' in report
