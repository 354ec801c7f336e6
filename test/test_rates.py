"""Frames lost in transport: received rate against the rate the stamps show."""

import numpy as np

from cosmos_reason_ros.core.camera.rates import StreamRateMeter

PERIOD = 1.0 / 30.0


def _feed(meter: StreamRateMeter, indices, start: float = 100.0) -> float:
    """Frames i of a 30 fps camera, arriving in real time; returns the wall time after them."""
    for index in indices:
        meter.add(start + index * PERIOD, 5000.0 + index * PERIOD)
    return start + (max(indices) + 1) * PERIOD


def test_a_whole_stream_is_not_losing_frames():
    meter = StreamRateMeter()
    now = _feed(meter, range(300))
    rate = meter.rate(now)
    assert abs(rate.received_hz - 30.0) < 1.0 and abs(rate.stamps_hz - 30.0) < 1.0
    assert not rate.losing_frames


def test_a_stream_that_loses_nine_frames_in_ten_is():
    meter = StreamRateMeter()
    arrives = np.random.default_rng(7).random(300) < 0.1  # 10 s of a 30 fps camera
    rate = meter.rate(_feed(meter, np.flatnonzero(arrives).tolist()))
    assert rate.received_hz < 5.0 and rate.stamps_hz > 10.0
    assert rate.losing_frames


def test_a_stream_filtered_to_four_per_second_is_not_losing_frames():
    """The DDS stamp filter delivers only the frames the window keeps: their stamps are 4 fps."""
    meter = StreamRateMeter()
    rate = meter.rate(_feed(meter, range(0, 150, 8)))
    assert not rate.losing_frames


def test_too_early_or_too_few_frames_say_nothing():
    meter = StreamRateMeter()
    assert meter.rate(0.0).stamps_hz is None
    now = _feed(meter, range(0, 20, 10))
    assert meter.rate(now).stamps_hz is None and not meter.rate(now).losing_frames


def test_a_jittery_publisher_is_not_losing_frames():
    meter = StreamRateMeter()
    jitter = np.random.default_rng(3).uniform(-0.4, 0.4, 300) * PERIOD
    for index in range(300):
        meter.add(100.0 + index * PERIOD, 5000.0 + index * PERIOD + jitter[index])
    assert not meter.rate(100.0 + 300 * PERIOD).losing_frames


def test_frames_older_than_the_horizon_are_forgotten():
    meter = StreamRateMeter(horizon=5.0)
    _feed(meter, range(150))
    rate = meter.rate(100.0 + 60.0)
    assert rate.received_hz == 0.0 and rate.stamps_hz is None
