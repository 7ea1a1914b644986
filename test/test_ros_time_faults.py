"""Time faults over real DDS: the segmenter in its own process keeps serving after a message
stamped a day ahead, a loop of the same stamps (``ros2 bag play --loop``), an older bag
(stamps a minute earlier) and, under ``use_sim_time``, a jump back of ROS time.

Each good pair is sent once its predecessor was answered (or given up on after a generous
wait), so the served count measures pairing, not the engine's speed. Oracle: the stamps this
test sent; the node's log for the one warning per jump.
"""
import re
import time

import numpy as np
import pytest

from helpers.ros_harness import NodeProcess, RosClient, image_msg

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

H, W = 24, 32
S = 1_000_000_000
PERIOD_NS = 100_000_000            # a 10 Hz camera
ANSWER_WAIT_S = 20.0               # per pair, generous: a served pair comes back in ms
PARAMS = {'model.device': 'cpu', 'certify.num_samples': 8, 'model.batch_size': 8,
          'qos.reliability': 'reliable', 'publish.overlay': False}
RNG = np.random.default_rng(5)
JUMP_WARNING = re.compile(r'jumped back [\d.]+ s')


def pair_messages(stamp_ns):
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = RNG.integers(500, 60_000, (H, W)).astype(np.uint16)
    return image_msg(rgb, 'rgb8', stamp_ns), image_msg(depth, '16UC1', stamp_ns)


def serve(client, stamps, clock=None):
    """Send a synchronized pair per stamp, each once the previous one was answered (or given
    up on); how many were answered on mmcert/segmentation."""
    served = 0
    for stamp_ns in stamps:
        if clock is not None:
            clock(stamp_ns)
        arrivals = client.arrival_order['mmcert/segmentation']
        seen = len(arrivals)             # a looped stamp may have been answered before
        client.send_pair(*pair_messages(stamp_ns))
        try:
            client.spin_until(lambda: stamp_ns in arrivals[seen:], timeout_s=ANSWER_WAIT_S,
                              what=f'the pair stamped {stamp_ns}')
            served += 1
        except AssertionError:
            pass
    return served


def drive(first_ns, count):
    return [first_ns + index * PERIOD_NS for index in range(count)]


@pytest.fixture(scope='module')
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope='module')
def system_time(checkpoint, tmp_path_factory, domain_id):
    node = NodeProcess('segmenter', domain_id, tmp_path_factory.mktemp('log') / 'node.log',
                       dict(PARAMS, **{'model.checkpoint': checkpoint}))
    client = RosClient(domain_id)
    client.wait_for_node()
    yield node, client
    client.close()
    assert node.stop() == 0, node.log()


def jump_warnings(node):
    return JUMP_WARNING.findall(node.log())


def wait_jump_warnings(client, node, count):
    """Until the node's log holds ``count`` jump warnings (the log is written concurrently)."""
    client.spin_until(lambda: len(jump_warnings(node)) >= count,
                      what=f'{count} time jump warning(s) in the log')
    return len(jump_warnings(node))


def test_one_future_stamp_does_not_stop_the_stream(system_time):
    node, client = system_time
    now = time.time_ns()
    assert serve(client, drive(now - 10 * S, 5)) == 5
    future = now + 86_400 * S                              # one depth image a day ahead
    client.publishers['depth'].publish(pair_messages(future)[1])
    served = serve(client, drive(now - 9 * S, 20))
    print(f'after one future stamp: served {served} of 20')
    assert served >= 18
    client.spin_until(lambda: client.latest_diagnostics().get('stamp_in_future') == '1',
                      what='the future stamp counted as stamp_in_future')
    assert 'rejected: stamp_in_future' in node.log()
    assert jump_warnings(node) == []


def test_a_loop_of_the_same_stamps_and_an_older_bag_are_served(system_time):
    node, client = system_time
    bag = drive(time.time_ns() - 300 * S, 25)
    assert serve(client, bag) >= 23                 # 5 minutes before the previous test's
    assert wait_jump_warnings(client, node, 1) == 1
    looped = serve(client, bag)                            # ros2 bag play --loop
    print(f'second loop of the same stamps: served {looped} of 25')
    assert looped >= 23
    assert wait_jump_warnings(client, node, 2) == 2
    older = serve(client, drive(bag[0] - 60 * S, 25))      # a bag recorded a minute earlier
    print(f'a bag a minute older: served {older} of 25')
    assert older >= 23
    client.spin_until(lambda: client.latest_diagnostics().get('time_jumps') == '3',
                      what='the jumps counted in diagnostics')
    assert wait_jump_warnings(client, node, 3) == 3            # one warning per jump
    assert node.alive()


def test_a_jump_back_of_ros_time_resets_pairing_once(checkpoint, tmp_path, fresh_domain_id):
    """use_sim_time: this test publishes /clock; ROS time jumps back 15 minutes."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from helpers.ros_harness import stamp
    node = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'sim_node.log',
                       dict(PARAMS, **{'model.checkpoint': checkpoint, 'use_sim_time': True}))
    client = RosClient(fresh_domain_id)
    try:
        clock_pub = client.node.create_publisher(
            Clock, '/clock', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        client.wait_for_node()
        client.spin_until(lambda: clock_pub.get_subscription_count() > 0,
                          what='the node to subscribe to /clock')

        def clock(now_ns):
            clock_pub.publish(Clock(clock=stamp(now_ns)))

        before = serve(client, drive(1000 * S, 10), clock)
        assert before >= 9
        clock(100 * S)                                     # the simulation restarts
        # no stamp has jumped yet: the warning is the clock's own jump callback
        client.spin_until(lambda: 'ROS time jumped back 900.9' in node.log(),
                          what='the clock jump warning')
        after = serve(client, drive(100 * S + PERIOD_NS, 20), clock)
        print(f'after ROS time jumped back 900 s: served {after} of 20')
        assert after >= 18
        assert len(jump_warnings(node)) == 1, node.log()
    finally:
        client.close()
        assert node.stop() == 0, node.log()
