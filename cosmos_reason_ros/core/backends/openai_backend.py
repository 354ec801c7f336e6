"""Remote backend: a Cosmos-Reason model behind an OpenAI-compatible server (vLLM, NVIDIA NIM).

Checks the server (or each of several endpoints) serves the model, sends each request, retries
or fails over what is worth another try and words every error with its fix, the API key never
shown.
"""

from collections.abc import Callable, Mapping
import dataclasses
import http.client
import json
import re
import socket
import threading
import time
from typing import Any

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.base import (
    EndpointStatus,
    GenerationRequest,
    GenerationResult,
    ServerStatus,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.endpoints import (
    BreakerPolicy,
    configured_urls,
    Endpoint,
    EndpointList,
    parse_endpoint_urls,
    shown_url,
)
from cosmos_reason_ros.core.backends.http_exchange import CancelWatch, Exchange, HttpStatusError
from cosmos_reason_ros.core.backends.openai_request import (
    check_server_context,
    guess_family,
    parse_extra_body,
    prepare_request,
    PreparedRequest,
    routing_headers,
)
from cosmos_reason_ros.core.backends.openai_stream import AnswerAccumulator, excerpt, read_answer
from cosmos_reason_ros.core.backends.remote_config import (
    check_routing,
    FAMILIES,
    RemoteConfig,
    STRUCTURED_OUTPUT_FIELDS,
    VIDEO_TRANSPORTS,
)
from cosmos_reason_ros.core.deadline import DeadlineEvent
from cosmos_reason_ros.core.errors import (
    EndpointsDownError,
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    LoadStopped,
    ModelLoadError,
    ReasonError,
    ServerUnreachableError,
)

RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
"""HTTP statuses worth another try: overload and transient server errors."""


class _StreamCut(http.client.HTTPException):
    """The server answered 200 but the stream ended without a finish_reason."""


@dataclasses.dataclass(frozen=True)
class _Probe:
    """What one endpoint's model list said."""

    endpoint: Endpoint
    status: ServerStatus
    models: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    outage: bool = False
    """It answered a status worth waiting out (5xx, 429), not a setting to fix."""


@dataclasses.dataclass(frozen=True)
class RemoteCompletion:
    """A generation result with what only a server tells: the prompt it built, its model."""

    result: GenerationResult
    prompt_token_ids: list[int] | None
    """The prompt token ids, when the request asked for them (vLLM: return_token_ids)."""


class OpenAIBackend:
    """Serves GenerationRequests with a model behind an OpenAI-compatible chat completions API.

    Construction is cheap; load() checks that the server is reachable and serves the model.
    generate() calls may run concurrently from several threads (each has its own connection):
    the server batches them.

    With several endpoints (config.base_urls), load() succeeds when at least one serves the
    model (the others start open and are tried again after their cooldown); one that serves
    another model fails it. A request that fails on one endpoint before any text arrived (no
    connection, a 5xx, a 429, no answer within `timeout`) moves on to the next one; once text
    has arrived, a failure is reported, never resent. See backends.endpoints for the breaker.

    Attributes:
        model_id: The served model name.
        family: The model family (configured, or guessed from the model's name by load()).
        device: 'remote' (for logs and reports, like the local backend's device).
        dtype: Unknown to the client: 'server'.
        max_concurrent: Requests this backend may have in flight at once (the node's slots).
    """

    def __init__(self, config: RemoteConfig, *, api_key: str | None = None,
                 breaker: BreakerPolicy = BreakerPolicy(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Remember the settings; nothing is checked or sent yet.

        Settings are checked by load(), so that a node reports a bad one like a failed load.

        Args:
            config: Where the server is and how to talk to it.
            api_key: The key read from the variable config.api_key_env names (None: no key).
                It is sent as a bearer token and never logged or put into an error.
            breaker: When an endpoint's circuit breaker opens, and for how long.
            clock: Monotonic seconds for the breakers (tests pass their own).
        """
        self.config = config
        self.model_id = config.served_model
        self.family: ModelFamily | None = None
        self.device = 'remote'
        self.dtype = 'server'
        self.max_concurrent = config.max_concurrent
        self.status = ServerStatus(False, False, 'not checked yet')
        self.max_model_len: int | None = None
        """The server's context in tokens, when its model list says (vLLM's max_model_len)."""
        self.structured_output_refusal = ''
        """Why the server refused the structured-output fields ('' while it has not)."""
        self._api_key = api_key or None
        self._breaker = breaker
        self._clock = clock
        self._endpoints: EndpointList | None = None
        """Built by the first load() from the checked URLs; keeps the breakers' states."""

    def __repr__(self) -> str:
        return f'OpenAIBackend({self.describe()})'

    @property
    def loaded(self) -> bool:
        """Whether load() found the server serving the model."""
        return self.family is not None and self.status.serves_model

    def describe(self) -> str:
        """One line for logs and diagnostics: model, server, transport."""
        family = self.family.value if self.family else 'family unknown'
        return (f"'{self.model_id}' ({family}) on {self._where}, frames as "
                f'{self.config.video_transport}')

    @property
    def _where(self) -> str:
        """The configured endpoint URLs as shown: one URL, or several joined by ', '."""
        return ', '.join(shown_url(url) for url in configured_urls(self.config))

    @property
    def can_constrain(self) -> bool:
        """Whether answers are asked for in their format: until the server refused the fields
        once (structured_output_refusal says why).
        """
        return not self.structured_output_refusal

    def load(self, stop: threading.Event | None = None) -> None:
        """Check that the server answers and serves the configured model.

        Polls for up to config.startup_timeout seconds while the server cannot be reached
        (it may still be starting), or until stop is set. A server that comes up later is
        found by check_server().

        Raises:
            ModelLoadError: a setting cannot work, the API key variable is unset, the server is
                unreachable, rejects the key, or does not serve the model; the message names
                the URL and the fix.
        """
        try:
            self._load(poll=True, stop=stop or threading.Event())
        except ReasonError as error:
            raise type(error)(self._redact(str(error)), kind=error.kind) from None
        finally:
            self.status = self._redact_status(self.status)

    def _load(self, *, poll: bool, stop: threading.Event) -> None:
        _check_config(self.config)
        parsed = parse_endpoint_urls(self.config)
        if self._endpoints is None:
            self._endpoints = EndpointList(parsed, self._breaker, clock=self._clock)
        if self.config.api_key_env and not self._api_key:
            raise ModelLoadError(
                f"the environment variable '{self.config.api_key_env}' (api_key_env) is not set "
                'or empty: export the API key in it before starting, or set api_key_env to '
                "'' for a server without a key")
        deadline = time.monotonic() + (max(0.0, self.config.startup_timeout) if poll else 0.0)
        while True:
            probes = [self._probe(endpoint, loaded=False) for endpoint in self._endpoints]
            serving = [probe for probe in probes if probe.status.serves_model]
            for probe in probes:
                # Another model, a refused key, a wrong path: a setting to fix. With several
                # endpoints, a 5xx or 429 is an outage of one of them, waited out like no
                # connection; with one, it fails the load as it always did.
                outage = len(probes) > 1 and probe.outage
                if probe.status.reachable and not probe.status.serves_model and not outage:
                    self.status = self._combined(probes)
                    raise ModelLoadError(probe.status.message)
            if serving:
                break
            if time.monotonic() >= deadline:
                self.status = self._combined(probes)
                raise ServerUnreachableError(self.status.message)
            if stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                raise LoadStopped(f'waiting for {self._where} was stopped')
        self._feed_breakers(probes)
        models = serving[0].models
        model = next(model for model in models if model.get('id') == self.config.served_model)
        self.family = guess_family(self.config, str(model.get('root') or ''))
        self.max_model_len = _smallest_context(serving, self.config.served_model)
        self.status = self._combined(probes)

    def _probe(self, endpoint: Endpoint, *, loaded: bool) -> '_Probe':
        """Ask one endpoint for its model list; never raises."""
        try:
            models = self._list_models(endpoint)
        except (OSError, http.client.HTTPException) as error:
            return _Probe(endpoint, ServerStatus(False, False,
                                                 self._unreachable(error, endpoint.shown)))
        except HttpStatusError as error:
            return _Probe(endpoint, ServerStatus(
                True, False, self._check_failed(error, endpoint.shown)),
                outage=error.status in RETRY_STATUSES)
        names = tuple(str(model.get('id', '')) for model in models)
        if self.config.served_model not in names:
            if loaded:
                message = (f"{endpoint.shown} no longer serves '{self.config.served_model}'")
            else:
                served = ', '.join(f"'{name}'" for name in names) or 'none'
                message = (f"{endpoint.shown} serves {served}, not '{self.config.served_model}'"
                           ': set served_model to one of those (vLLM: --served-model-name)')
            return _Probe(endpoint, ServerStatus(True, False, message, names), models)
        return _Probe(endpoint, ServerStatus(True, True, f"{endpoint.shown} serves "
                                                         f"'{self.config.served_model}'", names),
                      models)

    def _combined(self, probes: list['_Probe']) -> ServerStatus:
        """One status for every endpoint's check: the endpoint's own with one endpoint."""
        statuses = [probe.status for probe in probes]
        if len(statuses) == 1:
            return statuses[0]
        serving = [status for status in statuses if status.serves_model]
        down = [status.message for status in statuses if not status.serves_model]
        message = (f"{len(serving)} of {len(statuses)} endpoints serve "
                   f"'{self.config.served_model}'" + ''.join(f'; {each}' for each in down))
        names = tuple(dict.fromkeys(name for status in statuses for name in status.models))
        return ServerStatus(any(status.reachable for status in statuses), bool(serving),
                            message, names)

    def _feed_breakers(self, probes: list['_Probe']) -> None:
        """A server check's findings for the breakers: serving closes, anything else opens."""
        assert self._endpoints is not None
        for probe in probes:
            if probe.status.serves_model:
                self._endpoints.succeeded(probe.endpoint)
            else:
                self._endpoints.failed(probe.endpoint, self._redact(probe.status.message))

    def check_server(self) -> ServerStatus:
        """Ask the server (every endpoint) again whether it is up and serves the model; never
        raises.

        Also the way back from a failed load: when the server was down at load() and now serves
        the model, the backend becomes loaded. `status` follows what the check found, and each
        endpoint's breaker too: one that serves the model closes, one that does not opens.
        """
        if self.family is None:
            try:
                self._load(poll=False, stop=threading.Event())
            except ReasonError:
                pass
            self.status = self._redact_status(self.status)
            return self.server_status()
        assert self._endpoints is not None
        probes = [self._probe(endpoint, loaded=True) for endpoint in self._endpoints]
        self._feed_breakers(probes)
        serving = [probe for probe in probes if probe.status.serves_model]
        if serving:
            self.max_model_len = _smallest_context(serving, self.config.served_model)
        self.status = self._redact_status(self._combined(probes))
        return self.server_status()

    def server_status(self) -> ServerStatus:
        """The server's state as the last load() or check_server() found it, with every
        endpoint's breaker state now.
        """
        endpoints: tuple[EndpointStatus, ...] = ()
        if self._endpoints is not None:
            endpoints = tuple(dataclasses.replace(each, last_error=self._redact(each.last_error))
                              for each in self._endpoints.statuses())
        return dataclasses.replace(self.status, url=self._where, endpoints=endpoints)

    def close(self) -> None:
        """Nothing to free: every request opens and closes its own connection."""

    def generate(self, request: GenerationRequest, *,
                 on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        """Generate an answer on the server, streaming text to on_text.

        Raises:
            InvalidRequestError: the frames or timestamps are unusable.
            GenerationCancelled: cancel was set; the connection was closed at once.
            GenerationError: the server is unreachable (after retries), rejected the request
                (the message is the server's), or failed.
        """
        return self.complete(request, on_text=on_text, cancel=cancel).result

    def complete(self, request: GenerationRequest, *,
                 on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> RemoteCompletion:
        """generate(), also returning what the server reported about the prompt.

        Args:
            request: The prompt and frames.
            on_text: Streamed text, see StreamCallback.
            cancel: Set it to stop; the connection is shut within about 50 ms.
            extra_body: Fields added to the request body (e.g. {'return_token_ids': True}).

        Raises:
            See generate().
        """
        if self.family is None:
            raise GenerationError(f"backend for '{self.model_id}' is not loaded: call load() "
                                  'first')
        deadline = DeadlineEvent(cancel, self.config.request_deadline)
        if on_text is not None and self._api_key:
            streamed = on_text

            def on_text(text: str, tokens: int) -> None:
                streamed(self._redact(text), tokens)
        sent_to: list[Endpoint] = []
        try:
            completion = self._complete(request, on_text, deadline, extra_body, sent_to)
            if self._api_key:
                # The answer leaves the backend too: a server that echoes the key in it.
                result = completion.result
                reasoning = result.reasoning
                completion = dataclasses.replace(completion, result=dataclasses.replace(
                    result, text=self._redact(result.text),
                    reasoning=self._redact(reasoning) if reasoning is not None else None))
            return completion
        except GenerationCancelled:
            if deadline.expired and not deadline.cancel.is_set():
                where = sent_to[-1].shown if sent_to else self._where
                raise GenerationError(self._redact(
                    f'{where} did not finish the answer within request_deadline '
                    f'({self.config.request_deadline:g} s) and the request was stopped: is the '
                    'server overloaded? Lower max_new_tokens, or raise remote.request_deadline'))\
                    from None
            raise
        except ReasonError as error:
            # The one place every message leaving the backend passes: servers echo keys.
            raise type(error)(self._redact(str(error)), kind=error.kind) from None

    def _complete(self, request: GenerationRequest, on_text: StreamCallback | None,
                  cancel: DeadlineEvent, extra_body: Mapping[str, Any] | None,
                  sent_to: list[Endpoint]) -> RemoteCompletion:
        assert self.family is not None and self._endpoints is not None
        started = time.perf_counter()
        if request.structured is not None and not self.can_constrain:
            request = dataclasses.replace(request, structured=None)
            refused: tuple[str, ...] = (self.structured_output_refusal,)
        else:
            refused = ()
        prepared = prepare_request(request, self.config, self.family)
        check_server_context(prepared, len(request.frames), request.sampling.max_new_tokens,
                             self.max_model_len)
        payload = json.dumps({**prepared.body, **(extra_body or {})}).encode('utf-8')
        preprocess_time = time.perf_counter() - started
        # Each round sends to every endpoint that is closed or due for its trial, in order, and
        # moves on at once when one fails before any text arrived; a round in which none is
        # either sends to the last resort. Between rounds: the backoff and retry count of one
        # server (max_retries, retry_backoff, Retry-After).
        attempt = 0
        tried: set[int] = set()
        failures: list[tuple[Endpoint, Exception, AnswerAccumulator]] = []
        while True:
            if cancel.is_set():
                raise GenerationCancelled('cancelled before the request was sent')
            endpoint = self._endpoints.next_endpoint(tried)
            if endpoint is None and failures:
                _, error, answer = failures[-1]
                retry_after = self._retry_delay(error, attempt, answer)
                if retry_after is None:
                    raise self._final_error(failures, attempt) from None
                attempt += 1
                tried.clear()
                failures.clear()
                if cancel.wait(retry_after):
                    raise GenerationCancelled('cancelled while waiting to retry') from None
                continue
            if endpoint is None:
                endpoint, wait = self._endpoints.last_resort()
                if wait > 0 and cancel.wait(wait):
                    raise GenerationCancelled('cancelled while waiting to retry') from None
            tried.add(endpoint.index)
            sent_to.append(endpoint)
            answer = AnswerAccumulator(on_text, max_chars=self.config.max_answer_chars,
                                       max_tokens=request.sampling.max_new_tokens)
            sent = time.perf_counter()
            try:
                self._post_completion(endpoint, payload, answer, cancel)
                self._endpoints.succeeded(endpoint)
                break
            except GenerationCancelled:
                self._endpoints.released(endpoint)
                raise
            except (OSError, http.client.HTTPException, HttpStatusError) as error:
                if cancel.is_set():
                    self._endpoints.released(endpoint)
                    raise GenerationCancelled(
                        f'cancelled after {answer.tokens} generated token(s)') from None
                if not _fails_over(error):
                    # The endpoint answered; the request (or its key) is what is wrong.
                    self._endpoints.succeeded(endpoint)
                if prepared.answer_format is not None and _refuses_structured_output(error):
                    # Told once; this and every later answer go unconstrained.
                    self.structured_output_refusal = self._redact(
                        f'{endpoint.shown} refused the structured-output fields '
                        f'({self.config.structured_output_fields}: {error}), so answers are '
                        'not constrained: serve with vLLM >= 0.11 (structured_outputs) or set '
                        'remote.structured_output_fields to guided for an older one, or set '
                        'structured_output off')
                    refused = (self.structured_output_refusal,)
                    request = dataclasses.replace(request, structured=None)
                    prepared = prepare_request(request, self.config, self.family)
                    payload = json.dumps({**prepared.body, **(extra_body or {})}).encode()
                    tried.discard(endpoint.index)
                    continue
                if not _fails_over(error) or answer.started:
                    # Never resent once text arrived: it was streamed already, and a second
                    # answer would mix into it.
                    if answer.started:
                        self._endpoints.failed(endpoint, self._redact(str(
                            self._generation_error(error, 0, answer, endpoint.shown))))
                    raise self._generation_error(error, attempt, answer, endpoint.shown,
                                                 media=prepared.media_items) from None
                hold = error.retry_after if isinstance(error, HttpStatusError) else None
                self._endpoints.failed(endpoint, self._redact(str(
                    self._generation_error(error, 0, answer, endpoint.shown))), hold=hold)
                failures.append((endpoint, error, answer))
        finished = answer.last_token_time or time.perf_counter()
        result = self._result(answer, request, prepared, preprocess_time, sent, finished)
        cut: tuple[str, ...] = ()
        if answer.cut_by is not None:
            cut = (f'{endpoint.shown} kept sending past max_new_tokens '
                   f'({request.sampling.max_new_tokens} tokens, counted by '
                   f'{answer.cut_by}): the answer was cut there and the request '
                   'cancelled (does the server ignore max_tokens?)',)
        result = dataclasses.replace(result, constrained=prepared.answer_format is not None,
                                     answer_format=prepared.answer_format,
                                     warnings=refused + cut + prepared.warnings,
                                     served_by=endpoint.shown)
        return RemoteCompletion(result, answer.prompt_token_ids)

    def _final_error(self, failures: list[tuple[Endpoint, Exception, AnswerAccumulator]],
                     attempt: int) -> ReasonError:
        """The error of a request whose last round failed everywhere it was sent.

        Only failures before any text arrived are collected (a later one is raised at once),
        so this is always an EndpointsDownError: nothing was streamed.
        """
        if len(failures) == 1 or len(self._endpoints or ()) == 1:
            endpoint, error, answer = failures[-1]
            return EndpointsDownError(
                str(self._generation_error(error, attempt, answer, endpoint.shown)))
        tries = f' (after {attempt + 1} rounds)' if attempt else ''
        reasons = ' | '.join(str(self._generation_error(error, 0, answer, endpoint.shown))
                             for endpoint, error, answer in failures)
        return EndpointsDownError(self._redact(
            f'no endpoint answered{tries}: {reasons}'))

    # Requests -----------------------------------------------------------------------------

    def _headers(self, *, streaming: bool = False) -> dict[str, str]:
        headers = {'Content-Type': 'application/json',
                   'Accept': 'text/event-stream' if streaming else 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        headers.update(routing_headers(self.config))
        return headers

    def _list_models(self, endpoint: Endpoint) -> list[Mapping[str, Any]]:
        exchange = Exchange(endpoint.split, self.config.timeout)
        try:
            response = exchange.send('GET', _path(endpoint, '/models'), None, self._headers())
            data = json.loads(response.read().decode('utf-8'))
        except ValueError as error:
            raise http.client.HTTPException(f'the model list is not JSON: {error}') from None
        finally:
            exchange.close()
        models = data.get('data') if isinstance(data, Mapping) else None
        if not isinstance(models, list):
            raise http.client.HTTPException(f'unexpected model list: {excerpt(data)}')
        return [model for model in models if isinstance(model, Mapping)]

    def _post_completion(self, endpoint: Endpoint, payload: bytes, answer: AnswerAccumulator,
                         cancel: threading.Event | None) -> None:
        exchange = Exchange(endpoint.split, self.config.timeout)
        try:
            with CancelWatch(exchange, cancel):
                response = exchange.send('POST', _path(endpoint, '/chat/completions'), payload,
                                         self._headers(streaming=self.config.stream))
                answer.responded = True
                # A stream cut at max_new_tokens ends here: closing the connection below
                # cancels the request.
                read_answer(response, answer, stream=self.config.stream, cancel=cancel,
                            max_chars=self.config.max_answer_chars)
        except (OSError, http.client.HTTPException):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(
                    f'cancelled after {answer.tokens} generated token(s)') from None
            raise
        finally:
            exchange.close()
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled(f'cancelled after {answer.tokens} generated token(s)')
        if self.config.stream and answer.finish_reason is None:
            raise _StreamCut()

    # Results and errors -------------------------------------------------------------------

    def _result(self, answer: AnswerAccumulator, request: GenerationRequest,
                prepared: PreparedRequest, preprocess_time: float, sent: float,
                finished: float) -> GenerationResult:
        text = ''.join(answer.content)
        reasoning: str | None = ''.join(answer.reasoning) or None
        if not text.strip() and reasoning and not request.prompt.reasoning:
            # A reasoning parser that found no </think> files the whole answer as reasoning
            # (vLLM's qwen3 parser on servers that ignore enable_thinking): it is the answer.
            text, reasoning = reasoning, None
        first = answer.first_token_time if answer.first_token_time is not None else finished
        reason = answer.finish_reason or 'stop'
        return GenerationResult(
            text=text,
            reasoning=reasoning,
            prompt_tokens=int(answer.prompt_tokens or 0),
            completion_tokens=int(answer.completion_tokens
                                  if answer.completion_tokens is not None else answer.tokens),
            preprocess_time=preprocess_time,
            time_to_first_token=max(0.0, first - sent),
            generation_time=max(0.0, finished - sent),
            model_input_size=prepared.model_input_size,
            finish_reason='length' if reason == 'length' else 'stop',
            view_input_sizes=prepared.view_input_sizes,
        )

    def _retry_delay(self, error: Exception, attempt: int,
                     answer: AnswerAccumulator) -> float | None:
        """Seconds to wait before the next try, or None when this error is final."""
        if attempt >= self.config.max_retries or answer.started:
            return None
        if isinstance(error, HttpStatusError):
            if error.status not in RETRY_STATUSES:
                return None
            if error.retry_after is not None:
                return error.retry_after
        return self.config.retry_backoff * (2 ** attempt)

    def _generation_error(self, error: Exception, attempt: int, answer: AnswerAccumulator,
                          url: str, media: Mapping[str, int] | None = None) -> ReasonError:
        tries = f' (after {attempt + 1} tries)' if attempt else ''
        if isinstance(error, HttpStatusError):
            refusal = media_limit_refusal(error, media or {})
            if refusal is not None:
                return GenerationError(self._redact(f'{url} {refusal}'))
            if error.status in (401, 403):
                return GenerationError(self._redact(
                    f'{url} refused the request (HTTP {error.status}): '
                    f'{error.message}; {self._key_hint()}'))
            if error.status == 400:
                # The request itself is wrong (a prompt longer than the context, a bad value):
                # the server's message names the numbers.
                return InvalidRequestError(self._redact(
                    f'{url} refused the request (HTTP 400): {error.message}'))
            return GenerationError(self._redact(
                f'{url} answered HTTP {error.status}{tries}: {error.message}'))
        if isinstance(error, _StreamCut):
            return GenerationError(self._redact(
                f'{url} answered, but its stream ended after '
                f'{answer.tokens} token(s) without finishing{tries}: the server may have '
                'crashed or dropped the request; check its log'))
        if answer.responded and not answer.started:
            if isinstance(error, (socket.timeout, TimeoutError)):
                what = f'sent no text within the timeout ({self.config.timeout:g} s)'
            else:
                what = f'the connection broke before any text ({_describe(error)})'
            return GenerationError(self._redact(
                f'{url} answered, but {what}{tries}: the server may be busy '
                'with a long prompt or stuck; check its log (or raise remote.timeout)'))
        if answer.started:
            return GenerationError(self._redact(
                f'the connection to {url} broke after {answer.tokens} '
                f'generated token(s): {_describe(error)}; is the server still running?'))
        return GenerationError(self._redact(
            f'cannot reach {url}{tries}: {_describe(error)}; is the server '
            'running and is base_url right (host, port, /v1)?'))

    def _unreachable(self, error: Exception, url: str) -> str:
        return self._redact(
            f'cannot reach the model server at {url}: {_describe(error)}; '
            'is it running (vLLM takes a minute to start) and is base_url right (host, port, '
            '/v1)?')

    def _check_failed(self, error: HttpStatusError, url: str) -> str:
        if error.status in (401, 403):
            return self._redact(f'{url} refused the API key (HTTP '
                                f'{error.status}): {error.message}; {self._key_hint()}')
        if error.status == 404:
            return self._redact(f'{url}/models not found (HTTP 404): base_url '
                                "must end with the API version, e.g. 'http://host:8000/v1'")
        return self._redact(f'{url}/models answered HTTP {error.status}: '
                            f'{error.message}')

    def _key_hint(self) -> str:
        if self.config.api_key_env:
            return f"check the key in the environment variable '{self.config.api_key_env}'"
        return 'the server wants an API key: set api_key_env to the variable that holds it'

    def _redact_status(self, status: ServerStatus) -> ServerStatus:
        return dataclasses.replace(status, message=self._redact(status.message))

    def _redact(self, message: str) -> str:
        if self._api_key:
            message = message.replace(self._api_key, '***')
        return message


def _path(endpoint: Endpoint, path: str) -> str:
    return endpoint.split.path.rstrip('/') + path


def _fails_over(error: Exception) -> bool:
    """Whether the error is the endpoint's, worth another endpoint or a retry: no connection,
    no answer in time, a stream cut, a 5xx or 429. Any other status is the request's.
    """
    return not isinstance(error, HttpStatusError) or error.status in RETRY_STATUSES


def _smallest_context(serving: list[_Probe], served_model: str) -> int | None:
    """The smallest context the serving endpoints list for the model (vLLM's max_model_len;
    other servers may not list it): a request that fits it fits wherever it is sent.
    """
    contexts = [model.get('max_model_len') for probe in serving for model in probe.models
                if model.get('id') == served_model]
    known = [context for context in contexts if isinstance(context, int) and context > 0]
    return min(known) if known else None


def _check_config(config: RemoteConfig) -> None:
    if config.video_transport not in VIDEO_TRANSPORTS:
        raise ModelLoadError(f"unknown video_transport '{config.video_transport}': use "
                             + ' or '.join(VIDEO_TRANSPORTS))
    if not 1 <= config.jpeg_quality <= 100:
        raise ModelLoadError(f'jpeg_quality must be 1-100, got {config.jpeg_quality}')
    if config.max_concurrent < 1:
        raise ModelLoadError(f'max_concurrent must be at least 1, got {config.max_concurrent}')
    if config.max_pixels < 1:
        raise ModelLoadError(f'max_pixels must be at least 1, got {config.max_pixels}')
    if config.timeout <= 0 or config.max_retries < 0 or config.retry_backoff < 0:
        raise ModelLoadError('timeout must be positive, max_retries and retry_backoff not '
                             'negative')
    if not config.served_model.strip():
        raise ModelLoadError('served_model is empty: set it to the name the server serves')
    if config.family not in FAMILIES:
        raise ModelLoadError(f"unknown family '{config.family}': use one of "
                             + ', '.join(FAMILIES))
    if config.structured_output_fields not in STRUCTURED_OUTPUT_FIELDS:
        raise ModelLoadError(f"unknown structured_output_fields '"
                             f"{config.structured_output_fields}': use "
                             + ' or '.join(STRUCTURED_OUTPUT_FIELDS))
    parse_extra_body(config.extra_body)
    check_routing(config)


def _refuses_structured_output(error: Exception) -> bool:
    """A 4xx answer that names the structured-output fields (the server does not take them)."""
    if not isinstance(error, HttpStatusError) or not 400 <= error.status < 500:
        return False
    message = error.message.lower()
    return any(name in message for name in ('structured_output', 'guided_', 'xgrammar',
                                             'grammar', 'thinking_token_budget'))



_MEDIA_LIMIT = re.compile(r'At most (\d+) (\w+)\(s\) may be provided in one (?:prompt|request)')
"""vLLM's refusal of more media items than --limit-mm-per-prompt allows (vllm/multimodal/
processing/context.py, validate_num_items; older releases said 'in one request')."""


def media_limit_refusal(error: Exception, media: Mapping[str, int]) -> str | None:
    """What to do about a server that refused the request's number of media items, or None
    when the error is something else.

    Args:
        error: What the server answered.
        media: The request's media items per modality (PreparedRequest.media_items).
    """
    if not isinstance(error, HttpStatusError) or not 400 <= error.status < 500:
        return None
    found = _MEDIA_LIMIT.search(error.message)
    if found is None:
        return None
    limit, modality = int(found.group(1)), found.group(2)
    sent = media.get(modality, 0)
    wanted = max(sent, limit + 1)
    sent_text = f'{sent} {modality} items' if sent else f'more than {limit} {modality} item(s)'
    return (f'allows at most {limit} {modality} item(s) per prompt and the request holds '
            f'{sent_text} (one per camera view): start the server with --limit-mm-per-prompt '
            f"'{{\"{modality}\": {wanted}}}' (scripts/serve_vllm.sh: MAX_VIDEOS={wanted}), or "
            f'ask about fewer cameras (server: {error.message})')


def _describe(error: Exception) -> str:
    if isinstance(error, http.client.IncompleteRead):
        return 'the answer ended before it was complete'
    if isinstance(error, (socket.timeout, TimeoutError)):
        return 'no answer within the timeout'
    text = str(error) or type(error).__name__
    return f'{type(error).__name__}: {text}' if type(error).__name__ not in text else text


__all__ = ['OpenAIBackend', 'RemoteCompletion', 'RETRY_STATUSES', 'media_limit_refusal']
