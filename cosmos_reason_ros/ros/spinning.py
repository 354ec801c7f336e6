"""Spin an executor on a thread for the length of a `with` block, then tear down in order.

The order Fast DDS and rclpy need: stop the executor, wait for its thread, and only then
destroy what it spun (action clients before their nodes) and shut the context down. Nothing is
destroyed while a callback may still run on it.
"""

from collections.abc import Callable, Iterator, Sequence
import contextlib
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException

TIMEOUT = 5.0
"""Default seconds for the executor to stop, and again for its thread to end."""


@contextlib.contextmanager
def spinning(executor: Executor, *, timeout: float = TIMEOUT,
             destroy: Sequence[Callable[[], object]] = (), context: Context | None = None,
             name: str = 'executor') -> Iterator[Executor]:
    """Spin `executor` on a daemon thread; on exit stop it, join it, destroy, shut down.

    Args:
        executor: the executor, its nodes already added (more may be added while it spins).
        timeout: seconds executor.shutdown() waits for its callbacks, and again the join.
        destroy: called in this order once the thread ended (e.g. client.destroy, then
            node.destroy_node).
        context: shut down last (tolerating one already shut down); None: left alone.
        name: the thread's name.

    Yields:
        The executor.
    """
    thread = threading.Thread(target=_spin, args=(executor,), name=name, daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        executor.shutdown(timeout_sec=timeout)
        thread.join(timeout)
        for step in destroy:
            step()
        if context is not None:
            rclpy.try_shutdown(context=context)



def _spin(executor: Executor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass  # the context was shut down under it (Ctrl-C): the with block tears down


__all__ = ['spinning', 'TIMEOUT']
