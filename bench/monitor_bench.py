"""Monitors beside goals: a goal's time to first token with three monitors ticking against an
idle node, and a soak of three monitors at their minimum period (issue 22, Performance).

The node runs in its own process on the tiny model with a JPEG camera (bench/camera.py, 30 fps,
its own process); the planner is this process (one rclpy node, an executor thread).

- Latency (default): warm-up goals, then --goals goals on the idle node, then the same number
  with three monitors added through ~/add_monitor at monitors.min_period. A goal's time to first
  token is measured by the planner, from sending the goal to the first feedback with a token
  (feedback_period 0), so a wait for a tick to give the model back counts. Goals start at a
  random instant (0 to 0.5 s after the previous result) so they meet ticks at every phase.
  Prints p50, p90 and max of each and the rise against one tick's duration (the median
  total_time of the ticks' results).
- Soak (--soak SECONDS): three monitors from a monitors_file at monitors.min_period, no goals.
  RSS, threads and open files of the node sampled after a warm-up and at the end (and every
  --sample-every s; growth is reported); at the end the node is deactivated and the results
  received per monitor are compared with its /diagnostics counters: received = ticks - stopped
  (every tick that ended published once), and ticks + skipped against the due instants.

    python -m bench.monitor_bench [--goals 50] [--json out]
    python -m bench.monitor_bench --soak 300
    python -m bench.monitor_bench --check    # CI: 3 goals each way and a 10 s soak
"""

import argparse
from collections.abc import Sequence
import json
import math
from pathlib import Path
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from bench import common, overhead_bench

TINY = 'tiny-qwen3-vl'
MONITORS = ('scene', 'person', 'door')
TASKS = {'scene': ('caption', ''), 'person': ('question', 'Is a person in the path?'),
         'door': ('question', 'Is the door open?')}
MIN_PERIOD = 0.5
"""monitors.min_period (the node's default): every monitor ticks at it."""
TICK_TOKENS = 8
"""max_new_tokens of a tick (the tiny model never stops early: every tick makes this many)."""
GOAL_TOKENS = 4


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 50 values is the 45th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def distribution(values: Sequence[float]) -> dict[str, float]:
    return {'p50': statistics.median(values), 'p90': percentile(values, 0.9),
            'max': max(values), 'n': len(values)}


class Bench:
    """The node and camera processes and the planner of one run."""

    def __init__(self, monitors_file: str = ''):
        from lifecycle_msgs.srv import ChangeState
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from cosmos_reason_ros.msg import ReasoningResult

        checkpoint = common.CACHE / TINY
        subprocess.run([sys.executable, '-c', 'import sys; from cosmos_reason_ros.demo.'
                        'tiny_model import build_tiny_checkpoint; build_tiny_checkpoint('
                        'sys.argv[1])', str(checkpoint)], check=True, cwd=common.ROOT,
                       env=common.ros_environment(0), stdout=subprocess.DEVNULL)
        parameters = {'model': str(checkpoint), 'device': 'cpu', 'dtype': 'fp32',
                      'compressed_input': True, 'window.max_pixels': 160 * 120,
                      'goal.max_frames': 8, 'goal.window_duration': 2.0,
                      'goal.max_new_tokens': 8, 'feedback_period': 0.0, 'autostart': False,
                      'monitors.min_period': MIN_PERIOD}
        if monitors_file:  # an empty value is no override rcl can parse
            parameters['monitors_file'] = monitors_file
        self.domain = common.ros_domain()
        env = common.ros_environment(self.domain)
        self.camera = subprocess.Popen(common.camera_command('jpeg', 320, 240, 30.0, 10 ** 6),
                                       cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, **common.own_process_group())
        self.node = common.NodeProcess(parameters, env)
        self.planner = overhead_bench.Planner(self.domain)
        self.diagnostics = common.Diagnostics(self.domain)
        self.results: dict[str, list[tuple[float, Any]]] = {name: [] for name in MONITORS}
        self._lock = threading.Lock()
        # Deeper than the node's depth 1, so a slow spin here drops nothing it then counts.
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for name in MONITORS:
            self.planner.node.create_subscription(
                ReasoningResult, f'/cosmos_reason/monitors/{name}',
                lambda message, name=name: self._on_result(name, message), latched)
        self._change_state = self.planner.node.create_client(
            ChangeState, '/cosmos_reason/change_state')
        self._change_state_type = ChangeState

    def _on_result(self, name: str, message: Any) -> None:
        with self._lock:
            self.results[name].append((time.monotonic(), message))

    def received(self) -> dict[str, int]:
        with self._lock:
            return {name: len(each) for name, each in self.results.items()}

    def call(self, client: Any, request: Any, timeout: float = 120.0) -> Any:
        """A service's response (the planner's executor thread completes the future)."""
        if not client.wait_for_service(timeout_sec=timeout):
            self.node.check_alive()
            raise RuntimeError(f'no service {client.srv_name}')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise RuntimeError(f'{client.srv_name} gave no answer within {timeout} s')
        return future.result()

    def transition(self, label: str) -> None:
        from lifecycle_msgs.msg import Transition

        request = self._change_state_type.Request(transition=Transition(label=label))
        if not self.call(self._change_state, request).success:
            raise RuntimeError(f'the node refused to {label}:\n' + '\n'.join(self.node.log[-20:]))

    def wait_subscribed(self) -> None:
        """Until each monitor's topic has a publisher this planner has discovered."""
        deadline = time.monotonic() + 30.0
        for name in MONITORS:
            while self.planner.node.count_publishers(f'/cosmos_reason/monitors/{name}') < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f'no publisher of ~/monitors/{name}')
                time.sleep(0.05)
        time.sleep(1.0)  # discovery of the publisher, then the match of both ends

    def wait_ready(self) -> None:
        """Ask until the model is loaded and the window holds frames (at most 120 s)."""
        from cosmos_reason_ros.ros.client import GoalFailedError, make_goal

        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline:
            self.node.check_alive()
            try:
                self.planner.client.ask(make_goal('Is the marker red?', max_new_tokens=2),
                                        timeout=60.0)
                return
            except GoalFailedError:
                time.sleep(0.5)  # the model loads or the first frames are on their way
        raise RuntimeError('the node never answered a plain goal')

    def close(self) -> None:
        self.diagnostics.close()
        self.planner.close()
        self.node.stop()
        self.camera.terminate()
        self.camera.wait(timeout=10.0)


def _monitor_entry(name: str) -> dict[str, Any]:
    mode, task = TASKS[name]
    return {'name': name, 'mode': mode, 'task': task, 'period': MIN_PERIOD,
            'max_new_tokens': TICK_TOKENS, 'on_change_only': True}


def goal_ttfts(bench: Bench, count: int, rng: random.Random) -> list[float]:
    """Seconds from sending each of `count` goals to its first generated token."""
    from cosmos_reason_ros.ros.client import make_goal

    goal = make_goal('Is the marker red?', max_new_tokens=GOAL_TOKENS, greedy=True)
    ttfts = []
    for _ in range(count):
        time.sleep(rng.uniform(0.0, 0.5))
        first: list[float] = []
        sent = time.perf_counter()
        bench.planner.client.ask(
            goal, lambda feedback: feedback.tokens > 0 and not first and first.append(
                time.perf_counter()), timeout=60.0)
        if not first:
            raise RuntimeError('a goal succeeded without feedback of its first token')
        ttfts.append(first[0] - sent)
    return ttfts


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    from cosmos_reason_ros.msg import Monitor
    from cosmos_reason_ros.srv import AddMonitor

    rng = random.Random(22)
    bench = Bench()
    try:
        bench.transition('configure')
        bench.transition('activate')
        bench.wait_ready()
        goal_ttfts(bench, args.warmup, rng)
        idle = goal_ttfts(bench, args.goals, rng)
        add = bench.planner.node.create_client(AddMonitor, '/cosmos_reason/add_monitor')
        for name in MONITORS:
            response = bench.call(add, AddMonitor.Request(monitor=Monitor(**_monitor_entry(
                name))))
            if not response.success:
                raise RuntimeError(response.message)
        deadline = time.monotonic() + 60.0
        while min(bench.received().values()) < 2:
            bench.node.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f'the monitors do not tick: {bench.received()}')
            time.sleep(0.1)
        since = time.monotonic()
        busy = goal_ttfts(bench, args.goals, rng)
        with bench._lock:
            ticks = [message.total_time for each in bench.results.values()
                     for arrived, message in each if arrived >= since and not message.error_code]
        values = bench.diagnostics.latest
    finally:
        bench.close()
    if not ticks:
        raise RuntimeError('no tick ended while the goals ran')
    stopped = sum(int(values.get(f'monitor.{name}.stopped', 0)) for name in MONITORS)
    return {'idle': distribution(idle), 'monitors': distribution(busy),
            'tick': statistics.median(ticks), 'ticks': len(ticks), 'ticks_stopped': stopped,
            'idle_values': idle, 'monitor_values': busy}


def report_latency(figures: dict[str, Any]) -> list[str]:
    def line(label: str, dist: dict[str, float]) -> None:
        print(f"goal time to first token, {label}: p50 {dist['p50'] * 1e3:.0f} ms, p90 "
              f"{dist['p90'] * 1e3:.0f} ms, max {dist['max'] * 1e3:.0f} ms "
              f"({dist['n']} goals)")

    idle, busy, tick = figures['idle'], figures['monitors'], figures['tick']
    line('idle node', idle)
    line(f'{len(MONITORS)} monitors every {MIN_PERIOD:g} s', busy)
    print(f"one tick ({TICK_TOKENS} tokens): {tick * 1e3:.0f} ms (median of {figures['ticks']} "
          f"ticks; {figures['ticks_stopped']} ticks stopped by a goal)")
    rises = {key: busy[key] - idle[key] for key in ('p50', 'p90', 'max')}
    print('rise over the idle node: ' + ', '.join(
        f'{key} {value * 1e3:+.0f} ms ({value / tick:+.2f} ticks)'
        for key, value in rises.items()))
    verdict = 'within' if rises['p50'] <= tick else 'beyond'
    print(f"p50 rise / one tick: {rises['p50'] / tick:.2f} ({verdict} the target of 1)")
    return [] if rises['p50'] <= tick else ['p50 rise above one tick']


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    folder = Path(tempfile.mkdtemp(prefix='monitor-soak-'))
    monitors_file = folder / 'monitors.yaml'
    monitors_file.write_text(yaml.safe_dump({'monitors': [_monitor_entry(name)
                                                          for name in MONITORS]}))
    bench = Bench(str(monitors_file))
    samples: list[dict[str, float]] = []
    try:
        bench.transition('configure')
        bench.wait_subscribed()
        bench.transition('activate')
        bench.wait_ready()
        started = time.monotonic()
        # The executor's threads and the allocator's pools grow over the first ticks: the
        # start figures are taken after a warm-up, and the samples before it only printed.
        warmup = min(30.0, args.soak / 4)
        next_sample = started + warmup
        while time.monotonic() - started < args.soak:
            bench.node.check_alive()
            if time.monotonic() >= next_sample:
                row = {'seconds': time.monotonic() - started, **common.process_figures(
                    bench.node.pid), 'received': sum(bench.received().values())}
                samples.append(row)
                print(f"soak: {row['seconds']:6.0f} s  node RSS {row['rss']:7.1f} MiB thr "
                      f"{row['threads']:.0f} fds {row['fds']:.0f}  results "
                      f"{row['received']:.0f}", flush=True)
                next_sample += args.sample_every
            time.sleep(0.2)
        samples.append({'seconds': time.monotonic() - started,
                        **common.process_figures(bench.node.pid),
                        'received': sum(bench.received().values())})
        active = time.monotonic() - started
        bench.transition('deactivate')
        time.sleep(3.0)  # the last results arrive; /diagnostics (1 s) reports the final counts
        values = bench.diagnostics.latest
        received = bench.received()
    finally:
        bench.close()
    counters = {name: {what: int(values.get(f'monitor.{name}.{what}', -1))
                       for what in ('ticks', 'skipped', 'stopped')} for name in MONITORS}
    return {'seconds': args.soak, 'warmup': warmup, 'active': active, 'samples': samples,
            'received': received,
            'counters': counters, 'log_errors': [line for line in bench.node.log
                                                 if 'ERROR' in line][-5:]}


def report_soak(figures: dict[str, Any]) -> list[str]:
    first, last = figures['samples'][0], figures['samples'][-1]  # after the warm-up, the end
    print(f"\nmonitor soak: {figures['seconds']:.0f} s, {len(MONITORS)} monitors every "
          f"{MIN_PERIOD:g} s, tiny model on CPU")
    print(f"node after {figures['warmup']:.0f} s warm-up -> end: RSS {first['rss']:.1f} -> "
          f"{last['rss']:.1f} MiB "
          f"({last['rss'] - first['rss']:+.1f}); threads {first['threads']:.0f} -> "
          f"{last['threads']:.0f}; fds {first['fds']:.0f} -> {last['fds']:.0f}")
    problems = []
    lost_total = 0
    for name in MONITORS:
        counts, got = figures['counters'][name], figures['received'][name]
        published = counts['ticks'] - counts['stopped']
        lost = published - got
        lost_total += max(lost, 0)
        due = figures['active'] / MIN_PERIOD
        print(f"  {name}: results received {got}, ticks {counts['ticks']} - stopped "
              f"{counts['stopped']} = {published} published; skipped {counts['skipped']}; "
              f"ticks + skipped {counts['ticks'] + counts['skipped']} of ~{due:.0f} due")
        if counts['ticks'] < 0:
            problems.append(f'no /diagnostics counters for {name}')
        elif lost != 0:
            problems.append(f'{name}: {lost} results lost (received {got} of {published})')
    print(f'results lost other than counted skips and stops: {lost_total}')
    grown = [f'{what} {first[what]:.0f} -> {last[what]:.0f}' for what in ('threads', 'fds')
             if last[what] > first[what]]
    # Reported, not failed on: the executor's pool and Fast DDS's receive threads grow on
    # demand (see bench/README.md), so a short --check would fail by chance.
    print('grown after the warm-up: ' + '; '.join(grown) if grown
          else 'threads and fds flat after the warm-up')
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--goals', type=int, default=50, help='goals on each side')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--soak', type=float, default=0.0, metavar='SECONDS',
                        help='run the soak instead of the latency bench')
    parser.add_argument('--sample-every', type=float, default=60.0)
    parser.add_argument('--check', action='store_true',
                        help='CI: 3 goals each way, then a 10 s soak; exit 1 on a lost result')
    parser.add_argument('--json', type=Path, help='write the figures here')
    args = parser.parse_args(argv)
    common.print_machine()
    figures: dict[str, Any] = {}
    problems: list[str] = []
    if args.check:
        args.goals, args.warmup, args.sample_every = 3, 1, 4.0
    if args.check or not args.soak:
        figures['latency'] = run_latency(args)
        # The target is the issue's; a toy run of 5 goals only shows that it is measured.
        target = report_latency(figures['latency'])
        if not args.check:
            problems += target
    if args.check or args.soak:
        args.soak = args.soak or 10.0
        figures['soak'] = run_soak(args)
        problems += report_soak(figures['soak'])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print('all figures within their targets' if not problems
          else 'problems: ' + '; '.join(problems))
    return 1 if args.check and problems else 0


if __name__ == '__main__':
    sys.exit(main())
