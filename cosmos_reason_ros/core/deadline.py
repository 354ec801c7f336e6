"""A cancel event that also reads as set once a deadline has passed.

Backends only ask a cancel event is_set() and wait(), so a time limit (a goal's, or a remote
request's) stops work exactly as a cancel does, without a timer thread.
"""

import threading
import time


class DeadlineEvent(threading.Event):
    """Set when the wrapped cancel event is set, or once `limit` seconds have passed.

    set() sets the wrapped event, so whoever holds it sees the cancel too.
    """

    def __init__(self, cancel: threading.Event | None, limit: float):
        """Start the clock.

        Args:
            cancel: the event to follow (None: only the deadline counts).
            limit: seconds from now; 0 or less means no deadline.
        """
        super().__init__()
        self.cancel = cancel if cancel is not None else threading.Event()
        self.limit = limit
        self._deadline = time.monotonic() + limit if limit > 0 else None

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (whatever the wrapped event says)."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def is_set(self) -> bool:
        return self.cancel.is_set() or self.expired

    def set(self) -> None:
        self.cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._deadline is not None:
            remaining = max(0.0, self._deadline - time.monotonic())
            timeout = remaining if timeout is None else min(timeout, remaining)
        self.cancel.wait(timeout)
        return self.is_set()


__all__ = ['DeadlineEvent']
