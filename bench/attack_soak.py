"""Attack and soak: the reasoning node (own process, tiny model or a fake OpenAI server on
127.0.0.1) against hostile input, clients and servers, then a long run of ordinary goals.

Every case has a bound in seconds; the table gives its outcome (the result code and the start of
the message) and the time to it. The soak prints the node's RSS, threads and open files every
100 goals. Bounded: a fixed list of cases, --soak goals, and a timeout on every wait.

    python -m bench.attack_soak [--soak 1000] [--only local|remote|soak]
"""

import argparse
from collections.abc import Callable, Sequence
import contextlib
import http.server
import json
import math
from pathlib import Path
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import cv2
import numpy as np

from bench import common

KEY = 'sk-abuse-5ecret-never-shown'
TINY = 'tiny-qwen3-vl'


# -- a camera and a planner in this process ----------------------------------------------------

def jpeg(width: int, height: int, value: int = 90) -> bytes:
    image = np.full((height, width, 3), value, np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 0, 255), -1)
    return cv2.imencode('.jpg', image)[1].tobytes()


def bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A JPEG of a few hundred bytes whose frame header declares width x height pixels."""
    data = jpeg(16, 16)
    start = data.index(b'\xff\xc0')
    return (data[:start + 5] + height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
            + data[start + 9:])


class Planner:
    """An action client and a JPEG camera (10 fps, stamps from the wall clock) on one domain."""

    def __init__(self, domain: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage

        from cosmos_reason_ros.ros.client import ReasonClient
        from cosmos_reason_ros.ros.spinning import spinning

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node('attack_planner', context=self.context)
        self.client = ReasonClient(self.node)
        self._camera = self.node.create_publisher(CompressedImage, 'image/compressed',
                                                  qos_profile_sensor_data)
        self._message = CompressedImage
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        self._teardown = contextlib.ExitStack()
        self._teardown.enter_context(spinning(
            executor, destroy=(self._destroy_client, self.node.destroy_node),
            context=self.context))
        self.frame = jpeg(160, 120)
        self.camera_on = threading.Event()
        self._closing = threading.Event()
        self._camera_thread = threading.Thread(target=self._stream, daemon=True)
        self._camera_thread.start()

    def now(self) -> float:
        return time.time()

    def publish(self, data: bytes, stamp: float) -> None:
        from std_msgs.msg import Header

        from cosmos_reason_ros.ros.conversions import to_time

        self._camera.publish(self._message(header=Header(stamp=to_time(stamp),
                                                         frame_id='camera'),
                                           format='jpeg', data=data))

    def _stream(self) -> None:
        while not self._closing.wait(0.1):
            if self.camera_on.is_set():
                self.publish(self.frame, self.now())

    def send(self, goal: Any, timeout: float = 120.0) -> Any:
        from cosmos_reason_ros.ros.client import GoalFailedError
        try:
            return self.client.ask(goal, timeout=timeout)
        except GoalFailedError as error:
            return error.result

    def send_many(self, goals: Sequence[Any], timeout: float) -> list[Any]:
        """Send goals at once; their results (None where none came within timeout)."""
        futures = [self.client.send(goal) for goal in goals]
        deadline = time.monotonic() + timeout
        results: list[Any] = []
        for future in futures:
            handle = _wait(future, deadline)
            response = (_wait(handle.get_result_async(), deadline)
                        if handle is not None and handle.accepted else None)
            results.append(None if response is None else response.result)
        return results

    def _destroy_client(self) -> None:
        self.client.destroy()  # the client of now: a scenario replaces it

    def close(self) -> None:
        self._closing.set()
        self._camera_thread.join(timeout=2.0)
        self._teardown.close()


def _wait(future: Any, deadline: float) -> Any:
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    done.wait(max(0.0, deadline - time.monotonic()))
    return future.result() if future.done() else None


# -- a hostile OpenAI-compatible server ---------------------------------------------------------

def _delta(text: str, finish: str | None = None) -> bytes:
    return json.dumps({'choices': [{'index': 0, 'delta': {'content': text},
                                    'finish_reason': finish}]}).encode()


class HostileServer:
    """GET /v1/models lists 'cosmos'; each POST is answered as `behaviour` says."""

    def __init__(self, port: int = 0) -> None:
        self.behaviour = 'ok'
        self.released = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._json(200, {'object': 'list', 'data': [{'id': 'cosmos'}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get('Content-Length', 0)))
                try:
                    getattr(self, f'_{server.behaviour}')()
                except OSError:
                    pass  # the node closed the connection: that is the point

            def _json(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _events(self, events: Sequence[bytes], pause: float = 0.0,
                        done: bool = True) -> None:
                self.send_response(200)
                self.send_header('Content-Type', 'text/event-stream')
                self.send_header('Connection', 'close')
                self.end_headers()
                self.close_connection = True
                for data in events:
                    self.wfile.write(b'data: ' + data + b'\n\n')
                    self.wfile.flush()
                    if pause and server.released.wait(pause):
                        return
                if done:
                    self.wfile.write(b'data: [DONE]\n\n')

            def _ok(self) -> None:
                self._events([_delta('The marker is red.'), _delta('', 'stop')])

            def _hang(self) -> None:
                server.released.wait(120.0)

            def _trickle(self) -> None:
                self._events([_delta('a')] * 60, pause=2.0)

            def _endless(self) -> None:
                self._events([_delta('x')] * 20000)  # whatever max_tokens said

            def _flood(self) -> None:
                chunk = _delta('x' * 65536)
                self._events([chunk] * 800)  # 50 MiB of answer

            def _echo_error(self) -> None:
                self._events([json.dumps({'error': {'message': f'bad key {KEY}'}}).encode()])

            def _echo_text(self) -> None:
                self._events([f'not json {KEY}'.encode()])

            def _echo_body(self) -> None:
                self._json(200, {'echo': KEY})

            def _bad_utf8(self) -> None:
                self._events([b'\xff\xfe\xfd not utf-8'])

            def _choices_object(self) -> None:
                self._events([b'{"choices": {"index": 0, "delta": {"content": "x"}}}'])

            def _cut(self) -> None:
                self._events([], done=False)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# -- cases ---------------------------------------------------------------------------------------

Row = dict[str, Any]


def outcome(result: Any) -> str:
    """'NAME: start of the message' for a Reason.Result (or 'no answer')."""
    if result is None:
        return 'no answer'
    from cosmos_reason_ros.core.errors import Failure
    failure = Failure.from_result_code(result.error_code)
    name = 'SUCCESS' if failure is None else failure.name
    return f'{name}: {" ".join(result.message.split())[:90]}'


class Bench:
    """Runs the cases against one node process and collects the table."""

    def __init__(self, node: common.NodeProcess, planner: Planner,
                 diagnostics: common.Diagnostics, env: dict[str, str]) -> None:
        self.node = node
        self.planner = planner
        self.diagnostics = diagnostics
        self.env = env
        self.rows: list[Row] = []

    def case(self, name: str, bound: float, expected: str,
             run: Callable[[], tuple[str, bool]]) -> None:
        """Run one case: run() returns (outcome, whether it is the expected one)."""
        before = common.process_figures(self.node.pid)
        started = time.monotonic()
        try:
            text, ok = run()
        except Exception as error:  # noqa: BLE001 - a failed case is a row, not the end
            text, ok = f'ERROR {type(error).__name__}: {error}', False
        seconds = time.monotonic() - started
        self.node.check_alive()
        after = common.process_figures(self.node.pid)
        row = {'case': name, 'expected': expected, 'outcome': text, 'seconds': seconds,
               'bound': bound, 'ok': ok and seconds <= bound,
               'rss_mb': after['rss'], 'peak_mb': after['peak'],
               'rss_delta_mb': after['rss'] - before['rss']}
        self.rows.append(row)
        mark = 'ok ' if row['ok'] else 'BAD'
        print(f'{mark} {seconds:7.2f}/{bound:<5g} s  {name:<44} {text[:100]}', flush=True)

    def expect(self, name: str, bound: float, code: str, goal: Any,
               words: Sequence[str] = ()) -> None:
        def run() -> tuple[str, bool]:
            text = outcome(self.planner.send(goal, timeout=bound + 30.0))
            return text, text.startswith(code) and all(word in text for word in words)
        self.case(name, bound, code, run)


def local_cases(bench: Bench) -> None:
    from sensor_msgs.msg import CompressedImage, Image

    from cosmos_reason_ros.ros.client import make_goal

    planner = bench.planner
    question = lambda **fields: make_goal('Is the marker red?', **fields)  # noqa: E731

    def camera_bombs() -> tuple[str, bool]:
        invalid = int(bench.diagnostics.latest.get('frames_invalid', 0))
        for _ in range(20):
            # Stamped into the next window slot, so the window wants it and tries to decode.
            planner.publish(bomb(), planner.now() + 0.26)
            time.sleep(0.1)
        time.sleep(1.5)
        refused = int(bench.diagnostics.latest.get('frames_invalid', 0)) - invalid
        text = outcome(planner.send(question()))
        return f'{refused} refused; then {text}', text.startswith('SUCCESS') and refused >= 15
    bench.case('camera: 20 JPEGs declaring 30000x30000', 15.0, 'SUCCESS after', camera_bombs)

    def goal_image(data: bytes) -> Any:
        return CompressedImage(format='jpeg', data=data)
    bench.expect('goal image declaring 30000x30000', 5.0, 'INVALID_GOAL',
                 question(compressed_images=[goal_image(bomb())]), ['30000x30000'])

    def two_bombs() -> tuple[str, bool]:
        goals = [question(compressed_images=[goal_image(bomb())]) for _ in range(2)]
        results = planner.send_many(goals, 30.0)
        texts = [outcome(result) for result in results]
        return ' | '.join(text[:40] for text in texts), all(
            text.startswith(('INVALID_GOAL', 'BUSY')) for text in texts)
    bench.case('two bomb goals at once', 10.0, 'INVALID_GOAL/BUSY x2', two_bombs)

    bench.expect('task of 1 MB', 10.0, 'INVALID_GOAL', make_goal('x' * 1_000_000),
                 ['max_task_chars'])
    small = Image(height=8, width=8, encoding='rgb8', step=24, data=bytes(192))
    bench.expect('200 goal images', 10.0, 'INVALID_GOAL', question(images=[small] * 200),
                 ['max_images'])
    bench.expect('max_new_tokens 1,000,000', 5.0, 'INVALID_GOAL',
                 question(max_new_tokens=1_000_000), ['ceiling'])
    bench.expect('max_new_tokens 32768 (prompt past context)', 10.0, 'INVALID_GOAL',
                 question(max_new_tokens=32768), ['32768 new tokens'])
    bench.expect('temperature inf', 5.0, 'INVALID_GOAL', question(temperature=math.inf),
                 ['temperature'])
    bench.expect('temperature NaN', 5.0, 'INVALID_GOAL', question(temperature=math.nan),
                 ['temperature'])
    bench.expect('16000 tokens against a 40 s time limit', 45.0, 'GENERATION_FAILED',
                 question(max_new_tokens=16000, greedy=True), ['time limit'])
    # Fast DDS notices a killed participant when its lease (20 s by default) runs out.
    bench.case('planner SIGKILLed mid-goal (no other client)', 30.0, 'goal stopped',
               lambda: killed_client(bench))

    def future_end_dead_camera() -> tuple[str, bool]:
        planner.camera_on.clear()
        try:
            time.sleep(3.0)
            from cosmos_reason_ros.ros.conversions import to_time
            text = outcome(planner.send(question(window_end=to_time(planner.now() + 100.0))))
        finally:
            planner.camera_on.set()
        return text, text.startswith('STALE_FRAMES')
    bench.case('window_end 100 s ahead, camera dead 3 s', 10.0, 'STALE_FRAMES',
               future_end_dead_camera)
    time.sleep(1.0)

    def stray(stamp_of: Callable[[float], float], data: bytes | None = None) -> Callable:
        def run() -> tuple[str, bool]:
            planner.publish(data or planner.frame, stamp_of(planner.now()))
            time.sleep(1.5)  # normal frames continue
            result = planner.send(question())
            text = outcome(result)
            stamps = [t.sec + t.nanosec * 1e-9 for t in result.output.frame_stamps] \
                if result is not None else []
            now = planner.now()
            sane = (len(stamps) > 1 and all(abs(now - stamp) < 10.0 for stamp in stamps)
                    and result.output.image_width == 160)
            return (f'{text[:60]} ({len(stamps)} frames of {result.output.image_width}px)',
                    text.startswith('SUCCESS') and sane)
        return run
    bench.case('one frame stamped 60 s ahead', 10.0, 'SUCCESS, >1 recent frame',
               stray(lambda now: now + 60.0))
    bench.case('one frame stamped 0', 10.0, 'SUCCESS, >1 recent frame', stray(lambda now: 0.0))
    bench.case('one frame stamped 10 s back', 10.0, 'SUCCESS, >1 recent frame',
               stray(lambda now: now - 10.0))
    bench.case('one frame of another size (320x240)', 10.0, 'SUCCESS',
               stray(lambda now: now + 0.3, jpeg(320, 240)))

    def burst() -> tuple[str, bool]:
        results = planner.send_many([question() for _ in range(50)], 120.0)
        texts = [outcome(result) for result in results]
        answered = sum(result is not None for result in results)
        kinds = sorted({text.split(':')[0] for text in texts})
        return f'{answered}/50 answered: {", ".join(kinds)}', answered == 50
    bench.case('burst of 50 goals at once', 60.0, '50 answered', burst)

    def late_result() -> tuple[str, bool]:
        handle = _wait(planner.client.send(question()), time.monotonic() + 30.0)
        time.sleep(12.0)
        response = _wait(handle.get_result_async(), time.monotonic() + 30.0)
        from action_msgs.msg import GoalStatus
        ok = response is not None and response.status == GoalStatus.STATUS_SUCCEEDED
        return f'status {response.status if response else None}: {outcome(response.result)}', ok
    bench.case('result collected 12 s after the goal', 20.0, 'SUCCEEDED', late_result)

    def cancel_storm() -> tuple[str, bool]:
        futures = [planner.client.send(question(max_new_tokens=2000, greedy=True))
                   for _ in range(10)]
        handles = [_wait(future, time.monotonic() + 30.0) for future in futures]
        for handle in handles:
            handle.cancel_goal_async()
        deadline = time.monotonic() + 30.0
        responses = [_wait(handle.get_result_async(), deadline) for handle in handles]
        text = outcome(planner.send(question()))
        return (f'{sum(r is not None for r in responses)}/10 ended; then {text[:40]}',
                all(r is not None for r in responses) and text.startswith('SUCCESS'))
    bench.case('10 goals sent and cancelled at once', 20.0, 'all end, then SUCCESS',
               cancel_storm)


KILLED_CLIENT = """
import sys, time, rclpy
from cosmos_reason_ros.ros.client import ReasonClient, make_goal
rclpy.init()
node = rclpy.create_node('doomed_planner')
client = ReasonClient(node)
client.wait_for_server(timeout=60.0)
future = client.send(make_goal('Describe the scene', max_new_tokens=16000, greedy=True))
rclpy.spin_until_future_complete(node, future, timeout_sec=60.0)
print('accepted' if future.done() and future.result().accepted else 'refused', flush=True)
while True:
    rclpy.spin_once(node, timeout_sec=1.0)
"""


def killed_client(bench: Bench) -> tuple[str, bool]:
    """A planner in its own process sends a long goal and is SIGKILLed while it runs. rclpy
    only shows whether any client is left, so the bench's own client leaves first.
    """
    planner = bench.planner
    planner.client.destroy()
    process = subprocess.Popen([sys.executable, '-c', KILLED_CLIENT], env=bench.env,
                               cwd=common.ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip() if process.stdout else ''
        deadline = time.monotonic() + 20.0
        while bench.diagnostics.latest.get('goals_running') != '1':
            if time.monotonic() > deadline:
                return f'the goal never ran ({line})', False
            time.sleep(0.05)
        killed = time.monotonic()
        process.send_signal(signal.SIGKILL)
        deadline = killed + 60.0
        while bench.diagnostics.latest.get('goals_running') != '0':
            if time.monotonic() > deadline:
                return 'the goal still runs 60 s after its client was killed', False
            time.sleep(0.05)
        return f'goal stopped {time.monotonic() - killed:.1f} s after SIGKILL', True
    finally:
        process.kill()
        process.wait()
        from cosmos_reason_ros.ros.client import ReasonClient
        planner.client = ReasonClient(planner.node)
        planner.client.wait_for_server(timeout=30.0)


def server_comes_up(bench: Bench, port: int, servers: list['HostileServer']) -> None:
    """The node starts while its model server is down; the server comes up later."""
    from cosmos_reason_ros.ros.client import make_goal

    def run() -> tuple[str, bool]:
        def ask() -> tuple[str, str]:
            result = bench.planner.send(make_goal('Is it safe?'), timeout=60.0)
            return outcome(result), result.message if result is not None else ''

        first, message = ask()
        while 'still loading' in message:  # the first check is still under way
            time.sleep(0.2)
            first, message = ask()
        retrying = first.startswith('MODEL_NOT_READY') and 'retrying in' in message
        servers.append(HostileServer(port))
        up = time.monotonic()
        while time.monotonic() - up < 60.0:
            text = outcome(bench.planner.send(make_goal('Is it safe?'), timeout=60.0))
            if text.startswith('SUCCESS'):
                return (f'{first[:45]}; SUCCESS {time.monotonic() - up:.1f} s after the server '
                        'came up'), retrying
            time.sleep(0.2)
        return f'{first[:45]}; still {text[:40]}', False
    bench.case('server down at start, up later', 40.0, 'NOT_READY (retrying), then SUCCESS',
               run)


def remote_cases(bench: Bench, server: HostileServer) -> None:
    from cosmos_reason_ros.ros.client import make_goal

    question = make_goal('Is the marker red?')

    def behave(name: str, case: str, bound: float, code: str, words: Sequence[str] = (),
               secret_free: bool = True) -> None:
        def run() -> tuple[str, bool]:
            server.behaviour = name
            server.released.clear()
            try:
                text = outcome(bench.planner.send(question, timeout=bound + 30.0))
            finally:
                server.released.set()
            ok = text.startswith(code) and all(word in text for word in words)
            return text, ok and (not secret_free or KEY not in text)
        bench.case(case, bound, code, run)

    behave('ok', 'a well-behaved server', 5.0, 'SUCCESS')
    behave('hang', 'server hangs before headers', 8.0, 'GENERATION_FAILED', ['request_deadline'])
    behave('trickle', 'server trickles a token every 2 s', 8.0, 'GENERATION_FAILED',
           ['request_deadline'])
    behave('flood', '50 MiB answer streamed', 15.0, 'GENERATION_FAILED', ['max_answer_chars'])
    behave('endless', '20,000 chunks past max_tokens', 5.0, 'SUCCESS',
           ['answer cut at max_new_tokens'])
    behave('echo_error', 'key echoed in a streamed error', 5.0, 'GENERATION_FAILED')
    behave('echo_text', 'key echoed in non-JSON stream data', 5.0, 'GENERATION_FAILED')
    behave('echo_body', 'key echoed in a body without choices', 5.0, 'GENERATION_FAILED')
    behave('bad_utf8', 'stream that is not UTF-8', 5.0, 'GENERATION_FAILED', ['not UTF-8'])
    behave('choices_object', '`choices` as an object', 5.0, 'GENERATION_FAILED',
           ['not shaped like'])
    behave('cut', 'stream cut before any text', 10.0, 'GENERATION_FAILED', ['answered, but'])
    behave('ok', 'a well-behaved server again', 5.0, 'SUCCESS')


def soak(bench: Bench, goals: int, limit: float) -> list[dict[str, float]]:
    from cosmos_reason_ros.ros.client import make_goal

    rows = []
    started = time.monotonic()
    failures = 0
    kinds: dict[str, int] = {}
    first = common.process_figures(bench.node.pid)
    print(f'soak:     0 goals  {0.0:7.1f} s  RSS {first["rss"]:7.1f} MiB  threads '
          f'{first["threads"]}  fds {first["fds"]}', flush=True)
    for index in range(1, goals + 1):
        result = bench.planner.send(make_goal('Is the marker red?', max_new_tokens=4,
                                              greedy=True), timeout=60.0)
        if result is None or result.error_code != 0:
            failures += 1
            kind = outcome(result).split(':')[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        if index % 100 == 0:
            bench.node.check_alive()
            figures = common.process_figures(bench.node.pid)
            elapsed = time.monotonic() - started
            rows.append({'goals': index, 'seconds': elapsed, 'failures': failures, **figures})
            print(f'soak: {index:5d} goals  {elapsed:7.1f} s  RSS {figures["rss"]:7.1f} MiB  '
                  f'threads {figures["threads"]}  fds {figures["fds"]}  failures {failures} '
                  f'{kinds or ""}', flush=True)
            if elapsed > limit:
                print(f'soak: stopped at {index} goals, past --soak-limit {limit:g} s')
                break
    return rows


def print_table(rows: list[Row]) -> None:
    print('\n| case | expected | outcome | s (bound) | RSS MiB (delta) |')
    print('| --- | --- | --- | --- | --- |')
    for row in rows:
        mark = '' if row['ok'] else ' **BAD**'
        outcome_text = row['outcome'].replace('|', '/')[:110]
        print(f"| {row['case']} | {row['expected']} | {outcome_text}{mark} | "
              f"{row['seconds']:.2f} ({row['bound']:g}) | {row['rss_mb']:.0f} "
              f"({row['rss_delta_mb']:+.0f}) |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--soak', type=int, default=1000, help='goals in the soak')
    parser.add_argument('--soak-limit', type=float, default=540.0,
                        help='seconds after which the soak stops at the next 100')
    parser.add_argument('--only', choices=('local', 'remote', 'soak'), action='append')
    parser.add_argument('--json', type=Path, help='write the rows here')
    args = parser.parse_args(argv)
    parts = set(args.only or ('local', 'remote', 'soak'))
    common.print_machine()
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(common.CACHE / TINY)
    base = {'compressed_input': True, 'window.max_pixels': 160 * 120, 'goal.max_frames': 8,
            'goal.window_duration': 2.0, 'goal.max_new_tokens': 8}
    local = {**base, 'model': str(checkpoint), 'device': 'cpu', 'dtype': 'fp32',
             'goal.time_limit': 40.0, 'goal.max_new_tokens_limit': 32768}
    rows: list[Row] = []
    soak_rows: list[dict[str, float]] = []
    if parts & {'local', 'soak'}:
        def local_run(bench: Bench) -> None:
            _wait_ready(bench.planner, bench.node)
            if 'local' in parts:
                local_cases(bench)
            if 'soak' in parts:
                soak_rows.extend(soak(bench, args.soak, args.soak_limit))
        rows += run_node(local, local_run)
    if 'remote' in parts:
        port = _free_port()
        servers: list[HostileServer] = []
        remote = {**base, 'backend': 'openai',
                  'remote.base_url': f'http://127.0.0.1:{port}/v1',
                  'remote.served_model': 'cosmos', 'remote.api_key_env': 'ABUSE_KEY',
                  'remote.request_deadline': 5.0, 'remote.retry_backoff': 0.1}

        def remote_run(bench: Bench) -> None:
            server_comes_up(bench, port, servers)
            remote_cases(bench, servers[0])
        try:
            rows += run_node(remote, remote_run)
        finally:
            for server in servers:
                server.close()
    print_table(rows)
    if soak_rows:
        first, last = soak_rows[0], soak_rows[-1]
        per_100 = ((last['rss'] - first['rss']) / max(1, (last['goals'] - first['goals']) / 100)
                   if len(soak_rows) > 1 else 0.0)
        print(f'\nsoak: {last["goals"]} goals in {last["seconds"]:.0f} s, {last["failures"]} '
              f'failed; RSS {first["rss"]:.1f} -> {last["rss"]:.1f} MiB '
              f'({per_100:+.2f} MiB per 100 goals after the first 100), threads '
              f'{first["threads"]} -> {last["threads"]}, fds {first["fds"]} -> {last["fds"]}')
    bad = [row['case'] for row in rows if not row['ok']]
    print(f'\n{len(rows) - len(bad)}/{len(rows)} cases as expected within their bound'
          + (f'; not: {", ".join(bad)}' if bad else ''))
    if args.json:
        args.json.write_text(json.dumps({'cases': rows, 'soak': soak_rows}, indent=2))
    return 0 if not bad else 1


def run_node(parameters: dict[str, Any], body: Callable[['Bench'], None]) -> list[Row]:
    """Start the node with these parameters, run body against it, stop it; the case rows."""
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    env['ABUSE_KEY'] = KEY
    with common.node_process(parameters, env) as node:
        planner = Planner(domain)
        diagnostics = common.Diagnostics(domain)
        try:
            planner.camera_on.set()
            if not planner.client.wait_for_server(timeout=120.0):
                node.check_alive()
                raise RuntimeError('the node did not come up')
            bench = Bench(node, planner, diagnostics, env)
            body(bench)
            return bench.rows
        finally:
            diagnostics.close()
            planner.close()
            node.check_alive()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_ready(planner: Planner, node: common.NodeProcess) -> None:
    """Ask until the model is loaded and the window holds frames (at most 120 s)."""
    from cosmos_reason_ros.ros.client import make_goal

    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        node.check_alive()
        result = planner.send(make_goal('Is the marker red?'), timeout=60.0)
        if result is not None and result.error_code == 0:
            return
        time.sleep(0.5)
    raise RuntimeError('the node never answered a plain goal')


if __name__ == '__main__':
    raise SystemExit(main())
