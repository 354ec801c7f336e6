"""The feedback of a running goal: its stage, tokens so far and the tail of the streamed text."""

import time

from rclpy.action.server import ServerGoalHandle

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.ros.publishing import PublishGuard


class GoalProgress:
    """Feedback of one goal: every stage change, and partial text at most once per period.

    The feedback carries only the last tail_chars characters: a message that repeats the whole
    growing answer costs quadratic traffic and memory (the result keeps all of it).
    """

    def __init__(self, goal_handle: ServerGoalHandle, period: float, guard: PublishGuard,
                 tail_chars: int, *, started: float):
        """Start following a goal.

        Args:
            goal_handle: the goal whose feedback is published.
            period: least seconds between feedback messages carrying partial text.
            guard: counts (and logs) feedback the middleware failed to publish.
            tail_chars: characters of the text so far that each feedback carries.
            started: monotonic time the goal was accepted (feedback's elapsed counts from it).
        """
        self._goal_handle = goal_handle
        self._period = period
        self._guard = guard
        self._tail_chars = tail_chars
        self._started = started
        self._last_sent = 0.0
        self._stage = ''
        self._chunks = []
        self._tail = ''
        self._tokens = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the goal was accepted."""
        return time.monotonic() - self._started

    @property
    def text_so_far(self) -> str:
        """All the text generated so far."""
        return ''.join(self._chunks)

    def stage(self, stage: str) -> None:
        """The goal entered `stage`: sent at once."""
        self._stage = stage
        self._send()

    def text(self, delta: str, tokens: int) -> None:
        """More text (`tokens` generated in all): sent once a period has passed."""
        self._chunks.append(delta)
        tail = self._tail + delta
        self._tail = tail[max(0, len(tail) - self._tail_chars):]
        self._tokens = tokens
        if time.monotonic() - self._last_sent >= self._period:
            self._send()

    def _send(self) -> None:
        self._last_sent = time.monotonic()
        feedback = Reason.Feedback(stage=self._stage, tokens=self._tokens,
                                   partial_text=self._tail,
                                   elapsed=self._last_sent - self._started)
        self._guard.call('feedback', self._goal_handle.publish_feedback, feedback)


__all__ = ['GoalProgress']
