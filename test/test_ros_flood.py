"""A flood at five times the processing rate: bounded memory, newest pairs first, drops counted.

The node runs in its own process; its memory is read from ``/proc`` while it works (the
engine's working set comes and goes with every frame, so peaks are compared with peaks).
The publishing pace is derived from the processing time the node itself reports, so the test
adapts to the machine and asserts nothing about speed.
"""
import numpy as np
import pytest

from helpers.ros_harness import NodeProcess, RosClient, image_msg, tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]   # nodes over DDS; tens of seconds

RGB_SIZE = (120, 160)
DEPTH_SIZE = (480, 640)           # 1.2 MB of 32FC1 per message: queues would show in RSS
FLOOD_PAIRS = 90
BASELINE_PAIRS = 30               # enough to reach every queue's high-water mark once
RNG = np.random.default_rng(11)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, domain_id):
    root = tmp_path_factory.mktemp('flood')
    node = NodeProcess('segmenter', domain_id, root / 'node.log', {
        'model.checkpoint': tiny_checkpoint(root / 'tiny.pt'), 'model.device': 'cpu',
        'certify.num_samples': 32,
        'model.batch_size': 8, 'qos.reliability': 'reliable', 'publish.overlay': False})
    client = RosClient(domain_id)
    client.wait_for_node()
    yield node, client
    client.close()
    assert node.stop() == 0, node.log()


def frame_messages(stamp_ns):
    rgb = RNG.integers(0, 256, RGB_SIZE + (3,), dtype=np.uint8)
    depth = RNG.uniform(1, 80, DEPTH_SIZE).astype(np.float32)
    return image_msg(rgb, 'rgb8', stamp_ns), image_msg(depth, '32FC1', stamp_ns)


def test_flood_keeps_memory_bounded_and_serves_the_newest_pairs(setup):
    node, client = setup
    stamps = iter(range(10 ** 9, 10 ** 12, 10 ** 8))
    # warm up until three frames came back, one at a time (a pair sent while the node's
    # readers still complete discovery is never delivered: then the next one is sent)
    warm = 0
    for _ in range(10):
        stamp_ns = next(stamps)
        client.send_pair(*frame_messages(stamp_ns))
        try:
            client.spin_until(lambda: stamp_ns in client.received['mmcert/segmentation'],
                              timeout_s=20.0, what='a warm-up frame')
        except AssertionError:
            continue
        warm += 1
        if warm == 3:
            break
    assert warm == 3, node.log()
    client.spin_until(lambda: float(client.latest_diagnostics().get('processing_time_ms', 0)) > 0,
                      what='a processing time in diagnostics')
    pace_s = float(client.latest_diagnostics()['processing_time_ms']) / 1000 / 5

    def flood(pairs):
        """Publish ``pairs`` pairs at five per processing time; peak RSS, stamps, bytes."""
        sent, sent_bytes, peak = [], 0, 0
        for index in range(pairs):
            stamp_ns = next(stamps)
            rgb_msg, depth_msg = frame_messages(stamp_ns)
            sent_bytes += len(rgb_msg.data) + len(depth_msg.data)
            client.send_pair(rgb_msg, depth_msg)
            sent.append(stamp_ns)
            client.spin_for(pace_s)
            peak = max(peak, node.rss_bytes())
        client.spin_until(lambda: sent[-1] in client.received['mmcert/segmentation'],
                          what='the newest pair to be processed')
        return max(peak, node.rss_bytes()), sent, sent_bytes

    # a first short flood fills every queue and allocator pool once
    baseline_rss, _, _ = flood(BASELINE_PAIRS)
    processed_before = len(client.received['mmcert/segmentation'])
    peak_rss, sent, sent_bytes = flood(FLOOD_PAIRS)
    client.spin_until(lambda: int(client.latest_diagnostics().get('frames_total', 0))
                      == len(client.received['mmcert/segmentation']), what='final diagnostics')

    order = client.arrival_order['mmcert/segmentation']
    assert order == sorted(order), 'an older pair was processed after a newer one'
    processed = len(client.received['mmcert/segmentation']) - processed_before
    diagnostics = client.latest_diagnostics()
    dropped = int(diagnostics['dropped_pairs'])
    assert dropped > 0
    assert int(diagnostics['paired']) == len(order) + dropped   # every pair accounted for
    # memory: three times more data sent, the same peak (what queues hold is bounded)
    growth = peak_rss - baseline_rss
    print(f'flood: {FLOOD_PAIRS} pairs ({sent_bytes / 1e6:.0f} MB) at 5x the processing rate '
          f'({pace_s * 5000:.0f} ms/frame): processed {processed}, dropped {dropped}, '
          f'peak RSS {baseline_rss / 1e6:.0f} MB after {BASELINE_PAIRS} pairs, '
          f'{peak_rss / 1e6:.0f} MB after {FLOOD_PAIRS} more')
    assert growth < 0.25 * sent_bytes
    assert node.alive()
