"""Session affinity and priority on the wire, and vllm-router keeping each robot on one worker.

The router tests start `vllm-router` (scripts/setup_vllm.sh installs it into .venv-router) in
front of two scripted OpenAI-compatible workers on loopback. Without the router they are
skipped, except under CI (CI set), where that is a failure.
"""

import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from test_openai_backend import _request, _stream_fixture, ScriptedServer

from cosmos_reason_ros.core.backends.base import GenerationRequest
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import GenerationError, ModelLoadError

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROUTER = ROOT / '.venv-router' / 'bin' / 'vllm-router'

WORKER_PORTS = (47611, 47612)
"""Fixed, because the router places workers on its hash ring by their URL: with other ports the
keys below may land elsewhere."""
KEY_ON_FIRST = '/robot8/cosmos_reason'
"""Hashes to the worker on WORKER_PORTS[0] (found by trying /robot1 ... /robot9)."""
KEY_ON_SECOND = '/robot7/cosmos_reason'
"""Hashes to the worker on WORKER_PORTS[1]."""


def _priority_request(priority: int) -> GenerationRequest:
    request = _request(2)
    return GenerationRequest(prompt=request.prompt, frames=request.frames,
                             timestamps=request.timestamps, sampling=request.sampling,
                             priority=priority)


def _backend(url: str, **settings) -> OpenAIBackend:
    backend = OpenAIBackend(RemoteConfig(base_url=url, served_model='cosmos',
                                         retry_backoff=0.05, **settings))
    backend.load()
    return backend


@pytest.fixture
def worker():
    servers = []

    def start(replies=(), **kwargs):
        server = ScriptedServer(list(replies), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# --- what the backend sends -------------------------------------------------------------------

def test_the_session_key_goes_as_user_and_in_the_header_on_every_request(worker):
    server = worker()
    backend = _backend(server.url, session_key='/robot7/cosmos_reason')
    backend.generate(_request(2))
    assert server.bodies[0]['user'] == '/robot7/cosmos_reason'
    # The model list at load() and the completion both carry the header.
    assert [headers.get('x-session-id') for headers in server.headers] == \
        ['/robot7/cosmos_reason'] * 2


def test_the_header_name_is_configurable_and_can_be_left_out(worker):
    server = worker()
    _backend(server.url, session_key='a', session_header='X-Robot').generate(_request(2))
    assert server.headers[-1]['X-Robot'] == 'a' and 'x-session-id' not in server.headers[-1]
    _backend(server.url, session_key='a', session_header='').generate(_request(2))
    assert server.bodies[-1]['user'] == 'a'
    assert not {'x-session-id', 'X-Robot'} & set(server.headers[-1])


def test_without_a_key_neither_user_nor_header_is_sent(worker):
    server = worker()
    _backend(server.url).generate(_request(2))
    assert 'user' not in server.bodies[0] and 'x-session-id' not in server.headers[-1]


def test_priority_is_sent_negated_only_when_asked(worker):
    server = worker()
    _backend(server.url).generate(_priority_request(5))
    assert 'priority' not in server.bodies[-1]
    backend = _backend(server.url, send_priority=True)
    for priority in (5, 0, -3):
        backend.generate(_priority_request(priority))
    # vLLM serves its lowest priority first; a goal's higher priority is more urgent.
    assert [body['priority'] for body in server.bodies[-3:]] == [-5, 0, 3]


@pytest.mark.parametrize('settings, message', [
    (dict(session_header='x session'), "session_header 'x session' is not an HTTP header"),
    (dict(session_header='x-session:'), 'session_header'),
    (dict(session_header='x' * 65), 'session_header'),
    (dict(session_header='x-séance'), 'session_header'),
    (dict(session_key='r' * 257), 'session_key is 257 characters long'),
    (dict(session_key='robot\n7'), 'session_key .* printable ASCII'),
    (dict(session_key=' robot7'), 'session_key'),
    (dict(session_key='röbot'), 'session_key'),
])
def test_bad_session_settings_fail_the_load_naming_the_parameter(settings, message):
    config = RemoteConfig(base_url='http://127.0.0.1:9/v1', **settings)
    with pytest.raises(ModelLoadError, match=message):
        OpenAIBackend(config).load()


# --- behind vllm-router -----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _record_paths(server: ScriptedServer) -> list[str]:
    """Record the path of every GET the server answers (the router's health checks)."""
    paths: list[str] = []
    handler = server.httpd.RequestHandlerClass

    def do_GET(self):
        paths.append(self.path)
        handler.do_GET(self)

    server.httpd.RequestHandlerClass = type('Recording', (handler,), {'do_GET': do_GET})
    return paths


@pytest.fixture
def router(tmp_path):
    if not ROUTER.exists():
        if os.environ.get('CI'):
            raise RuntimeError(f'{ROUTER} is missing: CI must run scripts/setup_vllm.sh first')
        pytest.skip(f'no vllm-router ({ROUTER}): run scripts/setup_vllm.sh')
    processes = []

    def start(workers: list[ScriptedServer], *options: str) -> str:
        port = _free_port()
        log = tmp_path / f'router-{port}.log'
        process = subprocess.Popen(
            [str(ROUTER), '--worker-urls', *(w.url.removesuffix('/v1') for w in workers),
             '--host', '127.0.0.1', '--port', str(port), '--worker-startup-check-interval', '1',
             '--log-level', 'warning', *options],
            stdout=log.open('w'), stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(process)
        deadline = time.monotonic() + 60.0
        while True:
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=1.0)
                return f'http://127.0.0.1:{port}/v1'
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'vllm-router did not start: {log.read_text()}') from None
                time.sleep(0.1)

    yield start
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _fixed_workers(worker) -> list[ScriptedServer]:
    try:
        return [worker(port=port) for port in WORKER_PORTS]
    except OSError as error:
        pytest.fail(f'ports {WORKER_PORTS} are needed for the stated keys to hash apart: {error}')


def test_consistent_hash_keeps_each_robot_on_one_worker_and_two_robots_apart(worker, router):
    workers = _fixed_workers(worker)
    health = [_record_paths(server) for server in workers]
    url = router(workers, '--policy', 'consistent_hash')
    robots = {key: _backend(url, session_key=key) for key in (KEY_ON_FIRST, KEY_ON_SECOND)}
    for _ in range(10):
        for backend in robots.values():
            backend.generate(_request(2))
    for server, key in zip(workers, (KEY_ON_FIRST, KEY_ON_SECOND)):
        # Every completion of one robot on its worker, none of the other's: 10 of 10.
        assert [body['user'] for body in server.bodies] == [key] * 10
        assert [headers.get('x-session-id') for headers in _lower(server.headers)
                if int(headers.get('content-length', 0))] == [key] * 10
    # The router checks its workers' health at /health (the scripted server answers any GET).
    assert all('/health' in paths for paths in health)


def test_a_429_from_the_router_is_backed_off_as_its_retry_after_says(worker, router):
    released = threading.Event()
    server = worker([_held(released)])
    # A token bucket of one request refilled at one per second, and no queue: a second request
    # within that second is refused with HTTP 429 and Retry-After: 1 (vllm-router 0.1.17). The
    # refill is at least one per second, so a router that keeps refusing cannot be provoked;
    # test_openai_backend bounds retries and Retry-After against a scripted server.
    url = router([server], '--policy', 'round_robin', '--max-concurrent-requests', '1',
                 '--queue-size', '0')
    backend = _backend(url, max_retries=2, request_deadline=20.0)
    first = threading.Thread(target=lambda: _quietly(backend, _request(2)))
    first.start()
    try:
        while not server.bodies:
            time.sleep(0.01)
        threading.Timer(0.3, released.set).start()
        started = time.monotonic()
        result = backend.generate(_request(2))
        waited = time.monotonic() - started
    finally:
        released.set()
        first.join(10.0)
    assert result.completion_tokens == 12
    assert 1.0 <= waited < 5.0  # Retry-After: 1 honoured, then one retry that went through
    assert len(server.bodies) == 2  # the refused try never reached the worker


def _lower(headers: list[dict]) -> list[dict]:
    """Header names in lower case (the router forwards them so, a client as it wrote them)."""
    return [{name.lower(): value for name, value in entry.items()} for entry in headers]


def _held(released: threading.Event):
    """Answer once released (a request that keeps the router's one slot busy meanwhile)."""
    def reply(handler):
        released.wait(10.0)
        _stream_fixture('vllm_stream_content.sse')(handler)
    return reply


def _quietly(backend: OpenAIBackend, request: GenerationRequest) -> None:
    try:
        backend.generate(request)
    except GenerationError:
        pass  # the held request may end either way; the test is about the other one
