"""The lifecycle segmenter (``mmcert.launch.py lifecycle:=true``) driven by the real
``ros2 lifecycle`` CLI: unconfigured until ``configure`` loads the model, inputs subscribed
only while active, frames certified then (against the engine here), ``cleanup`` back to
unconfigured, and a clean end of the launch."""
import itertools

import numpy as np
import pytest

from helpers.ros2_tools import Launch
from helpers.ros_harness import SETTLE_S, RosClient, image_msg, tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]   # a launch and a dozen ros2 CLI calls

NODE = '/life/mmcert_segmenter'
H, W, N, SEED = 24, 32, 8, 3
_stamps = itertools.count(5_000_000_000, 100_000_000)


def lifecycle(workspace, domain_id, verb: str, *args: str) -> str:
    """``ros2 lifecycle get NODE`` / ``ros2 lifecycle set NODE TRANSITION``, once the node's
    lifecycle services are discovered; its output."""
    result = workspace.ros2_until(domain_id, 'lifecycle', verb, NODE, *args, '--no-daemon',
                                  what=f'ros2 lifecycle {verb} {" ".join(args)}')
    return result.stdout.strip()


#: the input subscriptions an active segmenter in namespace 'life' has
INPUTS = {'/life/rgb/image', '/life/depth/image'}


def subscribed(workspace, domain_id, inputs: bool) -> set[str]:
    """The node's subscribed topics (``ros2 node info``) once the input subscriptions are all
    there (``inputs``) or none is: the graph reaches the CLI a while after a transition, one
    endpoint at a time, so one look can show part of it. Never settling fails the test."""
    def topics(result) -> set[str]:
        lines = result.stdout.split('Subscribers:')[1].split('Publishers:')[0].splitlines()
        return {line.strip().split(':')[0] for line in lines if line.strip()}

    def settled(result) -> bool:
        if 'Publishers:' not in result.stdout:
            return False
        return INPUTS <= topics(result) if inputs else not INPUTS & topics(result)
    return topics(workspace.ros2_until(domain_id, 'node', 'info', NODE, ok=settled,
                                       what=f'inputs {"subscribed" if inputs else "absent"}'))


def test_lifecycle_transitions_with_the_ros2_cli(colcon_workspace, tmp_path, fresh_domain_id):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from mmcert_ros.certify import CertifiedSegmenter, CertifyConfig
    from mmcert_ros.models import load_model
    checkpoint = tiny_checkpoint(tmp_path / 'tiny.pt')
    params = tmp_path / 'params.yaml'
    params.write_text('mmcert_segmenter:\n  ros__parameters:\n'
                      f'    model:\n      checkpoint: {checkpoint}\n      batch_size: 8\n'
                      f'    certify:\n      num_samples: {N}\n      seed: {SEED}\n'
                      '    qos:\n      reliability: reliable\n')
    workspace, domain = colcon_workspace, fresh_domain_id
    launch = Launch(workspace, domain, 'mmcert.launch.py', {
        'lifecycle': 'true', 'namespace': 'life', 'params_file': params, 'device': 'cpu'},
        tmp_path / 'launch.log')
    client = RosClient(domain, inputs=False,
                       extra_subscriptions={'/life/mmcert/segmentation': Image})
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    client.publishers = {name: client.node.create_publisher(Image, f'/life/{name}/image', qos)
                         for name in ('rgb', 'depth')}
    try:
        launch.wait_for_log(r'unconfigured: `ros2 lifecycle set')
        assert 'unconfigured' in lifecycle(workspace, domain, 'get')
        assert not INPUTS & subscribed(workspace, domain, inputs=False)
        assert 'Transitioning successful' in lifecycle(workspace, domain, 'set', 'configure')
        launch.wait_for_log(r'configured on cpu: N=8')
        assert 'inactive' in lifecycle(workspace, domain, 'get')
        assert not INPUTS & subscribed(workspace, domain, inputs=False)
        assert 'Transitioning successful' in lifecycle(workspace, domain, 'set', 'activate')
        assert 'active' in lifecycle(workspace, domain, 'get')
        assert INPUTS <= subscribed(workspace, domain, inputs=True)
        # an active node certifies what it is sent, as the engine here does
        client.spin_until(lambda: all(p.get_subscription_count() for p in
                                      client.publishers.values()), what='the node to subscribe')
        client.spin_for(SETTLE_S)
        rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
        depth = np.full((H, W), 5.0, np.float32)
        stamp_ns = next(_stamps)
        client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), image_msg(depth, '32FC1', stamp_ns))
        topic = '/life/mmcert/segmentation'
        client.spin_until(lambda: stamp_ns in client.received[topic], what='a certified frame')
        oracle = CertifiedSegmenter(load_model(checkpoint),
                                    CertifyConfig(num_samples=N, seed=SEED, batch_size=8))
        got = np.frombuffer(bytes(client.received[topic][stamp_ns].data), np.uint8)
        np.testing.assert_array_equal(got.reshape(H, W), oracle.certify(rgb, depth).labels)
        assert 'Transitioning successful' in lifecycle(workspace, domain, 'set', 'deactivate')
        assert not INPUTS & subscribed(workspace, domain, inputs=False)
        assert 'Transitioning successful' in lifecycle(workspace, domain, 'set', 'cleanup')
        assert 'unconfigured' in lifecycle(workspace, domain, 'get')
    finally:
        client.close()
        status = launch.stop()
    assert status == 0, launch.log()
    assert 'process has finished cleanly' in launch.log(), launch.log()


def test_a_configure_that_cannot_load_fails_and_a_later_one_succeeds(tmp_path, fresh_domain_id):
    """In process: ``configure`` with a missing checkpoint fails with the reason and leaves
    the node unconfigured; after fixing the parameter the node goes through every state
    twice (cleanup releases the worker, so a second configure starts a fresh one)."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from helpers.ros_harness import shifted_domain
    from mmcert_ros.ros.segmenter_node import LifecycleSegmenterNode
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=shifted_domain(fresh_domain_id))
    node = LifecycleSegmenterNode(context=context, parameter_overrides=[
        Parameter('model.checkpoint', value=str(tmp_path / 'missing.pt')),
        Parameter('model.device', value='cpu')])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node._state_machine.current_state[1] == 'unconfigured'
        node.set_parameters([Parameter('model.checkpoint',
                                       value=str(tiny_checkpoint(tmp_path / 'tiny.pt')))])
        for _ in range(2):
            for transition in ('configure', 'activate', 'deactivate', 'cleanup'):
                assert getattr(node, f'trigger_{transition}')() == \
                    TransitionCallbackReturn.SUCCESS, transition
            assert node._worker is None
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
