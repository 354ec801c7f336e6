"""A test double of the Backend protocol whose answers the test writes, and small clip writers.

It is not a model: it returns the next scripted text for the question it is asked, and records
every request (prompt, frames, timestamps, sampling) so tests can check what a model would have
been sent. Only tests use it; it is not shipped as a backend.
"""

from collections.abc import Callable, Mapping, Sequence
import pathlib
import threading

import av
import numpy as np

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.base import GenerationRequest, GenerationResult
from cosmos_reason_ros.core.errors import GenerationCancelled

Script = str | Sequence[str] | Callable[[GenerationRequest], str]


class ScriptedBackend:
    """Answers each request with text the test chose.

    `answers` maps a fragment of the user prompt (e.g. the question) to the answer, or to a list
    of answers given in turn (the last one repeats), or to a function of the request. A prompt
    that no fragment matches gets `default`.
    """

    def __init__(self, answers: Mapping[str, Script], *, default: str = '',
                 family: ModelFamily = ModelFamily.QWEN2_5_VL,
                 model_id: str = 'scripted-test-double',
                 interrupt_on: str | None = None):
        """Create the double.

        Args:
            answers: prompt fragment -> scripted answer(s).
            default: the answer to an unmatched prompt.
            family: the family it claims (decides the prompt conventions of the caller).
            model_id: the id it reports.
            interrupt_on: a prompt fragment whose request raises KeyboardInterrupt while
                "generating", as Ctrl-C would.
        """
        self.model_id = model_id
        self.family = family
        self.requests: list[GenerationRequest] = []
        self._answers = dict(answers)
        self._default = default
        self._turns: dict[str, int] = {}
        self._interrupt_on = interrupt_on
        self._lock = threading.Lock()

    can_constrain = False
    """Answers are scripted: there is nothing to constrain."""
    device = 'script'
    dtype = 'none'

    def describe(self) -> str:
        return f'scripted answers as {self.model_id}'

    def server_status(self) -> None:
        """No server."""

    def check_server(self) -> None:
        """No server."""

    def load(self, stop: threading.Event | None = None) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to free."""

    def generate(self, request: GenerationRequest, *, on_text=None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """The scripted answer for this prompt, with plausible counts and zero timings."""
        with self._lock:
            self.requests.append(request)
            text = self._answer(request)
        if self._interrupt_on and self._interrupt_on in request.prompt.user:
            raise KeyboardInterrupt
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled('cancelled before generation started')
        if on_text is not None and text:
            on_text(text, len(text.split()))
        height, width = np.asarray(request.frames[0]).shape[:2]
        return GenerationResult(
            text=text, reasoning=None, prompt_tokens=len(request.prompt.user.split()),
            completion_tokens=len(text.split()), preprocess_time=0.0, time_to_first_token=0.0,
            generation_time=0.0, model_input_size=(width, height), finish_reason='stop')

    def _answer(self, request: GenerationRequest) -> str:
        for fragment, script in self._answers.items():
            if fragment not in request.prompt.user:
                continue
            if callable(script):
                return script(request)
            if isinstance(script, str):
                return script
            turn = self._turns.get(fragment, 0)
            self._turns[fragment] = turn + 1
            return script[min(turn, len(script) - 1)]
        return self._default


def write_clip(path: pathlib.Path, seconds: float, *, fps: float = 30000 / 1001,
               size: tuple = (32, 24)) -> pathlib.Path:
    """An MPEG-4 clip of `seconds` at `fps` whose frames brighten over time."""
    from fractions import Fraction

    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    count = int(round(seconds * fps))
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = 'yuv420p'
        for index in range(count):
            level = int(255 * index / max(count - 1, 1))
            image = np.full((size[1], size[0], 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
