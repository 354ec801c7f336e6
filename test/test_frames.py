"""Tests of the frame window: stamp sampling, bounds, rewinds, selection and freshness.

Images are tiny arrays; no ROS graph is needed.
"""

import threading

import numpy as np
import pytest

from cosmos_reason_ros.core.camera.frames import (
    Frame,
    FrameWindow,
    Offer,
    Resize,
    Rewind,
    STAMP_MARGIN,
)
from cosmos_reason_ros.core.camera.images import DecodedImage, ImageDecodeError
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.errors import InvalidRequestError, NoFramesError, StaleFramesError


def tiny_image() -> np.ndarray:
    return np.zeros((4, 6, 3), np.uint8)


class CountingConvert:
    """A convert callable that counts its calls."""

    def __init__(self, image: np.ndarray | None = None):
        self.calls = 0
        self._image = tiny_image() if image is None else image

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return self._image


def fill(window: FrameWindow, stamps) -> list[Offer]:
    return [window.offer(stamp, tiny_image) for stamp in stamps]


def kept_stamps(window: FrameWindow) -> list[float]:
    return [frame.stamp for frame in window.select(end=None, duration=1e9, max_frames=10**6,
                                                   even=False)]


def stream(fps: float, seconds: float, start: float = 0.0, jitter: float = 0.0,
           seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    count = int(round(seconds * fps))
    stamps = start + np.arange(count) / fps + rng.uniform(-jitter, jitter, count)
    return sorted(float(stamp) for stamp in stamps)


def window(**overrides) -> FrameWindow:
    return FrameWindow(WindowConfig(**overrides))


def stamps_at(fps: float, seconds: float) -> list[float]:
    return [index / fps for index in range(int(round(seconds * fps)))]


# -- sampling by header stamp ------------------------------------------------------------------

@pytest.mark.parametrize('name, stamps, expected', [
    ('30 fps', stream(30.0, 10.0), 40),
    ('29.97 fps', stream(29.97, 10.0), 40),
    ('jittery 30 fps', stream(30.0, 10.0, jitter=0.008, seed=1), 40),
    ('30 fps at epoch time', stream(30.0, 10.0, start=1.7e9), 40),
    ('60 fps', stream(60.0, 10.0), 40),
    ('5 fps (just above target)', stream(5.0, 10.0), 40),
    ('2 fps (below target): all kept', stream(2.0, 10.0), 20),
])
def test_kept_rate_follows_target_fps(name, stamps, expected):
    frames = window(target_fps=4.0)
    fill(frames, stamps)
    kept = kept_stamps(frames)
    assert abs(len(kept) - expected) <= 1, name
    spacing = np.diff(kept)
    assert spacing.min() >= 0.125 - 1e-6, name
    # A kept frame may wait up to one camera period past its slot's start.
    assert spacing.max() <= 0.25 + 10.0 / len(stamps) + 0.02, name


def test_target_fps_is_a_setting():
    frames = window(target_fps=10.0)
    fill(frames, stream(30.0, 10.0))
    assert frames.stats.kept == 100


def test_only_kept_frames_are_converted():
    frames = window(target_fps=4.0)
    converts = CountingConvert()
    results = []
    for stamp in stream(30.0, 10.0):
        wanted = frames.wants(stamp)
        before = converts.calls
        results.append(frames.offer(stamp, converts))
        assert wanted == (results[-1] is Offer.KEPT)
        assert converts.calls == before + wanted
    assert converts.calls == results.count(Offer.KEPT) == 40
    assert frames.stats.skipped == 260


def test_wants_has_no_side_effects():
    frames = window()
    assert frames.wants(1.0) and frames.wants(1.0)
    assert frames.stats.offered == 0 and frames.newest_stamp is None


def test_an_empty_window_wants_every_stamp():
    assert window().wanted_stamps() is None


def inside(bounds, stamp: float) -> bool:
    return bounds is None or stamp >= bounds.at_least or stamp < bounds.below


LOOPED_BAG = stream(30.0, 3.0, start=100.0) + stream(30.0, 3.0, start=100.0, seed=2)


@pytest.mark.parametrize('name, stamps', [
    ('30 fps at epoch time, jittery', stream(30.0, 10.0, start=1.7e9, jitter=0.008, seed=3)),
    ('29.97 fps', stream(29.97, 10.0, start=1.7e9)),
    ('60 fps from zero (sim time)', stream(60.0, 5.0)),
    ('2 fps (below target)', stream(2.0, 10.0, start=1.7e9)),
    ('a bag played twice', LOOPED_BAG),
])
def test_frames_outside_the_wanted_stamps_would_be_skipped(name, stamps):
    # A middleware filter on wanted_stamps() must not change what the window keeps.
    everything, filtered = window(target_fps=4.0), window(target_fps=4.0)
    fill(everything, stamps)
    delivered = 0
    for stamp in stamps:
        if inside(filtered.wanted_stamps(), stamp):
            delivered += 1
            filtered.offer(stamp, tiny_image)
    assert kept_stamps(filtered) == kept_stamps(everything), name
    assert filtered.stats.rewinds == everything.stats.rewinds, name
    assert delivered <= filtered.stats.kept * 1.1 + 2, name


def test_wanted_stamps_never_exclude_a_wanted_frame_near_the_bounds():
    frames = window(target_fps=4.0)
    rng = np.random.default_rng(4)
    for newest in 1.7e9 + rng.uniform(0.0, 100.0, 200):
        frames.clear()
        frames.offer(float(newest), tiny_image)
        bounds = frames.wanted_stamps()
        for stamp in np.concatenate([bounds.at_least + np.linspace(-0.01, 0.01, 41),
                                     bounds.below + np.linspace(-0.01, 0.01, 41)]):
            if frames.wants(float(stamp)):
                assert inside(bounds, float(stamp))
        assert bounds.at_least + STAMP_MARGIN >= newest + 0.125 - 1e-6
        assert bounds.below == pytest.approx(newest - 0.5 + STAMP_MARGIN)


def test_failed_conversion_is_counted_invalid_and_reraised():
    frames = window(target_fps=4.0)
    frames.offer(0.0, tiny_image)

    def broken() -> np.ndarray:
        raise ImageDecodeError('corrupt JPEG')

    with pytest.raises(ImageDecodeError, match='corrupt JPEG'):
        frames.offer(0.25, broken)
    stats = frames.stats
    assert (stats.offered, stats.kept, stats.invalid, stats.fill) == (2, 1, 1, 1)
    # The failed frame did not use up its slot: the next frame in it is kept.
    assert frames.offer(0.26, tiny_image) is Offer.KEPT


@pytest.mark.parametrize('returned', [
    np.zeros((4, 6), np.uint8),
    np.zeros((4, 6, 4), np.uint8),
    np.zeros((4, 6, 3), np.float32),
    np.zeros((0, 6, 3), np.uint8),
    None,
])
def test_convert_must_return_rgb_uint8(returned):
    frames = window()
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        frames.offer(0.0, lambda: returned)
    assert frames.stats.invalid == 1 and frames.stats.fill == 0


@pytest.mark.parametrize('stamp', [float('nan'), float('inf'), float('-inf')])
def test_non_finite_stamp_is_invalid_without_converting(stamp):
    frames = window()
    converts = CountingConvert()
    assert not frames.wants(stamp)
    assert frames.offer(stamp, converts) is Offer.INVALID
    assert converts.calls == 0 and frames.stats.invalid == 1


# -- out-of-order frames and rewinds -----------------------------------------------------------

def test_backwards_jump_confirmed_by_a_second_frame_clears_and_is_reported_once():
    frames = window(target_fps=4.0, rewind_threshold=0.5)
    fill(frames, stream(30.0, 5.0, start=100.0))
    newest = frames.newest_stamp
    converts = CountingConvert()
    assert not frames.wants(100.0)
    assert frames.offer(100.0, converts) is Offer.PENDING
    assert converts.calls == 0 and frames.newest_stamp == newest
    assert frames.wants(100.0 + 1 / 30)
    assert frames.offer(100.0 + 1 / 30, tiny_image) is Offer.REWOUND
    assert frames.stats.fill == 1 and frames.stats.rewinds == 1
    assert frames.last_rewind == Rewind(previous=newest, stamp=100.0 + 1 / 30)
    later = fill(frames, stream(30.0, 4.9, start=100.0 + 2 / 30))
    assert Offer.REWOUND not in later
    assert frames.stats.rewinds == 1 and frames.stats.fill == 20


@pytest.mark.parametrize('stray', [0.0, 100.0, 105.0 - 10.0, 105.0 + 60.0, 1e10])
def test_one_stray_stamp_neither_clears_nor_takes_over_the_window(stray):
    frames = window(target_fps=4.0, rewind_threshold=0.5, jump_threshold=10.0)
    fill(frames, stream(30.0, 5.0, start=100.0))
    held = kept_stamps(frames)
    assert frames.offer(stray, tiny_image) is Offer.PENDING
    assert kept_stamps(frames) == held
    after = fill(frames, stream(30.0, 2.0, start=105.0))
    assert Offer.REWOUND not in after and frames.stats.rewinds == 0
    assert kept_stamps(frames)[:len(held)] == held
    assert frames.newest_stamp == pytest.approx(106.75, abs=0.04)


def test_a_forward_jump_confirmed_by_a_second_frame_continues_the_window():
    frames = window(target_fps=4.0, jump_threshold=10.0, max_duration=30.0)
    fill(frames, stream(4.0, 2.0, start=100.0))
    assert frames.offer(160.0, tiny_image) is Offer.PENDING
    assert frames.offer(160.25, tiny_image) is Offer.KEPT
    assert kept_stamps(frames) == [160.25]


def test_a_change_of_camera_size_starts_a_new_window():
    frames = window(target_fps=4.0, max_pixels=10**6)
    fill(frames, [1.0, 1.25])
    other = np.zeros((8, 10, 3), np.uint8)
    assert frames.offer(1.5, lambda: other) is Offer.RESIZED
    assert frames.stats.fill == 1 and frames.stats.resizes == 1
    assert frames.last_resize == Resize(previous=(6, 4), size=(10, 8))
    assert frames.offer(1.75, lambda: other) is Offer.KEPT
    assert {frame.source_size for frame in frames.select(
        end=None, duration=10.0, max_frames=10, even=False)} == {(10, 8)}


def test_a_reduced_decode_keeps_the_camera_size_as_source_size():
    frames = window(max_pixels=10**6)
    reduced = DecodedImage(np.zeros((4, 6, 3), np.uint8), source_size=(48, 32))
    frames.offer(1.0, lambda: reduced)
    (frame,) = frames.select(end=None, duration=1.0, max_frames=1, even=False)
    assert frame.source_size == (48, 32) and frame.image.shape == (4, 6, 3)


@pytest.mark.parametrize('step_back', [0.0, 0.01, 0.2, 0.5])
def test_small_step_back_is_skipped_without_converting(step_back):
    frames = window(rewind_threshold=0.5)
    frames.offer(10.0, tiny_image)
    converts = CountingConvert()
    assert frames.offer(10.0 - step_back, converts) is Offer.SKIPPED
    assert converts.calls == 0
    assert frames.newest_stamp == 10.0 and frames.stats.rewinds == 0


def test_clear_empties_the_window_and_keeps_counting():
    frames = window()
    fill(frames, stream(30.0, 2.0))
    frames.clear()
    assert frames.newest_stamp is None and frames.stats.fill == 0
    assert frames.stats.offered == 60
    assert frames.offer(0.0, tiny_image) is Offer.KEPT


# -- bounds ------------------------------------------------------------------------------------

def test_capacity_drops_the_oldest():
    frames = window(target_fps=4.0, capacity=5)
    fill(frames, stamps_at(4.0, 10.0))
    assert kept_stamps(frames) == [8.75, 9.0, 9.25, 9.5, 9.75]


def test_max_duration_is_relative_to_the_newest_frame():
    frames = window(target_fps=4.0, max_duration=2.0)
    fill(frames, stamps_at(4.0, 10.0))
    kept = kept_stamps(frames)
    assert kept[0] == 7.75 and kept[-1] == 9.75
    assert frames.stats.span == pytest.approx(2.0)


@pytest.mark.parametrize('setting', [
    {'target_fps': 0.0}, {'capacity': 0}, {'max_duration': 0.0}, {'max_pixels': 0},
    {'rewind_threshold': -1.0},
])
def test_invalid_settings_are_refused(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=name):
        window(**setting)


# -- downscaling on arrival --------------------------------------------------------------------

@pytest.mark.parametrize('width, height, max_pixels, stored', [
    (1920, 1080, 640 * 360, (640, 360)),
    (640, 480, 640 * 360, (554, 415)),
    (320, 240, 640 * 360, (320, 240)),
    (1280, 720, 1000, None),
])
def test_frames_are_stored_downscaled(width, height, max_pixels, stored):
    frames = window(max_pixels=max_pixels)
    frames.offer(1.0, CountingConvert(np.zeros((height, width, 3), np.uint8)), frame_id='cam')
    (frame,) = frames.select(end=None, duration=1.0, max_frames=1, even=False)
    stored_height, stored_width = frame.image.shape[:2]
    assert stored_width * stored_height <= max_pixels
    if stored is not None:
        assert (stored_width, stored_height) == stored
    assert frame.source_size == (width, height)
    assert frame.frame_id == 'cam'
    assert not frame.image.flags.writeable


# -- selecting frames for a goal ---------------------------------------------------------------

@pytest.mark.parametrize('name, end, duration, max_frames, even, expected', [
    ('newest, 1 s', None, 1.0, 16, False, [9.0, 9.25, 9.5, 9.75]),
    ('end between frames', 5.1, 1.0, 16, False, [4.25, 4.5, 4.75, 5.0]),
    ('end on a frame', 5.0, 1.0, 16, False, [4.25, 4.5, 4.75, 5.0]),
    ('end after the newest', 50.0, 0.5, 16, False, [9.5, 9.75]),
    ('end on the first frame', 0.0, 1.0, 16, False, [0.0]),
    ('even drops the oldest', None, 1.2, 16, True, [9.0, 9.25, 9.5, 9.75]),
    ('even keeps a single frame', None, 0.1, 16, True, [9.75]),
    ('one frame', None, 10.0, 1, False, [9.75]),
    ('stride from the newest', None, 100.0, 8, False,
     [1.0, 2.25, 3.5, 4.75, 6.0, 7.25, 8.5, 9.75]),
    ('odd max_frames with even', None, 100.0, 5, True, [3.75, 5.75, 7.75, 9.75]),
])
def test_select(name, end, duration, max_frames, even, expected):
    frames = window(target_fps=4.0)
    fill(frames, stamps_at(4.0, 10.0))
    chosen = frames.select(end=end, duration=duration, max_frames=max_frames, even=even)
    assert [frame.stamp for frame in chosen] == pytest.approx(expected), name


@pytest.mark.parametrize('held, max_frames', [(10, 4), (40, 16), (17, 16), (40, 3)])
def test_subsampling_keeps_the_newest_and_spreads_evenly(held, max_frames):
    frames = window(target_fps=4.0)
    fill(frames, stamps_at(4.0, held / 4.0))
    chosen = frames.select(end=None, duration=100.0, max_frames=max_frames, even=False)
    indices = [round(frame.stamp * 4) for frame in chosen]
    assert len(chosen) == max_frames
    assert indices[-1] == held - 1
    gaps = np.diff(indices)
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1


def test_select_on_an_empty_window_names_the_source():
    frames = window(source='/camera/image_raw')
    with pytest.raises(NoFramesError, match="'/camera/image_raw' yet: is the camera publishing"):
        frames.select(end=None, duration=1.0, max_frames=4, even=False)


def test_select_before_the_first_frame_says_where_the_window_starts():
    frames = window()
    fill(frames, stamps_at(4.0, 10.0)[8:])
    with pytest.raises(NoFramesError) as raised:
        frames.select(end=1.0, duration=1.0, max_frames=4, even=False)
    assert 'no frame' in str(raised.value) and "'image'" in str(raised.value)
    assert 't=1.000' in str(raised.value) and 'starts at t=2.000' in str(raised.value)


@pytest.mark.parametrize('duration, max_frames, end', [
    (0.0, 4, None), (-1.0, 4, None), (1.0, 0, None), (1.0, 4, float('nan')),
])
def test_select_refuses_bad_arguments(duration, max_frames, end):
    frames = window()
    frames.offer(0.0, tiny_image)
    with pytest.raises(InvalidRequestError):
        frames.select(end=end, duration=duration, max_frames=max_frames, even=False)


# -- freshness ---------------------------------------------------------------------------------

@pytest.mark.parametrize('now, stale', [(10.0, False), (11.9, False), (12.0, False),
                                        (12.5, True), (9.0, False)])
def test_check_fresh(now, stale):
    frames = window(source='/front/image')
    frames.offer(10.0, tiny_image)
    if not stale:
        frames.check_fresh(now, 2.0)
        return
    with pytest.raises(StaleFramesError) as raised:
        frames.check_fresh(now, 2.0)
    message = str(raised.value)
    assert "'/front/image'" in message and '2.50 s old' in message
    assert 'max_frame_age' in message


def test_check_fresh_on_an_empty_window():
    with pytest.raises(NoFramesError, match='is the camera publishing'):
        window().check_fresh(0.0, 2.0)


# -- threads -----------------------------------------------------------------------------------

def test_convert_runs_without_the_lock_and_a_frame_overtaken_meanwhile_is_skipped():
    frames = window(target_fps=4.0)
    frames.offer(0.0, tiny_image)
    inner = []

    def convert_while_another_frame_arrives() -> np.ndarray:
        # Would deadlock if offer() held its lock while converting.
        inner.append(frames.offer(0.30, tiny_image))
        return tiny_image()

    outcome = []
    worker = threading.Thread(
        target=lambda: outcome.append(frames.offer(0.26, convert_while_another_frame_arrives)))
    worker.start()
    worker.join(timeout=5.0)
    assert not worker.is_alive()
    assert inner == [Offer.KEPT] and outcome == [Offer.SKIPPED]
    assert kept_stamps(frames) == [0.0, 0.30]
    stats = frames.stats
    assert stats.offered == stats.kept + stats.skipped + stats.invalid == 3


def test_offering_and_selecting_from_two_threads():
    frames = window(target_fps=4.0, capacity=32)
    errors: list[BaseException] = []
    done = threading.Event()
    selections = [0]

    def produce() -> None:
        try:
            for stamp in stream(30.0, 60.0, jitter=0.005):
                frames.offer(stamp, tiny_image)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            done.set()

    def consume() -> None:
        try:
            finished = False
            while not finished:
                finished = done.is_set()  # one more pass after the producer is done
                try:
                    chosen = frames.select(end=None, duration=4.0, max_frames=8, even=True)
                except NoFramesError:
                    continue
                stamps = [frame.stamp for frame in chosen]
                assert stamps == sorted(stamps)
                assert len(chosen) % 2 == 0 or len(chosen) == 1
                assert frames.stats.fill <= 32
                selections[0] += 1
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10.0)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    stats = frames.stats
    assert stats.offered == 1800 and abs(stats.kept - 240) <= 1 and stats.fill == 32
    assert selections[0] > 0


def test_frames_compare_by_identity():
    image = tiny_image()
    first = Frame(stamp=1.0, image=image, source_size=(6, 4))
    assert first == first and first != Frame(stamp=1.0, image=image, source_size=(6, 4))
    assert len({first}) == 1
