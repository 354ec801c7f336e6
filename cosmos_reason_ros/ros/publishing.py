"""Publishing that never kills the node: a middleware error is counted and logged, not raised.

An RCLError from a publish (or a goal status update, which publishes the status array) means the
middleware could not send one message, e.g. while a participant joins or leaves the graph, or
an entity is being destroyed. Losing that message is better than losing the node.
"""

from collections.abc import Callable
import threading
from typing import Any

from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.publisher import Publisher

MIDDLEWARE_ERRORS = (_rclpy.RCLError, InvalidHandle)
"""What a publish raises when the middleware fails or the entity is already destroyed."""


class PublishGuard:
    """Runs publishes, counts the ones the middleware refused, logs them throttled."""

    def __init__(self, logger: RcutilsLogger):
        self._logger = logger
        self._lock = threading.Lock()
        self._errors = 0

    @property
    def errors(self) -> int:
        """Middleware errors caught so far (reported in /diagnostics as publish_errors)."""
        return self._errors

    def publish(self, publisher: Publisher, message: Any) -> bool:
        """Publish `message`; False (counted, logged) when the middleware refused it."""
        try:
            publisher.publish(message)
        except MIDDLEWARE_ERRORS as error:
            self.failed(f'a {type(message).__name__}', error)
            return False
        return True

    def call(self, what: str, function: Callable[..., Any], *args: Any) -> bool:
        """Run a function that publishes; False (counted, logged) on a middleware error."""
        try:
            function(*args)
        except MIDDLEWARE_ERRORS as error:
            self.failed(what, error)
            return False
        return True

    def failed(self, what: str, error: BaseException) -> None:
        """Count and log (at most every 5 s) a middleware error."""
        with self._lock:
            self._errors += 1
            count = self._errors
        self._logger.error(f'the middleware refused to send {what}: {error} ({count} so far; '
                           'the node goes on)', throttle_duration_sec=5.0)


__all__ = ['MIDDLEWARE_ERRORS', 'PublishGuard']
