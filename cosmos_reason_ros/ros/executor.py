"""The node's executor: rclpy's MultiThreadedExecutor without its busy loop on queued callbacks.

rclpy's MultiThreadedExecutor (ros2/rclpy#1452, fixed upstream by #1547 after Kilted) hands a
callback still waiting in its thread pool's queue to the pool again on every loop, and does not
wait for new work meanwhile: under a 30 fps camera the node spun at 60-85% of a core and lost
frames. This one lets each callback it hands out start before it looks for more work.

It also survives a middleware error: an RCLError raised in a callback (rclpy's action server
publishes goal status arrays inside its own callbacks, where the node cannot catch it) would
end spin() and with it the node; here it is handed to `on_middleware_error` and spinning goes
on.
"""

from collections.abc import Callable
import time
from typing import Any

from rclpy.executors import MultiThreadedExecutor
from rclpy.task import Task

from cosmos_reason_ros.ros.publishing import MIDDLEWARE_ERRORS

START_TIMEOUT = 0.01
"""Longest wait (s) for a handed-out callback to start; a coroutine awaiting a future counts as
not started, so this bounds how often such a task is handed out again (100 Hz, not a spin)."""
_POLL = 0.0002


class ReasonExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose spin loop waits for each callback to start running."""

    def __init__(self, *args: Any,
                 on_middleware_error: Callable[[Exception], None] | None = None,
                 **kwargs: Any) -> None:
        """Create the executor.

        Args:
            *args: As MultiThreadedExecutor's.
            on_middleware_error: called with each RCLError a callback raised (e.g. the node's
                count_publish_error); None: they are only logged.
            **kwargs: As MultiThreadedExecutor's.
        """
        super().__init__(*args, **kwargs)
        self._last_handed_out: Task | None = None
        self._on_middleware_error = on_middleware_error or _log_middleware_error

    def _spin_once_impl(self, *args: Any, **kwargs: Any) -> None:
        try:
            super()._spin_once_impl(*args, **kwargs)
        except MIDDLEWARE_ERRORS as error:
            self._on_middleware_error(error)

    def wait_for_ready_callbacks(self, *args: Any, **kwargs: Any) -> tuple[Task, Any, Any]:
        """Return the next callback, once the previous one has started (or START_TIMEOUT)."""
        last = self._last_handed_out
        if last is not None:
            deadline = time.monotonic() + START_TIMEOUT
            # sleep() releases the GIL, which the worker needs to start the callback.
            while not (last.executing() or last.done()) and time.monotonic() < deadline:
                time.sleep(_POLL)
        handler, entity, node = super().wait_for_ready_callbacks(*args, **kwargs)
        self._last_handed_out = handler
        return handler, entity, node


def _log_middleware_error(error: Exception) -> None:
    from rclpy.logging import get_logger

    get_logger('reason_executor').error(f'a callback raised {error!r}; spinning on',
                                        throttle_duration_sec=5.0)


__all__ = ['START_TIMEOUT', 'ReasonExecutor']
