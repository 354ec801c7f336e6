"""The encoded-frame cache over a sliding window: vision-encoder time per tick with and without.

A 1 Hz monitor over an 8 s window at 4 fps sends 32 frames per tick, 4 of them new: with the
cache only the 2 new temporal patches (of 16) are encoded. The model is Cosmos-Reason2-2B's
vision tower (random weights, bench/random_models.py's published architecture) under a language
model of the 2B's width with --text-layers layers (28 is the whole 2B; the default 2 keeps a CPU
run short and so makes the whole-tick ratio smaller than a real 2B's).
"""

import argparse
from collections.abc import Sequence
import functools
import json
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench import common
from bench.random_models import ARCHITECTURES
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

FPS = 4.0


def build_checkpoint(path: Path, text_layers: int) -> Path:
    """A Qwen3-VL checkpoint with the 2B's vision tower and text width, text_layers deep, random
    weights, and the tiny model's tokenizer and processor.
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoProcessor,
        GenerationConfig,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    marker = path / 'vision_cache_bench.json'
    wanted = {'text_layers': text_layers, 'version': 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return path
    with tempfile.TemporaryDirectory() as scratch:
        tiny = build_tiny_checkpoint(Path(scratch) / 'tiny', ModelFamily.QWEN3_VL)
        processor = AutoProcessor.from_pretrained(tiny)
        generation = GenerationConfig.from_pretrained(tiny)
        tiny_config = AutoConfig.from_pretrained(tiny)
    two_b = ARCHITECTURES['2b']
    text = tiny_config.text_config.to_dict()
    text.update(two_b['text'], num_hidden_layers=text_layers, head_dim=128,
                tie_word_embeddings=False)
    text['rope_parameters'] = {**text['rope_parameters'], 'mrope_section': [24, 20, 20]}
    vision = tiny_config.vision_config.to_dict()
    vision.update(two_b['vision'], num_heads=16, num_position_embeddings=2304)
    ids = {name: getattr(tiny_config, name) for name in (
        'image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id')}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                           **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.float32)
    model.generation_config = generation
    model.save_pretrained(path)
    processor.save_pretrained(path)
    marker.write_text(json.dumps(wanted) + '\n')
    return path


class EncoderTimer:
    """Times every call of the model's get_video_features (cached or not), in place."""

    def __init__(self, backend: TransformersBackend) -> None:
        base = backend._model.base_model
        inner = base.get_video_features
        self.seconds = 0.0

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        base.get_video_features = timed

    def take(self) -> float:
        """Seconds since the last take."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def run_ticks(checkpoint: Path, frames: Sequence[np.ndarray], *, window: int, step: int,
              ticks: int, cache_mb: int, max_new_tokens: int) -> dict[str, Any]:
    """Load, run `ticks` + 1 ticks (the first fills the cache and is not counted), close."""
    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32',
                                              vision_cache_mb=cache_mb))
    backend.load()
    timer = EncoderTimer(backend)
    encoder, whole, answers = [], [], []
    try:
        for tick in range(ticks + 1):
            chosen = frames[tick * step:tick * step + window]
            request = GenerationRequest(
                prompt=Prompt(system='You are a helpful assistant.',
                              user="Is a person in the robot's path? Answer yes or no."),
                frames=chosen, timestamps=[i / FPS for i in range(len(chosen))],
                sampling=Sampling(max_new_tokens=max_new_tokens, greedy=True))
            started = time.perf_counter()
            result = backend.generate(request)
            elapsed = time.perf_counter() - started
            encoded = timer.take()
            answers.append(result.text)
            print(f'  cache {cache_mb} MB tick {tick}: encoder {encoded:.2f} s, tick '
                  f'{elapsed:.2f} s, prompt {result.prompt_tokens} tokens', flush=True)
            if tick:
                encoder.append(encoded)
                whole.append(elapsed)
        stats = backend.vision_cache_stats
    finally:
        backend.close()
    return {'encoder': encoder, 'whole': whole, 'answers': answers, 'stats': stats}


def patch_alone_is_exact(checkpoint: Path, frames: Sequence[np.ndarray]) -> bool:
    """At these shapes too: the last patch encoded alone equals its rows inside the window."""
    import torch

    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32'))
    backend.load()
    try:
        with torch.inference_mode():
            inputs = backend.preprocess(GenerationRequest(
                prompt=Prompt(system='', user='x'), frames=frames,
                timestamps=[i / FPS for i in range(len(frames))],
                sampling=Sampling(max_new_tokens=1, greedy=True))).inputs
            pixels, grid = inputs['pixel_values_videos'], inputs['video_grid_thw']
            base = backend._model.base_model
            t, h, w = grid[0].tolist()
            whole = base.get_video_features(pixels, grid, return_dict=True)
            alone = base.get_video_features(pixels[(t - 1) * h * w:], torch.tensor([[1, h, w]]),
                                            return_dict=True)
            tokens = h * w // 4
            same = torch.equal(alone.pooler_output[0], whole.pooler_output[0][-tokens:])
            return same and all(torch.equal(a[0], b[0][-tokens:]) for a, b in zip(
                alone.deepstack_features, whole.deepstack_features))
    finally:
        backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.vision_cache_bench [--size WxH] [--ticks N] ..."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--size', default='256x128', help='frame size WxH (default 256x128)')
    parser.add_argument('--window', type=int, default=32, help='frames per tick (8 s at 4 fps)')
    parser.add_argument('--step', type=int, default=4, help='new frames per tick (1 Hz at 4 fps)')
    parser.add_argument('--ticks', type=int, default=3, help='measured ticks (after one warm-up)')
    parser.add_argument('--text-layers', type=int, default=2)
    parser.add_argument('--max-new-tokens', type=int, default=8)
    parser.add_argument('--cache-mb', type=int, default=256)
    parser.add_argument('--threads', type=int, default=0,
                        help="torch's CPU threads (0: its default); on a loaded machine 1 avoids "
                             'paying an OpenMP barrier on every small operation')
    parser.add_argument('--checkpoint', type=Path,
                        default=Path(tempfile.gettempdir()) / 'vision_cache_bench_model')
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split('x'))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    common.print_machine()
    checkpoint = build_checkpoint(args.checkpoint, args.text_layers)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
              for _ in range(args.window + args.step * args.ticks)]
    import torch

    print(f'2B vision tower, {args.text_layers} text layers of the 2B width; {args.window} '
          f'frames of {width}x{height} per tick, {args.step} new per tick; '
          f'{torch.get_num_threads()} torch threads', flush=True)
    runs: dict[str, dict[str, Any]] = {}
    for label, cache_mb in (('without', 0), ('with', args.cache_mb)):
        runs[label] = run_ticks(checkpoint, frames, window=args.window, step=args.step,
                                ticks=args.ticks, cache_mb=cache_mb,
                                max_new_tokens=args.max_new_tokens)
    without, with_cache = runs['without'], runs['with']
    encoder_ratio = statistics.median(with_cache['encoder']) / statistics.median(
        without['encoder'])
    whole_ratio = statistics.median(with_cache['whole']) / statistics.median(without['whole'])
    stats = with_cache['stats']
    print(f"encoder per tick: without {common.spread(without['encoder'])} s, with "
          f"{common.spread(with_cache['encoder'])} s; ratio {encoder_ratio:.3f} (target <= 0.25)")
    print(f"whole tick: without {common.spread(without['whole'])} s, with "
          f"{common.spread(with_cache['whole'])} s; ratio {whole_ratio:.3f}")
    print(f'cache: {stats.entries} patches, {stats.bytes / 2**20:.1f} MiB held of '
          f'{stats.max_bytes / 2**20:.0f} MiB, {stats.hits} hits, {stats.misses} misses, '
          f'{stats.evictions} evictions')
    same = without['answers'] == with_cache['answers']
    print(f'greedy answers identical with and without: {same}')
    exact = patch_alone_is_exact(checkpoint, frames[:args.window])
    print(f'last patch alone equals its rows inside the window (bitwise): {exact}')
    return 0 if same and exact else 1


if __name__ == '__main__':
    sys.exit(main())
