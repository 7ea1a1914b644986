"""Stamp pairing and the drop-oldest slot: the documented rule on hand-worked scenarios, and
invariants (each message used at most once, every pair within slop, nothing lost from the
counters) on random streams."""
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcert_ros.data.pairing import LatestSlot, StampPairer

MS = 1_000_000


def test_identical_stamps_pair_in_either_arrival_order():
    pairer = StampPairer(slop_s=0.0)
    assert pairer.add_rgb(100 * MS, 'r0') is None
    pair = pairer.add_depth(100 * MS, 'd0')
    assert (pair.rgb, pair.depth) == ('r0', 'd0')
    assert pair.rgb_stamp_ns == pair.depth_stamp_ns == 100 * MS
    assert pairer.add_depth(133 * MS, 'd1') is None
    pair = pairer.add_rgb(133 * MS, 'r1')
    assert (pair.rgb, pair.depth) == ('r1', 'd1')
    assert pairer.counters() == {'received_rgb': 2, 'received_depth': 2,
                                 'unpaired_rgb': 0, 'unpaired_depth': 0, 'paired': 2}


def test_pairs_with_the_nearest_pending_message_within_slop():
    pairer = StampPairer(slop_s=0.010)
    pairer.add_depth(90 * MS, 'far')
    pairer.add_depth(98 * MS, 'near')
    pairer.add_depth(115 * MS, 'later')
    pair = pairer.add_rgb(100 * MS, 'r')
    assert pair.depth == 'near'
    # 'far' is 10 ms before the newest RGB stamp: still pairable, still pending
    assert pairer.pending('depth') == 2


def test_ties_go_to_the_older_message():
    pairer = StampPairer(slop_s=0.010)
    pairer.add_depth(95 * MS, 'older')
    pairer.add_depth(105 * MS, 'newer')
    assert pairer.add_rgb(100 * MS, 'r').depth == 'older'


def test_outside_slop_nothing_pairs_and_stale_messages_are_counted():
    pairer = StampPairer(slop_s=0.005)
    assert pairer.add_rgb(100 * MS, 'r0') is None
    assert pairer.add_depth(106 * MS, 'd0') is None      # 6 ms > 5 ms slop
    # r0 is now more than slop behind the newest depth: it can never pair
    assert pairer.unpaired['rgb'] == 1 and pairer.pending('rgb') == 0
    assert pairer.add_rgb(200 * MS, 'r1') is None        # d0 expires
    assert pairer.unpaired['depth'] == 1
    assert pairer.paired == 0


def test_each_message_is_used_at_most_once():
    pairer = StampPairer(slop_s=0.010)
    pairer.add_depth(100 * MS, 'd')
    assert pairer.add_rgb(100 * MS, 'r0').depth == 'd'
    assert pairer.add_rgb(101 * MS, 'r1') is None


def test_pending_queue_is_bounded_and_overflow_counted():
    pairer = StampPairer(slop_s=1.0, max_pending=3)
    for index in range(5):
        pairer.add_rgb(index * MS, index)
    assert pairer.pending('rgb') == 3 and pairer.unpaired['rgb'] == 2
    assert pairer.add_depth(0, 'd').rgb == 2    # the two oldest were dropped


def test_flush_counts_leftovers():
    pairer = StampPairer(slop_s=0.0)
    pairer.add_rgb(1, 'a')
    pairer.add_depth(2, 'b')      # 'a' can no longer pair: expired at once
    assert pairer.unpaired == {'rgb': 1, 'depth': 0}
    assert pairer.flush() == 1
    assert pairer.unpaired == {'rgb': 1, 'depth': 1}
    assert pairer.pending('rgb') == pairer.pending('depth') == 0


def test_slop_can_change_between_messages_and_is_validated():
    pairer = StampPairer(slop_s=0.0)
    pairer.add_rgb(100 * MS, 'r')
    pairer.slop_s = 0.002
    assert pairer.add_depth(101 * MS, 'd').rgb == 'r'
    with pytest.raises(ValueError, match='slop'):
        pairer.slop_s = -0.1
    with pytest.raises(ValueError, match='slop'):
        StampPairer(float('nan'))
    with pytest.raises(ValueError, match='stream'):
        pairer.add('lidar', 0, None)


stream = st.lists(st.integers(0, 400), min_size=0, max_size=25).map(sorted)


@settings(max_examples=150, deadline=None)
@given(rgb=stream, depth=stream, slop_ms=st.integers(0, 30), max_pending=st.integers(1, 6),
       data=st.data())
def test_random_interleavings_keep_every_invariant(rgb, depth, slop_ms, max_pending, data):
    # each stream in stamp order, the two interleaved arbitrarily (network arrival order)
    order = data.draw(st.permutations(['rgb'] * len(rgb) + ['depth'] * len(depth)))
    queues = {'rgb': list(enumerate(rgb)), 'depth': list(enumerate(depth))}
    pairer = StampPairer(slop_s=slop_ms / 1000, max_pending=max_pending)
    pairs = []
    for name in order:
        index, stamp = queues[name].pop(0)
        pair = pairer.add(name, stamp * MS, (name, index))
        assert pairer.pending('rgb') <= max_pending and pairer.pending('depth') <= max_pending
        if pair is not None:
            pairs.append(pair)
    used = [p.rgb for p in pairs] + [p.depth for p in pairs]
    assert len(used) == len(set(used))
    for pair in pairs:
        assert pair.rgb[0] == 'rgb' and pair.depth[0] == 'depth'
        assert abs(pair.rgb_stamp_ns - pair.depth_stamp_ns) <= slop_ms * MS
        assert pair.rgb_stamp_ns == rgb[pair.rgb[1]] * MS
        assert pair.depth_stamp_ns == depth[pair.depth[1]] * MS
    leftover = pairer.flush()
    counters = pairer.counters()
    assert counters['paired'] == len(pairs)
    total = len(rgb) + len(depth)
    assert 2 * len(pairs) + counters['unpaired_rgb'] + counters['unpaired_depth'] == total
    assert leftover <= total


@settings(max_examples=100, deadline=None)
@given(stamps=st.lists(st.integers(0, 10_000), min_size=1, max_size=30, unique=True).map(sorted),
       rgb_first=st.lists(st.booleans(), min_size=30, max_size=30))
def test_synchronized_sensor_pairs_everything_exactly(stamps, rgb_first):
    """A driver that stamps RGB and depth of one exposure identically loses nothing, whatever
    half arrives first, even with zero slop."""
    pairer = StampPairer(slop_s=0.0, max_pending=1)
    for stamp, first in zip(stamps, rgb_first):
        halves = [('rgb', stamp), ('depth', stamp)]
        for name, value in (halves if first else halves[::-1]):
            pair = pairer.add(name, value, value)
        assert (pair.rgb, pair.depth) == (stamp, stamp)
    assert pairer.counters()['paired'] == len(stamps)
    assert pairer.flush() == 0


def test_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.get(timeout=0) == 3
    assert slot.get(timeout=0) is None
    assert (slot.dropped, slot.delivered) == (2, 1)


def test_slot_get_wakes_on_put_and_on_close():
    slot = LatestSlot()
    received = []
    consumer = threading.Thread(target=lambda: received.extend([slot.get(), slot.get()]))
    consumer.start()
    slot.put('frame')
    slot.close()
    consumer.join(timeout=10)
    assert not consumer.is_alive()
    assert received[0] == 'frame' and received[1] is None
    assert slot.closed


def test_slot_hands_over_without_loss_when_the_consumer_keeps_up():
    slot = LatestSlot()
    got = []
    done = threading.Event()

    def consume():
        while (item := slot.get()) is not None:
            got.append(item)
            done.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    for index in range(50):
        done.clear()
        slot.put(index)
        assert done.wait(timeout=10)
    slot.close()
    consumer.join(timeout=10)
    assert got == list(range(50)) and slot.dropped == 0
