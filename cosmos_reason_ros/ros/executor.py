"""The node's executor: rclpy's MultiThreadedExecutor without its busy loop on queued callbacks.

rclpy's MultiThreadedExecutor (ros2/rclpy#1452, fixed upstream by #1547 after Kilted) hands a
callback still waiting in its thread pool's queue to the pool again on every loop, and does not
wait for new work meanwhile: under a 30 fps camera the node spun at 60-85% of a core and lost
frames. This one lets each callback it hands out start before it looks for more work.
"""

import time
from typing import Any, Optional, Tuple

from rclpy.executors import MultiThreadedExecutor
from rclpy.task import Task

START_TIMEOUT = 0.01
"""Longest wait (s) for a handed-out callback to start; a coroutine awaiting a future counts as
not started, so this bounds how often such a task is handed out again (100 Hz, not a spin)."""
_POLL = 0.0002


class ReasonExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose spin loop waits for each callback to start running."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_handed_out: Optional[Task] = None

    def wait_for_ready_callbacks(self, *args: Any, **kwargs: Any) -> Tuple[Task, Any, Any]:
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


__all__ = ['START_TIMEOUT', 'ReasonExecutor']
