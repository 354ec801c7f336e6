"""What every backend takes and returns, so the pipeline does not care where the model runs."""

from collections.abc import Callable, Sequence
import dataclasses
import threading
from typing import Protocol

import numpy as np

from cosmos_reason_ros.core.answers.formats import AnswerFormat, StructuredAnswer
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.errors import InvalidRequestError

StreamCallback = Callable[[str, int], None]
"""Called while generating with (new text since the last call, tokens generated so far)."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A conversation in the Cosmos convention: system prompt, then media, then the user text."""

    system: str
    user: str
    reasoning: bool = False
    """The prompt asks the model to reason in <think> tags first. Backends whose chat template
    has a thinking switch (Cosmos3-Edge) set it from this, explicitly both ways."""


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Decoding settings. `greedy` wins over temperature, top_p and top_k."""

    max_new_tokens: int
    greedy: bool = False
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    seed: int | None = None
    presence_penalty: float | None = None
    """Honoured by servers only; transformers' generate has no presence penalty."""


@dataclasses.dataclass(frozen=True)
class RequestView:
    """One camera's frames in a request: its own video (or image, with one frame).

    frames are RGB uint8 arrays of one size, oldest first; timestamps are their header stamps in
    seconds on the request's clock (relative to the earliest frame of any view, so every view of
    one request shares a clock and a view missing its first slot starts later).
    Views of one request may differ in size.
    """

    name: str
    """The camera's name as the prompt labels it ('' for the one unnamed camera)."""
    frames: Sequence[np.ndarray]
    timestamps: Sequence[float]


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """One model call: a prompt and the frames it is about.

    frames are RGB uint8 arrays of one size, oldest first; timestamps are their header stamps in
    seconds relative to the first frame (so timestamps[0] == 0.0). One frame is sent as an image,
    several as a video whose timing the model sees.

    With several cameras, `views` holds each camera's frames in prompt order, each labelled with
    its name before its media; frames and timestamps are then the first view's.
    """

    prompt: Prompt
    frames: Sequence[np.ndarray]
    timestamps: Sequence[float]
    sampling: Sampling
    structured: StructuredAnswer | None = None
    """Constrain the answer (after any reasoning) to its mode's format; None: free text."""
    priority: int = 0
    """How urgent the request is: higher is more urgent, 0 is a goal's default (monitors, once
    they exist, would default below it). Remote backends send it when told to
    (RemoteConfig.send_priority); the local backend runs requests in arrival order and
    ignores it."""
    views: tuple[RequestView, ...] = ()
    """Several named cameras, in prompt order; empty: one unnamed view (frames, timestamps)."""

    @property
    def all_views(self) -> tuple[RequestView, ...]:
        """The views in prompt order: `views`, or the one unnamed view of frames/timestamps."""
        return self.views or (RequestView('', self.frames, self.timestamps),)


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    """What a backend measured and produced for one request."""

    text: str
    """Everything the model generated (with <think> tags when it reasoned), special tokens
    removed. Servers that split reasoning off return only the content here."""
    reasoning: str | None
    """Reasoning a server returned separately (vLLM's reasoning parser); None for local models."""
    prompt_tokens: int
    completion_tokens: int
    preprocess_time: float
    """Seconds spent on chat template and processor (frames to tensors)."""
    time_to_first_token: float
    """Seconds from the start of generation (after preprocessing) to the first new token."""
    generation_time: float
    """Seconds from the start of generation to the last token."""
    model_input_size: tuple[int, int]
    """(width, height) of the frames as the model saw them, after the processor's resize (the
    first view's, with several)."""
    finish_reason: str
    """'stop' (end of sequence), 'length' (max_new_tokens reached) or 'cancelled'."""
    constrained: bool = False
    """The answer was decoded under its format's grammar (the backend asked for it; the
    Reasoner then checks the answer against answer_format and clears it if it does not
    match)."""
    answer_format: AnswerFormat | None = None
    """The format the answer was constrained to (None: free text)."""
    unmatched_format: str = ''
    """Why the answer does not match answer_format ('' when it does, or when unconstrained);
    answer_check.check_constrained() sets it."""
    reasoning_cut: bool = False
    """The reasoning reached its token cap and was closed so that the answer could start."""
    warnings: tuple[str, ...] = ()
    """What did not go as asked without failing the goal (e.g. the constraint was not
    applied, and why)."""
    served_by: str = ''
    """Who answered: the endpoint URL of a remote server (credentials shown as ***), or
    'local' for a model in this process."""
    model_id: str = ''
    """The model that answered, where it is not the backend's own model_id (a remote
    backend's local fallback: the local checkpoint); '' otherwise."""
    view_input_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) each view was seen at, in request order (several views only; Qwen2.5-VL
    coordinates are pixels of these)."""

    @property
    def decode_tokens_per_second(self) -> float:
        """Generated tokens per second after the first one (0 when there is nothing to rate)."""
        decode_time = self.generation_time - self.time_to_first_token
        if self.completion_tokens < 2 or decode_time <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_time


@dataclasses.dataclass(frozen=True)
class EndpointStatus:
    """One endpoint of a remote backend's list, as its circuit breaker sees it."""

    url: str
    """The endpoint's URL (credentials shown as ***)."""
    state: str
    """closed (in use), open (failed; left alone until retry_in ends) or half-open (one trial
    request on its way); see backends.endpoints."""
    last_error: str = ''
    """Why it last failed ('' once it answered again)."""
    retry_in: float = 0.0
    """Seconds until an open endpoint may be tried again (0 when closed)."""


@dataclasses.dataclass(frozen=True)
class FallbackStatus:
    """The local model that answers when every endpoint of a remote backend is down."""

    model: str
    """The local model, as its backend describes it."""
    ready: bool
    """It is loaded and standing by."""
    answered: int = 0
    """Requests it answered since it was loaded."""


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """What the last check of a model server found (remote backends only)."""

    reachable: bool
    serves_model: bool
    message: str
    models: tuple[str, ...] = ()
    url: str = ''
    """The server's address, as configured (for logs and /diagnostics); with several
    endpoints, their URLs joined by ', '."""
    endpoints: tuple[EndpointStatus, ...] = ()
    """Every endpoint's breaker state, in configured order (remote backends only)."""
    fallback: FallbackStatus | None = None
    """The local model standing by for an outage (remote.fallback_local); None: none."""


class Backend(Protocol):
    """A loaded model that answers GenerationRequests. Implementations are thread-compatible:
    the caller serializes generate() calls unless the backend says it can run several.
    """

    model_id: str
    family: ModelFamily
    device: str
    """Where the model runs: a torch device, or 'remote'."""
    dtype: str
    """The weights' dtype or quantization ('server' when a server holds them)."""

    def describe(self) -> str:
        """One line for logs and diagnostics: the model, where it runs and how."""

    @property
    def can_constrain(self) -> bool:
        """Whether a request's `structured` answer format can be applied here (the grammar
        library is installed, the server accepts the fields). A backend that cannot still
        answers such a request, unconstrained, and says so in GenerationResult.warnings.
        """

    def load(self, stop: threading.Event | None = None) -> None:
        """Load weights and processor (or reach the server).

        Args:
            stop: set it to stop a load in progress; checked between stages.

        Raises:
            LoadStopped: stop was set before the load finished.
            ModelLoadError: the cause and the fix.
        """

    def generate(self, request: GenerationRequest, *,
                 on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """Generate an answer, streaming text to on_text.

        Raises:
            GenerationCancelled: cancel was set; generation stopped within one decoding step.
            GenerationError: the model or server failed; the message says why.
        """

    def close(self) -> None:
        """Free the model (and the GPU cache); load() may be called again."""

    def server_status(self) -> ServerStatus | None:
        """The model server's state as last checked; None for a model in this process."""

    def check_server(self) -> ServerStatus | None:
        """Check the model server now (never raises; a server that came back makes the backend
        loaded); None for a model in this process.
        """


def check_request(request: GenerationRequest) -> None:
    """Validate frames and timestamps (of every view) before any work is done.

    Raises:
        InvalidRequestError: no frames, frames that are not RGB uint8 of one size per view,
            timestamps that are not one increasing stamp per frame, views with repeated
            names, or (several views) stamps before the shared clock's 0.
    """
    views = request.all_views
    names = [view.name for view in views]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f'the request names a camera twice ({names}): name each once')
    for view in views:
        where = f" of camera '{view.name}'" if view.name else ''
        _check_view(view.frames, view.timestamps, where)
        if request.views and float(view.timestamps[0]) < 0:
            raise InvalidRequestError(
                f'timestamps{where} start at {float(view.timestamps[0]):.3f} s: with several '
                "cameras they are seconds from the request's earliest frame (0 or later)")


def _check_view(frames: Sequence[np.ndarray], timestamps: Sequence[float], where: str) -> None:
    if len(frames) == 0:
        raise InvalidRequestError(f'the request holds no frames{where}: send at least one image')
    first = np.asarray(frames[0])
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InvalidRequestError(
                f'frame {index}{where} is {frame.dtype} of shape {frame.shape}: frames must be '
                'RGB uint8 arrays of shape (height, width, 3)')
        if frame.shape != first.shape:
            raise InvalidRequestError(
                f'frames{where} have mixed sizes ({first.shape[1]}x{first.shape[0]} and '
                f'{frame.shape[1]}x{frame.shape[0]}): resize them to one size first')
    if len(timestamps) != len(frames):
        raise InvalidRequestError(
            f'{len(timestamps)} timestamps for {len(frames)} frames{where}: send one '
            'timestamp per frame')
    stamps = list(timestamps)
    if any(later <= earlier for earlier, later in zip(stamps, stamps[1:])):
        raise InvalidRequestError(
            f'timestamps{where} must increase strictly (oldest frame first), got {stamps}')
