"""A freshly started segmenter answers the first pair a camera keeps re-sending.

A client that re-sends one RGB + depth pair (one stamp) every second from the moment the
node starts must get that pair's outputs. Full-size frames over the default best-effort
inputs: the large RGB message is often lost on the way while the first depth copy arrives,
waits ``sync.max_age`` and expires; every later copy of that stamp used to be rejected as
``stamp_duplicate``, so the pair could never form (``received_rgb: 0``, never answered).
Ten fresh starts, each node on a domain of its own.
"""
import numpy as np
import pytest

from helpers.ros_harness import WAIT_S, NodeProcess, RosClient, image_msg

pytestmark = [pytest.mark.ros, pytest.mark.slow]   # ten start-ups, full-size frames: minutes

STARTS = 10
H, W = 375, 1242
STAMP_NS = 1_700_000_000_000_000_000
RESEND_S = 1.0
PARAMS = {'model.device': 'cpu', 'certify.num_samples': 8, 'model.batch_size': 8,
          'publish.overlay': False}


@pytest.mark.parametrize('start', range(STARTS))
def test_a_fresh_node_answers_a_pair_resent_every_second(tmp_path, tiny_checkpoint,
                                                         fresh_domain_id, start):
    rng = np.random.default_rng(start)
    rgb = image_msg(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), 'rgb8', STAMP_NS)
    depth = image_msg(rng.integers(500, 60_000, (H, W)).astype(np.uint16), '16UC1', STAMP_NS)
    client = RosClient(fresh_domain_id)
    node = NodeProcess('segmenter', fresh_domain_id, tmp_path / 'node.log',
                       dict(PARAMS, **{'model.checkpoint': tiny_checkpoint}))
    answered = client.received['mmcert/segmentation']
    try:
        for _ in range(int(WAIT_S / RESEND_S)):
            client.send_pair(rgb, depth)
            client.spin_for(RESEND_S)
            if STAMP_NS in answered:
                break
            assert node.alive(), node.log()
        assert STAMP_NS in answered, (f'not answered in {WAIT_S} s; last diagnostics '
                                      f'{client.latest_diagnostics()}\n{node.log()}')
    finally:
        client.close()
        assert node.stop() == 0, node.log()
