"""Two cameras against one: the time to the first token at 2B shapes on the CPU, and the visual
tokens a goal costs per preset.

The model is Cosmos-Reason2-2B's vision tower (random weights, bench/random_models.py's published
architecture) under a language model of the 2B's width with --text-layers layers (28 is the
whole 2B; the default 4 keeps a CPU run short), built by bench/vision_cache_bench.py. One view
and two views of the same size and frame count alternate, after one warm-up of each; the figure
is preprocessing plus generate() up to the first token, and the ratio is given both of the
medians and as the median of each run's two-view/one-view ratio (back to back, so less exposed
to a shared machine's load).

`--tokens` prints only the visual tokens per goal of every preset in config/ for one and for
two cameras (each a 16:9 1080p camera stored at the preset's window budget), computed from the
preset's frames, pixel budget and family (families.visual_tokens).
"""

import argparse
from collections.abc import Sequence
import pathlib
import statistics
import sys
import tempfile
from typing import Any

import numpy as np
import yaml

from bench import common
from cosmos_reason_ros.core.answers.families import family_for_served_name, visual_tokens
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.camera.images import downscaled_size

ROOT = pathlib.Path(__file__).resolve().parents[1]
FPS = 4.0
CAMERA = (1920, 1080)
"""The source camera of the token table: 16:9 1080p, as the preset comments assume."""


def preset_tokens(path: pathlib.Path, cameras: int) -> tuple[ModelFamily, int, int]:
    """(family, frames, visual tokens a goal) of one preset with `cameras` cameras alike.

    The family is the preset's remote.family when it names one, else the one its model's name
    points to; the frames are stored at window.max_pixels (and remote.max_pixels, whichever is
    smaller, for a server).
    """
    parameters = yaml.safe_load(path.read_text())['/**']['ros__parameters']
    remote = parameters.get('remote', {})
    named = remote.get('family', 'auto') if parameters.get('backend') == 'openai' else 'auto'
    family = (ModelFamily(named) if named != 'auto'
              else family_for_served_name(str(parameters['model'])))
    if family is None:
        raise ValueError(f"{path.name}: cannot tell the family of '{parameters['model']}'")
    budget = parameters['window']['max_pixels']
    if parameters.get('backend') == 'openai' and 'max_pixels' in remote:
        budget = min(budget, remote['max_pixels'])
    width, height = downscaled_size(*CAMERA, budget)
    frames = parameters['goal']['max_frames']
    return family, frames, cameras * visual_tokens(width, height, frames, family)


def print_token_table() -> None:
    """The visual tokens a goal costs per preset, one camera and two."""
    print('| preset | family | frames a view | one camera | two cameras | ratio |')
    print('| --- | --- | --- | --- | --- | --- |')
    for path in sorted((ROOT / 'config').glob('*.yaml')):
        family, frames, one = preset_tokens(path, 1)
        _, _, two = preset_tokens(path, 2)
        print(f'| {path.stem} | {family.value} | {frames} | {one:,} | {two:,} | '
              f'{two / one:.2f} |')


def _request(views: Sequence[Any], max_new_tokens: int) -> Any:
    from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling

    return GenerationRequest(
        prompt=Prompt(system='You are a helpful assistant.',
                      user='Is the part in the gripper? Answer yes or no.'),
        frames=views[0].frames, timestamps=views[0].timestamps,
        sampling=Sampling(max_new_tokens=max_new_tokens, greedy=True),
        views=tuple(views) if len(views) > 1 else ())


def measure_first_token(checkpoint: pathlib.Path, *, width: int, height: int, frames: int,
                        repeats: int, max_new_tokens: int) -> dict[str, Any]:
    """Seconds to the first token of one view and of two, alternated, after a warm-up each."""
    from cosmos_reason_ros.core.backends.base import RequestView
    from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
    from cosmos_reason_ros.core.config import ModelConfig

    rng = np.random.default_rng(0)
    stamps = [i / FPS for i in range(frames)]
    views = [RequestView(name, [rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                                for _ in range(frames)], stamps) for name in ('head', 'wrist')]
    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32'))
    backend.load()
    figures: dict[str, Any] = {'one': [], 'two': [], 'tokens': {}}
    try:
        for run in range(repeats + 1):
            for label, chosen in (('one', views[:1]), ('two', views)):
                result = backend.generate(_request(chosen, max_new_tokens))
                first = result.preprocess_time + result.time_to_first_token
                print(f'  {label} view(s) run {run}: first token {first:.2f} s (preprocess '
                      f'{result.preprocess_time:.2f} s), prompt {result.prompt_tokens} tokens',
                      flush=True)
                figures['tokens'][label] = result.prompt_tokens
                if run:
                    figures[label].append(first)
    finally:
        backend.close()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.multiview_bench [--tokens] [--size WxH] ..."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--tokens', action='store_true',
                        help='print only the visual tokens per preset (no model)')
    parser.add_argument('--size', default='160x96', help='frame size WxH of each view')
    parser.add_argument('--frames', type=int, default=8, help='frames per view (2 s at 4 fps)')
    parser.add_argument('--repeats', type=int, default=3, help='measured runs (after a warm-up)')
    parser.add_argument('--text-layers', type=int, default=4)
    parser.add_argument('--max-new-tokens', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0,
                        help="torch's CPU threads (0: its default)")
    parser.add_argument('--checkpoint', type=pathlib.Path, default=None,
                        help='where the random 2B-shape checkpoint is built (default: a '
                             'directory per --text-layers under the temporary directory)')
    args = parser.parse_args(argv)
    print_token_table()
    if args.tokens:
        return 0
    import torch

    from bench.vision_cache_bench import build_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    common.print_machine()
    width, height = (int(v) for v in args.size.split('x'))
    checkpoint = build_checkpoint(
        args.checkpoint or pathlib.Path(tempfile.gettempdir())
        / f'multiview_bench_model_{args.text_layers}', args.text_layers)
    print(f'2B vision tower, {args.text_layers} text layers of the 2B width; {args.frames} '
          f'frames of {width}x{height} a view; {torch.get_num_threads()} torch threads',
          flush=True)
    figures = measure_first_token(checkpoint, width=width, height=height, frames=args.frames,
                                  repeats=args.repeats, max_new_tokens=args.max_new_tokens)
    one, two = statistics.median(figures['one']), statistics.median(figures['two'])
    # Each run's two calls are back to back, so a pair's ratio sees the same machine load.
    pairs = [b / a for a, b in zip(figures['one'], figures['two'])]
    print(f"first token: one view {common.spread(figures['one'])} s, two views "
          f"{common.spread(figures['two'])} s; ratio of medians {two / one:.2f}, median of "
          f"the runs' ratios {statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f}) "
          f"(prompt {figures['tokens']['one']} and {figures['tokens']['two']} tokens)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
