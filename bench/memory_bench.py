"""Memory: resident memory of the node with a full window and the model loaded, against the model.

The node runs the desktop GPU preset's window (4 fps, 30 s, 640x360) fed by a 1080p 30 fps camera
and answers one goal; the model alone is loaded and run by plain transformers in its own process.
"""

import argparse
from collections.abc import Sequence
import json
import os
from pathlib import Path
import subprocess
import sys
import time

from bench import common

FRAME_SIZE = (640, 360)
"""Frames as the window stores them (the desktop preset's pixel budget)."""


def model_alone(checkpoint: Path, frames: int, max_new_tokens: int) -> dict[str, float]:
    """Load the checkpoint with transformers, generate once, return this process's memory."""
    import numpy as np
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from cosmos_reason_ros.demo.sample_scene import render_scene

    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32,
                                                        attn_implementation='sdpa')
    loaded = common.memory_mb(os.getpid())
    video = np.stack([render_scene(index / 4.0, *FRAME_SIZE) for index in range(frames)])
    messages = [{'role': 'user', 'content': [{'type': 'video'},
                                             {'type': 'text', 'text': 'What happens?'}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    metadata = {'fps': 4.0, 'frames_indices': list(range(frames)), 'total_num_frames': frames}
    inputs = processor(text=[text], videos=[video], return_tensors='pt', videos_kwargs={
        'do_sample_frames': False, 'video_metadata': [metadata]})
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return {'loaded': loaded, 'after_generate': common.memory_mb(os.getpid())}


def checkpoint_for(model: str) -> Path:
    from bench.overhead_bench import checkpoint_for as build

    return build(model)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.memory_bench [--model {tiny,2b}]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', choices=('tiny', '2b'), default='tiny')
    parser.add_argument('--frames', type=int, default=None,
                        help='frames of the goal (default: 16 tiny, 4 2b)')
    parser.add_argument('--max-new-tokens', type=int, default=4)
    parser.add_argument('--without-fixes', action='store_true',
                        help='run the node as before the ingest fixes (stock executor, default '
                             'allocator): the "before" figures')
    parser.add_argument('--model-alone', type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    frames = args.frames or (16 if args.model == 'tiny' else 4)
    if args.model_alone is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        print(json.dumps(model_alone(args.model_alone, frames, args.max_new_tokens)))
        return 0

    from cosmos_reason_ros.ros.client import make_goal

    common.print_machine()
    checkpoint = checkpoint_for(args.model)
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    common.use_benchmark_transport()
    alone = common.run_json(
        [sys.executable, '-m', 'bench.memory_bench', '--model', args.model, '--frames',
         str(frames), '--max-new-tokens', str(args.max_new_tokens), '--model-alone',
         str(checkpoint)], env, timeout=1800)

    from bench.overhead_bench import Planner

    parameters = {
        'model': str(checkpoint), 'device': 'cpu', 'dtype': 'fp32', 'local_files_only': True,
        'window.target_fps': 4.0, 'window.capacity': 128, 'window.max_duration': 30.0,
        'window.max_pixels': FRAME_SIZE[0] * FRAME_SIZE[1], 'goal.max_frame_age': 5.0,
    }
    planner = Planner(domain)
    diagnostics = common.Diagnostics(domain)
    try:
        with common.node_process(parameters, env,
                                 fixes=not args.without_fixes) as node:
            diagnostics.wait_for('model_state', 'ready', timeout=1200.0, node=node)
            ready = node.memory_mb()
            camera = subprocess.Popen(common.camera_command('raw', 1920, 1080, 30.0, 45.0),
                                      cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60.0
                while float(diagnostics.latest.get('window_span_s', 0)) < 29.5:
                    node.check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f'the window did not fill: {diagnostics.latest}')
                    time.sleep(0.5)
                full = node.memory_mb()
                fill = diagnostics.latest['window_fill']
                goal = make_goal('What happens?', 'question', greedy=True,
                                 max_new_tokens=args.max_new_tokens, max_frames=frames,
                                 window_duration=frames / 4.0)
                _, result = planner.ask(goal, timeout=1800.0)
                assert result.error_code == 0, result.message
                after_goal = node.memory_mb()
            finally:
                camera.kill()
                camera.wait()
    finally:
        diagnostics.close()
        planner.close()

    def line(label: str, memory: dict[str, float]) -> None:
        print(f"  {label:<44} RSS {memory['VmRSS']:8.0f} MiB (anonymous "
              f"{memory['RssAnon']:7.0f}, file-backed {memory['RssFile']:7.0f}), peak "
              f"{memory['VmHWM']:8.0f}")

    print(f'\n{args.model}: window 4 fps x 30 s at {FRAME_SIZE[0]}x{FRAME_SIZE[1]} '
          f'({fill} frames), goal of {frames} frames, {args.max_new_tokens} new tokens')
    line('model alone (transformers), loaded', alone['loaded'])
    line('model alone, after generate()', alone['after_generate'])
    line('node, model loaded, empty window', ready)
    line('node, full window (1080p 30 fps camera)', full)
    line('node, after a goal', after_goal)
    extra = after_goal['VmRSS'] - alone['after_generate']['VmRSS']
    print(f"  node - model alone (both after generating): {extra:+.0f} MiB RSS = "
          f"{100 * extra / alone['after_generate']['VmRSS']:+.1f}%; the window's frames are "
          f"{int(fill) * FRAME_SIZE[0] * FRAME_SIZE[1] * 3 / 2**20:.0f} MiB of it")
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
