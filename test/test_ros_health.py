"""Input health in /diagnostics over real DDS: a camera (sim_drive in its own process) that
is killed with SIGKILL makes the segmenter's diagnostics go stale (WARN, then ERROR), never
"OK 0.0 Hz"; a node that has heard nothing says so; a lost last frame is counted as unpaired
without further traffic; the processing-time budget raises WARN/ERROR; every frame's times
arrive on ``mmcert/debug/frame_times`` stamped like the frame.
"""
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from helpers.ros_harness import NodeProcess, RosClient, image_msg, tiny_checkpoint

pytestmark = pytest.mark.ros   # needs ROS: rclpy over DDS, ROS message packages or the ROS CLI

FRAME_TIMES = 'mmcert/debug/frame_times'
STALE_WARN_S, STALE_ERROR_S = 1.0, 2.5
PARAMS = {'model.device': 'cpu', 'certify.num_samples': 8, 'model.batch_size': 8,
          'qos.reliability': 'reliable', 'publish.overlay': False,
          'diagnostics.input_stale_warn': STALE_WARN_S,
          'diagnostics.input_stale_error': STALE_ERROR_S}


def latest_status(client) -> DiagnosticStatus:
    return client.diagnostics[-1].status[0]


def wait_status(client, level, text, what):
    """Until a diagnostics report has ``level`` and ``text`` in its message; that report."""
    def found():
        return (client.diagnostics and latest_status(client).level == level
                and text in latest_status(client).message)
    client.spin_until(found, what=what)
    return latest_status(client)


@pytest.fixture(scope='module')
def graph(tmp_path_factory, domain_id):
    root = tmp_path_factory.mktemp('health')
    node = NodeProcess('segmenter', domain_id, root / 'node.log',
                       dict(PARAMS, **{'model.checkpoint': tiny_checkpoint(root / 'tiny.pt')}))
    client = RosClient(domain_id, extra_subscriptions={FRAME_TIMES: DiagnosticArray})
    client.wait_for_node()
    yield node, client, root
    client.close()
    assert node.stop() == 0, node.log()


def test_a_node_that_heard_nothing_warns(graph):
    _, client, _ = graph
    status = wait_status(client, DiagnosticStatus.WARN, 'no rgb message received yet',
                         'a report before any input')
    values = {item.key: item.value for item in status.values}
    assert values['input_age_rgb_s'] == 'never' and values['input_age_depth_s'] == 'never'


def set_limits(client, limits):
    results = client.set_parameters('mmcert_segmenter', limits)
    assert all(result.successful for result in results), [r.reason for r in results]


def test_a_camera_over_budget_then_killed(graph, domain_id):
    """While the camera runs: OK, then the processing-time budget raises WARN and ERROR;
    once it is killed: stale WARN, then stale ERROR."""
    node, client, root = graph
    camera = NodeProcess('sim_drive', domain_id, root / 'camera.log', {
        'width': 64, 'height': 48, 'rate_hz': 5.0, 'wait_for_subscribers': 1})
    try:
        client.spin_until(lambda: len(client.received['mmcert/segmentation']) >= 5,
                          what='frames from the camera')
        wait_status(client, DiagnosticStatus.OK, 'Hz', 'an OK report while the camera runs')
        set_limits(client, {'diagnostics.max_processing_time_warn_ms': 0.001})
        wait_status(client, DiagnosticStatus.WARN, 'processing', 'a processing-time WARN')
        set_limits(client, {'diagnostics.max_processing_time_error_ms': 0.002})
        wait_status(client, DiagnosticStatus.ERROR, 'processing', 'a processing-time ERROR')
        set_limits(client, {'diagnostics.max_processing_time_warn_ms': 0.0,
                            'diagnostics.max_processing_time_error_ms': 0.0})
        wait_status(client, DiagnosticStatus.OK, 'Hz', 'OK again without a budget')
        camera.process.send_signal(signal.SIGKILL)           # no goodbye, no last message
        camera.process.wait(timeout=30)
        warn = wait_status(client, DiagnosticStatus.WARN, 'input stale', 'a stale WARN')
        error = wait_status(client, DiagnosticStatus.ERROR, 'input stale', 'a stale ERROR')
    finally:
        camera.stop()
    ages = [{item.key: item.value for item in status.values}['input_age_rgb_s']
            for status in (warn, error)]
    assert STALE_WARN_S <= float(ages[0]) < float(ages[1]) and float(ages[1]) >= STALE_ERROR_S
    assert 'rgb input stale' in error.message and 'depth input stale' in error.message
    assert node.alive()


def test_frame_times_arrive_stamped_like_the_frame(graph):
    _, client, _ = graph
    times = client.received[FRAME_TIMES]
    assert times and set(times) <= set(client.received['mmcert/segmentation'])
    for array in times.values():
        values = {item.key: float(item.value) for item in array.status[0].values}
        stages = sum(value for key, value in values.items()
                     if key.endswith('_ms') and key not in ('processing_time_ms',
                                                            'pipeline_latency_ms'))
        assert values['processing_time_ms'] == pytest.approx(stages, abs=0.01)
        assert values['processing_time_ms'] > 0 and values['inference_ms'] > 0


def send_rgb_only(client, stamp_ns):
    rgb = np.zeros((48, 64, 3), np.uint8)
    client.publishers['rgb'].publish(image_msg(rgb, 'rgb8', stamp_ns))


def test_a_lost_last_frame_is_counted_without_further_traffic(graph):
    _, client, _ = graph
    client.spin_until(lambda: client.latest_diagnostics().get('unpaired_rgb') is not None,
                      what='a report')
    before = int(client.latest_diagnostics()['unpaired_rgb'])
    received = int(client.latest_diagnostics()['received_rgb'])
    send_rgb_only(client, time.time_ns())          # its depth image never comes
    client.spin_until(lambda: int(client.latest_diagnostics()['received_rgb']) > received,
                      what='the RGB image received')
    client.spin_until(lambda: int(client.latest_diagnostics()['unpaired_rgb']) == before + 1,
                      what='the lone RGB image counted as unpaired')
