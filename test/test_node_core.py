"""The segmenter's ROS-free core: input pairing and the engine swap across parameter changes.

The node's behaviour over real DDS is tested in the test_ros_* modules; these tests pin the
two pieces it delegates to, without ROS, with their threads' contracts.
"""
import pytest

from mmcert_ros.certify import FrameCancelled
from mmcert_ros.errors import UserError
from mmcert_ros.segmenter.engine_swap import PARAMETER_CHANGE, SHUTDOWN, EngineSwap
from mmcert_ros.segmenter.input_pairing import InputPairing
from mmcert_ros.segmenter.settings import load_settings

MS = 1_000_000
S = 1000 * MS


class Recorder:
    """Collects the pairing's callbacks."""

    def __init__(self):
        self.jumps, self.rejected, self.unpaired, self.depth_lost = [], [], [], 0

    def pairing(self, settings):
        return InputPairing(settings, on_jump=self.jumps.append,
                            on_reject=lambda *args: self.rejected.append(args),
                            on_unpaired=lambda unpaired, counters, slop: self.unpaired.append(
                                unpaired),
                            on_depth_lost=self._lost)

    def _lost(self):
        self.depth_lost += 1


def test_pairs_reach_the_worker_newest_first_and_sync_updates_apply_at_the_next_message():
    record = Recorder()
    pairing = record.pairing(load_settings(overrides={'sync.slop': 0.02}))
    pairing.offer('rgb', 'rgb-1', 1 * S, 1 * S)
    pairing.offer('depth', 'depth-1', 1 * S + 10 * MS, 1 * S)     # within 20 ms: a pair
    pairing.offer('rgb', 'rgb-2', 2 * S, 2 * S)
    pairing.offer('depth', 'depth-2', 2 * S, 2 * S)               # displaces the first
    pair = pairing.next_pair()
    assert (pair.rgb, pair.depth) == ('rgb-2', 'depth-2') and pairing.slot.dropped == 1
    # a wider slop accepted by the parameter callback applies from the next message
    pairing.update(load_settings(overrides={'sync.slop': 0.2}))
    pairing.offer('rgb', 'rgb-3', 3 * S, 3 * S)
    pairing.offer('depth', 'depth-3', 3 * S + 150 * MS, 3 * S)
    assert pairing.next_pair().depth == 'depth-3'
    assert pairing.counters()['paired'] == 3 and record.unpaired == []


def test_rejections_carry_their_count_and_unpaired_totals_are_reported_at_powers_of_ten():
    record = Recorder()
    pairing = record.pairing(load_settings(overrides={'sync.future_tolerance': 1.0}))
    for index in range(3):                                         # 5 s ahead of the clock
        pairing.offer('rgb', f'future-{index}', (10 + index) * S, 5 * S)
    assert [(kind, count) for kind, _, _, count in record.rejected] == [
        ('stamp_in_future', 1), ('stamp_in_future', 2), ('stamp_in_future', 3)]
    for index in range(25):   # RGB alone: beyond 8 waiting, the oldest goes unpaired
        pairing.offer('rgb', index, (20 + index) * S, (20 + index) * S)
    assert pairing.counters()['unpaired_rgb'] == 17 and record.unpaired == [1, 10]


def test_rgb_only_mode_when_depth_goes_silent_and_back():
    record = Recorder()
    pairing = record.pairing(load_settings(overrides={'depth.timeout_s': 0.5}))
    clock = [0.0]
    pairing.depth_watch._clock = lambda: clock[0]                  # a test clock
    pairing.depth_watch._last_arrival = 0.0
    pairing.offer('rgb', 'waits', 1 * S, 1 * S)                    # depth not lost yet
    assert pairing.rgb_only_silence_s() is None and pairing.slot.get(timeout=0) is None
    clock[0] = 0.6
    pairing.expire()
    assert record.depth_lost == 1 and pairing.rgb_only_silence_s() == pytest.approx(0.6)
    pairing.offer('rgb', 'alone', 2 * S, 2 * S)
    pair = pairing.next_pair()
    assert (pair.rgb, pair.depth) == ('alone', None)
    assert pairing.depth_arrived() and pairing.rgb_only_silence_s() is None
    pairing.expire()
    assert record.depth_lost == 1                                  # reported once per loss


def test_a_clock_jump_resets_pairing_and_close_wakes_the_worker():
    record = Recorder()
    pairing = record.pairing(load_settings())
    pairing.offer('rgb', 'old', 100 * S, 100 * S)
    pairing.reset_to(1 * S, 100 * S)                               # sim time restarted
    pairing.offer('depth', 'new', 100 * S, 1 * S)   # the old time line's RGB is gone
    assert pairing.slot.get(timeout=0) is None
    pairing.close()
    assert pairing.next_pair() is None


@pytest.fixture(scope='module')
def settings(tiny_checkpoint):
    return load_settings(overrides={'model.checkpoint': str(tiny_checkpoint),
                                    'model.device': 'cpu', 'certify.num_samples': 4})


def test_a_change_takes_over_at_the_next_frame_and_cancels_the_frame_in_flight(
        settings, tiny_checkpoint):
    swap = EngineSwap(settings)
    first = swap.engines
    token = swap.start_frame()
    token.check()
    more = load_settings(overrides={'model.checkpoint': str(tiny_checkpoint),
                                    'model.device': 'cpu', 'certify.num_samples': 6})
    assert swap.propose(more)                     # replaces the engine configuration
    with pytest.raises(FrameCancelled, match=PARAMETER_CHANGE):
        token.check()
    assert swap.engines is first and swap.latest.certify.num_samples == 6
    swap.end_frame()
    swap.start_frame()
    assert swap.engines is not first and swap.engines.segmenter.config.num_samples == 6
    assert swap.engines.model is first.model      # the same checkpoint is not reloaded
    swap.end_frame()
    # a change outside the engine configuration leaves a frame in flight alone
    token = swap.start_frame()
    slower = load_settings(overrides={'model.checkpoint': str(tiny_checkpoint),
                                      'model.device': 'cpu', 'certify.num_samples': 6,
                                      'sync.slop': 0.1})
    assert not swap.propose(slower)
    token.check()


def test_an_unusable_change_changes_nothing_and_close_stops_the_frames(settings, tmp_path):
    swap = EngineSwap(settings)
    with pytest.raises(UserError, match='model.checkpoint'):
        swap.propose(load_settings(overrides={'model.checkpoint': str(tmp_path / 'no.pt')}))
    assert swap.latest == settings
    assert not swap.close()                       # nothing in flight
    assert swap.start_frame() is None
    other = EngineSwap(settings)
    token = other.start_frame()
    assert other.close()
    with pytest.raises(FrameCancelled, match=SHUTDOWN):
        token.check()
