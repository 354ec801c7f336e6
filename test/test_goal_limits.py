"""Goal limits and freshness in the Reasoner: no single goal can hold the model, overflow the
prompt or be answered from old frames. A scripted backend stands in for the model.
"""

import math
import threading
import time

import numpy as np
import pytest

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.backends.base import GenerationRequest, GenerationResult
from cosmos_reason_ros.core.camera.frames import Frame, FrameWindow
from cosmos_reason_ros.core.config import GoalDefaults, GoalLimits, WindowConfig
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    InvalidRequestError,
    StaleFramesError,
    TimeLimitError,
)
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonRequest


class ScriptedBackend:
    """Answers at once, or (hang=True) waits for its cancel event like a stalled server."""

    model_id = 'scripted'
    family = ModelFamily.QWEN3_VL

    can_constrain = False

    def __init__(self, hang: bool = False):
        self.hang = hang
        self.requests: list[GenerationRequest] = []

    def generate(self, request, *, on_text=None, cancel=None):
        self.requests.append(request)
        if self.hang:
            while not cancel.wait(0.01):
                pass
            raise GenerationCancelled('cancelled while generating')
        return GenerationResult(text='yes', reasoning=None, prompt_tokens=10,
                                completion_tokens=1, preprocess_time=0.0,
                                time_to_first_token=0.0, generation_time=0.0,
                                model_input_size=(64, 64), finish_reason='stop')


def frame(stamp: float, size=(8, 6)) -> Frame:
    return Frame(stamp=stamp, image=np.zeros((size[1], size[0], 3), np.uint8), source_size=size)


def camera(stamps) -> FrameWindow:
    window = FrameWindow(WindowConfig(target_fps=4.0))
    for stamp in stamps:
        window.offer(stamp, lambda: np.zeros((6, 8, 3), np.uint8))
    return window


def reasoner(backend=None, window=None, **limits) -> Reasoner:
    return Reasoner(backend or ScriptedBackend(), window, GoalDefaults(max_frame_age=2.0),
                    limits=GoalLimits(**limits))


def ask(**fields) -> ReasonRequest:
    return ReasonRequest(mode=Mode.QUESTION, task=fields.pop('task', 'Is it safe?'), **fields)


@pytest.mark.parametrize('fields, limits, words', [
    ({'task': 'x' * 1_000_000}, {}, ['1000000 characters', 'max_task_chars (8192)']),
    ({'choices': ('a' * 50, 'b' * 60)}, {'max_task_chars': 100}, ['121 characters']),
    ({'max_new_tokens': 1_000_000}, {}, ['max_new_tokens 1000000', 'ceiling (16384)']),
    ({'frames': tuple(frame(i) for i in range(200))}, {}, ['200 images', 'max_images (64)']),
])
def test_goals_above_a_limit_are_refused_before_the_model_sees_them(fields, limits, words):
    backend = ScriptedBackend()
    with pytest.raises(InvalidRequestError) as raised:
        reasoner(backend, **limits).run(ask(**fields))
    for word in words:
        assert word in str(raised.value)
    assert backend.requests == []


def test_max_frames_applies_to_goal_images():
    backend = ScriptedBackend()
    images = tuple(frame(float(i)) for i in range(40))
    outcome = reasoner(backend).run(ask(frames=images, max_frames=8))
    assert len(backend.requests[0].frames) == 8
    assert outcome.frames[-1] is images[-1]


@pytest.mark.parametrize('temperature', [math.inf, math.nan, -math.inf])
def test_a_temperature_that_is_not_a_finite_number_is_an_invalid_goal(temperature):
    with pytest.raises(InvalidRequestError, match='temperature must be a finite number'):
        reasoner().run(ask(frames=(frame(0.0),), temperature=temperature))


def test_a_goal_past_its_time_limit_is_stopped_and_says_so():
    backend = ScriptedBackend(hang=True)
    started = time.monotonic()
    with pytest.raises(TimeLimitError, match=r'time limit \(0.3 s\)'):
        reasoner(backend, time_limit=0.3).run(ask(frames=(frame(0.0),)))
    assert 0.25 < time.monotonic() - started < 2.0


def test_a_cancel_within_the_time_limit_stays_a_cancel():
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(GenerationCancelled):
        reasoner(ScriptedBackend(hang=True), time_limit=30.0).run(
            ask(frames=(frame(0.0),)), cancel=cancel)


def test_a_window_end_ahead_of_a_dead_camera_is_stale():
    window = camera([100.0, 100.25, 100.5])
    with pytest.raises(StaleFramesError, match='24.50 s older'):
        reasoner(window=window).run(ask(window_end=200.0), now=125.0)


def test_a_window_end_after_a_gap_in_the_camera_is_stale():
    window = camera([100.0, 100.25, 100.5, 130.0, 130.25])
    with pytest.raises(StaleFramesError, match='9.50 s older'):
        reasoner(window=window).run(ask(window_end=110.0), now=131.0)


def test_a_window_end_with_fresh_frames_is_answered():
    window = camera([100.0, 100.25, 100.5])
    outcome = reasoner(window=window).run(ask(window_end=100.6), now=101.0)
    assert outcome.frames[-1].stamp == 100.5
