"""Depth frames paired with kept colour frames by stamp, decided before anything is converted."""

import threading

import numpy as np
import pytest

from cosmos_reason_ros.core.camera.frames import FrameWindow, Offer, StampBounds
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.depth.matching import DepthMatcher, DepthOffer, LEAD_FLOOR

TOLERANCE = 0.02


def matcher(**kwargs) -> DepthMatcher:
    return DepthMatcher(TOLERANCE, capacity=kwargs.pop('capacity', 64), **kwargs)


def test_exact_stamps_match_in_either_arrival_order():
    pairs = matcher()
    assert pairs.offer_depth(1.0, 'early', colour_wanted=None) is DepthOffer.PENDING
    pairs.colour_kept(1.0)
    pairs.colour_kept(1.25)
    assert pairs.offer_depth(1.25, 'late', colour_wanted=None) is DepthOffer.MATCHED
    assert pairs.match(1.0).payload == 'early'
    assert pairs.match(1.25).payload == 'late'


def test_jittered_stamps_match_the_nearest_depth_within_tolerance():
    pairs = matcher()
    pairs.colour_kept(2.0)
    for stamp in (1.985, 2.004, 2.013, 2.03):
        pairs.offer_depth(stamp, stamp, colour_wanted=None)
    found = pairs.match(2.0)
    assert (found.stamp, found.payload) == (2.004, 2.004)


def test_only_the_depth_of_the_newest_kept_frames_is_held():
    pairs = matcher(capacity=3)
    for index in range(6):
        pairs.colour_kept(index * 0.25)
        pairs.offer_depth(index * 0.25 + 0.002, index, colour_wanted=None)
    assert [pairs.match(index * 0.25) is not None for index in range(6)] == [
        False, False, False, True, True, True]
    assert pairs.forgot(0.25) and not pairs.forgot(0.75) and not pairs.forgot(1.25)
    assert not matcher(capacity=3).forgot(0.0), 'nothing was let go yet'


def test_a_held_frame_keeps_its_depth_past_the_capacity_until_released():
    # A goal holds the frame it answers about; newer frames then push it out of the capacity
    # while the model works, and the answer is lifted after.
    pairs = matcher(capacity=3)
    pairs.colour_kept(0.0)
    pairs.offer_depth(0.002, 'answer frame', colour_wanted=None)
    pairs.hold(0.0)
    pairs.hold(0.0)  # a second goal about the same frame
    for index in range(1, 6):
        pairs.colour_kept(index * 0.25)
        pairs.offer_depth(index * 0.25 + 0.002, index, colour_wanted=None)
    assert pairs.match(0.0).payload == 'answer frame'
    assert not pairs.forgot(0.0)
    assert pairs.match(0.25) is None and pairs.forgot(0.25), 'an unheld frame still goes'
    pairs.release(0.0)
    assert pairs.match(0.0).payload == 'answer frame', 'the second hold keeps it'
    pairs.release(0.0)
    assert pairs.match(0.0) is None and pairs.forgot(0.0)
    pairs.release(0.0)  # releasing again is harmless
    pairs.hold(1.25)
    pairs.clear()
    assert pairs.match(1.25) is None, 'deactivating drops held depth too'


def test_no_depth_within_tolerance_is_no_match():
    pairs = matcher()
    pairs.colour_kept(3.0)
    assert pairs.offer_depth(3.05, 'far', colour_wanted=None) is DepthOffer.PENDING
    assert pairs.match(3.0) is None


def test_depth_arriving_after_later_colour_frames_still_matches_its_own():
    pairs = matcher()
    for stamp in (1.0, 1.25, 1.5, 1.75):
        pairs.colour_kept(stamp)
    assert pairs.offer_depth(1.251, 'late', colour_wanted=None) is DepthOffer.MATCHED
    assert pairs.match(1.25).payload == 'late'
    assert pairs.match(1.5) is None


def test_a_rewind_forgets_the_old_timeline():
    pairs = matcher()
    for stamp in np.arange(0.0, 5.01, 0.25):
        pairs.offer_depth(float(stamp), ('old', float(stamp)), colour_wanted=None)
        pairs.colour_kept(float(stamp))
    assert pairs.match(0.5).payload == ('old', 0.5)
    # The bag loops: depth of the new timeline arrives first, then its colour frames.
    for stamp in (0.0, 0.25, 0.5):
        pairs.offer_depth(stamp + 0.001, ('new', stamp), colour_wanted=None)
        pairs.colour_kept(stamp)
    assert pairs.match(0.5).payload == ('new', 0.5)
    assert pairs.match(0.25).payload == ('new', 0.25)
    assert pairs.match(5.0) is None


def rgbd_stream(*, depth_offset=0.0, jitter=0.0, depth_lag=0, dropped=(), seconds=10.0,
                middleware=True):
    """30 fps colour + depth into a 4 fps window and a matcher, as the node feeds them.

    Depth is stamped `depth_offset` (+- `jitter`, uniform) after its colour frame and reaches
    the matcher `depth_lag` colour frames after it (0: before its colour frame every other
    time); depth frames whose index is in `dropped` are lost. With `middleware`, a depth frame
    is delivered only if it passes the bounds of wanted_stamps() handed out when the last
    colour frame was kept, as a content filter would; else every one is offered (the node's
    own filtering).

    Returns:
        (the matcher, the kept colour stamps, the depth stamp of each colour stamp, the depth
        frames delivered, the offers' outcomes)
    """
    window = FrameWindow(WindowConfig(target_fps=4.0, capacity=64, max_duration=60.0))
    pairs = matcher()
    rng = np.random.default_rng(7)
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    bounds = None
    depth_of, kept, delivered, offers, queue = {}, [], [], [], []

    def arrive(stamp: float) -> None:
        if middleware and bounds is not None and bounds.below <= stamp < bounds.at_least:
            return
        delivered.append(stamp)
        offers.append(pairs.offer_depth(stamp, stamp, colour_wanted=window.wanted_stamps()))

    for index in range(int(seconds * 30)):
        colour = 100.0 + index / 30.0
        depth = colour + depth_offset + rng.uniform(-jitter, jitter)
        depth_of[colour] = depth
        if index not in dropped:
            queue.append(depth)
        if depth_lag == 0 and index % 2 == 0 and queue:
            arrive(queue.pop(0))
        if window.offer(colour, lambda: image) is Offer.KEPT:
            pairs.colour_kept(colour)
            kept.append(colour)
            bounds = pairs.wanted_stamps(window.wanted_stamps())
        while len(queue) > depth_lag:
            arrive(queue.pop(0))
    return pairs, kept, depth_of, delivered, offers


@pytest.mark.parametrize('middleware', [True, False], ids=['content filter', 'node'])
@pytest.mark.parametrize('stream, extra', [
    ({}, 0.0),  # one stamp per capture
    ({'depth_offset': -0.008}, 0.0),  # depth stamped 8 ms before its colour frame
    ({'depth_offset': 0.006}, 0.0),
    # +-4 ms: the lead grows to about 8 ms, so the depth before the slot passes a quarter
    # of the time.
    ({'jitter': 0.004}, 0.35),
], ids=['exact', 'early', 'behind', 'jittered'])
def test_30_fps_depth_stores_one_frame_per_colour_frame_kept_at_4_fps(stream, extra, middleware):
    pairs, kept, depth_of, delivered, offers = rgbd_stream(middleware=middleware, **stream)
    assert len(kept) == pytest.approx(40, abs=1)
    assert [pairs.match(stamp).payload for stamp in kept] == [depth_of[stamp] for stamp in kept]
    stored = sum(offer is not DepthOffer.SKIPPED for offer in offers)
    # Until 8 matches have shown how depth and colour stamps relate, each depth frame
    # within the tolerance before a slot is stored too (6 slots in 10 at 30 fps).
    assert stored <= len(kept) * (1 + extra) + 6, f'{stored} of 300 depth frames stored'
    if middleware:
        assert len(delivered) == stored, 'the filter delivers only what the matcher stores'
    else:
        assert len(delivered) == 300 and pairs.skipped == 300 - stored


@pytest.mark.parametrize('middleware', [True, False], ids=['content filter', 'node'])
def test_depth_arriving_frames_behind_its_colour_still_matches_its_own(middleware):
    pairs, kept, depth_of, delivered, offers = rgbd_stream(depth_lag=3, middleware=middleware)
    assert [pairs.match(stamp).payload for stamp in kept] == [depth_of[stamp] for stamp in kept]
    stored = sum(offer is not DepthOffer.SKIPPED for offer in offers)
    assert stored <= len(kept) + 6
    if middleware:
        # The limit of one blocked range of stamps: depth reaching the middleware after a later
        # colour frame was kept passes the bound below it, so with depth three frames behind
        # four depth frames arrive per kept colour frame (the matcher stores one).
        assert len(delivered) == pytest.approx(4 * len(kept), abs=6)


def test_missing_depth_leaves_its_colour_frame_unmatched_and_the_others_matched():
    dropped = set(range(0, 300, 3))
    pairs, kept, depth_of, _, _ = rgbd_stream(dropped=dropped)
    for stamp in kept:
        index = round((stamp - 100.0) * 30)
        found = pairs.match(stamp)
        if index in dropped:
            assert found is None  # the neighbours are 33 ms away, beyond the tolerance
        else:
            assert found.payload == depth_of[stamp]


def test_the_depth_bounds_narrow_once_matches_show_the_stamps_offset():
    pairs = matcher()
    wanted = StampBounds(at_least=10.249, below=9.501)
    assert pairs.wanted_stamps(None) is None  # an empty window keeps any frame
    # Before any match, depth up to the tolerance before the next slot can match.
    assert pairs.wanted_stamps(wanted) == StampBounds(at_least=10.249 - TOLERANCE,
                                                      below=9.501)
    for index in range(9):
        stamp = 8.0 + index / 4
        pairs.offer_depth(stamp - 0.005, index, colour_wanted=None)
        pairs.colour_kept(stamp)
    # Depth comes 5 ms before its colour frame, always: 5 ms plus the floor; and every stamp
    # up to the tolerance after the newest colour frame (its depth may still come).
    bounds = pairs.wanted_stamps(wanted)
    assert bounds.at_least == pytest.approx(10.249 - 0.005 - LEAD_FLOOR)
    assert bounds.below == pytest.approx(10.0 + TOLERANCE)
    # A rewind forgets the offsets with the matches.
    pairs.colour_kept(1.0)
    assert pairs.wanted_stamps(wanted).at_least == pytest.approx(10.249 - TOLERANCE)


def test_match_waits_for_a_depth_frame_still_on_its_way():
    pairs = matcher()
    pairs.colour_kept(4.0)
    assert pairs.match(4.0, timeout=0.01) is None
    arrived = threading.Timer(0.05, pairs.offer_depth, (4.001, 'behind'),
                              {'colour_wanted': None})
    arrived.start()
    try:
        assert pairs.match(4.0, timeout=30.0).payload == 'behind'
    finally:
        arrived.join()


def test_a_goal_image_stamp_takes_the_nearest_stored_depth():
    pairs = matcher()
    pairs.colour_kept(1.0)
    pairs.offer_depth(1.01, 'near', colour_wanted=None)
    assert pairs.match(1.005).payload == 'near'
    assert pairs.match(7.0) is None


def test_invalid_stamps_and_settings():
    assert matcher().offer_depth(float('nan'), 'x', colour_wanted=None) is DepthOffer.INVALID
    with pytest.raises(ValueError, match='tolerance >= 0'):
        DepthMatcher(-1.0, capacity=4)
