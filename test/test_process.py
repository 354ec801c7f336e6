"""The node as a process, stopped by a real SIGINT or SIGTERM: during a goal and during a load.

What must hold (and what `ros2 launch` needs): the running goal ends with a result its client
receives (SHUTTING_DOWN), one line is logged, no traceback, exit status 0, well inside launch's
5 s before it escalates.
"""

import fcntl
import glob
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

from action_msgs.msg import GoalStatus
import cv2
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from ros_graph import next_domain, TIMEOUT, wait_for
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.ros.client import make_goal, ReasonClient
from cosmos_reason_ros.ros.conversions import to_time
from cosmos_reason_ros.ros.executor import ReasonExecutor
from cosmos_reason_ros.ros.spinning import spinning

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_GRACE = 5.0
"""Seconds `ros2 launch` waits after SIGINT before it sends SIGTERM (and then SIGKILL)."""


class _Process:
    """The node in its own process, its output collected line by line."""

    def __init__(self, command: list[str], domain: int):
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED='1',
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def __repr__(self) -> str:
        return 'node process output:\n' + ''.join(self.lines)

    def wait_for_line(self, pattern: str) -> None:
        with self._changed:
            assert self._changed.wait_for(
                lambda: any(re.search(pattern, line) for line in self.lines), TIMEOUT), \
                f'no line matching {pattern!r} in:\n' + ''.join(self.lines)

    def stop(self, signal_number: int) -> float:
        """Send the signal; returns the seconds until the process exited."""
        sent = time.monotonic()
        self.process.send_signal(signal_number)
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return time.monotonic() - sent

    @property
    def output(self) -> str:
        """Everything the process wrote, once it has exited and its output is read."""
        self.process.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        return ''.join(self.lines)

    def __enter__(self) -> '_Process':
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(TIMEOUT)


def _node_command(checkpoint, *extra: str) -> list[str]:
    return [sys.executable, *extra, '--ros-args', '-p', f'model:={checkpoint}',
            '-p', 'device:=cpu', '-p', 'dtype:=fp32', '-p', 'feedback_period:=0.0',
            '-p', 'window.max_pixels:=19200']


def _jpeg_goal() -> Reason.Goal:
    data = cv2.imencode('.jpg', np.zeros((120, 160, 3), np.uint8))[1].tobytes()
    images = [CompressedImage(header=Header(stamp=to_time(10.0 + 0.25 * i)), format='jpeg',
                              data=data) for i in range(2)]
    return make_goal('Describe the scene', compressed_images=images, max_new_tokens=4000,
                     greedy=True)


def _abandoned_shared_memory() -> set[str]:
    """Fast DDS shared-memory segments in /dev/shm that no process holds any more.

    A segment's '_el' file is locked while its participant lives; `fastdds shm clean` removes
    the segments whose lock it can take, and this checks the same way (Fast DDS 3 names them
    fastdds_*, Fast DDS 2 fastrtps_*).
    """
    abandoned = set()
    for lock in glob.glob('/dev/shm/fast*_' + '[0-9a-f]' * 16 + '_el'):
        try:
            with open(lock, 'ab') as file:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its participant lives
        abandoned.add(lock)
    return abandoned


def _output_is_clean(output: str) -> None:
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output
    assert len(re.findall(r'shut down in', output)) == 1, output


@pytest.mark.parametrize('signal_number', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_goal_ends_it_with_a_result_and_exits_zero(tiny_qwen3_checkpoint,
                                                                      signal_number):
    domain = next_domain()
    abandoned = _abandoned_shared_memory()
    node = _Process(_node_command(tiny_qwen3_checkpoint, '-c',
                                  'from cosmos_reason_ros.ros.node import main; main()'),
                    domain)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    peer = Node('planner', context=context)
    client = ReasonClient(peer, '/cosmos_reason/reason')
    executor = ReasonExecutor(num_threads=3, context=context)
    executor.add_node(peer)
    # Exited in reverse: the node process is killed (if still alive), then the executor stops.
    with spinning(executor, destroy=(client.destroy, peer.destroy_node), context=context), node:
        node.wait_for_line('active: serving goals')
        assert client.wait_for_server(timeout=TIMEOUT)
        generating = threading.Event()
        handle = wait_for(client.send(_jpeg_goal(),
                                      lambda feedback: feedback.tokens > 0 and generating.set()))
        result = handle.get_result_async()  # as ReasonClient.ask does: asked for at once
        assert generating.wait(TIMEOUT)

        seconds = node.stop(signal_number)
        try:
            response = wait_for(result)
        except TimeoutError:
            pytest.fail(f'the client got no result; {node!r}')

        assert response.status == GoalStatus.STATUS_ABORTED
        assert response.result.error_code == Reason.Result.SHUTTING_DOWN
        assert 'shutting down' in response.result.message
        assert node.process.returncode == 0
        assert seconds < LAUNCH_GRACE, f'{seconds:.2f} s to exit'
        _output_is_clean(node.output)
        # The process destroyed its DDS participant: it left no shared memory behind (it left
        # two segments, one of 64 MB, per run while rclpy kept its node alive).
        assert _abandoned_shared_memory() - abandoned == set()
        print(f'{signal.Signals(signal_number).name} during a goal: exit 0 after {seconds:.2f} s')


@pytest.mark.parametrize('signal_number', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_model_load_that_never_ends_exits_zero_at_once(
        tiny_qwen3_checkpoint, signal_number):
    node = _Process(_node_command(tiny_qwen3_checkpoint, str(ROOT / 'test' / 'slow_load_node.py')),
                    next_domain())
    try:
        node.wait_for_line('slow_load_node: reading weights')

        seconds = node.stop(signal_number)

        assert node.process.returncode == 0
        assert seconds < LAUNCH_GRACE, f'{seconds:.2f} s to exit'
        output = node.output
        _output_is_clean(output)
        assert 'configure stopped' in output
        print(f'{signal.Signals(signal_number).name} during a load: exit 0 after {seconds:.2f} s')
    finally:
        node.kill()
