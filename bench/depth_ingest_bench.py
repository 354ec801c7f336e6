"""Ingest cost with depth on: node CPU for 30 fps colour + 30 fps aligned depth vs colour only.

The node (window.target_fps 4, the deployed setting) runs in its own process and an RGB-D
camera (bench/camera.py --depth: raw bgr8 colour, 16UC1 depth and CameraInfo, one stamp) in
another; CPU comes from /proc/<node pid>/stat, as in bench/ingest_bench.py. Each size runs with
depth.enabled false (the depth topics are published but nobody subscribes) and true.
Run: python -m bench.depth_ingest_bench [--seconds 10] [--sizes 640x480 1280x720]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

from bench import common
from bench.ingest_bench import next_sample, node_parameters


def measure(model: Path, size: Tuple[int, int], depth: bool, seconds: float,
            idle_seconds: float = 3.0, warmup: float = 3.0) -> dict:
    """Node CPU (fraction of a core) idle and under the RGB-D stream, and the depth counters."""
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    diagnostics = common.Diagnostics(domain)
    parameters = dict(node_parameters(model, 'raw', 4.0, True), **{'depth.enabled': depth})
    try:
        with common.node_process(parameters, env) as node:
            diagnostics.wait_for('model_state', 'ready', timeout=120.0, node=node)
            t0, cpu0, _ = next_sample(diagnostics, node)
            time.sleep(idle_seconds)
            t1, cpu1, _ = next_sample(diagnostics, node)
            command = common.camera_command('raw', size[0], size[1], 30.0,
                                            warmup + seconds + 3.0) + ['--depth']
            camera = subprocess.Popen(command, cwd=common.ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                common.wait_for_frames(diagnostics, camera)
                time.sleep(warmup)
                s0 = next_sample(diagnostics, node)
                before = dict(diagnostics.latest)
                time.sleep(seconds)
                s1 = next_sample(diagnostics, node)
                after = dict(diagnostics.latest)
            finally:
                output, errors = camera.communicate(timeout=warmup + seconds + 30.0)
    finally:
        diagnostics.close()
    if not output.strip():
        raise RuntimeError(f'the camera printed no summary (exit {camera.returncode}): '
                           + errors[-3000:])
    sent = json.loads(output.strip().splitlines()[-1])
    elapsed = s1[0] - s0[0]

    def rate(key: str) -> float:
        return (int(after.get(key, 0)) - int(before.get(key, 0))) / elapsed

    return {'cpu': (s1[1] - s0[1]) / elapsed, 'idle': (cpu1 - cpu0) / (t1 - t0),
            'sent_per_s': sent['published'] / sent['seconds'],
            'kept_per_s': (s1[2] - s0[2]) / elapsed,
            'depth_per_s': rate('depth_frames_received'),
            'depth_skipped_per_s': rate('depth_frames_skipped')}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=10.0,
                        help='seconds of stream measured per run (default 10)')
    parser.add_argument('--sizes', nargs='+', default=['640x480', '1280x720'])
    args = parser.parse_args(argv)

    from cosmos_reason_ros.core.tiny_model import build_tiny_checkpoint

    common.print_machine()
    common.use_benchmark_transport()
    model = build_tiny_checkpoint(common.CACHE / 'tiny-qwen3-vl')
    print(f"\n{'size':>9} {'depth':>5} {'sent/s':>7} {'kept/s':>7} {'depth/s':>8} "
          f"{'skipped/s':>9} {'node CPU %':>10} {'idle %':>7}")
    for text in args.sizes:
        width, height = (int(part) for part in text.split('x'))
        runs = {}
        for depth in (False, True):
            run = runs[depth] = measure(model, (width, height), depth, args.seconds)
            print(f"{text:>9} {'on' if depth else 'off':>5} {run['sent_per_s']:>7.1f} "
                  f"{run['kept_per_s']:>7.2f} {run['depth_per_s']:>8.1f} "
                  f"{run['depth_skipped_per_s']:>9.1f} {100 * run['cpu']:>10.2f} "
                  f"{100 * run['idle']:>7.2f}")
        extra = runs[True]['cpu'] - runs[False]['cpu']
        print(f'{text:>9} depth adds {100 * extra:.2f}% of a core '
              f"({runs[True]['cpu'] / max(runs[False]['cpu'], 1e-9):.2f}x colour only)")
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
