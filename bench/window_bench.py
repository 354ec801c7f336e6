"""Window to model input: a goal's frames from a 1080p camera to the processor's tensors.

Times a goal from Reasoner.run to the processor's output for a 4 s window (16 frames) the node
stored at its pixel budget, against preprocessing the same frames at camera resolution.
"""

import argparse
from collections.abc import Callable, Sequence
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np

from bench import common
from bench.camera import render_frames
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.backends.base import (
    GenerationRequest,
    GenerationResult,
    Prompt,
    Sampling,
    StreamCallback,
)
from cosmos_reason_ros.core.backends.transformers_backend import (
    check_request,
    TransformersBackend,
    video_metadata,
)
from cosmos_reason_ros.core.camera.frames import FrameWindow
from cosmos_reason_ros.core.config import GoalDefaults, ModelConfig, WindowConfig
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonRequest

CAMERA_FPS = 30.0
WINDOW_SECONDS = 4.0
WINDOW_FRAMES = 16


class PreprocessOnly:
    """A backend that stops after the processor: the goal's path up to the model's input."""

    can_constrain = False  # nothing is generated

    def __init__(self, backend: TransformersBackend):
        self._backend = backend
        self.model_id = backend.model_id
        self.family = backend.family
        self.last_inputs: dict[str, Any] = {}

    def load(self) -> None:
        self._backend.load()
        self.family = self._backend.family

    def generate(self, request: GenerationRequest, *, on_text: StreamCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationResult:
        started = time.perf_counter()
        check_request(request)
        prepared = self._backend.preprocess(request)
        self.last_inputs = prepared.inputs
        return GenerationResult(
            text='', reasoning=None, prompt_tokens=prepared.prompt_tokens, completion_tokens=0,
            preprocess_time=time.perf_counter() - started, time_to_first_token=0.0,
            generation_time=0.0, model_input_size=prepared.model_input_size,
            finish_reason='stop')

    def close(self) -> None:
        self._backend.close()


def fill_window(window: FrameWindow, frames: list[np.ndarray], seconds: float) -> dict[float, Any]:
    """Offer `seconds` of 30 fps camera frames (BGR, converted like a bgr8 message is).

    Returns the full-size RGB image of every kept frame by stamp, for the camera-size baseline.
    """
    import cv2

    full_size = {}
    for index in range(int(seconds * CAMERA_FPS)):
        stamp = 1000.0 + index / CAMERA_FPS
        bgr = frames[index % len(frames)]

        def convert(bgr: np.ndarray = bgr, stamp: float = stamp) -> np.ndarray:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            full_size[stamp] = rgb
            return rgb

        window.offer(stamp, convert, 'camera')
    return full_size


def timed(function: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def processor_defaults(backend: TransformersBackend, frames: Sequence[np.ndarray],
                       stamps: Sequence[float]) -> dict[str, Any]:
    """The processor with its own size settings, as NVIDIA's examples call it."""
    processor = backend._processor  # noqa: SLF001 - the loaded processor, same checkpoint
    messages = [{'role': 'system', 'content': [{'type': 'text', 'text': 'You are a helpful '
                                                 'assistant.'}]},
                {'role': 'user', 'content': [{'type': 'video'},
                                             {'type': 'text', 'text': 'What happens?'}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    video = np.stack(frames)
    metadata = video_metadata([s - stamps[0] for s in stamps], ModelFamily.QWEN3_VL,
                              width=video.shape[2], height=video.shape[1])
    return processor(text=[text], videos=[video], return_tensors='pt',
                     videos_kwargs={'do_sample_frames': False, 'video_metadata': [metadata]})


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.window_bench [--repeats 5]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--max-pixels', type=int, default=640 * 360,
                        help='window.max_pixels (default 640x360, the desktop GPU preset)')
    args = parser.parse_args(argv)

    from transformers.utils import logging as hf_logging

    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    common.print_machine()
    checkpoint = build_tiny_checkpoint(common.CACHE / 'tiny-qwen3-vl')
    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32',
                                              local_files_only=True))
    preprocess_only = PreprocessOnly(backend)
    preprocess_only.load()
    camera = render_frames(1920, 1080)
    results = {}
    for label, max_duration in (('4 s window', WINDOW_SECONDS),
                                ('desktop preset window (30 s)', 30.0)):
        window = FrameWindow(WindowConfig(target_fps=4.0, capacity=128,
                                          max_duration=max_duration,
                                          max_pixels=args.max_pixels))
        full_size = fill_window(window, camera, max(max_duration, WINDOW_SECONDS) + 1.0)
        stored = window.select(end=None, duration=1e9, max_frames=10**6, even=False)
        results[label] = (len(stored), sum(frame.image.base.nbytes if frame.image.base is not None
                                           else frame.image.nbytes for frame in stored))
    reasoner = Reasoner(preprocess_only, window, GoalDefaults(
        window_duration=WINDOW_SECONDS, max_frames=WINDOW_FRAMES))
    request = ReasonRequest(mode=Mode.QUESTION, task='What happens?', greedy=True,
                            max_new_tokens=1)
    outcome = reasoner.run(request)
    frames = outcome.frames
    stamps = [frame.stamp for frame in frames]
    camera_frames = [full_size[stamp] for stamp in stamps]
    node_inputs = preprocess_only.last_inputs
    camera_request = GenerationRequest(
        prompt=Prompt(system='You are a helpful assistant.', user='What happens?'),
        frames=camera_frames, timestamps=[s - stamps[0] for s in stamps],
        sampling=Sampling(max_new_tokens=1, greedy=True))

    def camera_size() -> Any:
        check_request(camera_request)
        return backend.preprocess(camera_request)

    node_times = timed(lambda: reasoner.run(request), args.repeats)
    camera_times = timed(camera_size, args.repeats)
    default_times = timed(lambda: processor_defaults(backend, camera_frames, stamps), args.repeats)
    camera_inputs = camera_size().inputs
    default_inputs = processor_defaults(backend, camera_frames, stamps)

    def tokens(inputs: dict[str, Any]) -> str:
        t, h, w = (int(v) for v in inputs['video_grid_thw'][0])
        return f'{t * h * w // 4} visual tokens, {w * 16}x{h * 16} px'

    node_ms = 1000 * statistics.median(node_times)
    print(f'\n{len(frames)} frames over {stamps[-1] - stamps[0]:.2f} s from a 1920x1080 '
          f'camera; repeats {args.repeats}, median (min-max) ms')
    print(f'  node: goal -> processor output    {common.spread([1000 * t for t in node_times])} '
          f'ms  ({tokens(node_inputs)})')
    print(f'  camera resolution, same backend   '
          f'{common.spread([1000 * t for t in camera_times])} ms  ({tokens(camera_inputs)})')
    print(f'  camera resolution, processor defaults '
          f'{common.spread([1000 * t for t in default_times])} ms  ({tokens(default_inputs)})')
    speedup = statistics.median(camera_times) * 1000 / node_ms
    default_speedup = statistics.median(default_times) * 1000 / node_ms
    print(f'  speed-up: {speedup:.1f}x against camera resolution, {default_speedup:.1f}x against '
          'the processor defaults (target >= 5x)')
    frame_mb = frames[0].image.nbytes / 2**20
    print(f'\nmemory: one stored frame {frames[0].image.shape[1]}x{frames[0].image.shape[0]} = '
          f'{frame_mb:.2f} MiB (camera size {camera_frames[0].nbytes / 2**20:.2f} MiB)')
    for label, (count, nbytes) in results.items():
        print(f'  {label}: {count} frames = {nbytes / 2**20:.1f} MiB (at camera size '
              f'{count * camera_frames[0].nbytes / 2**20:.0f} MiB)')
    four_second_mb = results['4 s window'][1] / 2**20
    print(f"  target: 4 s window < 20 MiB: {'met' if four_second_mb < 20 else 'MISSED'} "
          f'({four_second_mb:.1f} MiB)')
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
