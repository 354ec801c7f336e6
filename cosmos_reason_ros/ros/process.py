"""The node's process: spin until SIGINT or SIGTERM, then stop cleanly and exit 0 at once.

rclpy's own signal handler shuts the context down at once: the executor stops, goals are left
running against destroyed entities (their clients never get a result) and a KeyboardInterrupt
lands wherever the main thread happens to be. Here a signal only sets an event; then, in order:
goals end with a result their clients receive (SHUTTING_DOWN) while the executor still spins
(LINGER more seconds, for result requests still in flight), a model load in progress is
abandoned, the executor stops, the lifecycle shutdown transition frees
the model, and the node and context are destroyed. Nothing publishes after its entity is gone.
"""

from collections.abc import Callable
import os
import signal
import sys
import threading
import time
from typing import NoReturn

import rclpy
from rclpy.signals import SignalHandlerOptions

from cosmos_reason_ros.ros.executor import ReasonExecutor
from cosmos_reason_ros.ros.large_buffers import reuse_large_buffers
from cosmos_reason_ros.ros.spinning import spinning

GOALS_TIMEOUT = 3.0
"""Seconds the goals get to end (a goal stops within one decoding step) before the executor
stops regardless; together with the rest this stays well inside launch's 5 s."""
EXECUTOR_TIMEOUT = 1.0
LINGER = 0.5
"""Seconds the executor keeps spinning after the goals ended: a client asks for a goal's result
right after the goal was accepted, and a request still on its way (or queued in the executor)
when the goal ends must be answered too, or that client waits for nothing."""


class _Signals:
    """SIGINT and SIGTERM set an event instead of raising in the main thread."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.name = ''
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame) -> None:
        self.name = signal.Signals(number).name
        self.received.set()

    def wait(self) -> str:
        # A timeout keeps the wait interruptible by signals on every Python version.
        while not self.received.wait(0.5):
            pass
        return self.name


def run_until_signal(make_node: Callable[[], 'rclpy.node.Node'],
                     args: list[str] | None = None) -> NoReturn:
    """Create the node, spin it until SIGINT/SIGTERM, shut it down cleanly, exit 0.

    Args:
        make_node: builds the node (a ReasonNode) once rclpy is initialized.
        args: command line arguments for rclpy (--ros-args ...); None: sys.argv.
    """
    reuse_large_buffers()
    signals = _Signals()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node()
    executor = ReasonExecutor(num_threads=node.executor_threads,
                              on_middleware_error=node.count_publish_error)
    executor.add_node(node)
    # The node is not among spinning()'s destroy steps: its shutdown transition and the log
    # come between the executor's end and the node's destruction.
    with spinning(executor, timeout=EXECUTOR_TIMEOUT):
        name = signals.wait()
        started = time.monotonic()
        stopped = node.begin_shutdown(timeout=GOALS_TIMEOUT)
        if stopped:
            time.sleep(LINGER)
    node.finish_shutdown()
    node.get_logger().info(
        f'{name}: shut down in {time.monotonic() - started:.2f} s '
        f'({stopped} goal(s) ended with SHUTTING_DOWN)')
    node.destroy_node()
    rclpy.try_shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything of ours is closed. The interpreter's own teardown with torch imported takes
    # 2-3 s more on a loaded 2-core machine (launch escalates to SIGTERM after 5 s), and a load
    # abandoned inside transformers would be torn down mid-way: skip it.
    os._exit(0)


__all__ = ['run_until_signal']
