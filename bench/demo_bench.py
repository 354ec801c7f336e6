"""The demo's promise, many times over: every trajectory goal sent the demo's way parses.

scripts/demo.sh starts the sample RGB-D stream and the node with the tiny test model
(config/cpu_test_model.yaml, depth on) and sends one goal with `ask`: trajectory, reasoning,
max_new_tokens 400, sampled (not greedy, no seed), window ending 2 s after the goal. This starts
the same two processes once and sends --goals such goals from one client, one after another,
each with a window ending --window-end-in seconds after it is sent: the node and the goals are
the demo's, without starting both processes for every goal. Prints how many parsed, how many
were constrained (checked after generation), how many were cut by max_new_tokens, and the time
per goal.

Run: python -m bench.demo_bench [--goals 100] [--window-end-in 0.5]
"""

import argparse
import collections
from collections.abc import Sequence
import statistics
import subprocess
import sys
import tempfile
import time

from bench import common

TASK = 'Move the red marker into the grey basket.'


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; prints counts and times."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--goals', type=int, default=100)
    parser.add_argument('--max-new-tokens', type=int, default=400)
    parser.add_argument('--window-end-in', type=float, default=0.5,
                        help='seconds after sending that the window ends (the demo: 2.0)')
    args = parser.parse_args(argv)
    camera_command = common.demo_camera_command()
    common.print_machine()
    domain = common.ros_domain()
    env = common.ros_environment(domain)
    camera = _Camera(camera_command, env)
    # The filter off, stated: from before its default changed, a checkout would turn it on,
    # and the camera's process then crashes (bench/filter_soak.py).
    node = subprocess.Popen(common.demo_node_command(dds_filter=False), cwd=common.ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **common.own_process_group())
    try:
        return _send_goals(domain, args, camera)
    finally:
        for process in (node, camera.process):
            common.stop_process(process)


class _Camera:
    """The sample stream, started again (and counted) if it exits (it crashed inside Fast DDS
    when the node's DDS stamp filter was on: bench/filter_soak.py).
    """

    def __init__(self, command: list[str], env: dict[str, str]):
        self._command = command
        self._env = env
        self.restarts: list[str] = []
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        self._log = tempfile.TemporaryFile(mode='w+')
        return subprocess.Popen(self._command, env=self._env, stdout=subprocess.DEVNULL,
                                stderr=self._log, **common.own_process_group())

    def ensure_running(self) -> None:
        if self.process.poll() is None:
            return
        self._log.seek(0)
        last = self._log.read().strip().splitlines()[-2:]
        self.restarts.append(f'exit {self.process.returncode}: {" / ".join(last)}')
        self.process = self._start()
        time.sleep(2.0)  # discovery, and a window of fresh frames


def _send_goals(domain: int, args: argparse.Namespace, camera: _Camera) -> int:
    import rclpy
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor

    from cosmos_reason_ros.action import Reason
    from cosmos_reason_ros.msg import ReasoningResult
    from cosmos_reason_ros.ros.client import GoalFailedError, make_goal, ReasonClient
    from cosmos_reason_ros.ros.spinning import spinning

    common.use_benchmark_transport()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    client_node = rclpy.create_node('demo_bench_planner', context=context)
    client = ReasonClient(client_node)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(client_node)

    def ask() -> Reason.Result:
        end = client_node.get_clock().now() + Duration(seconds=args.window_end_in)
        goal = make_goal(TASK, 'trajectory', reasoning=True,
                         max_new_tokens=args.max_new_tokens, window_end=end.to_msg())
        try:
            return client.ask(goal, timeout=120.0)
        except GoalFailedError as error:
            return error.result

    with spinning(executor, destroy=(client.destroy, client_node.destroy_node),
                  context=context):
        if not client.wait_for_server(timeout=60.0):
            print('no action server came up')
            return 1
        deadline = time.monotonic() + 120.0
        result = ask()
        while result.error_code == Reason.Result.MODEL_NOT_READY and time.monotonic() < deadline:
            time.sleep(1.0)
            result = ask()
        outcomes: collections.Counter = collections.Counter()
        seconds: list[float] = []
        points: list[int] = []
        failures: list[str] = []
        for _ in range(args.goals):
            camera.ensure_running()
            started = time.monotonic()
            result = ask()
            seconds.append(time.monotonic() - started)
            output = result.output
            parsed = (result.error_code == Reason.Result.SUCCESS
                      and output.parse_status == ReasoningResult.PARSE_OK)
            outcomes['succeeded'] += result.error_code == Reason.Result.SUCCESS
            outcomes['parsed'] += parsed
            outcomes['constrained'] += output.constrained
            outcomes['reasoning cut'] += output.reasoning_cut
            outcomes['stopped by max_new_tokens'] += output.completion_tokens >= \
                args.max_new_tokens
            points.append(sum(len(t.points) for t in output.trajectories))
            if not parsed:
                failures.append(f'{result.error_code}: {result.message} '
                                f'{output.parse_error}'[:300])
        goals = args.goals
        print(f'\n{goals} demo goals (trajectory, reasoning, max_new_tokens '
              f'{args.max_new_tokens}, sampled; window ending {args.window_end_in:g} s after '
              'each goal), one node, one client')
        for name in ('succeeded', 'parsed', 'constrained', 'reasoning cut',
                     'stopped by max_new_tokens'):
            print(f'  {name:<26} {outcomes[name]:>4}/{goals}')
        print(f'  points per trajectory: median {statistics.median(points):.0f}, '
              f'min {min(points)}, max {max(points)}')
        print(f'  seconds per goal: median {statistics.median(seconds):.2f}, '
              f'max {max(seconds):.2f}')
        for failure in failures[:5]:
            print(f'  failed: {failure}')
        print(f'  sample stream restarts: {len(camera.restarts)}')
        for restart in camera.restarts:
            print(f'    {restart}')
        common.print_machine()
        return 0 if outcomes['parsed'] == goals else 1


if __name__ == '__main__':
    sys.exit(main())
