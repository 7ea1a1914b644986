"""Stamp pairing and the drop-oldest slot: the documented rule on hand-worked scenarios, and
invariants (each message used at most once, every pair within slop, nothing lost from the
counters) on random streams."""
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcert_ros.data.latest_slot import LatestSlot
from mmcert_ros.data.pairing import Pair, StampPairer

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
                                 'unpaired_rgb': 0, 'unpaired_depth': 0, 'paired': 2,
                                 'stamp_zero': 0, 'stamp_duplicate': 0, 'stamp_in_future': 0,
                                 'time_jumps': 0}


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
    # equal stamps in a row of one stream are rejected and counted: as zero stamps after a
    # first stamp 0, as duplicates otherwise
    repeated = sum(a == b for s in (rgb, depth) for a, b in zip(s, s[1:]))
    zeros = sum(max(s.count(0) - 1, 0) for s in (rgb, depth))
    assert (counters['stamp_zero'], counters['stamp_duplicate']) == (zeros, repeated - zeros)
    assert (2 * len(pairs) + counters['unpaired_rgb'] + counters['unpaired_depth']
            + repeated == total)
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


S = 1_000_000_000
DAY = 86_400 * S


def serve(pairer, stamps, depth_first=False, with_clock=False):
    """Offer a synchronized pair per stamp (RGB and depth stamped alike), with the receiver's
    clock at the stamp if ``with_clock``; pairs served."""
    served = 0
    for stamp_ns in stamps:
        halves = [('rgb', stamp_ns), ('depth', stamp_ns)]
        for name, value in (halves[::-1] if depth_first else halves):
            now_ns = stamp_ns if with_clock else None
            served += pairer.add(name, value, (name, value), now_ns) is not None
    return served


def frames(first_ns, count, period_ns=100 * MS):
    return [first_ns + index * period_ns for index in range(count)]


@pytest.mark.parametrize('depth_first', [False, True])
def test_one_future_stamp_does_not_stop_the_other_stream(depth_first):
    base = 1000 * S
    # with the receiver's clock: rejected as stamp_in_future, nothing else changes
    pairer = StampPairer(0.02, future_tolerance_s=1.0)
    assert serve(pairer, frames(base, 5), depth_first, with_clock=True) == 5
    assert pairer.add_depth(base + DAY, 'future', now_ns=base + S) is None
    assert serve(pairer, frames(base + S, 20), depth_first, with_clock=True) == 20
    assert pairer.rejected['stamp_in_future'] == 1 and pairer.time_jumps == 0
    # without a clock (offline), the step back after it is a jump: reported once, then served
    jumps = []   # every reported jump (the node logs each as one WARN)
    pairer = StampPairer(0.02, on_jump=jumps.append)
    serve(pairer, frames(base, 5), depth_first)
    pairer.add_depth(base + DAY, 'future')
    assert serve(pairer, frames(base + S, 20), depth_first) == 20
    assert len(jumps) == 1 and (jumps[0].source, jumps[0].from_ns) == ('depth', base + DAY)
    assert pairer.unpaired['depth'] == 1 and pairer.pending('rgb') == pairer.pending('depth') == 0


@pytest.mark.parametrize('depth_first', [False, True])
def test_a_loop_of_the_same_stamps_is_one_jump_and_every_pair_is_served(depth_first):
    jumps = []   # every reported jump (the node logs each as one WARN)
    pairer = StampPairer(0.02, on_jump=jumps.append)
    loop = frames(1000 * S, 25)
    assert serve(pairer, loop, depth_first) == 25
    assert serve(pairer, loop, depth_first) == 25
    assert serve(pairer, loop, depth_first) == 25
    assert len(jumps) == 2 and pairer.time_jumps == 2
    assert jumps[0].to_ns == loop[0] and jumps[0].from_ns == loop[-1]
    assert 'jumped back 2.400 s' in jumps[0].describe()
    assert pairer.counters()['unpaired_rgb'] == pairer.counters()['unpaired_depth'] == 0


def test_a_straggler_of_the_old_loop_costs_at_most_its_own_pair():
    """The last depth image of a loop arrives after the first RGB image of the next one."""
    jumps = []   # every reported jump (the node logs each as one WARN)
    pairer = StampPairer(0.02, on_jump=jumps.append)
    loop = frames(1000 * S, 25)
    serve(pairer, loop[:-1])
    assert pairer.add_rgb(loop[-1], 'r-last') is None
    assert pairer.add_rgb(loop[0], 'r0') is None          # the jump, seen on rgb
    assert pairer.add_depth(loop[-1], 'd-last') is None   # straggler: its partner is gone
    assert pairer.add_depth(loop[0], 'd0').rgb == 'r0'    # depth follows: not reported again
    assert serve(pairer, loop[1:]) == 24
    assert len(jumps) == 1 and jumps[0].source == 'rgb'
    assert pairer.unpaired == {'rgb': 1, 'depth': 1}


def test_an_older_bag_after_a_live_stream_is_served():
    jumps = []   # every reported jump (the node logs each as one WARN)
    pairer = StampPairer(0.02, on_jump=jumps.append)
    assert serve(pairer, frames(5000 * S, 25)) == 25
    assert serve(pairer, frames(5000 * S - 60 * S, 25), depth_first=True) == 25
    assert len(jumps) == 1 and jumps[0].from_ns - jumps[0].to_ns > 60 * S


def test_zero_stamps_and_duplicates_are_rejected_and_counted():
    rejected = []
    pairer = StampPairer(0.02, on_reject=lambda *args: rejected.append(args))
    assert pairer.add_rgb(0, 'r0') is None
    assert pairer.add_depth(0, 'd0').rgb == 'r0'     # a recording that starts at t = 0
    assert pairer.add_rgb(5 * S, 'r') is None
    assert pairer.add_rgb(5 * S, 'r again') is None         # a duplicate of the same stream
    assert pairer.add_depth(0, 'unstamped') is None         # zero amid stamped messages
    assert pairer.add_depth(5 * S, 'd').rgb == 'r'
    assert pairer.add_depth(5 * S, 'd again') is None
    assert pairer.add_rgb(0, 'unstamped') is None
    assert pairer.rejected == {'stamp_zero': 2, 'stamp_duplicate': 2, 'stamp_in_future': 0}
    assert rejected == [('stamp_duplicate', 'rgb', 5 * S), ('stamp_zero', 'depth', 0),
                        ('stamp_duplicate', 'depth', 5 * S), ('stamp_zero', 'rgb', 0)]
    assert pairer.paired == 2 and pairer.time_jumps == 0
    assert pairer.pending('rgb') == pairer.pending('depth') == 0


def test_pending_messages_expire_by_age_without_further_traffic():
    now = [0.0]                                       # the pairer's monotonic clock, s
    pairer = StampPairer(0.02, max_age_s=0.5, clock=lambda: now[0])
    pairer.add_rgb(7 * S, 'lost partner')
    now[0] = 0.4
    assert pairer.expire() == 0 and pairer.pending('rgb') == 1
    now[0] = 0.6
    assert pairer.expire() == 1
    assert pairer.unpaired['rgb'] == 1 and pairer.pending('rgb') == 0
    with pytest.raises(ValueError, match='max_age_s'):
        pairer.max_age_s = 0


def test_a_clock_jump_resets_once_and_the_stamps_that_follow_are_not_reported_again():
    jumps = []   # every reported jump (the node logs each as one WARN)
    pairer = StampPairer(0.02, on_jump=jumps.append)
    serve(pairer, frames(3000 * S, 5))
    pairer.add_rgb(3000 * S + S, 'old line')
    jump = pairer.reset_to(now_ns=100 * S, from_ns=3001 * S)
    assert jump is jumps[0] and jump.source == 'clock' and jump.dropped == 1
    assert pairer.unpaired['rgb'] == 1
    assert serve(pairer, frames(100 * S, 10), depth_first=True) == 10
    assert len(jumps) == 1
    # the stamps showed a jump first: the clock's own report is then a no-op
    serve(pairer, frames(50 * S, 3))
    assert len(jumps) == 2 and pairer.reset_to(now_ns=50 * S, from_ns=101 * S) is None


@settings(max_examples=150, deadline=None)
@given(segments=st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 12)), min_size=1,
                         max_size=5),
       drop=st.lists(st.booleans(), min_size=60, max_size=60), data=st.data())
def test_random_time_lines_keep_every_invariant(segments, drop, data):
    """Streams made of segments that start anywhere (jumps back and forth, in seconds),
    messages of either stream lost at random, arrival order interleaved arbitrarily."""
    streams = {'rgb': [], 'depth': []}
    index = 0
    for start_s, count in segments:
        for stamp_ns in frames(start_s * S, count):
            for name in streams:
                if not drop[index % len(drop)]:
                    streams[name].append(stamp_ns)
                index += 1
    order = data.draw(st.permutations(['rgb'] * len(streams['rgb'])
                                      + ['depth'] * len(streams['depth'])))
    queues = {name: list(enumerate(values)) for name, values in streams.items()}
    pairer = StampPairer(0.02, max_pending=4)
    pairs = []
    for name in order:
        position, stamp_ns = queues[name].pop(0)
        pair = pairer.add(name, stamp_ns, (name, position))
        if pair is not None:
            pairs.append(pair)
    used = [p.rgb for p in pairs] + [p.depth for p in pairs]
    assert len(used) == len(set(used))
    for pair in pairs:
        assert abs(pair.rgb_stamp_ns - pair.depth_stamp_ns) <= 20 * MS
        assert pair.rgb_stamp_ns == streams['rgb'][pair.rgb[1]]
        assert pair.depth_stamp_ns == streams['depth'][pair.depth[1]]
    pending = pairer.pending('rgb') + pairer.pending('depth')
    counters = pairer.counters()
    assert (2 * len(pairs) + counters['unpaired_rgb'] + counters['unpaired_depth']
            + sum(pairer.rejected.values()) + pending
            == len(streams['rgb']) + len(streams['depth']))


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


def test_a_pairer_keys_everything_by_its_stream_names():
    """The ground-truth pairer of offline evaluation pairs RGB-D pairs ('rgbd') with ground
    truth ('gt'): its pairs, counters and pending queues use those names."""
    pairer = StampPairer(0.005, streams=('rgbd', 'gt'))
    assert pairer.add('gt', 100 * MS, 'mask') is None
    pair = pairer.add('rgbd', 102 * MS, 'rgbd pair')
    assert (pair['rgbd'], pair['gt']) == ('rgbd pair', 'mask')
    assert pair.stamps_ns == {'rgbd': 102 * MS, 'gt': 100 * MS}
    pairer.add('gt', 200 * MS, 'lonely')
    pairer.flush()
    assert pairer.counters() == {'received_rgbd': 1, 'received_gt': 2, 'unpaired_rgbd': 0,
                                 'unpaired_gt': 1, 'paired': 1, 'stamp_zero': 0,
                                 'stamp_duplicate': 0, 'stamp_in_future': 0, 'time_jumps': 0}
    with pytest.raises(ValueError, match="unknown stream 'rgb'"):
        pairer.add('rgb', 300 * MS, 'x')
    with pytest.raises(ValueError, match='two distinct stream names'):
        StampPairer(0.005, streams=('rgb', 'rgb'))


def test_an_rgb_only_pair_has_no_depth():
    pair = Pair.rgb_only('image', 7)
    assert (pair.rgb, pair.depth, pair.rgb_stamp_ns, pair.depth_stamp_ns) == ('image', None, 7,
                                                                              None)


def test_a_copy_re_sent_after_its_predecessor_expired_is_paired():
    """A camera that re-sends one pair: once the first depth copy waited ``max_age_s`` in
    vain (its RGB lost on the way), a later copy is taken and pairs with the RGB that comes."""
    now = [0.0]
    pairer = StampPairer(0.02, max_age_s=5.0, clock=lambda: now[0])
    assert pairer.add_depth(7 * S, 'd') is None
    now[0] = 1.0
    assert pairer.add_depth(7 * S, 'd again') is None        # the first still waits
    assert pairer.rejected['stamp_duplicate'] == 1
    now[0] = 6.0
    assert pairer.expire() == 1 and pairer.unpaired['depth'] == 1
    assert pairer.add_depth(7 * S, 'd re-sent') is None      # its predecessor is gone
    assert pairer.pending('depth') == 1 and pairer.rejected['stamp_duplicate'] == 1
    assert pairer.add_rgb(7 * S, 'r').depth == 'd re-sent'
    assert pairer.add_rgb(7 * S, 'r again') is None          # used: a duplicate
    assert pairer.add_depth(7 * S, 'd once more') is None
    assert pairer.rejected['stamp_duplicate'] == 3 and pairer.paired == 1
