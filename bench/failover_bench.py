"""Failover latency: a goal whose first endpoint refuses connections against a goal on a healthy
endpoint, with the remote backend against a streaming HTTP server on 127.0.0.1.

Three cases, each the same goals (2 frames of 160x120, one streamed answer of --tokens chunks,
--token-ms apart): `healthy` (one endpoint that answers), `refused, breaker off` (a closed port
first, its breaker never opening, so every goal pays the refused connection and the move on) and
`refused, breaker on` (the default breaker: the first goal fails over, the next ones skip the
open endpoint). The target is at most 1.2x the healthy median for the refused cases.

Then `died mid-stream`, --cuts times: a fresh first endpoint answers one goal, then dies halfway
through the next answer (its connection and its listening socket closed, as when the server
process is killed). That goal must fail saying the stream was cut, with the text streamed once
and no request sent to the second endpoint (no silent resend after text was streamed); the goal
after it must succeed on the second endpoint, whose time is set against the healthy median.

Run: python -m bench.failover_bench [--goals 50] [--tokens 20] [--token-ms 0 10] [--cuts 20]
"""

import argparse
import http.server
import json
import socket
import statistics
import threading
import time

import numpy as np

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.endpoints import BreakerPolicy
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import GenerationError


class StreamingServer:
    """Answers GET /v1/models with 'cosmos' and every POST with `tokens` SSE chunks.

    With `die_after`, every POST after the first sends that many chunks and then the server
    dies: the connection and the listening socket close (later connections are refused).
    """

    def __init__(self, tokens: int, token_seconds: float, die_after: int | None = None) -> None:
        self.posts = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({'object': 'list', 'data': [{'id': 'cosmos'}]}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length', 0)))
                self.send_response(200)
                self.send_header('Content-Type', 'text/event-stream')
                self.send_header('Connection', 'close')
                self.end_headers()
                self.close_connection = True
                server.posts += 1
                dying = die_after is not None and server.posts > 1
                for index in range(tokens):
                    if dying and index == die_after:
                        server.die()
                        return
                    finish = 'stop' if index == tokens - 1 else None
                    chunk = {'choices': [{'index': 0, 'delta': {'content': ' word'},
                                          'finish_reason': finish}]}
                    self.wfile.write(b'data: ' + json.dumps(chunk).encode() + b'\n\n')
                    self.wfile.flush()
                    if token_seconds:
                        time.sleep(token_seconds)
                self.wfile.write(b'data: [DONE]\n\n')
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def die(self) -> None:
        """Stop listening at once; the handler's return then closes the cut connection."""
        self.httpd.server_close()  # the listening socket: new connections are refused
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return f'http://127.0.0.1:{sock.getsockname()[1]}/v1'


def goal_times(urls: list[str], goals: int, breaker: BreakerPolicy) -> tuple[list[float], set]:
    """Seconds per goal (after one warm-up goal) and the endpoints that answered."""
    backend = OpenAIBackend(RemoteConfig(base_urls=tuple(urls), served_model='cosmos',
                                         family='qwen3_vl'), breaker=breaker)
    backend.load()
    request = _caption_request()
    backend.generate(request)
    times, served = [], set()
    for _ in range(goals):
        started = time.perf_counter()
        result = backend.generate(request)
        times.append(time.perf_counter() - started)
        served.add(result.served_by)
    return times, served


def _caption_request() -> GenerationRequest:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(2)]
    return GenerationRequest(build_prompt(Mode.CAPTION, family=ModelFamily.QWEN3_VL),
                             frames, [0.0, 0.25], Sampling(max_new_tokens=64))


def died_mid_stream(healthy: StreamingServer, tokens: int, token_seconds: float,
                    cuts: int) -> dict[str, list]:
    """`cuts` goals cut by a dying first endpoint, each followed by a goal on `healthy`.

    Returns:
        Per trial: 'cut_s' (seconds until the cut goal failed), 'honest' (it failed naming the
        cut, its text was streamed once and the second endpoint got no request), 'next_s' (the
        following goal's seconds) and 'next_on_second' (that goal was served by `healthy`).
    """
    request = _caption_request()
    trials: dict[str, list] = {'cut_s': [], 'honest': [], 'next_s': [], 'next_on_second': []}
    for _ in range(cuts):
        dying = StreamingServer(tokens, token_seconds, die_after=tokens // 2)
        backend = OpenAIBackend(RemoteConfig(base_urls=(dying.url, healthy.url),
                                             served_model='cosmos', family='qwen3_vl'))
        backend.load()
        backend.generate(request)  # the first endpoint answers one goal whole
        posts_before = healthy.posts
        streamed: list[str] = []
        started = time.perf_counter()
        try:
            backend.generate(request, on_text=lambda text, _tokens: streamed.append(text))
            message = ''
        except GenerationError as error:
            message = str(error)
        trials['cut_s'].append(time.perf_counter() - started)
        trials['honest'].append('stream ended after' in message
                                and ''.join(streamed) == ' word' * (tokens // 2)
                                and healthy.posts == posts_before)
        started = time.perf_counter()
        result = backend.generate(request)
        trials['next_s'].append(time.perf_counter() - started)
        trials['next_on_second'].append(result.served_by == healthy.url)
        dying.httpd.server_close()
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--goals', type=int, default=50)
    parser.add_argument('--tokens', type=int, default=20)
    parser.add_argument('--token-ms', type=float, nargs='+', default=[0.0, 10.0])
    parser.add_argument('--cuts', type=int, default=20,
                        help='goals cut mid-stream by a dying endpoint, per --token-ms')
    args = parser.parse_args()
    never_open = BreakerPolicy(failure_threshold=10**9)
    for token_ms in args.token_ms:
        server = StreamingServer(args.tokens, token_ms / 1000)
        try:
            refused = closed_port_url()
            cases = [('healthy', [server.url], BreakerPolicy()),
                     ('refused, breaker off', [refused, server.url], never_open),
                     ('refused, breaker on', [refused, server.url], BreakerPolicy())]
            print(f'{args.goals} goals, {args.tokens} chunks {token_ms:g} ms apart:')
            healthy = None
            for name, urls, breaker in cases:
                times, served = goal_times(urls, args.goals, breaker)
                median = statistics.median(times)
                healthy = healthy or median
                p95 = float(np.percentile(times, 95))
                assert served == {server.url}, served
                print(f'  {name:22s} median {median * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms'
                      f'  ratio {median / healthy:5.2f}x')
            trials = died_mid_stream(server, args.tokens, token_ms / 1000, args.cuts)
            cut = statistics.median(trials['cut_s'])
            following = statistics.median(trials['next_s'])
            print(f'  {"died mid-stream":22s} the cut goal failed after median '
                  f'{cut * 1000:7.2f} ms; {sum(trials["honest"])} of {args.cuts} reported the '
                  f'cut with its {args.tokens // 2} chunks streamed once and nothing resent')
            print(f'  {"  the goal after it":22s} median {following * 1000:7.2f} ms  ratio '
                  f'{following / healthy:5.2f}x; {sum(trials["next_on_second"])} of '
                  f'{args.cuts} on the second endpoint')
        finally:
            server.close()


if __name__ == '__main__':
    main()
