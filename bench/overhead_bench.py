"""End-to-end overhead: a goal through the real action against the same model's generate().

The node runs in its own process with the goal's frames in its window; this process publishes
them, sends goals, and alternately calls generate() on identical inputs with identical settings.
With --in-process the node runs in this process instead (its own executor and DDS participant,
the action still over DDS), so both sides share one process and its threads.
"""

import argparse
from collections.abc import Iterator, Sequence
import contextlib
import math
import os
from pathlib import Path
import statistics
import sys
import time
from typing import Any

from bench import common

TASK = 'What is the robot about to do?'


FPS = 4.0


def goal_frames(count: int, width: int, height: int) -> list[Any]:
    """The sample scene at 4 fps as RGB arrays (the frames a window would hand the model)."""
    from cosmos_reason_ros.demo.sample_scene import render_scene

    return [render_scene(index / FPS, width, height) for index in range(count)]


def image_messages(frames: Sequence[Any], start: float) -> list[Any]:
    """The frames as rgb8 sensor_msgs/Image, stamped 1/FPS apart from `start`."""
    from std_msgs.msg import Header

    from cosmos_reason_ros.ros.conversions import rgb_to_image_msg, to_time

    return [rgb_to_image_msg(frame, Header(stamp=to_time(start + index / FPS),
                                           frame_id='camera'))
            for index, frame in enumerate(frames)]


class Planner:
    """An action client in this process, on the benchmark's DDS domain."""

    def __init__(self, domain: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from cosmos_reason_ros.ros.client import ReasonClient
        from cosmos_reason_ros.ros.spinning import spinning

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node('bench_planner', context=self.context)
        self.client = ReasonClient(self.node)
        # Single-threaded: rclpy's MultiThreadedExecutor can spin (ros2/rclpy#1452) and would
        # take CPU from the node while it generates on the same cores.
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        self._teardown = contextlib.ExitStack()
        self._teardown.enter_context(spinning(
            executor, destroy=(self.client.destroy, self.node.destroy_node),
            context=self.context))

    def publish_frames(self, messages: Sequence[Any], diagnostics: common.Diagnostics) -> None:
        """Publish the frames on the camera topic until the node's window holds all of them."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        publisher = self.node.create_publisher(Image, 'image', qos_profile_sensor_data)
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for message in messages:
            publisher.publish(message)
            time.sleep(0.05)
        deadline = time.monotonic() + 10.0
        while int(diagnostics.latest.get('window_fill', 0)) < len(messages):
            if time.monotonic() > deadline:
                raise RuntimeError(f'the window holds {diagnostics.latest.get("window_fill")} of '
                                   f'{len(messages)} frames')
            time.sleep(0.1)
        self.node.destroy_publisher(publisher)

    def ask(self, goal: Any, timeout: float) -> tuple[float, Any]:
        """Send a goal, wait for the result; return (wall seconds, result)."""
        started = time.perf_counter()
        result = self.client.ask(goal, timeout=timeout)
        return time.perf_counter() - started, result

    def close(self) -> None:
        self._teardown.close()


class DirectModel:
    """The same checkpoint loaded the same way, called without the node."""

    def __init__(self, checkpoint: Path, frames: Sequence[Any], max_new_tokens: int):
        import torch

        from cosmos_reason_ros.core.answers.modes import Mode
        from cosmos_reason_ros.core.answers.prompts import build_prompt
        from cosmos_reason_ros.core.answers.sampling import resolve_sampling, sampling_preset
        from cosmos_reason_ros.core.backends.base import GenerationRequest
        from cosmos_reason_ros.core.backends.transformers_backend import (
            generation_kwargs,
            TransformersBackend,
        )
        from cosmos_reason_ros.core.config import ModelConfig

        self._torch = torch
        self.backend = TransformersBackend(ModelConfig(
            model=str(checkpoint), device='cpu', dtype='fp32', local_files_only=True))
        self.backend.load()
        sampling = resolve_sampling(sampling_preset(reasoning=False, max_new_tokens=1024),
                                    greedy=True, max_new_tokens=max_new_tokens)
        prompt = build_prompt(Mode.QUESTION, family=self.backend.family, task=TASK)
        self.request = GenerationRequest(
            prompt=prompt, frames=list(frames),
            timestamps=[index / FPS for index in range(len(frames))], sampling=sampling)
        self.kwargs = generation_kwargs(sampling)
        self.inputs = self.backend.preprocess(self.request).inputs

    @property
    def model(self) -> Any:
        return self.backend._model  # noqa: SLF001 - the loaded model itself

    def generate(self) -> tuple[float, int]:
        """model.generate() on the prepared inputs; returns (seconds, new tokens)."""
        with self._torch.inference_mode():
            started = time.perf_counter()
            sequences = self.model.generate(**self.inputs, **self.kwargs)
            seconds = time.perf_counter() - started
        return seconds, int(sequences.shape[-1] - self.inputs['input_ids'].shape[-1])

    def process_and_generate(self) -> float:
        """Processor (chat template, frames to tensors) and generate(), as a script would."""
        with self._torch.inference_mode():
            started = time.perf_counter()
            inputs = self.backend.preprocess(self.request).inputs
            self.model.generate(**inputs, **self.kwargs)
            return time.perf_counter() - started


class InProcessNode:
    """The reasoning node in this process, spun by its own ReasonExecutor like main() does."""

    def __init__(self, parameters: dict[str, Any], domain: int):
        import rclpy
        from rclpy.parameter import Parameter

        from cosmos_reason_ros.ros.executor import ReasonExecutor
        from cosmos_reason_ros.ros.node import ReasonNode
        from cosmos_reason_ros.ros.spinning import spinning

        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        self.node = ReasonNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in parameters.items()])
        executor = ReasonExecutor(num_threads=self.node.executor_threads, context=context)
        executor.add_node(self.node)
        self._teardown = contextlib.ExitStack()
        self._teardown.enter_context(spinning(executor, destroy=(self.node.destroy_node,),
                                              context=context))

    def cpu_seconds(self) -> float:
        return math.nan  # shares this process: not separable

    def check_alive(self) -> None:
        pass

    def close(self) -> None:
        self._teardown.close()


@contextlib.contextmanager
def serving_node(parameters: dict[str, Any], env: dict[str, str], domain: int,
                 in_process: bool) -> Iterator[Any]:
    """The node under test, in its own process (as deployed) or in this one."""
    if not in_process:
        with common.node_process(parameters, env) as node:
            yield node
        return
    node = InProcessNode(parameters, domain)
    try:
        yield node
    finally:
        node.close()


def checkpoint_for(model: str) -> Path:
    """The tiny test model, or a full-size random Cosmos-Reason2-2B in fp32 (built once)."""
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    if model == 'tiny':
        return build_tiny_checkpoint(common.CACHE / 'tiny-qwen3-vl')
    from bench.random_models import build_random_checkpoint

    return build_random_checkpoint(common.CACHE / f'qwen3vl-{model}-random-fp32', model)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.overhead_bench --model {tiny,2b}."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', choices=('tiny', '2b'), default='tiny',
                        help='tiny: the test model; 2b: random weights, Cosmos-Reason2-2B shapes')
    parser.add_argument('--repeats', type=int, default=None,
                        help='alternating node/direct pairs after a warm-up pair '
                             '(default: 10 tiny, 6 2b)')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames per goal (default: 16 tiny, 4 2b)')
    parser.add_argument('--size', default=None,
                        help='frame size WxH (default: 640x360 tiny, 320x180 2b)')
    parser.add_argument('--max-new-tokens', type=int, default=None,
                        help='tokens generated per call (default: 32 tiny, 4 2b)')
    parser.add_argument('--in-process', action='store_true',
                        help='run the node in this process (no node CPU figure)')
    args = parser.parse_args(argv)
    tiny = args.model == 'tiny'
    repeats = args.repeats or (10 if tiny else 6)
    count = args.frames or (16 if tiny else 4)
    width, height = (int(v) for v in (args.size or ('640x360' if tiny else '320x180')).split('x'))
    max_new_tokens = args.max_new_tokens or (32 if tiny else 4)

    from transformers.utils import logging as hf_logging

    from cosmos_reason_ros.ros.client import make_goal
    from cosmos_reason_ros.ros.conversions import to_time

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    common.print_machine()
    started = time.monotonic()
    checkpoint = checkpoint_for(args.model)
    print(f'checkpoint {checkpoint} ready after {time.monotonic() - started:.0f} s')
    frames = goal_frames(count, width, height)
    first_stamp = float(int(time.time())) + 0.01
    last_stamp = first_stamp + (count - 1) / FPS
    # The goal names its window, so every goal sees exactly the frames published below.
    goal = make_goal(TASK, 'question', greedy=True, max_new_tokens=max_new_tokens,
                     window_end=to_time(last_stamp), window_duration=count / FPS,
                     max_frames=count)
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    common.use_benchmark_transport()
    parameters = {
        'model': str(checkpoint), 'device': 'cpu', 'dtype': 'fp32', 'local_files_only': True,
        'window.max_pixels': max(width * height, 1024), 'goal.max_new_tokens': max_new_tokens,
    }
    timeout = 60.0 if tiny else 1200.0
    planner = Planner(domain)
    direct = None
    rows: list[dict[str, float]] = []
    try:
        with serving_node(parameters, env, domain, args.in_process) as node:
            direct = DirectModel(checkpoint, frames, max_new_tokens)
            diagnostics = common.Diagnostics(domain)
            try:
                diagnostics.wait_for('model_state', 'ready', timeout=1200.0, node=node)
                planner.publish_frames(image_messages(frames, first_stamp), diagnostics)
            finally:
                diagnostics.close()
            print(f'node and direct model loaded after {time.monotonic() - started:.0f} s; '
                  f'{int(direct.inputs["input_ids"].shape[-1])} prompt tokens')
            for index in range(repeats + 1):
                # ABBA order, so a drift in machine load does not favour either side.
                order = ('node', 'direct') if index % 2 == 0 else ('direct', 'node')
                row: dict[str, float] = {}
                for side in order:
                    if side == 'node':
                        cpu = node.cpu_seconds()
                        row['node'], result = planner.ask(goal, timeout)
                        row['node_cpu'] = node.cpu_seconds() - cpu
                        assert result.error_code == 0, result.message
                        output = result.output
                        row['node_total'] = output.total_time
                        row['node_preprocess'] = output.preprocess_time
                        row['node_generation'] = output.generation_time
                        row['node_tokens'] = output.completion_tokens
                        row['prompt_tokens'] = output.prompt_tokens
                    else:
                        cpu = common.cpu_seconds(os.getpid())
                        row['direct'], row['direct_tokens'] = direct.generate()
                        row['direct_cpu'] = common.cpu_seconds(os.getpid()) - cpu
                        row['direct_processor'] = direct.process_and_generate()
                if index > 0:  # the first pair warms both sides up
                    rows.append(row)
                print(f"  pair {index}{' (warm-up)' if index == 0 else ''}: node "
                      f"{row['node']:.3f} s, generate {row['direct']:.3f} s, processor + "
                      f"generate {row['direct_processor']:.3f} s", flush=True)
    finally:
        planner.close()
    report(rows, args.model + (' (node in this process)' if args.in_process else ''), count,
           width, height, max_new_tokens)
    common.print_machine()
    return 0


def report(rows: list[dict[str, float]], model: str, count: int, width: int, height: int,
           max_new_tokens: int) -> None:
    """Print medians, the overhead in ms and as a ratio, and the target check."""
    def med(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    tokens = {int(row['node_tokens']) for row in rows} | {int(row['direct_tokens'])
                                                           for row in rows}
    print(f'\n{model}: {count} frames {width}x{height}, {int(rows[0]["prompt_tokens"])} prompt '
          f'tokens, {max_new_tokens} new tokens (generated: {sorted(tokens)}), greedy; '
          f'{len(rows)} alternating pairs, medians')
    node, direct, both = med('node'), med('direct'), med('direct_processor')
    paired = statistics.median(row['node'] - row['direct'] for row in rows)
    paired_both = statistics.median(row['node'] - row['direct_processor'] for row in rows)
    print(f"  through the action (client -> result): {1000 * node:9.1f} ms "
          f"({common.spread([1000 * row['node'] for row in rows])})")
    print(f"  model.generate() directly:             {1000 * direct:9.1f} ms "
          f"({common.spread([1000 * row['direct'] for row in rows])})")
    print(f"  processor + generate() directly:       {1000 * both:9.1f} ms "
          f"({common.spread([1000 * row['direct_processor'] for row in rows])})")
    print(f'  overhead vs generate():                {1000 * paired:+9.1f} ms '
          f'= {100 * paired / direct:+.2f}% (median of paired differences; ratio of medians '
          f'{node / direct:.4f})')
    print(f'  overhead vs processor + generate():    {1000 * paired_both:+9.1f} ms '
          f'= {100 * paired_both / both:+.2f}% (ratio of medians {node / both:.4f})')
    if not math.isnan(med('node_cpu')):
        print(f"  CPU seconds per call: node process {med('node_cpu'):.3f} (whole goal), this "
              f"process {med('direct_cpu'):.3f} (generate() only)")
    print(f"  generation alone: in the node {1000 * med('node_generation'):.1f} ms, generate() "
          f"{1000 * direct:.1f} ms (ratio {med('node_generation') / direct:.3f})")
    print(f"  node's own timings: preprocess {1000 * med('node_preprocess'):.1f} ms, generation "
          f"{1000 * med('node_generation'):.1f} ms, total {1000 * med('node_total'):.1f} ms; "
          f"action round trip beyond the node's total "
          f"{1000 * (node - med('node_total')):.1f} ms")
    allowed = max(0.02 * direct, 0.020)
    verdict = 'met' if paired <= allowed else 'MISSED'
    print(f'  target: overhead <= max(2%, 20 ms) = {1000 * allowed:.1f} ms: {verdict} '
          f'({1000 * paired:.1f} ms vs generate(); {1000 * paired_both:.1f} ms vs processor + '
          'generate())')


if __name__ == '__main__':
    sys.exit(main())
