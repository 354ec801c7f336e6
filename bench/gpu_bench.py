"""GPU benchmark: Cosmos-Reason2-2B/8B and Cosmos3-Edge shapes (random weights) on a 16-frame 720p
window.

Measures prefill, time to first token, decode tokens/s at batch 1 and peak GPU memory for NVIDIA's
plain usage (fp16, sdpa, default generate) and for the node's backend with its best settings.
"""

import argparse
from collections.abc import Callable, Sequence
import dataclasses
import gc
import importlib.util
import json
import os
from pathlib import Path
import statistics
import sys
import time
from typing import Any

import numpy as np

from bench import common
from bench.random_models import EDGE, SIZES

NOMINAL_BANDWIDTH = (
    # (substring of torch.cuda.get_device_name(), bytes/s), first match wins.
    ('H200', 4.8e12), ('H100 PCIe', 2.0e12), ('H100 NVL', 3.9e12), ('H100', 3.35e12),
    ('GH200', 4.0e12), ('B200', 8.0e12), ('A100-SXM4-80GB', 2.039e12), ('A100 80GB', 1.935e12),
    ('A100', 1.555e12), ('L40S', 0.864e12), ('L4', 0.3e12), ('RTX 4090', 1.008e12),
    ('RTX 6000 Ada', 0.96e12), ('Thor', 0.273e12), ('Orin', 0.2048e12),
)
"""Published memory bandwidth of common GPUs (the measured copy bandwidth is printed too)."""

SYSTEM = 'You are a helpful assistant.'
TASK = 'What is the robot about to do?'


@dataclasses.dataclass
class Row:
    """One configuration's medians."""

    label: str
    frames: str
    prompt_tokens: int
    preprocess_ms: float
    prefill_ms: float
    ttft_ms: float
    decode_tokens_per_s: float
    new_tokens: int
    peak_gib: float


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return common.memory_mb(os.getpid())['VmHWM'] / 1024


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def copy_bandwidth(device: str) -> float:
    """Bytes/s of a large device-to-device copy (each byte read once and written once)."""
    import torch

    if not device.startswith('cuda'):
        return 0.0
    size = 2 * 2**30
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize()
    started = time.perf_counter()
    for _ in range(10):
        target.copy_(source)
    synchronize()
    seconds = time.perf_counter() - started
    del source, target
    free_memory()
    return 2 * size * 10 / seconds


def nominal_bandwidth(name: str) -> float | None:
    for key, value in NOMINAL_BANDWIDTH:
        if key.lower() in name.lower():
            return value
    return None


class FirstTokenTimer:
    """A generate() streamer that records when the first new token and the last one arrive."""

    def __init__(self) -> None:
        self._prompt_seen = False
        self.first: float | None = None
        self.last: float | None = None
        self.tokens = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.tokens += int(value.numel())

    def end(self) -> None:
        pass


def median_of(function: Callable[[], float], repeats: int) -> float:
    return statistics.median(function() for _ in range(repeats))


def prefill_ms(model: Any, inputs: dict[str, Any], repeats: int) -> float:
    """One forward pass over the whole prompt (vision encoder included), last logits only."""
    import torch

    def once() -> float:
        synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            model(**inputs, use_cache=True, logits_to_keep=1)
        synchronize()
        return 1000 * (time.perf_counter() - started)

    once()
    return median_of(once, repeats)


def frames_720p(count: int, width: int, height: int) -> list[np.ndarray]:
    from cosmos_reason_ros.demo.sample_scene import render_scene

    return [render_scene(index / 4.0, width, height) for index in range(count)]


def plain_usage(checkpoint: Path, frames: Sequence[np.ndarray], new_tokens: int, repeats: int,
                device: str, dtype_name: str) -> Row:
    """(a) NVIDIA's example usage: fp16, sdpa, the processor's defaults, default generate()."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from cosmos_reason_ros.core.answers.families import family_for_model_type
    from cosmos_reason_ros.core.backends.transformers_backend import video_metadata

    dtype = getattr(torch, dtype_name)
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(
        checkpoint, dtype=dtype, attn_implementation='sdpa',
        device_map={'': device} if device != 'cpu' else None)
    video = np.stack(frames)
    messages = [{'role': 'system', 'content': [{'type': 'text', 'text': SYSTEM}]},
                {'role': 'user', 'content': [{'type': 'video'}, {'type': 'text', 'text': TASK}]}]

    family = family_for_model_type(model.config.model_type)

    def prepare() -> Any:
        # The template's defaults (Cosmos3-Edge: thinking on), as a plain user gets them.
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        metadata = video_metadata([index / 4.0 for index in range(len(frames))], family,
                                  width=video.shape[2], height=video.shape[1])
        # return_metadata and return_mm_token_type_ids: Qwen3-VL's processor defaults, which
        # Cosmos3-Edge's (transformers 5.23) needs spelled out.
        inputs = processor(text=[text], videos=[video], return_tensors='pt',
                           return_mm_token_type_ids=True, videos_kwargs={
                               'do_sample_frames': False, 'video_metadata': [metadata],
                               'return_metadata': True})
        inputs.pop('video_metadata', None)
        return inputs.to(device)

    started = time.perf_counter()
    inputs = prepare()
    preprocess = 1000 * (time.perf_counter() - started)
    prefill = prefill_ms(model, inputs, repeats)

    def generate(tokens: int) -> FirstTokenTimer:
        timer = FirstTokenTimer()
        synchronize()
        timer.started = time.perf_counter()  # type: ignore[attr-defined]
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=tokens, streamer=timer)
        synchronize()
        return timer

    generate(4)
    grid = inputs['video_grid_thw'][0]
    reset_peak()
    timers = [generate(new_tokens) for _ in range(repeats)]
    row = Row(
        label=f'(a) plain: {dtype_name}, sdpa, default generate()',
        frames=f'{len(frames)}x{int(grid[2]) * 16}x{int(grid[1]) * 16}',
        prompt_tokens=int(inputs['input_ids'].shape[-1]), preprocess_ms=preprocess,
        prefill_ms=prefill,
        ttft_ms=statistics.median(1000 * (t.first - t.started) for t in timers),
        decode_tokens_per_s=statistics.median((t.tokens - 1) / (t.last - t.first)
                                              for t in timers),
        new_tokens=min(t.tokens for t in timers), peak_gib=peak_gib())
    model = inputs = None  # noqa: F841 - drop the references before the next model loads
    free_memory()
    return row


def backend_path(checkpoint: Path, frames: Sequence[np.ndarray], new_tokens: int, repeats: int,
                 device: str, dtype: str, attention: str, cache: str, max_pixels: int,
                 label: str) -> Row:
    """(b) The node's TransformersBackend; frames scaled to at most max_pixels by the processor.

    The node's window stores frames already scaled to its budget; here the processor scales them
    (same token count, the resize counted in preprocessing), which keeps this script free of the
    image-message dependencies the lent GPU machines lack (rosbags).
    """
    from cosmos_reason_ros.core.answers.modes import Mode
    from cosmos_reason_ros.core.answers.prompts import build_prompt
    from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
    from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
    from cosmos_reason_ros.core.config import ModelConfig

    backend = TransformersBackend(ModelConfig(
        model=str(checkpoint), device=device, dtype=dtype, attn_implementation=attention,
        cache_implementation=cache, local_files_only=True), max_frame_pixels=max_pixels)
    backend.load()
    request = GenerationRequest(
        prompt=build_prompt(Mode.QUESTION, family=backend.family, task=TASK),
        frames=list(frames), timestamps=[index / 4.0 for index in range(len(frames))],
        # The node's no-reasoning preset, which is also the checkpoint's default sampling.
        sampling=Sampling(max_new_tokens=new_tokens, temperature=0.7, top_p=0.8, top_k=20))
    prepared = backend.preprocess(request)
    prefill = prefill_ms(backend._model, prepared.inputs, repeats)  # noqa: SLF001
    for _ in range(2):  # the first call compiles decoding when the cache is static
        backend.generate(request)
    reset_peak()
    results = [backend.generate(request) for _ in range(repeats)]
    width, height = results[0].model_input_size
    row = Row(
        label=label, frames=f'{len(frames)}x{width}x{height}',
        prompt_tokens=results[0].prompt_tokens,
        preprocess_ms=statistics.median(1000 * r.preprocess_time for r in results),
        prefill_ms=prefill,
        ttft_ms=statistics.median(1000 * r.time_to_first_token for r in results),
        decode_tokens_per_s=statistics.median(r.decode_tokens_per_second for r in results),
        new_tokens=min(r.completion_tokens for r in results), peak_gib=peak_gib())
    backend.close()
    free_memory()
    return row


def best_attention() -> str:
    return 'flash_attention_2' if importlib.util.find_spec('flash_attn') else 'sdpa'


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.gpu_bench [--sizes 2b 8b] [--dry-run]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--sizes', nargs='+', choices=SIZES, default=list(SIZES))
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--frame-size', default='1280x720')
    parser.add_argument('--window-pixels', type=int, default=640 * 360,
                        help="pixel budget per frame of row (c): the desktop preset's window")
    parser.add_argument('--new-tokens', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--checkpoints', type=Path, default=None,
                        help='where the random checkpoints are written (default .cache/bench)')
    parser.add_argument('--json', type=Path, default=None,
                        help='also write the figures here (default $OUT/gpu_bench.json if $OUT)')
    parser.add_argument('--dry-run', action='store_true',
                        help='check the script on a CPU: the tiny Qwen3-VL and Cosmos3-Edge '
                             'models, 2 small frames, 8 tokens')
    args = parser.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    from bench.random_models import build_random_checkpoint, parameter_counts
    from cosmos_reason_ros.core.answers.modes import ModelFamily
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print('no CUDA device: run this on a GPU machine, or pass --dry-run to check the script',
              file=sys.stderr)
        return 2
    device = 'cpu' if dry else 'cuda'
    width, height = (int(v) for v in args.frame_size.split('x'))
    count, new_tokens, repeats = args.frames, args.new_tokens, args.repeats
    if dry:
        width, height, count, new_tokens, repeats = 320, 180, 2, 8, 1
    name = 'CPU (dry run)' if dry else torch.cuda.get_device_name()
    measured = copy_bandwidth(device)
    nominal = None if dry else nominal_bandwidth(name)
    bandwidth = nominal or measured
    common.print_machine()
    print(f'device: {name}; torch {torch.__version__}; copy bandwidth '
          f'{measured / 1e12:.2f} TB/s; published {nominal / 1e12 if nominal else 0:.2f} TB/s; '
          f'attention for (b): {best_attention()}')
    frames = frames_720p(count, width, height)
    root = args.checkpoints or common.CACHE
    report: dict[str, Any] = {'device': name, 'copy_bandwidth': measured,
                              'published_bandwidth': nominal, 'sizes': {}}
    tiny = {'tiny': ModelFamily.QWEN3_VL, 'tiny-edge': ModelFamily.COSMOS3_EDGE}
    for size in (list(tiny) if dry else args.sizes):
        started = time.monotonic()
        if dry:
            checkpoint = build_tiny_checkpoint(root / f'{size}-{tiny[size].value}', tiny[size])
        else:
            prefix = 'cosmos3' if size == EDGE else 'qwen3vl'
            checkpoint = build_random_checkpoint(root / f'{prefix}-{size}-random-bf16', size,
                                                 dtype='bfloat16', device='cuda')
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(checkpoint)
        counts = parameter_counts(config)
        weight_bytes = 2 * counts['read_per_token']
        limit = bandwidth / weight_bytes if bandwidth else 0.0
        print(f'\n{size}: {counts["total"] / 1e9:.2f} B parameters, language model reads '
              f'{weight_bytes / 1e9:.2f} GB per token in 16-bit -> bandwidth limit '
              f'{limit:.0f} tokens/s; checkpoint ready in {time.monotonic() - started:.0f} s')
        half = 'float32' if dry else 'float16'
        best_dtype = 'fp32' if dry else 'bf16'
        rows = [
            plain_usage(checkpoint, frames, new_tokens, repeats, device, half),
            backend_path(checkpoint, frames, new_tokens, repeats, device, best_dtype,
                         best_attention(), 'static', 1920 * 1088,
                         f'(b) node backend: {best_dtype}, {best_attention()}, static cache'
                         + ('' if dry else ' + compiled decoding')),
            backend_path(checkpoint, frames, new_tokens, repeats, device, best_dtype,
                         best_attention(), 'static', args.window_pixels,
                         '(c) as (b), frames at the preset window budget'),
        ]
        print(f"  {'configuration':<58} {'frames':>11} {'prompt':>6} {'prep ms':>8} "
              f"{'prefill ms':>10} {'TTFT ms':>8} {'decode tok/s':>12} {'of limit':>8} "
              f"{'peak GiB':>8}")
        for row in rows:
            print(f'  {row.label:<58} {row.frames:>11} {row.prompt_tokens:>6} '
                  f'{row.preprocess_ms:>8.1f} {row.prefill_ms:>10.1f} {row.ttft_ms:>8.1f} '
                  f'{row.decode_tokens_per_s:>12.1f} '
                  f'{100 * row.decode_tokens_per_s / limit if limit else 0:>7.1f}% '
                  f'{row.peak_gib:>8.2f}')
        report['sizes'][size] = {'parameters': counts, 'weight_bytes_per_token': weight_bytes,
                                 'limit_tokens_per_s': limit,
                                 'rows': [dataclasses.asdict(row) for row in rows]}
    target = args.json or (Path(os.environ['OUT']) / 'gpu_bench.json'
                           if os.environ.get('OUT') else None)
    if target is not None:
        target.write_text(json.dumps(report, indent=2) + '\n')
        print(f'\nfigures written to {target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
