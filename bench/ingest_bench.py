"""Ingest cost: the node's CPU per second of a 1080p 30 fps stream, split into kept and dropped.

The node runs in its own process and a camera (bench/camera.py) in another; CPU is read from
/proc/<node pid>/stat. Runs: window.target_fps 0.1 (almost every frame dropped), 15 (half kept)
and 4 (the deployed setting); the dropped cost comes from the first, the kept cost from the second.
Each set runs with the middleware's stamp filter (window.dds_filter, the default) and without it
(every frame delivered, the node drops the surplus). The kept cost is solved the same way for
each group of the node's threads (/proc/<pid>/task: Fast DDS's dds.* threads, the executor's
spin thread, its callback pool, the rest) and for the camera callback alone (its thread's CPU,
counted in the node by a prelude): what the middleware, rclpy and our callback each take.

With --depth: an RGB-D camera instead (30 fps colour + 30 fps aligned 16UC1 depth and CameraInfo,
one stamp, at --sizes), window at 4 fps: the node with depth.enabled false (the depth topics are
published but nobody subscribes) against true, and with --depth-as-before also true with the
depth filter as it was before the depth lead (every depth stamp within depth.tolerance before
the next slot passes).
"""

import argparse
from collections.abc import Callable, Sequence
import dataclasses
import json
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, NamedTuple

from bench import common

KEEP_HALF_FPS = 15.0
"""Half the camera's frames are kept: many kept frames, without saturating a 2-core machine."""
DROP_ALL_FPS = 0.1
"""The lowest target rate the node accepts: one frame in 300 is kept."""
DEPLOYED_FPS = 4.0
WINDOW_SECONDS = 30.0
"""window.max_duration of the node."""
DEPTH_AS_BEFORE = ('from cosmos_reason_ros.core.depth import matching; '
                   'matching.DepthMatcher._lead = lambda self: self._tolerance')
"""Node prelude: the depth filter's rule before the lead was learned from the matches."""


@dataclasses.dataclass
class Run:
    """One streaming run against a fresh node."""

    encoding: str
    target_fps: float
    dds_filter: bool
    seconds: float
    published_per_s: float
    """Frames the camera sent per second."""
    received_per_s: float
    """Frames delivered to the node per second."""
    kept_per_s: float
    cpu_per_s: float
    """Node CPU seconds per second of stream (1.0 = one core)."""
    idle_cpu_per_s: float
    """Node CPU seconds per second with the model loaded and no stream."""
    size: tuple[int, int] = (1920, 1080)
    depth: str | None = None
    """None: a colour camera; an RGB-D one with the node's depth 'off', 'on', or 'before' (on,
    with the depth filter as before the lead)."""
    depth_per_s: float = 0.0
    """Depth frames delivered to the node per second."""
    bytes_per_frame: int = 0
    """Serialized colour frame."""
    depth_bytes_per_frame: int = 0
    """Serialized depth frame."""
    warmup: float = 0.0
    """Seconds of stream before the measurement."""
    faults_per_s: float = 0.0
    """Minor page faults of the node per second of stream."""
    rss_mb: float = 0.0
    """Node VmRSS at the end of the measurement."""
    threads_per_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """Node CPU seconds per second of stream per thread group (common.THREAD_GROUPS), and of
    the camera callbacks ('image_callback', within 'callbacks')."""
    threads_idle_per_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """The same with the model loaded and no stream."""
    thread_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    """Live threads of the node per group at the end of the measurement."""

    @property
    def dropped_per_s(self) -> float:
        """Camera frames not kept, whether the middleware or the node dropped them."""
        return max(self.published_per_s - self.kept_per_s, 0.0)


def node_parameters(model: Path, encoding: str, target_fps: float,
                    dds_filter: bool) -> dict[str, Any]:
    """The node as deployed on a desktop GPU preset, but with the tiny model on the CPU."""
    return {
        'model': str(model), 'device': 'cpu', 'dtype': 'fp32', 'local_files_only': True,
        'compressed_input': encoding == 'jpeg', 'window.target_fps': target_fps,
        'window.dds_filter': dds_filter, 'window.capacity': 128,
        'window.max_duration': WINDOW_SECONDS,
        'window.max_pixels': 640 * 360,
        'publish_debug_image': False, 'diagnostics_period': 1.0,
    }


class Sample(NamedTuple):
    """The node's counters at one /diagnostics message."""

    arrived: float
    """time.monotonic() of the message's arrival."""
    cpu: float
    """Node CPU seconds so far."""
    kept: int
    """frames_kept."""
    depth: int
    """depth_frames_received (0 with depth off)."""
    faults: int
    """Minor page faults so far."""
    threads: dict[str, float]
    """Node CPU seconds so far per thread group (live threads only), and 'image_callback': the
    camera callbacks' (part of the 'callbacks' group)."""


def next_sample(diagnostics: common.Diagnostics, node: common.NodeProcess, callbacks: Path,
                timeout: float = 5.0) -> Sample:
    """Wait for the next /diagnostics message; return its arrival and the node's counters."""
    start = time.monotonic()
    count = len(diagnostics.history_since(0.0))
    while len(diagnostics.history_since(0.0)) == count:
        node.check_alive()
        if time.monotonic() - start > timeout:
            raise TimeoutError('no /diagnostics from the node')
        time.sleep(0.002)
    cpu, threads = node.cpu_seconds(), node.thread_cpu_seconds()
    threads['image_callback'] = common.callback_cpu_seconds(callbacks)
    faults = common.minor_faults(node.pid)
    arrived, values = diagnostics.history_since(0.0)[count]
    return Sample(arrived, cpu, int(values['frames_kept']),
                  int(values.get('depth_frames_received', 0)), faults, threads)


def per_second(start: Sample, end: Sample) -> dict[str, float]:
    """CPU seconds per second of each thread group between two samples."""
    return {group: (end.threads[group] - start.threads[group]) / (end.arrived - start.arrived)
            for group in end.threads}


def received_between(diagnostics: common.Diagnostics, start: float, end: float) -> float:
    """Frames the node received between two /diagnostics messages (their rates x periods)."""
    history = [(t, float(values['input_rate_hz']))
               for t, values in diagnostics.history_since(start) if t <= end]
    return sum(rate * (t - previous) for (previous, _), (t, rate) in zip(history, history[1:]))


def measure(model: Path, encoding: str, target_fps: float, dds_filter: bool, seconds: float,
            idle_seconds: float = 4.0, warmup: float = 3.0, fixes: bool = True,
            size: tuple[int, int] = (1920, 1080), depth: str | None = None) -> Run:
    """Start a node, measure it idle, then under the stream.

    depth: None for a colour camera; else an RGB-D camera, and the node's depth 'off', 'on',
    or 'before' (on, with the depth filter as before the lead).
    """
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    callbacks = common.callback_file()
    env[common.CALLBACK_FILE] = str(callbacks)
    diagnostics = common.Diagnostics(domain)
    parameters = node_parameters(model, encoding, target_fps, dds_filter)
    parameters['depth.enabled'] = depth in ('on', 'before')
    command = common.camera_command(encoding, size[0], size[1], 30.0, warmup + seconds + 3.0)
    if depth is not None:
        command.append('--depth')  # published whether the node takes it or not
    try:
        prelude = '; '.join([common.THREAD_NAMING, common.CALLBACK_TIMING]
                            + ([DEPTH_AS_BEFORE] if depth == 'before' else []))
        with common.node_process(parameters, env, fixes, prelude) as node:
            diagnostics.wait_for('model_state', 'ready', timeout=120.0, node=node)
            quiet = next_sample(diagnostics, node, callbacks)
            time.sleep(idle_seconds)
            idle = next_sample(diagnostics, node, callbacks)
            camera = subprocess.Popen(command, cwd=common.ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            try:
                common.wait_for_frames(diagnostics, camera)
                time.sleep(warmup)
                s0 = next_sample(diagnostics, node, callbacks)
                time.sleep(seconds)
                s1 = next_sample(diagnostics, node, callbacks)
                rss = node.memory_mb()['VmRSS']
                counts = common.thread_counts(node.pid)
            finally:
                output, errors = camera.communicate(timeout=warmup + seconds + 30.0)
    finally:
        diagnostics.close()
        callbacks.unlink()
    if not output.strip():
        raise RuntimeError(f'the camera printed no summary (exit {camera.returncode}): '
                           + errors[-3000:])
    sent = json.loads(output.strip().splitlines()[-1])
    elapsed = s1.arrived - s0.arrived
    return Run(encoding=encoding, target_fps=target_fps, dds_filter=dds_filter, seconds=elapsed,
               published_per_s=sent['published'] / sent['seconds'],
               received_per_s=received_between(diagnostics, s0.arrived, s1.arrived) / elapsed,
               kept_per_s=(s1.kept - s0.kept) / elapsed, cpu_per_s=(s1.cpu - s0.cpu) / elapsed,
               idle_cpu_per_s=(idle.cpu - quiet.cpu) / (idle.arrived - quiet.arrived),
               size=size, depth=depth, depth_per_s=(s1.depth - s0.depth) / elapsed,
               bytes_per_frame=sent['bytes_per_frame'], warmup=warmup,
               faults_per_s=(s1.faults - s0.faults) / elapsed, rss_mb=rss,
               threads_per_s=per_second(s0, s1), threads_idle_per_s=per_second(quiet, idle),
               thread_counts=counts,
               depth_bytes_per_frame=sent.get('depth_bytes_per_frame', 0))


def label(encoding: str, dds_filter: bool) -> str:
    return f"{encoding}, {'stamp filter in DDS' if dds_filter else 'every frame delivered'}"


def report(name: str, runs: dict[float, Run]) -> dict[str, Any]:
    """Print one set of runs and the kept/dropped split; return the headline figures."""
    print(f'\n{name}: 1920x1080 at 30 fps, window kept at 640x360')
    print(f"  {'target_fps':>10} {'sent/s':>7} {'recv/s':>7} {'kept/s':>7} {'drop/s':>7} "
          f"{'node CPU %':>10} {'idle %':>7}")
    for fps, run in sorted(runs.items()):
        print(f'  {fps:>10g} {run.published_per_s:>7.1f} {run.received_per_s:>7.1f} '
              f'{run.kept_per_s:>7.2f} {run.dropped_per_s:>7.1f} {100 * run.cpu_per_s:>10.2f} '
              f'{100 * run.idle_cpu_per_s:>7.2f}')
    half, drop_all, deployed = runs[KEEP_HALF_FPS], runs[DROP_ALL_FPS], runs[DEPLOYED_FPS]
    kept_cost, dropped_cost = solve(half, drop_all, lambda run: run.cpu_per_s - run.idle_cpu_per_s)
    kept_part = deployed.kept_per_s * kept_cost
    dropped_part = deployed.dropped_per_s * dropped_cost
    print(f'  cost per kept frame:    {1000 * kept_cost:7.3f} ms CPU')
    print(f'  cost per dropped frame: {1000 * dropped_cost:7.3f} ms CPU '
          f'= {100 * dropped_cost / kept_cost:.1f}% of a kept frame')
    print(f'  at 4 fps: {100 * deployed.cpu_per_s:.2f}% of one core measured; split: kept '
          f'{100 * kept_part:.2f}% + dropped {100 * dropped_part:.2f}% + idle '
          f'{100 * deployed.idle_cpu_per_s:.2f}% = '
          f'{100 * (kept_part + dropped_part + deployed.idle_cpu_per_s):.2f}% predicted')
    by_thread = {group: 1000 * solve(half, drop_all, lambda run, group=group: (
        run.threads_per_s[group] - run.threads_idle_per_s[group]))[0]
        for group in half.threads_per_s}
    counted = sum(by_thread[group] for group in common.THREAD_GROUPS)
    print('  cost per kept frame by thread (solved the same way): '
          + ', '.join(f'{group} {by_thread[group]:.3f}' for group in common.THREAD_GROUPS)
          + f' ms = {counted:.3f} ms ({1000 * kept_cost - counted:+.3f} ms in threads that '
          f"ended); of the callbacks, the camera callback {by_thread['image_callback']:.3f} ms "
          '(threads: ' + ', '.join(f'{group} {count}'
                                   for group, count in half.thread_counts.items()) + ')')
    return {'cpu_percent_4fps': 100 * deployed.cpu_per_s, 'kept_ms': 1000 * kept_cost,
            'dropped_ms': 1000 * dropped_cost, 'dropped_over_kept': dropped_cost / kept_cost,
            'kept_ms_by_thread': by_thread}


def solve(half: Run, drop_all: Run, cpu: Callable[[Run], float]) -> tuple[float, float]:
    """CPU seconds per kept and per dropped frame from two runs: cpu(run), the run's CPU per
    second above idle, is kept/s x kept cost + dropped/s x dropped cost in each (two equations,
    two unknowns).
    """
    (a, b), (c, d) = ((half.kept_per_s, half.dropped_per_s),
                      (drop_all.kept_per_s, drop_all.dropped_per_s))
    e, f = cpu(half), cpu(drop_all)
    return (e * d - b * f) / (a * d - b * c), (a * f - c * e) / (a * d - b * c)


def report_depth(runs: list[Run]) -> None:
    """Print the RGB-D runs of one size and filter: what depth adds to colour only, and why."""
    off = next(run for run in runs if run.depth == 'off')
    width, height = off.size
    print(f'\n{label(off.encoding, off.dds_filter)}: RGB-D {width}x{height} at 30 fps '
          f'(colour {off.bytes_per_frame:,} B + depth {off.depth_bytes_per_frame:,} B a frame), '
          f'window at {off.target_fps:g} fps, measured {off.seconds:.1f} s after '
          f'{off.warmup:g} s of stream')
    print(f"  {'depth':>6} {'sent/s':>7} {'recv/s':>7} {'kept/s':>7} {'depth/s':>8} "
          f"{'depth/kept':>10} {'node CPU %':>10} {'idle %':>7} {'faults/s':>8} {'RSS MB':>7}")
    for run in runs:
        per_kept = run.depth_per_s / run.kept_per_s if run.kept_per_s else 0.0
        print(f'  {run.depth:>6} {run.published_per_s:>7.1f} {run.received_per_s:>7.1f} '
              f'{run.kept_per_s:>7.2f} {run.depth_per_s:>8.2f} {per_kept:>10.2f} '
              f'{100 * run.cpu_per_s:>10.2f} {100 * run.idle_cpu_per_s:>7.2f} '
              f'{run.faults_per_s:>8.0f} {run.rss_mb:>7.0f}')
    colour = off.cpu_per_s - off.idle_cpu_per_s
    for run in runs:
        if run.depth == 'off':
            continue
        extra = run.cpu_per_s - off.cpu_per_s
        print(f'  depth {run.depth}: adds {100 * extra:.2f}% of a core to colour only '
              f'({run.cpu_per_s / max(off.cpu_per_s, 1e-9):.2f}x); that is '
              f'{extra / max(colour, 1e-9):.2f}x what colour costs over idle '
              f'({100 * colour:.2f}%)\n    delivered per second: colour '
              f'{off.received_per_s * off.bytes_per_frame / 1e6:.2f} MB, depth '
              f'{run.depth_per_s * run.depth_bytes_per_frame / 1e6:.2f} MB')


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: python -m bench.ingest_bench [--seconds 20] [--encodings raw jpeg]."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--seconds', type=float, default=20.0,
                        help='seconds of stream measured per run (default 20)')
    parser.add_argument('--encodings', nargs='+', choices=('raw', 'jpeg'), default=None,
                        help='colour encodings (default raw jpeg; with --depth raw)')
    parser.add_argument('--filters', nargs='+', choices=('dds', 'node'), default=None,
                        help='dds: window.dds_filter true (the default); node: false (default '
                             'both; with --depth dds)')
    parser.add_argument('--warmup', type=float, default=3.0,
                        help='seconds of stream before measuring (default 3); the window fills '
                             f'in window.max_duration ({WINDOW_SECONDS:g} s), while kept frames '
                             'still take fresh memory: more than that measures the steady state')
    parser.add_argument('--depth', action='store_true',
                        help='RGB-D camera at --sizes: the node with depth off against on')
    parser.add_argument('--sizes', nargs='+', default=['640x480', '1280x720'],
                        help='with --depth: frame sizes (default 640x480 1280x720)')
    parser.add_argument('--depth-as-before', action='store_true',
                        help='with --depth: also run depth on with the depth filter as before '
                             'the lead (every depth stamp within depth.tolerance before the next '
                             'slot delivered): the "before" figures')
    parser.add_argument('--without-fixes', action='store_true',
                        help='run the node as before the ingest fixes (stock executor, default '
                             'allocator): the "before" figures')
    parser.add_argument('--model', type=Path, default=None,
                        help='checkpoint the node loads (default: the tiny test model, built)')
    args = parser.parse_args(argv)

    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    common.print_machine()
    common.use_benchmark_transport()
    model = args.model or build_tiny_checkpoint(common.CACHE / 'tiny-qwen3-vl')
    if args.depth:
        depth_runs = ['off', 'on'] + (['before'] if args.depth_as_before else [])
        for text in args.sizes:
            size = tuple(int(part) for part in text.split('x'))
            for encoding in args.encodings or ['raw']:
                for dds_filter in (name == 'dds' for name in args.filters or ['dds']):
                    report_depth([measure(model, encoding, DEPLOYED_FPS, dds_filter,
                                          args.seconds, warmup=args.warmup,
                                          fixes=not args.without_fixes, size=size, depth=depth)
                                  for depth in depth_runs])
        common.print_machine()
        return 0
    headline = {}
    for encoding in args.encodings or ['raw', 'jpeg']:
        for dds_filter in (name == 'dds' for name in args.filters or ['dds', 'node']):
            runs = {fps: measure(model, encoding, fps, dds_filter, args.seconds,
                                 warmup=args.warmup, fixes=not args.without_fixes)
                    for fps in (DROP_ALL_FPS, DEPLOYED_FPS, KEEP_HALF_FPS)}
            headline[encoding, dds_filter] = report(label(encoding, dds_filter), runs)
    targets = {'raw': 10.0, 'jpeg': 20.0}
    print('\ntargets:')
    for (encoding, dds_filter), figures in headline.items():
        cpu_ok = figures['cpu_percent_4fps'] < targets[encoding]
        drop_ok = figures['dropped_over_kept'] < 0.10
        print(f"  {label(encoding, dds_filter)}: node CPU {figures['cpu_percent_4fps']:.2f}% < "
              f"{targets[encoding]:g}%: {'met' if cpu_ok else 'MISSED'}; dropped/kept "
              f"{100 * figures['dropped_over_kept']:.1f}% < 10%: "
              f"{'met' if drop_ok else 'MISSED'}")
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
