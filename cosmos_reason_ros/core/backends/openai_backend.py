"""Remote backend: a Cosmos-Reason model behind an OpenAI-compatible server (vLLM, NVIDIA NIM).

Sends the window's frames as JPEG with their real timing, streams the answer and stops on cancel.

The HTTP client is the standard library's http.client, on purpose: the backend needs one POST,
line-wise reading of server-sent events, timeouts, and the socket itself, so that a cancel can shut
the connection while the server is still busy with the prompt (no token arrives then to notice the
cancel between). httpx would add a dependency for no more than that, the openai package several.
"""

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
import dataclasses
import email.utils
import http.client
import json
import socket
import ssl
import threading
import time
from typing import (
    Any,
)
import urllib.parse

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.families import (
    family_for_served_name,
    model_input_size,
    video_timing,
)
from cosmos_reason_ros.core.answers.formats import (
    AnswerBudgetError,
    AnswerFormat,
    framing_tokens,
    plan_answer,
)
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.base import (
    check_request,
    GenerationRequest,
    GenerationResult,
    Sampling,
    ServerStatus,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.remote_config import (
    FAMILIES,
    RemoteConfig,
    STRUCTURED_OUTPUT_FIELDS,
    VIDEO_TRANSPORTS,
)
from cosmos_reason_ros.core.camera.images import downscale
from cosmos_reason_ros.core.deadline import DeadlineEvent
from cosmos_reason_ros.core.errors import (
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

_MAX_RETRY_AFTER = 30.0
_MAX_ERROR_BODY = 2000


# ---------------------------------------------------------------------------------------------
# Request building (pure functions)

def encode_jpeg(frame: np.ndarray, quality: int) -> str:
    """Base64 of an RGB uint8 frame encoded as JPEG.

    Raises:
        InvalidRequestError: the frame cannot be encoded.
    """
    bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InvalidRequestError(f'frame of shape {frame.shape} could not be JPEG-encoded')
    return base64.b64encode(data.tobytes()).decode('ascii')


def frame_timing(timestamps: Sequence[float], family: ModelFamily) -> dict[str, Any]:
    """The frame metadata that carries real timing through vLLM's `video/jpeg` loader.

    The same timing as the local backend (families.video_timing): text-timestamp families get
    indices of a virtual 1000 fps video, so the `<t seconds>` markers vLLM writes are the real
    stamps; Qwen2.5-VL gets the frames' mean rate. num_frames -1 keeps every frame (vLLM keeps
    32 otherwise).

    Args:
        timestamps: Stamps of the frames in seconds, increasing.
        family: Model family.

    Returns:
        The `media_io_kwargs['video']` of a chat completion request.
    """
    timing = video_timing(timestamps, family)
    return {'num_frames': -1, 'fps': timing.fps, 'frames_indices': timing.frames_indices,
            'total_num_frames': timing.total_num_frames}


def build_messages(request: GenerationRequest, *, frames_b64: Sequence[str],
                   transport: str) -> list[dict[str, Any]]:
    """The conversation in the Cosmos convention: system, then a user turn with media first.

    Args:
        request: The prompt (frames are taken from frames_b64).
        frames_b64: The request's frames, JPEG in base64, oldest first.
        transport: 'video' sends several frames as one video item, 'images' as image items.
    """
    if len(frames_b64) > 1 and transport == 'video':
        media = [{'type': 'video_url',
                  'video_url': {'url': 'data:video/jpeg;base64,' + ','.join(frames_b64)}}]
    else:
        media = [{'type': 'image_url', 'image_url': {'url': 'data:image/jpeg;base64,' + frame}}
                 for frame in frames_b64]
    messages: list[dict[str, Any]] = []
    if request.prompt.system:
        messages.append({'role': 'system', 'content': request.prompt.system})
    messages.append({'role': 'user',
                     'content': [*media, {'type': 'text', 'text': request.prompt.user}]})
    return messages


def sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """Map Sampling onto chat completion fields (top_k is a vLLM extension NIM accepts too)."""
    fields: dict[str, Any] = {'max_tokens': sampling.max_new_tokens}
    if sampling.greedy:
        fields['temperature'] = 0.0
    else:
        fields.update(temperature=sampling.temperature, top_p=sampling.top_p)
        if sampling.top_k > 0:
            fields['top_k'] = sampling.top_k
    if sampling.presence_penalty is not None:
        fields['presence_penalty'] = sampling.presence_penalty
    if sampling.seed is not None:
        fields['seed'] = sampling.seed
    return fields


def parse_extra_body(text: str) -> dict[str, Any]:
    """The request fields of RemoteConfig.extra_body ('' holds none).

    Raises:
        ModelLoadError: the text is not a JSON object.
    """
    if not text.strip():
        return {}
    example = 'write an object such as {"repetition_penalty": 1.05}'
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise ModelLoadError(f'extra_body is not JSON ({error}): {example}') from None
    if not isinstance(fields, dict):
        raise ModelLoadError(f'extra_body must be a JSON object, not {_short(fields)}: '
                             f'{example}')
    return fields


@dataclasses.dataclass(frozen=True)
class PreparedRequest:
    """A request turned into the JSON body of a chat completion, and what it says about frames."""

    body: dict[str, Any]
    model_input_size: tuple[int, int]
    """(width, height) of the frames as the model sees them (see model_input_size())."""
    frame_size: tuple[int, int]
    """(width, height) of the JPEG frames sent."""
    answer_format: AnswerFormat | None = None
    """The format the body asks the server to constrain the answer to (None: free text)."""
    warnings: tuple[str, ...] = ()
    """Why an answer format asked for is not in the body."""


def prepare_request(request: GenerationRequest, config: RemoteConfig,
                    family: ModelFamily) -> PreparedRequest:
    """Validate a request and build its chat completion body.

    One frame goes as an image; several as one video item with their real timing
    (config.video_transport 'video') or as several images ('images', no timing). The fields of
    config.extra_body come first, so that the request's own fields win.

    Raises:
        InvalidRequestError: no frames, frames that are not RGB uint8 of one size, or timestamps
            that are not one increasing stamp per frame.
        ModelLoadError: config.extra_body is not a JSON object (load() reports it first).
    """
    check_request(request)
    frames = [downscale(np.asarray(frame), config.max_pixels) for frame in request.frames]
    height, width = frames[0].shape[:2]
    frames_b64 = [encode_jpeg(frame, config.jpeg_quality) for frame in frames]
    body: dict[str, Any] = {
        **parse_extra_body(config.extra_body),
        'model': config.served_model,
        'messages': build_messages(request, frames_b64=frames_b64,
                                   transport=config.video_transport),
        **sampling_fields(request.sampling),
        'stream': config.stream,
        # Explicit both ways: Cosmos3-Edge's template thinks unless told not to, and without
        # reasoning asked for, vLLM's qwen3 reasoning parser would file an answer that has no
        # </think> under reasoning and leave the content empty.
        'chat_template_kwargs': {'enable_thinking': request.prompt.reasoning},
    }
    if config.stream:
        body['stream_options'] = {'include_usage': True}
    if len(frames) > 1 and config.video_transport == 'video' and config.send_frame_timing:
        body['media_io_kwargs'] = {'video': frame_timing(request.timestamps, family)}
    input_size = model_input_size(width, height, family)
    warnings: tuple[str, ...] = ()
    answer = None
    if request.structured is not None:
        reasoning = request.prompt.reasoning
        try:
            # The server writes the closing </think> of a capped reasoning (and the stop
            # token); Reason1's <answer> tags are not part of its constrained content.
            plan = plan_answer(request.structured, max_new_tokens=request.sampling.max_new_tokens,
                               reasoning=reasoning, family=family, model_input_size=input_size,
                               framing=framing_tokens(reasoning=reasoning, opens_reasoning=False,
                                                      answer_tags=False))
        except AnswerBudgetError:
            raise
        except InvalidRequestError as error:
            plan, warnings = None, (f'the answer was not constrained to its format: {error}',)
        if plan is not None:
            answer = plan.format
            body.update(structured_output_fields(answer, config.structured_output_fields))
            if reasoning:
                # vLLM closes the reasoning after this many tokens (needs its reasoning
                # parser or --reasoning-config); the constraint then applies to the answer,
                # which the cap leaves room for within max_tokens.
                body['thinking_token_budget'] = plan.max_reasoning_tokens
    return PreparedRequest(body=body, model_input_size=input_size, frame_size=(width, height),
                           answer_format=answer, warnings=warnings)


def structured_output_fields(answer: AnswerFormat, style: str) -> dict[str, Any]:
    """The request fields that constrain the answer to its format on a vLLM-style server.

    With a reasoning parser (vllm serve --reasoning-parser) the server applies them after the
    reasoning, so the reasoning stays free.

    Args:
        answer: The format.
        style: 'structured_outputs' (vLLM >= 0.11, NIM) or 'guided' (older vLLM).
    """
    if style == 'guided':
        return ({'guided_regex': answer.regex} if answer.regex is not None
                else {'guided_json': answer.json_schema})
    if answer.regex is not None:
        return {'structured_outputs': {'regex': answer.regex}}
    # Compact JSON, as the local grammar writes it: no room for runs of whitespace.
    return {'structured_outputs': {'json': answer.json_schema, 'disable_any_whitespace': True}}


def check_server_context(prepared: PreparedRequest, frames: int, max_new_tokens: int,
                         max_model_len: int | None) -> None:
    """Refuse a request that cannot fit the server's context, before it is sent.

    The server alone knows the prompt's exact length; the frames give a lower bound (at most two
    frames share a temporal patch and one token covers at most 32x32 pixels), so nothing that
    would fit is refused. The server's own HTTP 400 covers the rest.

    Raises:
        InvalidRequestError: the frames' tokens plus max_new_tokens exceed max_model_len.
    """
    if max_model_len is None:
        return
    width, height = prepared.model_input_size
    at_least = -(-frames // 2) * (width // 32) * (height // 32)
    if at_least + max_new_tokens > max_model_len:
        raise InvalidRequestError(
            f'the frames alone take at least {at_least} tokens and {max_new_tokens} new tokens '
            f"were asked for, more than the server's context of {max_model_len} tokens "
            '(max_model_len): lower max_new_tokens, or send fewer frames (max_frames)')


def guess_family(config: RemoteConfig, *names: str) -> ModelFamily:
    """The configured family, or for 'auto' a guess from the served model's names.

    Raises:
        ModelLoadError: the configured family is not one of FAMILIES.
    """
    if config.family not in FAMILIES:
        raise ModelLoadError(f"unknown family '{config.family}': use one of "
                             + ', '.join(FAMILIES))
    if config.family != 'auto':
        return ModelFamily(config.family)
    return family_for_served_name(config.served_model, *names) or ModelFamily.QWEN3_VL


# ---------------------------------------------------------------------------------------------
# Reading the answer

def iter_sse_data(lines: Iterable[bytes]) -> Iterator[str]:
    """The data of each server-sent event, from the response's lines (bytes, with newlines).

    Multi-line data fields are joined with newlines; comments and other fields are skipped.
    The `[DONE]` sentinel of OpenAI-style streams ends the iteration.
    """
    data: list[str] = []
    for raw in lines:
        line = _utf8(raw).rstrip('\r\n')
        if not line:
            if data:
                payload = '\n'.join(data)
                data = []
                if payload.strip() == '[DONE]':
                    return
                yield payload
            continue
        if line.startswith(':'):
            continue
        field, _, value = line.partition(':')
        if field == 'data':
            data.append(value[1:] if value.startswith(' ') else value)
    if data and '\n'.join(data).strip() != '[DONE]':
        yield '\n'.join(data)


class AnswerAccumulator:
    """Collects a chat completion from stream chunks (or one whole response) as it arrives.

    Streams the text on as the local backend would write it: reasoning inside <think> ...
    </think>, then the answer, so feedback reads the same whichever backend runs. An answer
    longer than max_chars, or of a shape other than a chat completion's, is a GenerationError.

    A stream that passes max_tokens (a server that ignores `max_tokens`) is cut: the chunk that
    would pass it is not taken, finish_reason becomes 'length', `cut_by` says how the tokens
    were counted, and add_chunk() raises BudgetReached so that the caller stops reading and
    closes the connection (vLLM aborts a request whose client went away). Tokens are counted
    the way the server counts them when its chunks carry `usage` (vLLM's
    continuous_usage_stats), else by the token ids it returns (return_token_ids), else one per
    chunk with text: a server sends at least one token per chunk, so that count is never above
    the real one and the cut comes late, never early. No tokenizer is at hand on this side.
    """

    def __init__(self, on_text: StreamCallback | None = None,
                 clock: Callable[[], float] = time.perf_counter, *,
                 max_chars: int | None = None, max_tokens: int | None = None) -> None:
        self._on_text = on_text
        self._clock = clock
        self._max_chars = max_chars
        self._max_tokens = max_tokens
        self._chars = 0
        self.cut_by: str | None = None
        """How the tokens were counted when the stream was cut at max_tokens (None: not cut)."""
        self.responded = False
        """Whether the server's answer (status and headers) arrived."""
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tokens = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.prompt_token_ids: list[int] | None = None
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None
        self._in_reasoning = False

    @property
    def started(self) -> bool:
        """Whether any generated text arrived (a retry would repeat it)."""
        return self.first_token_time is not None

    def add_chunk(self, chunk: Mapping[str, Any]) -> None:
        """Take one `chat.completion.chunk`.

        Raises:
            GenerationError: the chunk reports an error (vLLM sends errors in the stream), or
                is not shaped like a chunk.
        """
        with _unexpected_shape(chunk):
            self._add_chunk(chunk)

    def _add_chunk(self, chunk: Mapping[str, Any]) -> None:
        _raise_for_error_object(chunk)
        if chunk.get('prompt_token_ids') is not None:
            self.prompt_token_ids = list(chunk['prompt_token_ids'])
        usage = chunk.get('usage')
        for choice in chunk.get('choices') or ():
            if choice.get('index', 0) != 0:
                continue
            delta = choice.get('delta') or {}
            reasoning = _reasoning_of(delta)
            content = delta.get('content') or ''
            token_ids = choice.get('token_ids')
            # With token ids (vLLM: return_token_ids) every token counts, also those whose
            # text the server holds back (an incomplete UTF-8 sequence); else one per delta.
            brought = len(token_ids) if token_ids else int(bool(reasoning or content))
            self._check_budget(usage, brought, 'token ids' if token_ids else 'stream chunks')
            self.tokens += brought
            self._take_text(reasoning, content)
            if token_ids or choice.get('finish_reason'):
                # The last token may bring no text (held back, or a stop token).
                self.last_token_time = self._clock()
            if choice.get('finish_reason'):
                self.finish_reason = choice['finish_reason']
        self._take_usage(usage)

    def _check_budget(self, usage: Mapping[str, Any] | None, brought: int,
                      counted_by: str) -> None:
        """Raise BudgetReached when a chunk bringing `brought` tokens passes max_tokens."""
        if self._max_tokens is None or not brought:
            return
        server_count = usage.get('completion_tokens') if usage else None
        if isinstance(server_count, int):
            used, counted_by = server_count, "the server's usage"
        else:
            used = self.tokens + brought
        if used > self._max_tokens:
            self.cut_by = counted_by
            self.finish_reason = 'length'
            self.last_token_time = self._clock()
            raise BudgetReached(f'the answer passed max_new_tokens ({self._max_tokens}), '
                                f'counted by {counted_by}')

    def add_response(self, response: Mapping[str, Any]) -> None:
        """Take a whole (non-streamed) `chat.completion`.

        Raises:
            GenerationError: the response reports an error, holds no choice, or is not shaped
                like a chat completion.
        """
        with _unexpected_shape(response):
            self._add_response(response)

    def _add_response(self, response: Mapping[str, Any]) -> None:
        _raise_for_error_object(response)
        choices = response.get('choices') or []
        if not choices:
            raise GenerationError(f'the server answered without a choice: {_short(response)}')
        if response.get('prompt_token_ids') is not None:
            self.prompt_token_ids = list(response['prompt_token_ids'])
        self._take_usage(response.get('usage'))
        choice = choices[0]
        message = choice.get('message') or {}
        self._take_text(_reasoning_of(message), message.get('content') or '')
        self.finish_reason = choice.get('finish_reason') or 'stop'

    def _take_usage(self, usage: Mapping[str, Any] | None) -> None:
        if usage:
            self.prompt_tokens = usage.get('prompt_tokens', self.prompt_tokens)
            self.completion_tokens = usage.get('completion_tokens', self.completion_tokens)

    def _take_text(self, reasoning: str, content: str) -> None:
        if not reasoning and not content:
            return
        if not isinstance(reasoning, str) or not isinstance(content, str):
            raise TypeError('text that is not a string')
        self._chars += len(reasoning) + len(content)
        if self._max_chars is not None and self._chars > self._max_chars:
            raise GenerationError(
                f'the answer grew past {self._max_chars} characters (max_answer_chars) and was '
                'stopped: lower max_new_tokens, or raise remote.max_answer_chars')
        now = self._clock()
        if self.first_token_time is None:
            self.first_token_time = now
        self.last_token_time = now
        shown = ''
        if reasoning:
            if not self._in_reasoning and not self.reasoning:
                shown += '<think>\n'
            self._in_reasoning = True
            self.reasoning.append(reasoning)
            shown += reasoning
        if content:
            if self._in_reasoning:
                shown += '\n</think>\n\n'
                self._in_reasoning = False
            self.content.append(content)
            shown += content
        if self._on_text is not None:
            self._on_text(shown, self.tokens)


def _reasoning_of(message: Mapping[str, Any]) -> str:
    # vLLM >= 0.10 writes `reasoning`, older vLLM and some NIMs `reasoning_content`.
    return message.get('reasoning') or message.get('reasoning_content') or ''


class _unexpected_shape:
    """Turns a KeyError/TypeError/AttributeError on a malformed answer into a GenerationError."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if kind is not None and issubclass(kind, (AttributeError, KeyError, TypeError,
                                                  ValueError)):
            raise GenerationError(
                'the server sent an answer that is not shaped like an OpenAI chat completion '
                f'({type(error).__name__}: {error}): {_short(self._data)}; is base_url an '
                'OpenAI-compatible server?') from None
        return False


def _raise_for_error_object(data: Mapping[str, Any]) -> None:
    error = data.get('error') if isinstance(data, Mapping) else None
    if error:
        message = error.get('message') if isinstance(error, Mapping) else str(error)
        raise GenerationError(f'the server reported an error while generating: {message}')


# ---------------------------------------------------------------------------------------------
# HTTP

class BudgetReached(Exception):
    """A streamed answer passed max_new_tokens: stop reading (see AnswerAccumulator)."""


class _StreamCut(http.client.HTTPException):
    """The server answered 200 but the stream ended without a finish_reason."""


class _HttpStatusError(Exception):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None):
        super().__init__(f'HTTP {status} {reason}: {message}')
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class _Exchange:
    """One HTTP request whose connection a cancel can shut from another thread."""

    def __init__(self, url: urllib.parse.SplitResult, timeout: float) -> None:
        port = url.port or (443 if url.scheme == 'https' else 80)
        if url.scheme == 'https':
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname, port, timeout=timeout, context=ssl.create_default_context())
        else:
            self._conn = http.client.HTTPConnection(url.hostname, port, timeout=timeout)
        self._lock = threading.Lock()
        self._closed = False
        self._sock: socket.socket | None = None

    def send(self, method: str, path: str, body: bytes | None,
             headers: Mapping[str, str]) -> http.client.HTTPResponse:
        """Send the request and return the response once its headers arrived.

        Raises:
            _HttpStatusError: a non-2xx status (the body is read for the server's message).
            OSError, http.client.HTTPException: connection problems.
        """
        self._conn.connect()
        with self._lock:
            # getresponse() drops the connection's reference when the answer ends with the
            # connection; keep the socket to shut it.
            self._sock = self._conn.sock
            closed = self._closed
        if closed:
            self.shut()
        self._conn.request(method, path, body=body, headers=dict(headers))
        response = self._conn.getresponse()
        if not 200 <= response.status < 300:
            text = response.read(_MAX_ERROR_BODY).decode('utf-8', 'replace')
            raise _HttpStatusError(response.status, response.reason, _server_message(text),
                                   _retry_after(response.getheader('Retry-After')))
        return response

    def shut(self) -> None:
        """Shut the socket so that a read blocked in another thread returns at once."""
        with self._lock:
            self._closed = True
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection (the server sees the client go away)."""
        self.shut()
        self._conn.close()


class _CancelWatch:
    """While active, shuts an exchange's connection as soon as the cancel event is set."""

    def __init__(self, exchange: _Exchange, cancel: threading.Event | None) -> None:
        self._exchange = exchange
        self._cancel = cancel
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> '_CancelWatch':
        if self._cancel is not None:
            self._thread = threading.Thread(target=self._watch, name='openai-cancel-watch',
                                            daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.is_set():
            if self._cancel.wait(0.05):
                self._exchange.shut()
                return

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _server_message(text: str) -> str:
    """The `error.message` (or `message`/`detail`) of an error body, else the text itself."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip() or '(empty body)'
    if isinstance(data, Mapping):
        error = data.get('error')
        if isinstance(error, Mapping) and error.get('message'):
            return str(error['message'])
        if isinstance(error, str):
            return error
        for key in ('message', 'detail'):
            if data.get(key):
                return str(data[key])
    return text.strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _short(data: Any, limit: int = 300) -> str:
    text = json.dumps(data) if not isinstance(data, str) else data
    return text if len(text) <= limit else text[:limit] + '...'


# ---------------------------------------------------------------------------------------------
# The backend

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

    Attributes:
        model_id: The served model name.
        family: The model family (configured, or guessed from the model's name by load()).
        device: 'remote' (for logs and reports, like the local backend's device).
        dtype: Unknown to the client: 'server'.
        max_concurrent: Requests this backend may have in flight at once (the node's slots).
    """

    def __init__(self, config: RemoteConfig, *, api_key: str | None = None) -> None:
        """Remember the settings; nothing is checked or sent yet.

        Settings are checked by load(), so that a node reports a bad one like a failed load.

        Args:
            config: Where the server is and how to talk to it.
            api_key: The key read from the variable config.api_key_env names (None: no key).
                It is sent as a bearer token and never logged or put into an error.
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
        self._url: urllib.parse.SplitResult | None = None

    def __repr__(self) -> str:
        return f'OpenAIBackend({self.describe()})'

    @property
    def loaded(self) -> bool:
        """Whether load() found the server serving the model."""
        return self.family is not None and self.status.serves_model

    def describe(self) -> str:
        """One line for logs and diagnostics: model, server, transport."""
        family = self.family.value if self.family else 'family unknown'
        return (f"'{self.model_id}' ({family}) on {self.config.base_url}, frames as "
                f'{self.config.video_transport}')

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
        self._url = _parse_base_url(self.config.base_url)
        if self.config.api_key_env and not self._api_key:
            raise ModelLoadError(
                f"the environment variable '{self.config.api_key_env}' (api_key_env) is not set "
                'or empty: export the API key in it before starting, or set api_key_env to '
                "'' for a server without a key")
        deadline = time.monotonic() + (max(0.0, self.config.startup_timeout) if poll else 0.0)
        while True:
            try:
                models = self._list_models()
                break
            except (OSError, http.client.HTTPException) as error:
                if time.monotonic() >= deadline:
                    self.status = ServerStatus(False, False, self._unreachable(error))
                    raise ServerUnreachableError(self.status.message) from None
                if stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                    raise LoadStopped(f'waiting for {self.config.base_url} was stopped') from None
            except _HttpStatusError as error:
                self.status = ServerStatus(True, False, self._check_failed(error))
                raise ModelLoadError(self.status.message) from None
        names = tuple(str(model.get('id', '')) for model in models)
        if self.config.served_model not in names:
            served = ', '.join(f"'{name}'" for name in names) or 'none'
            self.status = ServerStatus(
                True, False,
                f"{self.config.base_url} serves {served}, not '{self.config.served_model}': set "
                'served_model to one of those (vLLM: --served-model-name)', names)
            raise ModelLoadError(self.status.message)
        model = next(model for model in models if model.get('id') == self.config.served_model)
        self.family = guess_family(self.config, str(model.get('root') or ''))
        context = model.get('max_model_len')  # vLLM lists it; other servers may not
        self.max_model_len = context if isinstance(context, int) and context > 0 else None
        self.status = ServerStatus(True, True, f"{self.config.base_url} serves "
                                               f"'{self.config.served_model}'", names)

    def check_server(self) -> ServerStatus:
        """Ask the server again whether it is up and serves the model; never raises.

        Also the way back from a failed load: when the server was down at load() and now serves
        the model, the backend becomes loaded. `status` follows what the check found.
        """
        if self.family is None:
            try:
                self._load(poll=False, stop=threading.Event())
            except ReasonError:
                pass
            self.status = self._redact_status(self.status)
            return self.server_status()
        self.status = self._redact_status(self._server_status())
        return self.server_status()

    def server_status(self) -> ServerStatus:
        """The server's state as the last load() or check_server() found it."""
        return dataclasses.replace(self.status, url=self.config.base_url)

    def _server_status(self) -> ServerStatus:
        try:
            names = tuple(str(model.get('id', '')) for model in self._list_models())
        except (OSError, http.client.HTTPException) as error:
            return ServerStatus(False, False, self._unreachable(error))
        except _HttpStatusError as error:
            return ServerStatus(True, False, self._check_failed(error))
        if self.config.served_model not in names:
            return ServerStatus(True, False, f"{self.config.base_url} no longer serves "
                                             f"'{self.config.served_model}'", names)
        return ServerStatus(True, True, f"{self.config.base_url} serves "
                                        f"'{self.config.served_model}'", names)

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
        try:
            completion = self._complete(request, on_text, deadline, extra_body)
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
                raise GenerationError(self._redact(
                    f'{self.config.base_url} did not finish the answer within request_deadline '
                    f'({self.config.request_deadline:g} s) and the request was stopped: is the '
                    'server overloaded? Lower max_new_tokens, or raise remote.request_deadline'))\
                    from None
            raise
        except ReasonError as error:
            # The one place every message leaving the backend passes: servers echo keys.
            raise type(error)(self._redact(str(error)), kind=error.kind) from None

    def _complete(self, request: GenerationRequest, on_text: StreamCallback | None,
                  cancel: DeadlineEvent,
                  extra_body: Mapping[str, Any] | None) -> RemoteCompletion:
        assert self.family is not None
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
        attempt = 0
        while True:
            if cancel.is_set():
                raise GenerationCancelled('cancelled before the request was sent')
            answer = AnswerAccumulator(on_text, max_chars=self.config.max_answer_chars,
                                       max_tokens=request.sampling.max_new_tokens)
            sent = time.perf_counter()
            try:
                self._post_completion(payload, answer, cancel)
                break
            except GenerationCancelled:
                raise
            except (OSError, http.client.HTTPException, _HttpStatusError) as error:
                if cancel.is_set():
                    raise GenerationCancelled(
                        f'cancelled after {answer.tokens} generated token(s)') from None
                if prepared.answer_format is not None and _refuses_structured_output(error):
                    # Told once; this and every later answer go unconstrained.
                    self.structured_output_refusal = self._redact(
                        f'{self.config.base_url} refused the structured-output fields '
                        f'({self.config.structured_output_fields}: {error}), so answers are '
                        'not constrained: serve with vLLM >= 0.11 (structured_outputs) or set '
                        'remote.structured_output_fields to guided for an older one, or set '
                        'structured_output off')
                    refused = (self.structured_output_refusal,)
                    request = dataclasses.replace(request, structured=None)
                    prepared = prepare_request(request, self.config, self.family)
                    payload = json.dumps({**prepared.body, **(extra_body or {})}).encode()
                    continue
                retry_after = self._retry_delay(error, attempt, answer)
                if retry_after is None:
                    raise self._generation_error(error, attempt, answer) from None
                attempt += 1
                if cancel.wait(retry_after):
                    raise GenerationCancelled('cancelled while waiting to retry') from None
        finished = answer.last_token_time or time.perf_counter()
        result = self._result(answer, request, prepared, preprocess_time, sent, finished)
        cut: tuple[str, ...] = ()
        if answer.cut_by is not None:
            cut = (f'{self.config.base_url} kept sending past max_new_tokens '
                   f'({request.sampling.max_new_tokens} tokens, counted by '
                   f'{answer.cut_by}): the answer was cut there and the request '
                   'cancelled (does the server ignore max_tokens?)',)
        result = dataclasses.replace(result, constrained=prepared.answer_format is not None,
                                     answer_format=prepared.answer_format,
                                     warnings=refused + cut + prepared.warnings)
        return RemoteCompletion(result, answer.prompt_token_ids)

    # Requests -----------------------------------------------------------------------------

    def _headers(self, *, streaming: bool = False) -> dict[str, str]:
        headers = {'Content-Type': 'application/json',
                   'Accept': 'text/event-stream' if streaming else 'application/json'}
        if self._api_key:
            headers['Authorization'] = f'Bearer {self._api_key}'
        return headers

    def _path(self, endpoint: str) -> str:
        assert self._url is not None
        return self._url.path.rstrip('/') + endpoint

    def _exchange(self) -> '_Exchange':
        if self._url is None:
            raise GenerationError(f"backend for '{self.model_id}' is not loaded: call load() "
                                  'first')
        return _Exchange(self._url, self.config.timeout)

    def _list_models(self) -> list[Mapping[str, Any]]:
        exchange = self._exchange()
        try:
            response = exchange.send('GET', self._path('/models'), None, self._headers())
            data = json.loads(response.read().decode('utf-8'))
        except ValueError as error:
            raise http.client.HTTPException(f'the model list is not JSON: {error}') from None
        finally:
            exchange.close()
        models = data.get('data') if isinstance(data, Mapping) else None
        if not isinstance(models, list):
            raise http.client.HTTPException(f'unexpected model list: {_short(data)}')
        return [model for model in models if isinstance(model, Mapping)]

    def _post_completion(self, payload: bytes, answer: AnswerAccumulator,
                         cancel: threading.Event | None) -> None:
        exchange = self._exchange()
        try:
            with _CancelWatch(exchange, cancel):
                response = exchange.send('POST', self._path('/chat/completions'), payload,
                                         self._headers(streaming=self.config.stream))
                answer.responded = True
                limit = _byte_limit(self.config.max_answer_chars)
                if self.config.stream and _is_event_stream(response):
                    try:
                        for data in iter_sse_data(_lines(response, cancel, limit)):
                            answer.add_chunk(_json_chunk(data))
                    except BudgetReached:
                        pass  # closing the connection below cancels the request
                else:
                    body = response.read(limit + 1)
                    if len(body) > limit:
                        raise GenerationError(
                            f'the server answered with more than {limit} bytes (for '
                            f'max_answer_chars {self.config.max_answer_chars}) and the answer '
                            'was dropped: lower max_new_tokens, or raise remote.max_answer_chars')
                    answer.add_response(_json_chunk(_utf8(body)))
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
        )

    def _retry_delay(self, error: Exception, attempt: int,
                     answer: AnswerAccumulator) -> float | None:
        """Seconds to wait before the next try, or None when this error is final."""
        if attempt >= self.config.max_retries or answer.started:
            return None
        if isinstance(error, _HttpStatusError):
            if error.status not in RETRY_STATUSES:
                return None
            if error.retry_after is not None:
                return error.retry_after
        return self.config.retry_backoff * (2 ** attempt)

    def _generation_error(self, error: Exception, attempt: int,
                          answer: AnswerAccumulator) -> ReasonError:
        tries = f' (after {attempt + 1} tries)' if attempt else ''
        if isinstance(error, _HttpStatusError):
            if error.status in (401, 403):
                return GenerationError(self._redact(
                    f'{self.config.base_url} refused the request (HTTP {error.status}): '
                    f'{error.message}; {self._key_hint()}'))
            if error.status == 400:
                # The request itself is wrong (a prompt longer than the context, a bad value):
                # the server's message names the numbers.
                return InvalidRequestError(self._redact(
                    f'{self.config.base_url} refused the request (HTTP 400): {error.message}'))
            return GenerationError(self._redact(
                f'{self.config.base_url} answered HTTP {error.status}{tries}: {error.message}'))
        if isinstance(error, _StreamCut):
            return GenerationError(self._redact(
                f'{self.config.base_url} answered, but its stream ended after '
                f'{answer.tokens} token(s) without finishing{tries}: the server may have '
                'crashed or dropped the request; check its log'))
        if answer.responded and not answer.started:
            if isinstance(error, (socket.timeout, TimeoutError)):
                what = f'sent no text within the timeout ({self.config.timeout:g} s)'
            else:
                what = f'the connection broke before any text ({_describe(error)})'
            return GenerationError(self._redact(
                f'{self.config.base_url} answered, but {what}{tries}: the server may be busy '
                'with a long prompt or stuck; check its log (or raise remote.timeout)'))
        if answer.started:
            return GenerationError(self._redact(
                f'the connection to {self.config.base_url} broke after {answer.tokens} '
                f'generated token(s): {_describe(error)}; is the server still running?'))
        return GenerationError(self._redact(
            f'cannot reach {self.config.base_url}{tries}: {_describe(error)}; is the server '
            'running and is base_url right (host, port, /v1)?'))

    def _unreachable(self, error: Exception) -> str:
        return self._redact(
            f'cannot reach the model server at {self.config.base_url}: {_describe(error)}; '
            'is it running (vLLM takes a minute to start) and is base_url right (host, port, '
            '/v1)?')

    def _check_failed(self, error: '_HttpStatusError') -> str:
        if error.status in (401, 403):
            return self._redact(f'{self.config.base_url} refused the API key (HTTP '
                                f'{error.status}): {error.message}; {self._key_hint()}')
        if error.status == 404:
            return self._redact(f'{self.config.base_url}/models not found (HTTP 404): base_url '
                                "must end with the API version, e.g. 'http://host:8000/v1'")
        return self._redact(f'{self.config.base_url}/models answered HTTP {error.status}: '
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


def _parse_base_url(base_url: str) -> urllib.parse.SplitResult:
    url = urllib.parse.urlsplit(base_url.strip())
    if url.scheme not in ('http', 'https') or not url.hostname:
        raise ModelLoadError(f"base_url '{base_url}' is not an http(s) URL: use e.g. "
                             "'http://127.0.0.1:8000/v1'")
    try:
        _ = url.port
    except ValueError:
        raise ModelLoadError(f"base_url '{base_url}' has an invalid port") from None
    return url


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


def _refuses_structured_output(error: Exception) -> bool:
    """A 4xx answer that names the structured-output fields (the server does not take them)."""
    if not isinstance(error, _HttpStatusError) or not 400 <= error.status < 500:
        return False
    message = error.message.lower()
    return any(name in message for name in ('structured_output', 'guided_', 'xgrammar',
                                             'grammar', 'thinking_token_budget'))


def _is_event_stream(response: http.client.HTTPResponse) -> bool:
    return 'text/event-stream' in (response.getheader('Content-Type') or '')


def _lines(response: http.client.HTTPResponse, cancel: threading.Event | None,
           limit: int) -> Iterator[bytes]:
    while True:
        if cancel is not None and cancel.is_set():
            return
        line = response.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            raise GenerationError(
                f'the server sent a line of more than {limit} bytes and the answer was dropped: '
                'is base_url an OpenAI-compatible server? (or raise remote.max_answer_chars)')
        yield line


def _byte_limit(max_chars: int) -> int:
    """Bytes a body (or one stream line) may hold for an answer of max_chars characters:
    4 bytes per character of UTF-8, plus room for the JSON around it.
    """
    return 4 * max_chars + 65536


def _utf8(data: bytes) -> str:
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as error:
        raise GenerationError(
            f'the server sent bytes that are not UTF-8 ({error.reason} at byte {error.start}): '
            'is base_url an OpenAI-compatible server?') from None


def _json_chunk(data: str) -> Mapping[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise GenerationError(f'the server sent something that is not JSON: {_short(data)}') \
            from None
    if not isinstance(chunk, Mapping):
        raise GenerationError(f'the server sent an unexpected answer: {_short(chunk)}')
    return chunk


def _describe(error: Exception) -> str:
    if isinstance(error, http.client.IncompleteRead):
        return 'the answer ended before it was complete'
    if isinstance(error, (socket.timeout, TimeoutError)):
        return 'no answer within the timeout'
    text = str(error) or type(error).__name__
    return f'{type(error).__name__}: {text}' if type(error).__name__ not in text else text


__all__ = [
    'AnswerAccumulator', 'BudgetReached', 'OpenAIBackend', 'PreparedRequest', 'RemoteCompletion',
    'ServerStatus',
    'build_messages', 'encode_jpeg', 'frame_timing', 'guess_family',
    'iter_sse_data', 'model_input_size', 'parse_extra_body', 'prepare_request',
    'sampling_fields',
]
