"""Reading a chat completion from an OpenAI-compatible server: server-sent events, stream
chunks or one whole response, gathered and streamed on as the local backend writes its text.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
import http.client
import json
import threading
import time
from typing import Any

from cosmos_reason_ros.core.backends.base import StreamCallback
from cosmos_reason_ros.core.errors import GenerationError


class BudgetReached(Exception):
    """A streamed answer passed max_new_tokens: stop reading (see AnswerAccumulator)."""


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
            raise GenerationError(f'the server answered without a choice: {excerpt(response)}')
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
                f'({type(error).__name__}: {error}): {excerpt(self._data)}; is base_url an '
                'OpenAI-compatible server?') from None
        return False


def _raise_for_error_object(data: Mapping[str, Any]) -> None:
    error = data.get('error') if isinstance(data, Mapping) else None
    if error:
        message = error.get('message') if isinstance(error, Mapping) else str(error)
        raise GenerationError(f'the server reported an error while generating: {message}')


def read_answer(response: http.client.HTTPResponse, answer: AnswerAccumulator, *, stream: bool,
                cancel: threading.Event | None, max_chars: int) -> None:
    """Read a chat completion into answer: server-sent events when streamed, else one body.

    A stream cut at max_tokens (BudgetReached) ends the reading: the caller's closing the
    connection then cancels the request.

    Args:
        response: The server's answer, its status and headers read.
        answer: Collects the answer.
        stream: Whether the request asked for a stream (a server may answer with one body).
        cancel: Once set, reading stops before the next line.
        max_chars: The most characters an answer may hold (remote.max_answer_chars).

    Raises:
        GenerationError: the answer is too long, not UTF-8, not JSON, reports an error or is not
            shaped like a chat completion.
        OSError, http.client.HTTPException: the connection broke.
    """
    limit = _byte_limit(max_chars)
    if stream and _is_event_stream(response):
        try:
            for data in iter_sse_data(_lines(response, cancel, limit)):
                answer.add_chunk(_json_chunk(data))
        except BudgetReached:
            pass  # the caller's closing the connection cancels the request
    else:
        body = response.read(limit + 1)
        if len(body) > limit:
            raise GenerationError(
                f'the server answered with more than {limit} bytes (for '
                f'max_answer_chars {max_chars}) and the answer '
                'was dropped: lower max_new_tokens, or raise remote.max_answer_chars')
        answer.add_response(_json_chunk(_utf8(body)))


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
        raise GenerationError(f'the server sent something that is not JSON: {excerpt(data)}') \
            from None
    if not isinstance(chunk, Mapping):
        raise GenerationError(f'the server sent an unexpected answer: {excerpt(chunk)}')
    return chunk


def excerpt(data: Any, limit: int = 300) -> str:
    """Data for an error message: as JSON (a string as is), cut after limit characters."""
    text = json.dumps(data) if not isinstance(data, str) else data
    return text if len(text) <= limit else text[:limit] + '...'


__all__ = [
    'AnswerAccumulator', 'BudgetReached', 'excerpt', 'iter_sse_data', 'read_answer',
]
