"""Frames in flight can be stopped: SIGTERM and SIGINT in the middle of an N = 1000 frame at
the full KITTI size with the shipped model end the node with exit status 0 (it used to abort
with -6 inside torch), a parameter change that replaces the engine configuration cancels the
frame in flight, and ``certify.time_budget`` abandons a frame that runs too long (counted).

The node runs in its own process over real DDS. A frame of N = 1000 at 1242x375 takes tens of
seconds on a CPU; each check acts once the node has paired the frame and a second has passed
(the worker is then inside the engine), so no output for that frame proves it was stopped
before it could finish. Exit times are printed, not asserted (a loaded machine is slow).
"""
import signal
import subprocess
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from helpers.ros_harness import NodeProcess, RosClient, image_msg

# N = 1000 frames at 1242x375 on DDS: tens of seconds
pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 375, 1242
PARAMS = {'model.device': 'cpu', 'certify.num_samples': 1000, 'model.batch_size': 16,
          'qos.reliability': 'reliable', 'publish.overlay': False}
IN_FLIGHT_S = 1.0                # after pairing: the worker is inside the engine by then
EXIT_CEILING_S = 60.0            # generous; the measured time is printed
RNG = np.random.default_rng(8)
_stamps = iter(range(10 ** 9, 10 ** 12, 10 ** 8))


def send_frame(client):
    stamp_ns = next(_stamps)
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = RNG.uniform(2, 80, (H, W)).astype(np.float32)
    client.send_pair(image_msg(rgb, 'rgb8', stamp_ns), image_msg(depth, '32FC1', stamp_ns))
    return stamp_ns


def paired(client):
    return int(client.latest_diagnostics().get('paired', 0))


def send_paired_frame(client, attempts=5):
    """Send a frame until the node pairs one (a message published while the node's reader is
    still matching our writer is never delivered); return the stamp of the paired one."""
    before = paired(client)
    for _ in range(attempts):
        stamp_ns = send_frame(client)
        try:
            client.spin_until(lambda: paired(client) > before, timeout_s=15.0,
                              what='the frame to be paired')
            return stamp_ns
        except AssertionError:
            continue
    raise AssertionError(f'no frame paired after {attempts} attempts')


def send_frame_in_flight(client):
    """Send a frame and return its stamp once the worker is certifying it."""
    stamp_ns = send_paired_frame(client)
    client.spin_for(IN_FLIGHT_S)
    return stamp_ns


def abandoned(client, reason):
    return int(client.latest_diagnostics().get(f'frames_abandoned.{reason}', 0))


def stop_mid_frame(tmp_path, domain_id, sig, name):
    """Start a node, signal it while a frame is in flight; (exit status, seconds, client,
    stamp)."""
    node = NodeProcess('segmenter', domain_id, tmp_path / f'{name}.log', PARAMS)
    client = RosClient(domain_id)
    try:
        client.wait_for_node()
        stamp_ns = send_frame_in_flight(client)
        tic = time.monotonic()
        node.process.send_signal(sig)
        try:
            status = node.process.wait(timeout=EXIT_CEILING_S)
        except subprocess.TimeoutExpired:
            status = None
        elapsed = time.monotonic() - tic
        client.spin_for(0.5)
        return node, status, elapsed, client.received['mmcert/segmentation'], stamp_ns
    finally:
        client.close()
        node.stop()


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_a_signal_mid_frame_ends_the_node_cleanly(tmp_path, fresh_domain_id, sig):
    node, status, elapsed, outputs, stamp_ns = stop_mid_frame(tmp_path, fresh_domain_id, sig,
                                                              sig.name)
    print(f'{sig.name} mid-frame (N = 1000, {W}x{H}, shipped model, CPU): exit status '
          f'{status} after {elapsed:.2f} s')
    log = node.log()
    assert status == 0, log
    assert stamp_ns not in outputs                # stopped before the frame could finish
    assert 'terminate called' not in log and 'Traceback' not in log


@pytest.fixture(scope='module')
def running(tmp_path_factory, domain_id):
    node = NodeProcess('segmenter', domain_id,
                       tmp_path_factory.mktemp('log') / 'node.log', PARAMS)
    client = RosClient(domain_id)
    client.wait_for_node()
    yield node, client
    client.close()
    assert node.stop() == 0, node.log()


def test_a_parameter_change_cancels_the_frame_in_flight(running):
    node, client = running
    stamp_ns = send_frame_in_flight(client)
    (result,) = client.set_parameters('mmcert_segmenter', {'certify.num_samples': 8})
    assert result.successful, result.reason
    client.spin_until(lambda: abandoned(client, 'parameter_change') == 1,
                      what='the frame in flight counted as abandoned')
    next_stamp = send_paired_frame(client)      # served at N = 8, not after the old frame
    client.spin_until(lambda: next_stamp in client.received['mmcert/segmentation'],
                      what='the next frame under the new configuration')
    assert stamp_ns not in client.received['mmcert/segmentation']
    assert 'abandoned: parameter change' in node.log()


def test_a_frame_over_its_time_budget_is_abandoned_and_counted(running):
    node, client = running
    results = client.set_parameters('mmcert_segmenter', {'certify.num_samples': 1000,
                                                         'certify.time_budget': 0.5})
    assert all(result.successful for result in results), [r.reason for r in results]
    stamp_ns = send_paired_frame(client)
    client.spin_until(lambda: abandoned(client, 'time_budget') == 1,
                      what='the frame abandoned for its time budget')
    assert stamp_ns not in client.received['mmcert/segmentation']
    diagnostics = client.latest_diagnostics()
    assert int(diagnostics['frames_abandoned']) == sum(
        int(count) for key, count in diagnostics.items() if key.startswith('frames_abandoned.'))
    reports = [array.status[0] for array in client.diagnostics]
    assert any(status.level == DiagnosticStatus.WARN and 'abandoned' in status.message
               for status in reports)
    assert 'abandoned: time budget exceeded' in node.log()
    assert node.alive()
