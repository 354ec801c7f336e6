"""Side by side: the remote backend's HTTP client today (http.client with its own SSE reader,
http_exchange.py) against httpx with httpx-sse, on the bounds the backend enforces and on latency.

Both clients talk to one scripted HTTP/1.1 server on 127.0.0.1 (raw sockets, so that it sees the
moment a client closes). Checked for each client:

1. a byte cap per SSE line: a 100 MB `data:` line without a newline must be refused after the
   cap (max_answer_chars 262144 -> 1,114,112 bytes), memory bounded (peak RSS growth, measured
   in a child process per case, and the bytes the server got to send);
2. a byte cap per body: a 100 MB non-streamed answer, the same cap;
3. the request deadline: a server that trickles one byte every 0.5 s is stopped at the deadline
   (2 s), not by the per-read timeout (10 s), which such a server never trips;
4. cancel: the time from setting the cancel event to the server seeing the connection closed,
   with chunks 50 ms apart and with a server that is silent (busy with the prompt);
5. key redaction: the API key in no exception message or repr and no DEBUG log line of the
   client's own (refused connection, a 401 that echoes the Authorization header, a timeout);
6. latency: time to first chunk and total for a 200-chunk stream, p50 over 50 requests, and the
   connections the server accepted for them.

The candidate is httpx as its documentation shows it (one Client, `connect_sse`/`iter_sse`,
`httpx.Timeout`, `response.read()`), cancel checked between events plus `response.close()` from
a watcher thread: what it holds without a layer of ours. httpx is not a dependency of the
project: install it to a folder of its own (`pip install --target /tmp/httpx_pkgs httpx
httpx-sse`) and pass that folder (default /tmp/httpx_pkgs).

Run: python -m bench.http_client_bench [--requests 50] [--chunks 200] [--httpx-path DIR]
"""

import argparse
from collections.abc import Callable
import contextlib
import io
import json
import logging
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from typing import Any
import urllib.parse

from cosmos_reason_ros.core.backends.http_exchange import CancelWatch, Exchange
from cosmos_reason_ros.core.backends.openai_stream import AnswerAccumulator, read_answer
from cosmos_reason_ros.core.deadline import DeadlineEvent

HUGE = 100 * 1024 * 1024
"""Bytes of the over-long line and body (100 MB)."""
MAX_CHARS = 262144
"""remote.max_answer_chars' default; the byte cap is 4 bytes a character + 64 KiB."""
CAP = 4 * MAX_CHARS + 65536
TIMEOUT = 10.0
"""The per-read timeout (remote.timeout) in the deadline and cancel cases."""
DEADLINE = 2.0
KEY = 'sk-bench-7f3a9c51e2d84b06'
BLOCK = b'x' * 65536
CHUNK_GAP = 0.05
"""Seconds between chunks in the cancel case: 'within one chunk' means within this."""


class _Gone(Exception):
    """The client closed the connection."""


class ScriptServer:
    """An HTTP/1.1 server on 127.0.0.1 that plays one scenario and notes when clients close."""

    def __init__(self, scenario: str, *, chunks: int = 200, gap: float = 0.0,
                 limit_s: float = 20.0) -> None:
        self.scenario = scenario
        self.chunks = chunks
        self.gap = gap
        self.limit_s = limit_s
        self.connections = 0
        self.bytes_sent = 0
        self.closed_at: list[float] = []
        """time.monotonic() at which the server saw a client close mid-answer."""
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.url = f'http://127.0.0.1:{self._listener.getsockname()[1]}/v1'
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # As uvicorn (vLLM) and every asyncio server do: without it, a small write on a reused
        # connection waits for the client's delayed ACK (40 ms) and the figures measure that.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile('rb')
        try:
            while True:
                if not reader.readline():
                    return
                headers = {}
                while (line := reader.readline().strip()):
                    name, _, value = line.decode('latin-1').partition(':')
                    headers[name.strip().lower()] = value.strip()
                reader.read(int(headers.get('content-length', 0)))
                if not getattr(self, '_' + self.scenario)(conn, headers):
                    return
        except _Gone:
            self.closed_at.append(time.monotonic())
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        try:
            conn.sendall(data)
        except OSError:
            raise _Gone() from None
        self.bytes_sent += len(data)
        self._watch(conn, 0.0)

    def _watch(self, conn: socket.socket, seconds: float) -> None:
        """Wait up to `seconds`, raising _Gone as soon as the client closes."""
        readable, _, _ = select.select([conn], [], [], seconds)
        if readable:
            try:
                if not conn.recv(1):
                    raise _Gone()
            except OSError:
                raise _Gone() from None

    def _wait_gone(self, conn: socket.socket) -> bool:
        end = time.monotonic() + self.limit_s
        while time.monotonic() < end:
            self._watch(conn, 0.01)
        return False

    def _head(self, conn: socket.socket, status: str, kind: str, extra: str = '') -> None:
        self._send(conn, (f'HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{extra}'
                          '\r\n').encode())

    def _long_line(self, conn: socket.socket, headers: dict) -> bool:
        self._head(conn, '200 OK', 'text/event-stream', 'Connection: close\r\n')
        self._send(conn, b'data: ')
        for _ in range(HUGE // len(BLOCK)):
            self._send(conn, BLOCK)
        return False

    def _big_body(self, conn: socket.socket, headers: dict) -> bool:
        self._head(conn, '200 OK', 'application/json', f'Content-Length: {HUGE}\r\n')
        for _ in range(HUGE // len(BLOCK)):
            self._send(conn, BLOCK)
        return False

    def _trickle(self, conn: socket.socket, headers: dict) -> bool:
        self._head(conn, '200 OK', 'text/event-stream', 'Connection: close\r\n')
        self._send(conn, b'data: {"choices": [')
        end = time.monotonic() + self.limit_s
        while time.monotonic() < end:
            self._watch(conn, 0.5)
            self._send(conn, b' ')  # JSON whitespace: the line never ends
        return False

    def _silent(self, conn: socket.socket, headers: dict) -> bool:
        return self._wait_gone(conn)

    def _echo_401(self, conn: socket.socket, headers: dict) -> bool:
        body = json.dumps({'error': {'message': 'invalid key in '
                                     f"'{headers.get('authorization')}'"}}).encode()
        self._head(conn, '401 Unauthorized', 'application/json',
                   f'Content-Length: {len(body)}\r\nConnection: close\r\n')
        self._send(conn, body)
        return False

    def _stream(self, conn: socket.socket, headers: dict) -> bool:
        self._head(conn, '200 OK', 'text/event-stream', 'Transfer-Encoding: chunked\r\n')
        for index in range(self.chunks):
            finish = 'stop' if index == self.chunks - 1 else None
            chunk = {'choices': [{'index': 0, 'delta': {'content': ' word'},
                                  'finish_reason': finish}]}
            self._send(conn, _chunked(b'data: ' + json.dumps(chunk).encode() + b'\n\n'))
            if self.gap:
                self._watch(conn, self.gap)
        self._send(conn, _chunked(b'data: [DONE]\n\n') + b'0\r\n\r\n')
        return True


def _chunked(data: bytes) -> bytes:
    return f'{len(data):x}\r\n'.encode() + data + b'\r\n'


# Clients ------------------------------------------------------------------------------------

Outcome = dict[str, Any]


class StdlibClient:
    """Today's client: Exchange + CancelWatch + read_answer, as OpenAIBackend sends a request."""

    name = 'http.client'

    def __init__(self, base_url: str, timeout: float) -> None:
        self._url = urllib.parse.urlsplit(base_url)
        self._timeout = timeout
        self.parts: list[Any] = []
        """Objects a repr of which could show the key (checked by the key case)."""

    def chat(self, answer: AnswerAccumulator, *, stream: bool,
             cancel: threading.Event | None) -> None:
        exchange = Exchange(self._url, self._timeout)
        self.parts = [exchange]
        headers = {'Content-Type': 'application/json', 'Authorization': f'Bearer {KEY}',
                   'Accept': 'text/event-stream' if stream else 'application/json'}
        try:
            with CancelWatch(exchange, cancel):
                response = exchange.send('POST', self._url.path + '/chat/completions',
                                         b'{"model": "m"}', headers)
                self.parts.append(response)
                read_answer(response, answer, stream=stream, cancel=cancel,
                            max_chars=MAX_CHARS)
        finally:
            exchange.close()

    def close(self) -> None:
        pass


class HttpxClient:
    """httpx + httpx-sse out of the box: one pooled Client, iter_sse, response.read()."""

    name = 'httpx'

    def __init__(self, base_url: str, timeout: float) -> None:
        import httpx
        self._httpx = httpx
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout),
                                    headers={'Authorization': f'Bearer {KEY}'})
        self.parts: list[Any] = [self._client]

    def chat(self, answer: AnswerAccumulator, *, stream: bool,
             cancel: threading.Event | None) -> None:
        from httpx_sse import EventSource
        held: list[Any] = []
        done = threading.Event()

        def watch() -> None:
            # The public API's only handle on a request in flight is its response.
            while not done.is_set():
                if cancel is not None and cancel.wait(0.05):
                    if held:
                        held[0].close()
                    return

        threading.Thread(target=watch, daemon=True).start()
        try:
            with self._client.stream('POST', '/chat/completions', content=b'{"model": "m"}',
                                     headers={'Accept': 'text/event-stream' if stream
                                              else 'application/json'}) as response:
                held.append(response)
                self.parts[1:] = [response.request, response]
                response.raise_for_status()
                if stream and 'text/event-stream' in response.headers.get('content-type', ''):
                    for event in EventSource(response).iter_sse():
                        if cancel is not None and cancel.is_set():
                            return
                        if event.data.strip() == '[DONE]':
                            continue  # read on to the body's end: the connection is reused
                        answer.add_chunk(json.loads(event.data))
                else:
                    answer.add_response(json.loads(response.read()))
        finally:
            done.set()

    def close(self) -> None:
        self._client.close()


CLIENTS: dict[str, Callable[[str, float], Any]] = {'http.client': StdlibClient,
                                                   'httpx': HttpxClient}


def _try(call: Callable[[], None]) -> str:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the outcome is what is measured
        return f'{type(error).__name__}: {str(error)[:90]}'
    return 'returned'


# Cases ---------------------------------------------------------------------------------------


def case_cap(client_name: str, scenario: str) -> Outcome:
    """A 100 MB line (long_line) or body (big_body): bytes the server sent, RSS growth."""
    server = ScriptServer(scenario)
    client = CLIENTS[client_name](server.url, TIMEOUT)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    outcome = _try(lambda: client.chat(AnswerAccumulator(max_chars=MAX_CHARS),
                                       stream=scenario == 'long_line', cancel=None))
    elapsed = time.monotonic() - started
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    client.close()
    time.sleep(0.1)
    sent = server.bytes_sent
    server.close()
    # Held: refused, and neither the server got its 100 MB through nor memory grew to it.
    held = outcome != 'returned' and sent < HUGE // 4 and growth < 64
    return {'held': held, 'outcome': outcome, 'sent_mb': sent / 1e6, 'rss_mib': growth,
            'seconds': elapsed}


def case_deadline(client_name: str) -> Outcome:
    """A server trickling a byte every 0.5 s: stopped at DEADLINE, not after TIMEOUT."""
    server = ScriptServer('trickle', limit_s=20.0)
    client = CLIENTS[client_name](server.url, TIMEOUT)
    started = time.monotonic()
    outcome = _try(lambda: client.chat(AnswerAccumulator(max_chars=MAX_CHARS), stream=True,
                                       cancel=DeadlineEvent(None, DEADLINE)))
    returned = time.monotonic() - started
    time.sleep(0.2)
    client.close()
    closed = server.closed_at[0] - started if server.closed_at else None
    server.close()
    held = closed is not None and closed < DEADLINE + 0.3 and returned < DEADLINE + 0.3
    return {'held': held, 'outcome': outcome, 'returned_s': returned, 'closed_s': closed}


def case_cancel(client_name: str, scenario: str) -> Outcome:
    """Cancel mid-stream (chunks CHUNK_GAP apart) or while the server is silent: seconds from
    the cancel to the server seeing the connection closed.
    """
    server = ScriptServer(scenario, chunks=400, gap=CHUNK_GAP, limit_s=15.0)
    client = CLIENTS[client_name](server.url, TIMEOUT)
    cancel = threading.Event()
    chunks = []
    cancelled_at: list[float] = []

    def canceller() -> None:
        # After the 5th chunk (or 0.5 s of silence), half a gap in: from another thread,
        # as the node's cancel arrives.
        end = time.monotonic() + 0.5
        while len(chunks) < 5 and not (scenario == 'silent' and time.monotonic() > end):
            time.sleep(0.002)
        time.sleep(CHUNK_GAP / 2)
        cancelled_at.append(time.monotonic())
        cancel.set()

    threading.Thread(target=canceller, daemon=True).start()
    answer = AnswerAccumulator(lambda text, tokens: chunks.append(text), max_chars=MAX_CHARS)
    outcome = _try(lambda: client.chat(answer, stream=True, cancel=cancel))
    returned = time.monotonic() - cancelled_at[0] if cancelled_at else None
    time.sleep(0.3)
    closed = server.closed_at[0] - cancelled_at[0] if server.closed_at and cancelled_at \
        else None
    client.close()
    server.close()
    return {'held': closed is not None and closed <= CHUNK_GAP, 'outcome': outcome,
            'closed_s': closed, 'returned_s': returned, 'chunks': len(chunks)}


def case_key(client_name: str) -> Outcome:
    """The key in no exception text (chain included), repr, or DEBUG log line of the client."""
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter('%(name)s %(message)s'))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            refused = f'http://127.0.0.1:{probe.getsockname()[1]}/v1'
        echo = ScriptServer('echo_401')
        silent = ScriptServer('silent', limit_s=3.0)
        for url, timeout in ((refused, TIMEOUT), (echo.url, TIMEOUT), (silent.url, 0.3)):
            client = CLIENTS[client_name](url, timeout)
            try:
                client.chat(AnswerAccumulator(max_chars=MAX_CHARS), stream=True, cancel=None)
            except Exception as error:  # noqa: BLE001 - every error's text is checked
                texts.append(''.join(traceback.format_exception(error)))
                texts.append(repr(error))
                texts.extend(repr(arg) for arg in error.args)
            texts.extend(repr(part) for part in client.parts)
            client.close()
        echo.close()
        silent.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    leaks = [text for text in texts if KEY in text]
    in_log = KEY in log.getvalue()
    where = []
    for text in leaks:
        first = next(line for line in text.splitlines() if KEY in line)
        where.append(first.strip()[:70])
    return {'held': not leaks and not in_log, 'leaks': where, 'in_log': in_log,
            'log_lines': len(log.getvalue().splitlines())}


def case_key_backend() -> Outcome:
    """Today's guard above the client: OpenAIBackend's _redact on a 401 that echoes the key."""
    from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
    from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
    echo = ScriptServer('echo_401')
    backend = OpenAIBackend(RemoteConfig(base_url=echo.url, served_model='m',
                                         api_key_env='BENCH_KEY'), api_key=KEY)
    texts = [_try(backend.load)]
    texts += [repr(backend), backend.server_status().message]
    echo.close()
    return {'held': not any(KEY in text for text in texts), 'message': texts[0]}


def case_latency(client_name: str, requests: int, chunks: int) -> Outcome:
    """p50 time to first chunk and total for a stream of `chunks`, and connections opened."""
    server = ScriptServer('stream', chunks=chunks)
    client = CLIENTS[client_name](server.url, TIMEOUT)
    firsts, totals = [], []
    for index in range(requests + 1):
        marks: list[float] = []
        answer = AnswerAccumulator(lambda text, tokens: marks.append(time.perf_counter()),
                                   max_chars=MAX_CHARS)
        started = time.perf_counter()
        client.chat(answer, stream=True, cancel=threading.Event())
        if index:  # the first one warms up
            firsts.append(marks[0] - started)
            totals.append(time.perf_counter() - started)
        assert answer.finish_reason == 'stop', answer.finish_reason
    client.close()
    server.close()
    return {'first_ms': statistics.median(firsts) * 1e3,
            'total_ms': statistics.median(totals) * 1e3,
            'connections': server.connections}


# Runner --------------------------------------------------------------------------------------


def in_child(case: str, client_name: str, httpx_path: str) -> Outcome:
    """Run one cap case in a fresh process, so that its peak RSS is its own."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [os.getcwd(), os.environ.get('PYTHONPATH', '')])))
    done = subprocess.run([sys.executable, '-m', 'bench.http_client_bench', '--child', case,
                           client_name, '--httpx-path', httpx_path],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode:
        return {'held': False, 'outcome': f'child failed: {done.stderr[-300:]}'}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(result: Outcome, figure: str) -> str:
    return ('held' if result['held'] else 'NOT held') + (f' ({figure})' if figure else '')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=50)
    parser.add_argument('--chunks', type=int, default=200)
    parser.add_argument('--httpx-path', default='/tmp/httpx_pkgs',
                        help='folder httpx and httpx-sse were installed to (pip --target)')
    parser.add_argument('--clients', nargs='+', default=list(CLIENTS), choices=list(CLIENTS))
    parser.add_argument('--child', nargs=2, metavar=('CASE', 'CLIENT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.path.isdir(args.httpx_path):
        sys.path.append(args.httpx_path)
    if args.child:
        print(json.dumps(case_cap(args.child[1], args.child[0])))
        return
    if 'httpx' in args.clients:
        try:
            import httpx
            import httpx_sse  # noqa: F401 - checked before the cases start
        except ImportError:
            sys.exit(f'httpx or httpx-sse not found in {args.httpx_path}: pip install --target '
                     f'{args.httpx_path} httpx httpx-sse (or --clients http.client)')
        print(f'httpx {httpx.__version__} from {os.path.dirname(httpx.__file__)}')
    rows: dict[str, dict[str, str]] = {}

    def row(name: str, client_name: str, text: str) -> None:
        rows.setdefault(name, {})[client_name] = text
        print(f'  {client_name:12} {name}: {text}', flush=True)

    for name in args.clients:
        line = in_child('long_line', name, args.httpx_path)
        row('cap per SSE line (100 MB line)', name, _cell(line, (
            f"server sent {line.get('sent_mb', 0):.1f} MB, peak RSS "
            f"+{line.get('rss_mib', 0):.0f} MiB, {line.get('seconds', 0):.2f} s; "
            f"{line['outcome'][:60]}")))
        body = in_child('big_body', name, args.httpx_path)
        row('cap per body (100 MB body)', name, _cell(body, (
            f"server sent {body.get('sent_mb', 0):.1f} MB, peak RSS "
            f"+{body.get('rss_mib', 0):.0f} MiB, {body.get('seconds', 0):.2f} s; "
            f"{body['outcome'][:60]}")))
        deadline = case_deadline(name)
        closed = deadline['closed_s']
        row(f'deadline {DEADLINE:g} s (byte every 0.5 s)', name, _cell(deadline, (
            f"returned at {deadline['returned_s']:.2f} s, server saw the close at "
            + (f'{closed:.2f} s' if closed is not None else 'never (stopped at 20 s)'))))
        for scenario, label in (('stream', 'mid-stream'), ('silent', 'server silent')):
            cancel = case_cancel(name, scenario)
            closed = cancel['closed_s']
            row(f'cancel {label}', name, _cell(cancel, (
                'closed ' + (f'{closed * 1e3:.0f} ms' if closed is not None else 'never')
                + ' after the cancel' + (f" (returned {cancel['returned_s'] * 1e3:.0f} ms)"
                                         if cancel['returned_s'] is not None else ''))))
        key = case_key(name)
        row('key redaction (client layer)', name, _cell(key, (
            '; '.join(key['leaks'][:2]) + (' + DEBUG log' if key['in_log'] else '')
            if not key['held'] else f"{key['log_lines']} DEBUG log lines clean")))
        if name == 'http.client':
            guard = case_key_backend()
            row('key redaction (OpenAIBackend above it)', name, _cell(guard, guard['message'][
                guard['message'].find('refused'):][:70]))
        else:
            row('key redaction (OpenAIBackend above it)', name,
                'same _redact, above whichever client')
        latency = case_latency(name, args.requests, args.chunks)
        row(f'latency, {args.chunks} chunks, p50 of {args.requests}', name,
            f"first chunk {latency['first_ms']:.2f} ms, total {latency['total_ms']:.2f} ms, "
            f"{latency['connections']} connection(s) for {args.requests + 1} requests")
    print()
    print('| property | ' + ' | '.join(args.clients) + ' |')
    print('| --- |' + ' --- |' * len(args.clients))
    for name, cells in rows.items():
        print(f'| {name} | ' + ' | '.join(cells.get(client, '') for client in args.clients)
              + ' |')


if __name__ == '__main__':
    with contextlib.suppress(KeyboardInterrupt):
        main()
