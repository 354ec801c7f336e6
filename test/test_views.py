"""Several cameras on one clock: per-camera windows and views synchronised by header stamp (core,
no ROS), then goals over two cameras through the Reasoner (scripted backend).
"""

import dataclasses
import random

import numpy as np
import pytest
from scripted_backend import ScriptedBackend

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.camera.frames import FrameWindow
from cosmos_reason_ros.core.camera.views import CameraWindows, View
from cosmos_reason_ros.core.config import GoalDefaults, GoalLimits, WindowConfig
from cosmos_reason_ros.core.errors import InvalidRequestError, NoFramesError, StaleFramesError
from cosmos_reason_ros.core.reasoner import outcome_message, Reasoner, ReasonRequest

START = 100.0
SELECT = {'end': None, 'duration': 4.0, 'max_frames': 16, 'even': False}


def stream(fps: float, seconds: float, *, offset: float = 0.0, jitter: float = 0.0,
           gap: tuple[float, float] | None = None, seed: int = 0) -> list[float]:
    """Header stamps of a camera from START, with uniform jitter and an optional dropout."""
    rng = random.Random(seed)
    stamps = [START + offset + k / fps + rng.uniform(-jitter, jitter)
              for k in range(int(seconds * fps))]
    if gap is not None:
        stamps = [s for s in stamps if not gap[0] <= s < gap[1]]
    return stamps


def camera(name: str, stamps: list[float], size: tuple[int, int] = (16, 12)) -> FrameWindow:
    """A camera's 4 fps window fed with `stamps` (images of `size`, width x height)."""
    window = FrameWindow(WindowConfig(source=f'{name}/image'))
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for stamp in stamps:
        window.offer(stamp, lambda: image)
    return window


def cameras(**streams) -> CameraWindows:
    return CameraWindows({name: camera(name, stamps) for name, stamps in streams.items()})


def stamps(view: View) -> list[float]:
    return [frame.stamp for frame in view.frames]


def assert_same_slots(reference: View, other: View, tolerance: float) -> None:
    """Frame k of `other` lies within the tolerance of frame k of `reference`, and nearer to it
    than to any other slot of the reference.
    """
    slots = stamps(reference)
    for k, stamp in enumerate(stamps(other)):
        assert abs(stamp - slots[k]) <= tolerance
        assert min(range(len(slots)), key=lambda i: abs(slots[i] - stamp)) == k


# --- the synchronised selection ------------------------------------------------------------------

def test_two_cameras_at_30fps_with_jitter_and_a_7ms_offset_pick_the_same_slots():
    windows = cameras(head=stream(30, 10, jitter=0.004, seed=1),
                      wrist=stream(30, 10, offset=0.007, jitter=0.004, seed=2))
    head, wrist = windows.select(('head', 'wrist'), **SELECT)
    assert (head.name, wrist.name) == ('head', 'wrist')
    assert len(head.frames) == len(wrist.frames) == 16
    assert head.missing == wrist.missing == ()
    assert_same_slots(head, wrist, windows.sync_tolerance)
    # Both cameras keep the first frame of each 250 ms slot: a frame period apart at most.
    assert max(abs(a - b) for a, b in zip(stamps(head), stamps(wrist))) < 0.05
    # The goal's order is the prompt order; the slots are the same either way.
    wrist_first, head_second = windows.select(('wrist', 'head'), **SELECT)
    assert (wrist_first.name, head_second.name) == ('wrist', 'head')
    assert stamps(wrist_first) == stamps(wrist) and stamps(head_second) == stamps(head)


def test_a_camera_dropping_out_for_2s_inside_the_window_names_those_slots():
    windows = cameras(head=stream(30, 10, jitter=0.004, seed=3),
                      wrist=stream(30, 10, offset=0.007, jitter=0.004, seed=4,
                                   gap=(START + 7.0, START + 9.0)))
    head, wrist = windows.select(('head', 'wrist'), **SELECT)
    assert len(head.frames) == 16 and head.missing == ()
    dropped = [s for s in stamps(head) if START + 7.0 <= s < START + 9.0]
    assert len(dropped) == 8
    assert wrist.missing == pytest.approx(dropped)
    assert len(wrist.frames) == 8
    assert not set(stamps(wrist)) & set(range(107, 109))
    # The slots the wrist had a frame for are still the head's slots, none shifted.
    kept_slots = [s for s in stamps(head) if s not in dropped]
    assert all(abs(a - b) <= 0.05 for a, b in zip(kept_slots, stamps(wrist)))


def test_a_15fps_camera_beside_a_30fps_camera():
    windows = cameras(head=stream(30, 10, jitter=0.004, seed=5),
                      wrist=stream(15, 10, offset=0.007, jitter=0.004, seed=6))
    head, wrist = windows.select(('head', 'wrist'), **SELECT)
    assert len(head.frames) == len(wrist.frames) == 16
    assert wrist.missing == ()
    assert_same_slots(head, wrist, windows.sync_tolerance)


def test_the_camera_with_the_most_frames_sets_the_slots():
    # The wrist runs at 2 fps (all its frames kept); the head's 4 fps frames set the slots.
    windows = cameras(wrist=stream(2, 10, offset=0.01), head=stream(30, 10))
    wrist, head = windows.select(('wrist', 'head'), **SELECT)
    assert len(head.frames) == 16 and head.missing == ()
    assert len(wrist.frames) == 8 and len(wrist.missing) == 8


def test_a_slot_takes_the_nearest_unused_frame_even_past_the_one_used_last():
    # With a wide tolerance, the frame nearest a slot may already serve the slot before it;
    # the slot then takes the next frame, if that lies within the tolerance.
    windows = CameraWindows({'head': camera('head', [0.24, 0.37]),
                             'wrist': camera('wrist', [0.40, 0.55])}, sync_tolerance=0.2)
    head, wrist = windows.select(('head', 'wrist'), end=0.5, duration=1.0, max_frames=4,
                                 even=False)
    assert stamps(wrist) == [0.40, 0.55] and wrist.missing == ()


def test_a_view_with_no_frame_near_any_slot_is_an_error_naming_it():
    windows = cameras(head=stream(30, 10), wrist=stream(30, 4))
    with pytest.raises(NoFramesError, match=r"^camera 'wrist': no frame within 0\.1 s of any "
                                            r'of the 16 slot times'):
        windows.select(('head', 'wrist'), **{**SELECT, 'end': START + 9.9})
    # Without an end, the window ends where every camera still has frames.
    head, wrist = windows.select(('head', 'wrist'), **SELECT)
    assert stamps(head)[-1] <= START + 4.1 and wrist.missing == ()


def test_a_camera_that_never_published_is_named():
    windows = CameraWindows({'head': camera('head', stream(30, 2)), 'wrist': camera('wrist', [])})
    with pytest.raises(NoFramesError, match=r"^camera 'wrist': no frame on 'wrist/image' yet"):
        windows.select(('head', 'wrist'), **SELECT)
    with pytest.raises(NoFramesError, match=r"^camera 'wrist': no frame on 'wrist/image' yet"):
        windows.check_fresh(('head', 'wrist'), now=START + 2.0, max_age=2.0)
    assert not windows.ready(('head', 'wrist'), None)
    assert windows.ready(('head',), None)


def test_a_stale_camera_is_named_with_its_age():
    windows = cameras(head=stream(30, 10), wrist=stream(30, 5))
    now = START + 10.0
    age = now - windows.window('wrist').newest_stamp
    with pytest.raises(StaleFramesError) as caught:
        windows.check_fresh(('head', 'wrist'), now=now, max_age=2.0)
    assert str(caught.value).startswith("camera 'wrist': the newest frame on 'wrist/image' is "
                                        f'{age:.2f} s old')
    windows.check_fresh(('head',), now=now, max_age=2.0)  # the head alone is fresh


@pytest.mark.parametrize('requested, max_cameras, message', [
    (('head', 'tail'), 4, r"unknown camera 'tail': this node has 'head', 'wrist', 'left'"),
    (('head', 'head'), 4, r"names camera 'head' more than once.*'head', 'wrist', 'left'"),
    ((), 2, r"asks about 3 cameras, more than goal.max_cameras \(2\).*'head', 'wrist', 'left'"),
    (('',), 4, r"unknown camera '': this node has 'head', 'wrist', 'left'"),
])
def test_goal_cameras_that_cannot_be_had_are_invalid_and_list_the_known_ones(
        requested, max_cameras, message):
    windows = cameras(head=[], wrist=[], left=[])
    with pytest.raises(InvalidRequestError, match=message):
        windows.resolve(requested, max_cameras)


def test_no_goal_cameras_means_every_camera_in_configuration_order():
    windows = cameras(wrist=[], head=[])
    assert windows.resolve((), 4) == ('wrist', 'head')
    assert windows.resolve(('head',), 4) == ('head',)


def test_views_of_different_sizes_each_keep_their_own():
    windows = CameraWindows({'head': camera('head', stream(30, 6), size=(64, 36)),
                             'wrist': camera('wrist', stream(30, 6, offset=0.007),
                                             size=(40, 30))})
    head, wrist = windows.select(('head', 'wrist'), **SELECT)
    assert (head.source_size, wrist.source_size) == ((64, 36), (40, 30))
    assert wrist.frames[0].image.shape == (30, 40, 3)


def test_qwen3_vl_gets_an_even_frame_count_per_view():
    windows = cameras(head=stream(30, 10, seed=7),
                      wrist=stream(30, 10, offset=0.007, seed=8,
                                   gap=(START + 7.0, START + 8.75)))
    head, wrist = windows.select(('head', 'wrist'), **{**SELECT, 'even': True})
    assert len(head.frames) == 16
    assert len(wrist.missing) == 7
    assert len(wrist.frames) == 8  # 9 slots had a frame; the oldest goes to pair the rest
    assert wrist.frames[0].stamp > head.frames[0].stamp + 0.2
    head, wrist = windows.select(('head', 'wrist'), **{**SELECT, 'max_frames': 15,
                                                        'even': True})
    assert len(head.frames) == 14 and len(wrist.frames) % 2 == 0


def test_one_camera_selects_exactly_as_its_window():
    window = camera('', stream(30, 10, jitter=0.004))
    (view,) = CameraWindows.single(window).select(('',), **SELECT)
    assert view.name == '' and view.missing == ()
    assert view.frames == tuple(window.select(**SELECT))


# --- goals over two cameras ----------------------------------------------------------------------

TRAJECTORY = ('[{"point_2d": [500, 500], "label": "reach", "camera": "wrist"}, '
              '{"point_2d": [250, 750], "label": "reach", "camera": "head"}, '
              '{"point_2d": [1000, 0], "label": "reach", "camera": "wrist"}]')


def two_cameras(wrist_gap: tuple[float, float] | None = None) -> CameraWindows:
    return CameraWindows({
        'head': camera('head', stream(30, 10, jitter=0.004, seed=9), size=(64, 36)),
        'wrist': camera('wrist', stream(30, 10, offset=0.007, jitter=0.004, seed=10,
                                        gap=wrist_gap), size=(40, 30))})


def reasoner(window, defaults: GoalDefaults = GoalDefaults()) -> tuple[Reasoner, ScriptedBackend]:
    backend = ScriptedBackend({'pick up the cup': TRAJECTORY}, default='The gripper holds it.',
                              family=ModelFamily.QWEN3_VL)
    return Reasoner(backend, window, defaults, limits=GoalLimits()), backend


def test_a_goal_over_two_cameras_sends_both_views_in_goal_order_on_one_clock():
    run, backend = reasoner(two_cameras(), GoalDefaults(structured_output='on'))
    outcome = run.run(ReasonRequest(Mode.TRAJECTORY, task='pick up the cup',
                                    cameras=('wrist', 'head')))
    (sent,) = backend.requests
    assert [view.name for view in sent.views] == ['wrist', 'head']
    wrist, head = outcome.views
    for request_view, view in zip(sent.views, outcome.views):
        assert len(request_view.frames) == len(view.frames) == 16
        assert request_view.frames[0].shape == view.frames[0].image.shape
    # One clock: seconds from the earliest frame of any view, so the later camera starts later.
    origin = min(head.frames[0].stamp, wrist.frames[0].stamp)
    for request_view, view in zip(sent.views, outcome.views):
        assert list(request_view.timestamps) == pytest.approx(
            [frame.stamp - origin for frame in view.frames])
    assert min(sent.views[0].timestamps[0], sent.views[1].timestamps[0]) == 0.0
    assert list(sent.frames) == list(sent.views[0].frames)
    assert sent.prompt.user.startswith(
        'The 2 views are from the cameras "wrist" and "head", in this order. ')
    assert sent.structured.cameras == ('wrist', 'head')
    assert outcome.frames == wrist.frames and outcome.view('head') is head


def test_points_land_on_the_pixels_of_the_view_they_name():
    run, _ = reasoner(two_cameras())
    outcome = run.run(ReasonRequest(Mode.TRAJECTORY, task='pick up the cup',
                                    cameras=('wrist', 'head')))
    parsed = outcome.parsed
    assert parsed.error == ''
    got = {(t.camera, t.points) for t in parsed.trajectories}
    # 0-1000 in each view's own source size: wrist 40x30, head 64x36.
    assert got == {('wrist', ((20.0, 15.0), (40.0, 0.0))), ('head', ((16.0, 27.0),))}


def test_a_dropout_is_a_warning_in_the_outcome_message():
    run, _ = reasoner(two_cameras(wrist_gap=(START + 7.0, START + 9.0)))
    outcome = run.run(ReasonRequest(Mode.QUESTION, task='Is the part held?'))
    assert [view.name for view in outcome.views] == ['head', 'wrist']
    message = outcome_message(outcome, outcome.total_time)
    assert message.endswith("parse ok; camera 'wrist' had no frame near 8 of 16 slots")


def test_a_stale_camera_fails_the_goal_naming_it():
    run, backend = reasoner(two_cameras(wrist_gap=(START + 5.0, START + 11.0)))
    with pytest.raises(StaleFramesError, match=r"^camera 'wrist': the newest frame on "
                                               r"'wrist/image' is \d\.\d\d s old"):
        run.run(ReasonRequest(Mode.QUESTION, task='Is the part held?'), now=START + 10.0)
    assert backend.requests == []


def test_one_named_camera_of_two_is_sent_as_one_view_and_its_points_carry_its_name():
    run, backend = reasoner(two_cameras())
    outcome = run.run(ReasonRequest(Mode.TRAJECTORY, task='pick up the cup',
                                    cameras=('wrist',)))
    (sent,) = backend.requests
    assert sent.views == ()
    assert not sent.prompt.user.startswith('The 2 views')
    assert {t.camera for t in outcome.parsed.trajectories} == {'wrist'}
    assert outcome.parsed.trajectories[0].points[0] == (20.0, 15.0)


def test_the_one_camera_path_is_unchanged():
    window = camera('', stream(30, 10, jitter=0.004))
    run, backend = reasoner(window)
    outcome = run.run(ReasonRequest(Mode.TRAJECTORY, task='pick up the cup'))
    (sent,) = backend.requests
    assert sent.views == () and sent.timestamps[0] == 0.0
    assert len(sent.frames) == 16
    assert sent.prompt.user.startswith('You are given the task "pick up the cup".')
    assert [view.name for view in outcome.views] == ['']
    assert {t.camera for t in outcome.parsed.trajectories} == {''}
    assert outcome.frames == tuple(window.select(**SELECT))
    assert 'slots' not in outcome_message(outcome, outcome.total_time)


def test_a_goal_naming_an_unknown_camera_is_refused_before_any_work():
    run, backend = reasoner(two_cameras())
    with pytest.raises(InvalidRequestError, match="unknown camera 'tail'"):
        run.run(ReasonRequest(Mode.QUESTION, task='?', cameras=('tail',)))
    assert backend.requests == []


class SizedViewsBackend(ScriptedBackend):
    """The scripted double, reporting the size it "resized" each view to, as Reason1 does."""

    def __init__(self, answers, sizes):
        super().__init__(answers, family=ModelFamily.QWEN2_5_VL)
        self._sizes = sizes

    def generate(self, request, **kwargs):
        result = super().generate(request, **kwargs)
        return dataclasses.replace(result, model_input_size=(32, 28),
                                   view_input_sizes=self._sizes)


def test_reason1_points_map_with_the_input_size_of_the_view_they_name():
    answer = ('[{"point_2d": [10, 7], "camera": "head"}, {"point_2d": [16, 14], '
              '"camera": "head"}, {"point_2d": [20, 15], "camera": "wrist"}]')
    backend = SizedViewsBackend({'pick up the cup': answer}, sizes=((32, 18), (40, 30)))
    run = Reasoner(backend, two_cameras(), GoalDefaults(), limits=GoalLimits())
    outcome = run.run(ReasonRequest(Mode.TRAJECTORY, task='pick up the cup'))
    assert outcome.parsed.error == ''
    head, wrist = outcome.parsed.trajectories
    # head: seen at 32x18, source 64x36 (x2); wrist: seen at 40x30, source 40x30 (x1).
    assert (head.camera, head.points) == ('head', ((20.0, 14.0), (32.0, 28.0)))
    assert (wrist.camera, wrist.points) == ('wrist', ((20.0, 15.0),))
