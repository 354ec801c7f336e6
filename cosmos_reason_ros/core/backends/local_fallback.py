"""A remote backend with a local model standing by: goals go to the server, and only when every
endpoint fails before any answer text arrived are they answered in this process.

One goal's prompt, frame selection and parsing follow one model family (the Reasoner reads
`backend.family` before it knows who will answer), so the local model must be of the server's
family: load() refuses a mismatch, and the same GenerationRequest is then valid for both. The
structured answer a request asks for is family-free; each backend applies it its own way (the
server's structured-output fields, the local grammar) or says in the result that it could not.
"""

import dataclasses
import threading

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.base import (
    Backend,
    FallbackStatus,
    GenerationRequest,
    GenerationResult,
    ServerStatus,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.openai_request import guess_family
from cosmos_reason_ros.core.errors import (
    EndpointsDownError,
    GenerationCancelled,
    ModelLoadError,
    ServerUnreachableError,
)

LOCAL = 'local'
"""GenerationResult.served_by of an answer from the local model."""

_TURN_POLL = 0.05
"""Seconds between cancel checks while a request waits for the local model."""


class LocalFallbackBackend:
    """Serves requests with a remote backend and, when every endpoint is down, a local model.

    A request goes to the server. Only an EndpointsDownError (every endpoint refused, answered
    5xx or 429, or sent nothing within the timeout, and no text was streamed) sends it to the
    local model; a stream cut after text arrived, a refused request, a cancel or the server's
    request_deadline stay the remote's errors, reported as they are. While the server is down
    since load() (or serves another family than the local model), requests go to the local
    model at once; check_server() brings the server back.

    The local model answers one request at a time: a request that falls back while another one
    is answered locally waits its turn (a cancel, or the goal's time limit, ends the wait).

    Attributes:
        model_id: The served model's name (an answer from the local model carries the local
            model's id in GenerationResult.model_id).
        device: 'remote'.
        dtype: 'server'.
        max_concurrent: The remote backend's: requests in flight at once.
    """

    def __init__(self, remote: OpenAIBackend, local: Backend) -> None:
        """Wrap both backends; nothing is loaded yet.

        Args:
            remote: The server's backend, answering first.
            local: The local model's backend, answering when every endpoint is down.
        """
        self.remote = remote
        self.local = local
        self.model_id = remote.model_id
        self.device = remote.device
        self.dtype = remote.dtype
        self.max_concurrent = remote.max_concurrent
        self._local_turn = threading.Lock()
        self._count_lock = threading.Lock()
        self._answered = 0

    def __repr__(self) -> str:
        return f'LocalFallbackBackend({self.describe()})'

    @property
    def family(self) -> ModelFamily | None:
        """The one family of both models (the local model's, known after load())."""
        return self.local.family

    @property
    def answered_locally(self) -> int:
        """Requests the local model answered since load()."""
        return self._answered

    def describe(self) -> str:
        """One line for logs and diagnostics: the server's model, then the local one."""
        return f'{self.remote.describe()}; local fallback {self.local.describe()}'

    @property
    def can_constrain(self) -> bool:
        """The backend that will likely answer: the server's while it serves, else the local
        model's (a backend that cannot constrain answers unconstrained with a warning).
        """
        return self.remote.can_constrain if self._remote_serves() else self.local.can_constrain

    def load(self, stop: threading.Event | None = None) -> None:
        """Load the local model, then reach the server.

        A server that cannot be reached does not fail the load: the local model serves until
        check_server() finds the server back.

        Raises:
            LoadStopped: stop was set before both were loaded (nothing is kept).
            ModelLoadError: the local model failed to load, a remote setting is wrong, or the
                two models are of different families; the message says which.
        """
        stop = stop or threading.Event()
        try:
            self.local.load(stop)
        except ModelLoadError as error:
            raise type(error)(f'remote.fallback_local: the local model failed to load: '
                              f'{error}', kind=error.kind) from None
        try:
            self.remote.load(stop)
        except ServerUnreachableError:
            pass    # served locally until check_server() finds the server; status says why
        except BaseException:
            self.local.close()
            raise
        try:
            self._check_family()
        except ModelLoadError:
            self.close()
            raise
        with self._count_lock:
            self._answered = 0

    def _check_family(self) -> None:
        """Refuse a local model of another family than the server's (or its guessed one)."""
        local = self.local.family
        server = self.remote.family or guess_family(self.remote.config)
        if local is not None and server != local:
            raise ModelLoadError(
                f"remote.fallback_local: the local model '{self.local.model_id}' is "
                f"{local.value} but the server's '{self.remote.model_id}' is {server.value}: "
                'a goal is prompted, its frames picked and its answer parsed for one family, '
                f'so set model to a {server.value} checkpoint (or remote.family, if the '
                "server's family was guessed wrong)")

    def close(self) -> None:
        """Free both (the local model's memory too); load() may be called again."""
        self.remote.close()
        self.local.close()

    def generate(self, request: GenerationRequest, *,
                 on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """Answer on the server, or with the local model when every endpoint is down.

        Raises:
            InvalidRequestError: the frames or timestamps are unusable, or a server refused
                the request.
            GenerationCancelled: cancel was set (also while waiting for the local model).
            GenerationError: the server failed after text arrived (never answered twice), or
                the local model failed.
        """
        if self._remote_serves():
            try:
                return self.remote.generate(request, on_text=on_text, cancel=cancel)
            except EndpointsDownError as error:
                reason = str(error)
        elif self.remote.loaded:
            reason = (f"the server's family is {self._remote_family_value()}, not the local "
                      "model's: check remote.family")
        else:
            reason = self.remote.status.message
        return self._answer_locally(request, on_text, cancel, reason)

    def _remote_serves(self) -> bool:
        """The server was reached once and serves the local model's family."""
        return self.remote.loaded and self.remote.family == self.local.family

    def _remote_family_value(self) -> str:
        family = self.remote.family
        return family.value if family is not None else 'unknown'

    def _answer_locally(self, request: GenerationRequest, on_text: StreamCallback | None,
                        cancel: threading.Event | None, reason: str) -> GenerationResult:
        # A polled lock, not the local backend's own: a goal waiting its turn must still end
        # on its cancel (or time limit) rather than when the goal before it finishes.
        while not self._local_turn.acquire(timeout=_TURN_POLL):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled('cancelled while waiting for the local model, which '
                                          'answers another goal (every server endpoint failed)')
        try:
            result = self.local.generate(request, on_text=on_text, cancel=cancel)
        finally:
            self._local_turn.release()
        with self._count_lock:
            self._answered += 1
        note = f'answered by the local model: every server endpoint failed ({reason})'
        return dataclasses.replace(result, served_by=LOCAL, model_id=self.local.model_id,
                                   warnings=(note, *result.warnings))

    def server_status(self) -> ServerStatus:
        """The server's state as last checked, with the local model standing by."""
        return self._with_fallback(self.remote.server_status())

    def check_server(self) -> ServerStatus:
        """Check the server now (never raises; a server that came back answers again)."""
        return self._with_fallback(self.remote.check_server())

    def _with_fallback(self, status: ServerStatus) -> ServerStatus:
        fallback = FallbackStatus(model=self.local.describe(),
                                  ready=self.local.family is not None,
                                  answered=self._answered)
        return dataclasses.replace(status, fallback=fallback)


__all__ = ['LOCAL', 'LocalFallbackBackend']
