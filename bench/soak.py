"""Soak: sequential goals for a long time, and what the node and the planner hold afterwards.

The node runs in its own process on the tiny model with a JPEG camera (bench/camera.py, its own
process, 30 fps); the planner is this process: one rclpy node with a ReasonClient, spun by an
executor thread as in a planner, asking one goal after the other. Every 100 goals it samples
the RSS, threads and open files of both processes. At the end it prints the RSS slope of each
(MiB per 100 goals, least squares over the goals after --warmup), the planner's per-goal
overhead (round trip minus the node's own total_time, median) over the first and the last
1,000 goals, the action client's records, and the Fast DDS segments left in /dev/shm once
both have stopped.

    python -m bench.soak [--goals 20000] [--warmup 2000] [--trace 2000 3000] [--json out]
    python -m bench.soak --check    # CI: 300 goals; fails if anything is left behind
    python -m bench.soak --goals 3000 --warmup 500 --as-before   # rclpy's own ActionServer

--trace A B traces the node's Python heap (tracemalloc) from goal A and prints what was
allocated after A and is still alive at goal B, largest first.
"""

import argparse
import array
from collections.abc import Sequence
import glob
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import common, overhead_bench

TINY = 'tiny-qwen3-vl'
CLIENT_RECORDS = ('_futures', '_goal_handles', '_pending_goal_requests',
                  '_pending_cancel_requests', '_pending_result_requests',
                  '_goal_sequence_number_to_goal_id', '_result_sequence_number_to_goal_id',
                  '_feedback_callbacks')
"""What rclpy's ActionClient keeps per goal until it is done."""
SHM_SEGMENTS = '/dev/shm/fast*'

# Run in the node's process before it starts (--trace): snapshot the Python heap whenever the
# bench asks, through files in a folder (the node's main thread is busy spinning). Tracing
# starts at the first snapshot (from the start, it slows the model's load past the bench's
# patience), so the second shows what was allocated after the first and is still alive.
_TRACE_PRELUDE = """
import os, pathlib, threading, time, tracemalloc
def _serve_snapshots(folder):
    taken = 0
    while True:
        if (folder / f"take{taken}").exists():
            if not tracemalloc.is_tracing():
                tracemalloc.start(10)
            tracemalloc.take_snapshot().dump(str(folder / f"snapshot{taken}"))
            (folder / f"done{taken}").touch()
            taken += 1
        time.sleep(0.2)
threading.Thread(target=_serve_snapshots, args=(pathlib.Path(os.environ["SOAK_TRACE_DIR"]),),
                 daemon=True).start()
"""


# --as-before: the node with rclpy's own ActionServer, which holds every finished goal for
# result_timeout (as before ReasonActionServer), for before/after figures from one script.
_RCLPY_SERVER_PRELUDE = (
    'import rclpy.action, cosmos_reason_ros.ros.node as reason_node; '
    'reason_node.ReasonActionServer = lambda *args, result_timeout, **kwargs: '
    'rclpy.action.ActionServer(*args, result_timeout=result_timeout, **kwargs)')


class Planner(overhead_bench.Planner):
    """A planner's process: one node with a ReasonClient, spun by an executor thread."""

    def records(self) -> dict[str, int]:
        """Sizes of the action client's per-goal records."""
        return {name: len(getattr(self.client._client, name, ())) for name in CLIENT_RECORDS}


def slope(samples: Sequence[dict[str, float]], key: str, since: int) -> float | None:
    """Least-squares slope of samples[key] per 100 goals over the samples from goal `since`."""
    points = [(row['goals'], row[key]) for row in samples if row['goals'] >= since]
    if len(points) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return 100 * sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def abandoned_segments() -> list[str]:
    """Fast DDS segments in /dev/shm that no process holds (their '_el' lock is free)."""
    import fcntl

    abandoned = []
    for lock in glob.glob(SHM_SEGMENTS + '_el'):
        try:
            with open(lock, 'ab') as file:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue
        abandoned.append(lock)
    return sorted(abandoned)


def node_snapshot(folder: Path, index: int, node: common.NodeProcess) -> Path:
    """Ask the node's process (--trace) for heap snapshot `index`; its file."""
    (folder / f'take{index}').touch()
    deadline = time.monotonic() + 120.0
    while not (folder / f'done{index}').exists():
        node.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError('the node wrote no heap snapshot within 120 s')
        time.sleep(0.2)  # a file from another process: nothing to wait on but its presence
    return folder / f'snapshot{index}'


def print_heap_growth(first: Path, second: Path, goals: int, top: int = 12) -> None:
    import tracemalloc

    stats = tracemalloc.Snapshot.load(str(second)).compare_to(
        tracemalloc.Snapshot.load(str(first)), 'traceback')
    total = sum(stat.size_diff for stat in stats)
    print(f'\nnode Python heap over {goals} goals: {total / 2 ** 20:+.3f} MiB '
          f'({total / goals:+.0f} bytes per goal); largest growth:')
    for stat in stats[:top]:
        frame = stat.traceback[-1]
        print(f'  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  '
              f'{frame.filename}:{frame.lineno}')


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cosmos_reason_ros.ros.client import GoalFailedError, make_goal

    # Built in a process of its own: this one is the planner, whose RSS should not hold torch.
    checkpoint = common.CACHE / TINY
    subprocess.run([sys.executable, '-c', 'import sys; from cosmos_reason_ros.demo.tiny_model '
                    'import build_tiny_checkpoint; build_tiny_checkpoint(sys.argv[1])',
                    str(checkpoint)], check=True, cwd=common.ROOT, env=common.ros_environment(0),
                   stdout=subprocess.DEVNULL)
    parameters = {'model': str(checkpoint), 'device': 'cpu', 'dtype': 'fp32',
                  'compressed_input': True, 'window.max_pixels': 160 * 120,
                  'goal.max_frames': 8, 'goal.window_duration': 2.0, 'goal.max_new_tokens': 8}
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    left_before = set(abandoned_segments())
    trace_dir = Path(tempfile.mkdtemp(prefix='soak-trace-')) if args.trace else None
    if trace_dir is not None:
        env['SOAK_TRACE_DIR'] = str(trace_dir)
    preludes = [f'exec({_TRACE_PRELUDE!r})'] if trace_dir is not None else []
    if args.as_before:
        preludes.append(_RCLPY_SERVER_PRELUDE)
    prelude = '; '.join(preludes)
    camera = subprocess.Popen(common.camera_command('jpeg', 320, 240, 30.0, 10 ** 6),
                              cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, **common.own_process_group())
    round_trips = array.array('d', bytes(8 * args.goals))
    overheads = array.array('d', bytes(8 * args.goals))
    samples: list[dict[str, float]] = []
    failures: dict[str, int] = {}
    snapshots: list[Path] = []
    node_exit: int | None = None
    try:
        with common.node_process(parameters, env, prelude=prelude) as node:
            planner = Planner(domain)
            try:
                if not planner.client.wait_for_server(timeout=120.0):
                    node.check_alive()
                    raise RuntimeError('the node did not come up')
                _wait_ready(planner, node, make_goal, GoalFailedError)
                records_warm: dict[str, int] = {}
                started = time.monotonic()
                goal = make_goal('Is the marker red?', max_new_tokens=4, greedy=True)
                for index in range(args.goals):
                    if trace_dir is not None and index in args.trace:
                        snapshots.append(node_snapshot(trace_dir, len(snapshots), node))
                    sent = time.perf_counter()
                    try:
                        result = planner.client.ask(goal, timeout=60.0)
                    except (GoalFailedError, TimeoutError) as error:
                        kind = (f'status {error.status}, error code '
                                f'{error.result.error_code}: {error.result.message[:40]}'
                                if isinstance(error, GoalFailedError) else 'timeout')
                        failures[kind] = failures.get(kind, 0) + 1
                        result = None
                    round_trips[index] = time.perf_counter() - sent
                    overheads[index] = round_trips[index] - (result.output.total_time
                                                             if result is not None else 0.0)
                    done = index + 1
                    if done == args.warmup:
                        records_warm = planner.records()
                    if done % 100 == 0 or done == args.goals:
                        node.check_alive()
                        row = {'goals': done, 'seconds': time.monotonic() - started,
                               'failures': sum(failures.values())}
                        row.update({f'node_{k}': v
                                    for k, v in common.process_figures(node.pid).items()})
                        row.update({f'client_{k}': v
                                    for k, v in common.process_figures(os.getpid()).items()})
                        samples.append(row)
                        if done % args.print_every == 0 or done == args.goals:
                            print(f"soak: {done:6d} goals {row['seconds']:7.0f} s  node RSS "
                                  f"{row['node_rss']:7.1f} MiB thr {row['node_threads']:.0f} "
                                  f"fds {row['node_fds']:.0f}  client RSS "
                                  f"{row['client_rss']:6.1f} MiB thr "
                                  f"{row['client_threads']:.0f} fds {row['client_fds']:.0f}  "
                                  f'median round trip '
                                  f'{statistics.median(round_trips[max(0, done - 100):done]):.3f}'
                                  f' s  failures {failures or 0}', flush=True)
                    if time.monotonic() - started > args.limit:
                        print(f'soak: stopped at {done} goals, past --limit {args.limit:g} s')
                        break
                if trace_dir is not None and len(snapshots) == 1:
                    snapshots.append(node_snapshot(trace_dir, 1, node))
                records_end = planner.records()
            finally:
                planner.close()
            node.stop()
            node_exit = node.process.returncode
    finally:
        camera.terminate()
        camera.wait(timeout=10.0)
    goals = samples[-1]['goals'] if samples else 0
    window = max(1, min(1000, goals // 4))
    figures = {
        'goals': goals, 'seconds': samples[-1]['seconds'] if samples else 0.0,
        'failures': failures, 'warmup': args.warmup,
        'node_rss_slope': slope(samples, 'node_rss', args.warmup),
        'client_rss_slope': slope(samples, 'client_rss', args.warmup),
        'overhead_first': statistics.median(overheads[:window]) if goals else None,
        'overhead_last': statistics.median(overheads[goals - window:goals]) if goals else None,
        'round_trip_first': statistics.median(round_trips[:window]) if goals else None,
        'round_trip_last': statistics.median(round_trips[goals - window:goals]) if goals else None,
        'window': window, 'records_warm': records_warm, 'records_end': records_end,
        'node_exit': node_exit,
        'shm_left': sorted(set(abandoned_segments()) - left_before),
        'samples': samples,
    }
    if len(snapshots) == 2:
        first, last = sorted(index for index in args.trace)[:2] if len(args.trace) > 1 else (
            args.trace[0], goals)
        print_heap_growth(snapshots[0], snapshots[1], last - first)
    return figures


def _wait_ready(planner: Planner, node: common.NodeProcess, make_goal: Any,
                failed: type) -> None:
    """Ask until the model is loaded and the window holds frames (at most 120 s)."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        node.check_alive()
        try:
            planner.client.ask(make_goal('Is the marker red?'), timeout=60.0)
            return
        except failed:
            time.sleep(0.5)  # the model loads or the first frames are on their way
    raise RuntimeError('the node never answered a plain goal')


def report(figures: dict[str, Any]) -> list[str]:
    """Print the summary; the list of what was left behind or grew (empty: nothing)."""
    def per_100(value: float | None) -> str:
        return 'n/a' if value is None else f'{value:+.3f} MiB per 100 goals'

    samples = figures['samples']
    warm = next((row for row in samples if row['goals'] >= figures['warmup']), samples[0])
    last = samples[-1]
    print(f"\nsoak: {figures['goals']} goals in {figures['seconds']:.0f} s, failures "
          f"{figures['failures'] or 0}")
    print(f"node RSS slope after goal {figures['warmup']}: {per_100(figures['node_rss_slope'])}"
          f" ({warm['node_rss']:.1f} -> {last['node_rss']:.1f} MiB); threads "
          f"{warm['node_threads']:.0f} -> {last['node_threads']:.0f}, fds "
          f"{warm['node_fds']:.0f} -> {last['node_fds']:.0f}")
    print(f"client RSS slope after goal {figures['warmup']}: "
          f"{per_100(figures['client_rss_slope'])} ({warm['client_rss']:.1f} -> "
          f"{last['client_rss']:.1f} MiB); threads {warm['client_threads']:.0f} -> "
          f"{last['client_threads']:.0f}, fds {warm['client_fds']:.0f} -> "
          f"{last['client_fds']:.0f}")
    print(f"client overhead per goal (round trip - node total_time), median of the first and "
          f"last {figures['window']}: {figures['overhead_first'] * 1e3:.1f} -> "
          f"{figures['overhead_last'] * 1e3:.1f} ms "
          f"({figures['overhead_last'] / figures['overhead_first']:.2f}x); round trip "
          f"{figures['round_trip_first'] * 1e3:.1f} -> {figures['round_trip_last'] * 1e3:.1f} ms")
    print(f"action client records after warm-up {figures['records_warm']}, at the end "
          f"{figures['records_end']}")
    print(f"node exit status {figures['node_exit']}; Fast DDS segments left in /dev/shm: "
          f"{len(figures['shm_left'])}")
    left = []
    if figures['node_exit'] != 0:
        left.append(f"the node exited with {figures['node_exit']}")
    if figures['shm_left']:
        left.append(f"{len(figures['shm_left'])} segments in /dev/shm")
    grown = {name: (figures['records_warm'].get(name, 0), count)
             for name, count in figures['records_end'].items()
             if count > figures['records_warm'].get(name, 0) + 1}
    if grown:
        left.append(f'action client records grew: {grown}')
    for side in ('node', 'client'):
        for what in ('threads', 'fds'):
            if last[f'{side}_{what}'] > warm[f'{side}_{what}']:
                left.append(f"{side} {what} {warm[f'{side}_{what}']:.0f} -> "
                            f"{last[f'{side}_{what}']:.0f}")
    if figures['failures']:
        left.append(f"failed goals {figures['failures']}")
    return left


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--goals', type=int, default=20000)
    parser.add_argument('--warmup', type=int, default=2000,
                        help='goals before the slopes are measured')
    parser.add_argument('--limit', type=float, default=6 * 3600.0,
                        help='seconds after which the soak stops')
    parser.add_argument('--trace', type=int, nargs='+', default=[],
                        help="goal indices at which to snapshot the node's Python heap (two)")
    parser.add_argument('--print-every', type=int, default=1000)
    parser.add_argument('--as-before', action='store_true',
                        help="the node with rclpy's own ActionServer (before/after figures)")
    parser.add_argument('--client-as-before', action='store_true',
                        help="the planner with rclpy's own send_goal_async, which leaves a "
                             'Future behind per goal on Kilted')
    parser.add_argument('--check', action='store_true',
                        help='CI: 300 goals (warm-up 100); exit 1 if anything is left behind')
    parser.add_argument('--json', type=Path, help='write the figures here')
    args = parser.parse_args(argv)
    if args.check:
        args.goals, args.warmup, args.print_every = min(args.goals, 300), 100, 100
    args.warmup = min(args.warmup, max(0, args.goals - 200))
    common.print_machine()
    if args.client_as_before:
        from rclpy.action import ActionClient

        from cosmos_reason_ros.ros.client import OrderedActionClient
        OrderedActionClient.send_goal_async = ActionClient.send_goal_async
    figures = run(args)
    left = report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print('nothing left behind' if not left else 'left behind or grown: ' + '; '.join(left))
    return 1 if args.check and left else 0


if __name__ == '__main__':
    sys.exit(main())
