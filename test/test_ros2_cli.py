"""The ``ros2`` CLI on a segmenter started by ``ros2 launch mmcert_ros sim_demo.launch.py``.

``ros2 param set`` of a valid value changes the outputs of every frame rendered after the set
returned; invalid values are rejected with a reason naming the parameter and change nothing;
``ros2 topic hz`` on the output agrees with the frame rate the node reports in /diagnostics.
The model is the constant tiny one (every sample votes class 0), so the certificate is known
in closed form: at radius 0 every pixel is certified (N = 40 votes of 40 clear the Holm
bound at alpha = 0.001 over 3072 pixels), at a radius beyond the pixel count none.
"""
import re
import signal
import subprocess
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image

from mmcert_ros.segmenter.codec import decode_mask
from helpers.ros2_tools import Launch
from helpers.ros_harness import RosClient, tiny_checkpoint

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

NODE = '/cli/mmcert_segmenter'
CERTIFICATION = '/cli/mmcert/certification'
RATE_HZ = 3.0


@pytest.fixture(scope='module')
def demo(colcon_workspace, tmp_path_factory, domain_id):
    """sim_demo (endless, 3 Hz, 96x32, N = 40, constant model) and a recording client."""
    root = tmp_path_factory.mktemp('cli')
    client = RosClient(domain_id, inputs=False, extra_subscriptions={CERTIFICATION: Image})
    launch = Launch(colcon_workspace, domain_id, 'sim_demo.launch.py', {
        'namespace': 'cli', 'width': 96, 'height': 32, 'num_samples': 40, 'device': 'cpu',
        'rate_hz': RATE_HZ, 'checkpoint': tiny_checkpoint(root / 'constant.pt', constant=True)},
        root / 'launch.log')
    try:
        client.spin_until(lambda: len(client.received[CERTIFICATION]) >= 2 or not launch.alive(),
                          what='the first certified frames')
        assert launch.alive(), launch.log()
        yield launch, client
    finally:
        launch.stop()
        client.close()


def param(launch, verb: str, *args: str) -> str:
    """``ros2 param VERB NODE ARGS`` on ``launch``'s domain once the node is discovered; its
    output."""
    result = launch.workspace.ros2_until(
        launch.domain_id, 'param', verb, NODE, *args,
        ok=lambda result: 'Node not found' not in result.stdout + result.stderr
        and result.returncode == 0)
    return result.stdout + result.stderr


def certified_fractions_after(client, since_ns: int, count: int) -> list[float]:
    """Certified fraction of the first ``count`` certifications of frames stamped after
    ``since_ns`` (sim_drive stamps with the system clock at render time)."""
    def later():
        return sorted(stamp for stamp in client.received[CERTIFICATION] if stamp > since_ns)
    client.spin_until(lambda: len(later()) >= count, what=f'{count} frames after the change')
    return [float((decode_mask(client.received[CERTIFICATION][stamp]) == 255).mean())
            for stamp in later()[:count]]


def test_param_set_changes_the_outputs_of_the_next_frames(demo):
    launch, client = demo
    assert certified_fractions_after(client, 0, 2) == [1.0, 1.0]
    try:
        reply = param(launch, 'set', 'certify.radius_rgb', '1000000')
        assert reply.strip() == 'Set parameter successful'
        assert certified_fractions_after(client, time.time_ns(), 2) == [0.0, 0.0]
    finally:
        param(launch, 'set', 'certify.radius_rgb', '0')
    assert certified_fractions_after(client, time.time_ns(), 1) == [1.0]


@pytest.mark.parametrize('name, value, reason, kept', [   # range, node's own check, read-only
    ('certify.alpha', '2.0', r'certify\.alpha out of range', 'Double value is: 0.001'),
    ('model.checkpoint', '/no/such/model.pt', r'model\.checkpoint: no such file',
     r'String value is: .*constant\.pt'),
    ('qos.reliability', 'best_effort', r'read-only parameter: qos\.reliability',
     'String value is: reliable'),
])
def test_param_set_of_an_invalid_value_is_rejected_naming_the_parameter(
        demo, name, value, reason, kept):
    launch, client = demo
    reply = param(launch, 'set', name, value)
    assert reply.startswith('Setting parameter failed') and re.search(reason, reply), reply
    assert re.fullmatch(kept, param(launch, 'get', name).strip())
    assert certified_fractions_after(client, time.time_ns(), 1) == [1.0]   # still serving


def test_topic_hz_matches_the_rate_in_diagnostics(demo):
    launch, client = demo
    hz = subprocess.Popen(['ros2', 'topic', 'hz', CERTIFICATION],
                          env=launch.workspace.env(launch.domain_id),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reports = len(client.diagnostics)
    try:
        client.spin_for(8.0)
    finally:
        hz.send_signal(signal.SIGINT)
        output = hz.communicate(timeout=30)[0]
    rates = [float(rate) for rate in re.findall(r'average rate: ([\d.]+)', output)]
    assert rates, output
    from mmcert_ros.ros.diagnostics import values_of
    served = [float(values_of(array)['frame_rate_hz'])
              for array in client.diagnostics[reports:]
              if array.status and array.status[0].name == 'cli/mmcert_segmenter: pipeline']
    assert len(served) >= 4
    served_hz = float(np.mean(served[1:]))
    assert rates[-1] == pytest.approx(served_hz, rel=0.3)
    assert served_hz == pytest.approx(RATE_HZ, rel=0.3)
