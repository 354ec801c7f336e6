"""Depth frames paired with kept colour frames by stamp, decided before anything is converted."""

import threading

import numpy as np
import pytest

from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.depth_matching import DepthMatcher, DepthOffer
from cosmos_reason_ros.core.frames import FrameWindow, Offer

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


def test_30_fps_depth_stores_only_frames_near_the_colour_frames_kept_at_4_fps():
    window = FrameWindow(WindowConfig(target_fps=4.0, capacity=64, max_duration=60.0))
    pairs = matcher()
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    offers = []
    kept = []
    for index in range(300):  # 10 s of both streams; depth arrives first half of the time
        stamp = 100.0 + index / 30.0
        depth_first = index % 2 == 0
        if depth_first:
            offers.append(pairs.offer_depth(stamp, stamp, colour_wanted=window.wanted_stamps()))
        if window.offer(stamp, lambda: image) is Offer.KEPT:
            pairs.colour_kept(stamp)
            kept.append(stamp)
        if not depth_first:
            offers.append(pairs.offer_depth(stamp, stamp, colour_wanted=window.wanted_stamps()))
    assert len(kept) == pytest.approx(40, abs=1)
    assert all(pairs.match(stamp).payload == stamp for stamp in kept)
    stored = sum(offer is not DepthOffer.SKIPPED for offer in offers)
    assert stored <= 2 * len(kept) + 1, f'{stored} of 300 depth frames stored'
    assert pairs.skipped == 300 - stored


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
