"""Start-up user errors of the real node processes (``mmcert-ros node ...``): each ends with exit
status 2 and exactly one line on stderr naming the parameter or file and the reason, never a
traceback; unknown start-up parameters are reported in a WARN and the node keeps running."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from helpers.ros_harness import REPO, NodeProcess, ros_env, tiny_checkpoint

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

CPU = ['-p', 'model.device:=cpu']


class RunsCode:
    """Unpickling this runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('startup')
    (root / 'alpha.yaml').write_text(
        'mmcert_segmenter:\n  ros__parameters:\n    certify.alpha: "high"\n')
    (root / 'malformed.yaml').write_text(
        'mmcert_segmenter:\n  ros__parameters:\n    certify.ray: [1, 2\n')
    (root / 'unknown.yaml').write_text(
        'mmcert_segmenter:\n  ros__parameters:\n    certify.num_sample: 5\n'
        '    certify.num_samples: 4\n')
    torch.save({'weights': RunsCode(root / 'code_ran')}, root / 'pickle.pt')
    torch.save({'weights': torch.zeros(3)}, root / 'foreign.pt')
    return root


def run_node(node, ros_args, domain_id, timeout=120):
    """Run ``mmcert-ros node <node> --ros-args ...`` to its end; (exit status, stderr lines)."""
    done = subprocess.run([sys.executable, '-m', 'mmcert_ros.tools.cli', 'node', node,
                           '--ros-args', *ros_args], cwd=REPO, env=ros_env(domain_id),
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def unavailable_cuda():
    return f'cuda:{torch.cuda.device_count()}' if torch.cuda.is_available() else 'cuda'


#: case -> (node, ROS arguments, the reason the one error line must hold); {root} = files
CASES = {
    'int as text': ('segmenter', ['-p', 'certify.num_samples:=abc'],
                    "certify.num_samples: expected an integer, got 'abc'"),
    'out of range': ('segmenter', ['-p', 'certify.num_samples:=0'],
                     'certify.num_samples: 0 is outside [1, 1000000]'),
    'int as bool': ('segmenter', ['-p', 'publish.overlay:=1'],
                    'publish.overlay: expected true or false, got 1'),
    'engine rule': ('segmenter', ['-p', 'certify.ray:=[1, -2]'], 'certify.ray'),
    'text in params file': ('segmenter', ['--params-file', '{root}/alpha.yaml'],
                            "certify.alpha: expected a number, got 'high'"),
    'malformed params file': ('segmenter', ['--params-file', '{root}/malformed.yaml'],
                              'params file {root}/malformed.yaml is not valid YAML: '),
    'missing params file': ('segmenter', ['--params-file', '{root}/missing.yaml'],
                            'params file {root}/missing.yaml: No such file or directory'),
    'override without :=': ('segmenter', ['-p', 'certify.num_samples'],
                            'ROS argument -p certify.num_samples: a parameter reads '
                            'name:=value'),
    'text file as checkpoint': ('segmenter', ['-p', 'model.checkpoint:=/etc/passwd'],
                                'checkpoint /etc/passwd is corrupt: not a readable torch file'),
    'missing checkpoint': ('segmenter', ['-p', 'model.checkpoint:={root}/none.pt'],
                           'model.checkpoint: no such file: {root}/none.pt'),
    'pickle checkpoint': ('segmenter', ['-p', 'model.checkpoint:={root}/pickle.pt'],
                          'checkpoint {root}/pickle.pt is refused: not a plain-tensor '
                          'checkpoint (it would run code when unpickled)'),
    'foreign checkpoint': ('segmenter', ['-p', 'model.checkpoint:={root}/foreign.pt'],
                           'checkpoint {root}/foreign.pt is incompatible: not an mmcert_ros '
                           'checkpoint'),
    'foreign booster': ('segmenter', ['-p', 'fs.booster:={root}/foreign.pt'],
                        'checkpoint {root}/foreign.pt is incompatible'),
    'unavailable device': ('segmenter', ['-p', f'model.device:={unavailable_cuda()}'],
                           f"model.device '{unavailable_cuda()}' is not available here "
                           f'({torch.cuda.device_count()} CUDA device(s) visible)'),
    'unknown depth source': ('segmenter', ['-p', 'depth.source:=radar'],
                             "depth.source must be one of ('image', 'points'), got 'radar'"),
    'extrinsic of 3 values': ('segmenter', ['-p', 'depth.extrinsic:=1 2 3'],
                              'depth.extrinsic: extrinsic must be 7 values'),
    'extrinsic not a rotation': ('segmenter', ['-p', 'depth.extrinsic:=0 0 0 0 0 0 2'],
                                 'depth.extrinsic: quaternion must have unit norm'),
    'sim_drive text for a number': ('sim_drive', ['-p', 'rate_hz:=fast'],
                                    "rate_hz: expected a number, got 'fast'"),
    'sim_drive unknown encoding': ('sim_drive', ['-p', 'rgb_encoding:=yuv'],
                                   'rgb_encoding must be one of'),
}

if not any(importlib.util.find_spec(name) for name in ('tf2_ros', 'tf2_msgs')):
    # a ROS distro has both; the PyPI wheels of a pip install have neither
    CASES['points from tf without tf2_ros or tf2_msgs'] = (
        'segmenter', ['-p', 'depth.source:=points'],
        "depth.extrinsic is '' (take the transform from tf), but neither tf2_ros nor tf2_msgs "
        'is installed here; give depth.extrinsic')


@pytest.fixture(scope='module')
def outcomes(files, domain_id):
    """Every case run to its end, a few processes at a time (start-up is mostly imports)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(case):
        node, ros_args, _ = CASES[case]
        args = [arg.format(root=files) for arg in ros_args]
        return run_node(node, (CPU if node == 'segmenter' and 'model.device' not in
                               ''.join(args) else []) + args, domain_id)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(run, CASES)))


@pytest.mark.parametrize('case', CASES)
def test_start_up_error_is_one_line_and_exit_2(files, outcomes, case):
    node, _, expected = CASES[case]
    status, lines = outcomes[case]
    assert status == 2, lines
    prefix = {'segmenter': 'mmcert_segmenter', 'sim_drive': 'mmcert_sim_drive'}[node]
    assert lines == [lines[0]] and lines[0].startswith(f'{prefix}: error: '), lines
    assert expected.format(root=files) in lines[0]
    assert 'weights_only' not in lines[0] and 'Traceback' not in lines[0]
    assert not (files / 'code_ran').exists()     # the pickle was never executed


def wait_for(process, text, timeout=120):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log():
            return
        assert process.alive(), process.log()
        time.sleep(0.2)
    raise AssertionError(f'{text!r} not in the log within {timeout} s:\n{process.log()}')


def test_unknown_start_up_parameters_are_warned_by_name_and_the_node_runs(files, tmp_path,
                                                                          fresh_domain_id):
    checkpoint = tiny_checkpoint(tmp_path / 'tiny.pt')
    process = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'node.log',
                          {'model.device': 'cpu', 'model.checkpoint': checkpoint,
                           'sync.slopp': 0.5},
                          extra_args=['--params-file', str(files / 'unknown.yaml')])
    try:
        wait_for(process, 'ready on cpu: N=4')   # the known value of the file is used
        wait_for(process, 'ignoring unknown parameter')  # reported once the node is built
        log = process.log()
        warnings = [line for line in log.splitlines() if '[WARN]' in line]
        assert len(warnings) == 1
        assert 'ignoring unknown parameter(s) certify.num_sample, sync.slopp' in warnings[0]
        assert process.alive()
    finally:
        assert process.stop() == 0


def test_an_integer_for_a_floating_point_parameter_is_taken_as_that_number(tmp_path,
                                                                           fresh_domain_id):
    checkpoint = tiny_checkpoint(tmp_path / 'tiny.pt')
    process = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'node.log',
                          {'model.device': 'cpu', 'model.checkpoint': checkpoint,
                           'fs.sigma': 1, 'sync.slop': 0})
    try:
        wait_for(process, 'l2 certificate sigma=1')
        assert 'WARN' not in process.log() and 'error' not in process.log()
    finally:
        assert process.stop() == 0
