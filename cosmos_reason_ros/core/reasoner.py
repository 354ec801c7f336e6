"""One reasoning goal from request to parsed answer: frames, prompt, backend, parser.

The node, the `cosmos-reason` command line and the evaluator all run goals through `Reasoner`, so
offline and live answers come from the same code.
"""

from collections.abc import Callable, Sequence
import dataclasses
import threading
import time

from cosmos_reason_ros.core.answers.check import check_constrained
from cosmos_reason_ros.core.answers.families import family_spec
from cosmos_reason_ros.core.answers.formats import STRUCTURED_MODES, StructuredAnswer
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParsedAnswer, ViewGeometry
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.answers.sampling import resolve_sampling, sampling_preset
from cosmos_reason_ros.core.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    Prompt,
    RequestView,
    Sampling,
    StreamCallback,
)
from cosmos_reason_ros.core.camera.frames import Frame, FrameWindow, spread
from cosmos_reason_ros.core.camera.views import CameraWindows, DEFAULT_CAMERA, View
from cosmos_reason_ros.core.config import GoalDefaults, GoalLimits
from cosmos_reason_ros.core.deadline import DeadlineEvent
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    InvalidRequestError,
    StaleFramesError,
    TimeLimitError,
)

Stage = str
STAGE_WAITING_FOR_FRAMES: Stage = 'waiting_for_frames'
STAGE_PREPROCESSING: Stage = 'preprocessing'
STAGE_GENERATING: Stage = 'generating'
STAGE_PARSING: Stage = 'parsing'


@dataclasses.dataclass(frozen=True)
class ReasonRequest:
    """A question about the camera window (or about frames supplied with it).

    Zero, negative or None fields take the defaults (GoalDefaults, the mode's sampling preset).
    """

    mode: Mode
    task: str = ''
    choices: tuple[str, ...] = ()
    object_name: str = ''
    reasoning: bool = False
    window_duration: float = 0.0
    max_frames: int = 0
    window_end: float | None = None
    """Header stamp (seconds) the window ends at; None means the newest frame."""
    max_new_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    greedy: bool = False
    frames: tuple[Frame, ...] = ()
    """Frames to ask about instead of the window (images supplied with a goal)."""
    prompt: Prompt | None = None
    """A prompt to send instead of the mode's template (an evaluation protocol's own)."""
    sampling: Sampling | None = None
    """Decoding to use instead of the preset and the overrides above (a protocol's own)."""
    unconstrained: bool = False
    """Leave the answer free text even where structured output is on."""
    priority: int = 0
    """Higher is more urgent; passed to the backend (see GenerationRequest.priority)."""
    cameras: tuple[str, ...] = ()
    """The cameras to ask about, in prompt order; empty: every camera of the window, in
    configuration order."""


@dataclasses.dataclass(frozen=True)
class ReasonOutcome:
    """A finished goal: what the model saw and said, parsed, with measured timings."""

    request: ReasonRequest
    frames: tuple[Frame, ...]
    """The first view's frames (the only view's, with one camera)."""
    generation: GenerationResult
    parsed: ParsedAnswer
    model_id: str
    total_time: float
    """Seconds from the start of run() to the parsed answer (waiting for frames included)."""
    views: tuple[View, ...] = ()
    """Every view the model saw, in prompt order (one unnamed view for one camera)."""

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the camera image the coordinates refer to (the first view's)."""
        return self.frames[-1].source_size

    def view(self, camera: str) -> View:
        """The view of one camera ('' with one view: that view); KeyError if none."""
        if len(self.views) == 1 and not camera:
            return self.views[0]
        for view in self.views:
            if view.name == camera:
                return view
        raise KeyError(camera)


class Reasoner:
    """Runs goals against one backend and, for camera goals, one frame window."""

    def __init__(self, backend: Backend, window: FrameWindow | CameraWindows | None,
                 defaults: GoalDefaults, *, frame_wait_timeout: float = 0.0,
                 limits: GoalLimits = GoalLimits()):
        """Create a reasoner.

        Args:
            backend: a loaded (or loading) backend; run() needs it loaded.
            window: the camera window (one unnamed camera) or the windows of several cameras,
                or None when every request brings its own frames.
            defaults: values for fields a request leaves at zero.
            frame_wait_timeout: seconds a goal may wait for its first (or its end) frame.
            limits: bounds on task length, max_new_tokens, images and run time.
        """
        self._backend = backend
        self._windows = (CameraWindows.single(window) if isinstance(window, FrameWindow)
                         else window)
        self._defaults = defaults
        self._frame_wait_timeout = frame_wait_timeout
        self._limits = limits

    def run(self, request: ReasonRequest, *, now: float | None = None,
            on_stage: Callable[[Stage], None] | None = None,
            on_text: StreamCallback | None = None,
            cancel: threading.Event | None = None,
            on_views: Callable[[tuple[View, ...]], None] | None = None) -> ReasonOutcome:
        """Answer one request.

        Args:
            request: the question and its settings.
            now: the current time on the camera clock (seconds), for the staleness check; None
                skips the check (offline replay, supplied frames).
            on_stage: called with each STAGE_* as the goal advances.
            on_text: streamed generated text, see StreamCallback.
            cancel: set it to stop the goal; generation stops within one decoding step.
            on_views: called with the views once they are selected, before the model runs (the
                node holds their depth for lifting the answer).

        Raises:
            InvalidRequestError, NoFramesError, StaleFramesError, GenerationCancelled,
            TimeLimitError, GenerationError: each with a message that says what to change.
        """
        check_limits(request, self._limits)
        outer = cancel or threading.Event()
        deadline = DeadlineEvent(outer, self._limits.time_limit)
        try:
            return self._run(request, now, on_stage, on_text, deadline, on_views)
        except GenerationCancelled:
            if deadline.expired and not outer.is_set():
                raise TimeLimitError(
                    f'the goal ran longer than its time limit ({self._limits.time_limit:g} s) '
                    'and was stopped: ask for fewer frames or max_new_tokens, or raise '
                    'goal.time_limit') from None
            raise

    def _run(self, request: ReasonRequest, now: float | None,
             on_stage: Callable[[Stage], None] | None, on_text: StreamCallback | None,
             cancel: threading.Event,
             on_views: Callable[[tuple[View, ...]], None] | None = None) -> ReasonOutcome:
        started = time.perf_counter()
        notify = on_stage or (lambda stage: None)
        cameras = self._cameras_for(request)
        named = cameras if len(cameras) > 1 else ()
        prompt = request.prompt or build_prompt(
            request.mode, family=self._backend.family, task=request.task,
            reasoning=request.reasoning, choices=request.choices,
            object_name=request.object_name, cameras=named)
        views = self._views_for(request, cameras, now, notify, cancel)
        if on_views is not None:
            on_views(views)
        frames = views[0].frames
        origin = min(view.frames[0].stamp for view in views)
        sampling = request.sampling or resolve_sampling(
            sampling_preset(reasoning=request.reasoning,
                            max_new_tokens=self._defaults.max_new_tokens),
            greedy=request.greedy, temperature=request.temperature, top_p=request.top_p,
            top_k=request.top_k, seed=request.seed,
            max_new_tokens=request.max_new_tokens or None)
        request_views = tuple(
            RequestView(view.name, [frame.image for frame in view.frames],
                        [frame.stamp - origin for frame in view.frames]) for view in views)
        generation_request = GenerationRequest(
            prompt=prompt, frames=request_views[0].frames,
            timestamps=request_views[0].timestamps, sampling=sampling,
            structured=self._structured(request, sampling, named), priority=request.priority,
            views=request_views if named else ())

        notify(STAGE_PREPROCESSING)
        streaming = _StageOnFirstText(notify, on_text)
        generation = self._backend.generate(generation_request, on_text=streaming, cancel=cancel)

        notify(STAGE_PARSING)
        spec = family_spec(self._backend.family)
        parsed = parse_answer(
            generation.text, request.mode, family=spec.family,
            source_size=frames[-1].source_size, model_input_size=generation.model_input_size,
            reasoning=generation.reasoning, num_choices=len(request.choices),
            object_name=request.object_name,
            starts_in_reasoning=prompt.reasoning and spec.thinking_opens_answer,
            # One named view: its items carry its name (the prompt asked for no camera field).
            views=_geometry(views, generation) if named or views[0].name else ())
        generation = check_constrained(generation, parsed.answer)
        return ReasonOutcome(request=request, frames=tuple(frames), generation=generation,
                             parsed=parsed,
                             model_id=generation.model_id or self._backend.model_id,
                             total_time=time.perf_counter() - started, views=views)

    def _cameras_for(self, request: ReasonRequest) -> tuple[str, ...]:
        """The goal's cameras in prompt order (the one unnamed camera for supplied frames).

        Raises:
            InvalidRequestError: cameras named with supplied images or without a window, an
                unknown or repeated camera, or more than max_cameras.
        """
        if request.frames or self._windows is None:
            if request.cameras:
                raise InvalidRequestError(
                    'cameras name views of the camera window, but this goal brings its own '
                    'images (one view): leave cameras empty, or send no images')
            return (DEFAULT_CAMERA,)
        return self._windows.resolve(request.cameras, self._limits.max_cameras)

    def _structured(self, request: ReasonRequest, sampling: Sampling,
                    cameras: tuple[str, ...] = ()) -> StructuredAnswer | None:
        """The constraint to ask the backend for, per structured_output and the goal."""
        policy = self._defaults.structured_output
        if (request.unconstrained or request.mode not in STRUCTURED_MODES or policy == 'off'
                or (policy == 'auto' and not self._backend.can_constrain)):
            return None
        # The backend lowers the cap where the answer would not fit (plan_answer).
        cap = self._defaults.max_reasoning_tokens or sampling.max_new_tokens // 2
        return StructuredAnswer(request.mode, num_choices=len(request.choices),
                                max_reasoning_tokens=cap, cameras=cameras)

    def _views_for(self, request: ReasonRequest, cameras: tuple[str, ...], now: float | None,
                   notify: Callable[[Stage], None],
                   cancel: threading.Event) -> tuple[View, ...]:
        even = family_spec(self._backend.family).even_frames
        max_frames = request.max_frames or self._defaults.max_frames
        if request.frames:
            if max_frames <= 0:
                raise InvalidRequestError(f'max_frames ({max_frames}) must be positive')
            frames = spread(supplied_frames(request.frames), max_frames)
            return (View(DEFAULT_CAMERA, tuple(frames)),)
        if self._windows is None:
            raise InvalidRequestError('this reasoner has no camera window: supply images')
        duration = request.window_duration or self._defaults.window_duration
        if duration <= 0 or max_frames <= 0:
            raise InvalidRequestError(
                f'window_duration ({duration}) and max_frames ({max_frames}) must be positive')
        self._wait_for_frames(cameras, request.window_end, notify, cancel)
        if now is not None and request.window_end is None:
            self._windows.check_fresh(cameras, now, self._defaults.max_frame_age)
        views = self._windows.select(cameras, end=request.window_end, duration=duration,
                                     max_frames=max_frames, even=even)
        if now is not None and request.window_end is not None:
            for view in views:
                self._check_end_fresh(view, min(request.window_end, now))
        return views

    def _check_end_fresh(self, view: View, reference: float) -> None:
        """A goal ending at a stamp needs a frame near it (or near now, if it lies ahead)."""
        age = reference - view.frames[-1].stamp
        max_age = self._defaults.max_frame_age
        if age > max_age:
            assert self._windows is not None
            source = self._windows.window(view.name).config.source
            prefix = f'{view.label}: ' if view.name else ''
            raise StaleFramesError(
                f"{prefix}the newest frame on '{source}' before the goal's end "
                f'(t={reference:.3f}) is {age:.2f} s older, more than max_frame_age '
                f'({max_age:g} s): is the camera still publishing? If it is slow, raise '
                'max_frame_age; if the clocks differ, check use_sim_time')

    def _wait_for_frames(self, cameras: tuple[str, ...], end: float | None,
                         notify: Callable[[Stage], None], cancel: threading.Event) -> None:
        """Wait (up to frame_wait_timeout) until every camera has a frame at or after `end`."""
        assert self._windows is not None

        def ready() -> bool:
            return self._windows.ready(cameras, end)

        if ready() or self._frame_wait_timeout <= 0:
            return
        notify(STAGE_WAITING_FOR_FRAMES)
        deadline = time.monotonic() + self._frame_wait_timeout
        # Polling keeps the window free of waiter bookkeeping on the image path; 20 ms is far
        # below a camera period at the 4 fps the window keeps.
        while not ready() and not cancel.is_set() and time.monotonic() < deadline:
            cancel.wait(0.02)
        if cancel.is_set():
            raise GenerationCancelled('cancelled while waiting for frames')


def outcome_message(outcome: ReasonOutcome, total_time: float) -> str:
    """The one-line summary of an answered goal, as the action result's message says it (and
    `cosmos-reason run` prints it): tokens, time, parse status, and what did not go as asked.
    """
    generation = outcome.generation
    notes = [*(['constrained'] if generation.constrained else []),
             *(['answer cut at max_new_tokens'] if generation.finish_reason == 'length'
               else []),
             *(['reasoning cut at its token cap'] if generation.reasoning_cut else []),
             *missing_slots(outcome.views),
             *generation.warnings]
    return (f'{generation.completion_tokens} tokens in {total_time:.2f} s, '
            f'parse {outcome.parsed.status.name.lower()}' + ''.join(f'; {n}' for n in notes))


def missing_slots(views: Sequence[View]) -> list[str]:
    """A note per view that had no frame near some of the goal's slot times: "camera 'wrist'
    had no frame near 8 of 16 slots" (those slots were left out of that view, not shifted).
    """
    slots = max((len(view.frames) + len(view.missing) for view in views), default=0)
    return [f'{view.label} had no frame near {len(view.missing)} of {slots} slots'
            for view in views if view.missing]


def supplied_frames(frames: Sequence[Frame]) -> Sequence[Frame]:
    """Check frames supplied with a goal: one size for all, stamps in order.

    Frames without increasing stamps (e.g. all zero) get no timing the model could use, so they
    are spaced evenly one second apart rather than all claiming the same instant.

    Raises:
        InvalidRequestError: if the frames differ in size.
    """
    sizes = {frame.source_size for frame in frames}
    if len(sizes) > 1:
        listed = ', '.join(f'{w}x{h}' for w, h in sorted(sizes))
        raise InvalidRequestError(
            f'the goal images have different sizes ({listed}): send images of one size')
    stamps = [frame.stamp for frame in frames]
    if all(later > earlier for earlier, later in zip(stamps, stamps[1:])):
        return list(frames)
    return [dataclasses.replace(frame, stamp=float(index)) for index, frame in enumerate(frames)]


def check_limits(request: ReasonRequest, limits: GoalLimits) -> None:
    """Refuse a request above the goal limits before any work is done.

    Raises:
        InvalidRequestError: the text is too long, max_new_tokens above its ceiling, or too many
            images; the message names the number and the limit.
    """
    chars = len(request.task) + len(request.object_name) + sum(map(len, request.choices))
    if chars > limits.max_task_chars:
        raise InvalidRequestError(
            f'the task (with object name and choices) holds {chars} characters, more than '
            f'max_task_chars ({limits.max_task_chars}): shorten it')
    if request.max_new_tokens > limits.max_new_tokens:
        raise InvalidRequestError(
            f'max_new_tokens {request.max_new_tokens} is above the ceiling '
            f'({limits.max_new_tokens}): ask for fewer tokens')
    if len(request.frames) > limits.max_images:
        raise InvalidRequestError(
            f'the goal carries {len(request.frames)} images, more than max_images '
            f'({limits.max_images}): send fewer')
    if len(request.cameras) > limits.max_cameras:
        raise InvalidRequestError(
            f'the goal asks about {len(request.cameras)} cameras, more than goal.max_cameras '
            f'({limits.max_cameras}): name fewer')


def _geometry(views: Sequence[View], generation: GenerationResult) -> tuple[ViewGeometry, ...]:
    """Each view's sizes for the parser: its source size and the size the model saw it at."""
    seen = generation.view_input_sizes or (generation.model_input_size,) * len(views)
    return tuple(ViewGeometry(view.name, view.source_size, size)
                 for view, size in zip(views, seen))


class _StageOnFirstText:
    """Streams text on and reports STAGE_GENERATING when the first token arrives."""

    def __init__(self, notify: Callable[[Stage], None], on_text: StreamCallback | None):
        self._notify = notify
        self._on_text = on_text
        self._started = False

    def __call__(self, text: str, tokens: int) -> None:
        if not self._started:
            self._started = True
            self._notify(STAGE_GENERATING)
        if self._on_text is not None:
            self._on_text(text, tokens)


__all__ = [
    'ReasonOutcome', 'ReasonRequest', 'Reasoner', 'STAGE_GENERATING',
    'STAGE_PARSING', 'STAGE_PREPROCESSING', 'STAGE_WAITING_FOR_FRAMES', 'check_limits',
    'missing_slots', 'outcome_message', 'supplied_frames',
]
