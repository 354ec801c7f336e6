"""remote.fallback_local: a scripted server (down, cut mid-stream, back) in front of the tiny
local model; the local model answers only when every endpoint failed before any text arrived.
"""

import socket
import threading
import time

import pytest
from test_openai_backend import _delta, _request, _sse, _status

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.factory import BackendSettings, create_backend
from cosmos_reason_ros.core.backends.local_fallback import LOCAL, LocalFallbackBackend
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import (
    EndpointsDownError,
    GenerationCancelled,
    GenerationError,
    ModelLoadError,
)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}/v1'


def _settings(checkpoint, urls, **remote) -> BackendSettings:
    return BackendSettings(
        backend='openai', model=ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32'),
        remote=RemoteConfig(base_urls=tuple(urls), served_model='cosmos', retry_backoff=0.05,
                            max_retries=0, fallback_local=True, **remote))


@pytest.fixture(scope='module')
def local_model(tiny_qwen3_checkpoint):
    """The tiny model, loaded once for the module: each test wraps it anew."""
    backend = create_backend(BackendSettings(model=ModelConfig(
        model=str(tiny_qwen3_checkpoint), device='cpu', dtype='fp32')))
    backend.load()
    yield backend
    backend.close()


def _fallback(local_model, urls, **remote) -> LocalFallbackBackend:
    backend = create_backend(_settings(local_model.model_id, urls, **remote))
    assert isinstance(backend, LocalFallbackBackend)
    backend.local = local_model   # loaded already: its load() returns at once
    backend.load()
    return backend



def test_every_endpoint_down_is_answered_locally_and_says_so(local_model, servers):
    first, second = servers([], [])
    backend = _fallback(local_model, [first.url, second.url])
    assert backend.generate(_request(2)).served_by == first.url
    first.close()
    second.close()
    streamed = []
    result = backend.generate(_request(2), on_text=lambda text, tokens: streamed.append(text))
    assert result.served_by == LOCAL
    assert result.model_id == local_model.model_id
    assert result.completion_tokens > 0 and ''.join(streamed) == result.text
    assert result.warnings[0].startswith('answered by the local model: every server endpoint '
                                         'failed (no endpoint answered: cannot reach')
    status = backend.server_status()
    assert status.fallback is not None and status.fallback.ready
    assert status.fallback.answered == 1
    assert [each.state for each in status.endpoints] == ['open', 'open']


def test_the_remote_signals_an_outage_by_type_and_a_cut_by_another(servers):
    # The seam the fallback relies on: nothing streamed is EndpointsDownError, a cut is not.
    (cut,) = servers([lambda handler: _sse(handler, [_delta('The robot')], finish=False)])
    backend = OpenAIBackend(RemoteConfig(base_url=cut.url, served_model='cosmos',
                                         max_retries=0))
    backend.load()
    with pytest.raises(GenerationError) as raised:
        backend.generate(_request(2))
    assert not isinstance(raised.value, EndpointsDownError)
    cut.close()
    with pytest.raises(EndpointsDownError, match='cannot reach'):
        backend.generate(_request(2))


def test_a_503_everywhere_is_an_outage_too(local_model, servers):
    (busy,) = servers([_status(503, 'overloaded')])
    backend = _fallback(local_model, [busy.url])
    result = backend.generate(_request(2))
    assert result.served_by == LOCAL
    assert 'HTTP 503' in result.warnings[0]


def test_a_cut_mid_stream_is_reported_and_not_answered_locally(local_model, servers):
    cut = [lambda handler: _sse(handler, [_delta('The robot'), _delta(' picks')],
                                finish=False)]
    (first,) = servers(cut)
    backend = _fallback(local_model, [first.url])
    streamed = []
    with pytest.raises(GenerationError, match=f'{first.url} answered, but its stream ended '
                                              'after 2 token'):
        backend.generate(_request(2), on_text=lambda text, tokens: streamed.append(text))
    assert ''.join(streamed) == 'The robot picks', 'the local model answered after the cut'
    assert backend.server_status().fallback.answered == 0


def test_a_server_that_comes_back_answers_again(local_model, servers):
    (first,) = servers([])
    port = int(first.url.rsplit(':', 1)[1].split('/')[0])
    backend = _fallback(local_model, [first.url])
    first.close()
    assert backend.generate(_request(2)).served_by == LOCAL
    (again,) = servers([], port=port)
    assert backend.check_server().serves_model
    result = backend.generate(_request(2))
    assert result.served_by == first.url and result.model_id == ''
    assert backend.server_status().fallback.answered == 1


def test_a_server_down_at_configure_leaves_the_local_model_serving(local_model, servers):
    url = _closed_port_url()
    backend = _fallback(local_model, [url])
    assert not backend.remote.loaded and backend.family is ModelFamily.QWEN3_VL
    result = backend.generate(_request(2))
    assert result.served_by == LOCAL and 'cannot reach' in result.warnings[0]
    port = int(url.rsplit(':', 1)[1].split('/')[0])
    servers([], port=port)
    assert backend.check_server().serves_model
    assert backend.generate(_request(2)).served_by == url


def test_a_fallback_goal_waits_for_the_local_model_and_ends_on_its_cancel(local_model):
    backend = _fallback(local_model, [_closed_port_url()])
    cancel = threading.Event()
    backend._local_turn.acquire()    # another goal is answered locally
    try:
        threading.Timer(0.2, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(GenerationCancelled, match='waiting for the local model'):
            backend.generate(_request(2), cancel=cancel)
        assert time.monotonic() - started < 1.0
    finally:
        backend._local_turn.release()


def test_fallback_with_the_transformers_backend_is_a_clear_error(tiny_qwen3_checkpoint):
    settings = _settings(tiny_qwen3_checkpoint, [_closed_port_url()])
    with pytest.raises(ModelLoadError, match='remote.fallback_local is a last resort of backend '
                                             'openai'):
        create_backend(BackendSettings(backend='transformers', model=settings.model,
                                       remote=settings.remote))


def test_fallback_without_a_local_model_is_a_clear_error():
    settings = _settings('', [_closed_port_url()])
    with pytest.raises(ModelLoadError, match='remote.fallback_local needs a local model'):
        create_backend(settings)


def test_a_local_model_that_fails_to_load_fails_the_load(tmp_path):
    backend = create_backend(_settings(tmp_path / 'missing', [_closed_port_url()]))
    with pytest.raises(ModelLoadError, match='remote.fallback_local: the local model failed to '
                                             'load'):
        backend.load()


def test_a_local_model_of_another_family_is_refused_and_freed(tiny_qwen3_checkpoint, servers):
    (server,) = servers([])
    backend = create_backend(_settings(tiny_qwen3_checkpoint, [server.url],
                                       family='qwen2_5_vl'))
    with pytest.raises(ModelLoadError, match="is qwen3_vl but the server's 'cosmos' is "
                                             'qwen2_5_vl'):
        backend.load()
    assert backend.local.family is None, 'the local model was kept after a refused load'
