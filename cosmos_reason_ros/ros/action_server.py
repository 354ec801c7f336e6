"""The Reason action server: a finished goal is held until its result is collected, not longer.

rclpy's ActionServer keeps every finished goal for result_timeout: its handle, its goal request,
its result, and an entry in every status message the server publishes. With the node's 900 s
and goals back to back, about 9,000 goals were held at a time: the node's memory grew with every
goal for 15 minutes, and so did each status message, which the node publishes and every client
reads three times per goal (the per-goal time grew from 68 to 106 ms over 800 goals, measured
with node and client in one process). rcl can only expire goals by age, so here rcl keeps a
finished goal briefly (RCL_KEEP seconds, or result_timeout if shorter); a result that nobody
asked for by then is kept in a store of uncollected results until result_timeout, where a late
get_result finds it. A collected result is forgotten once rcl expires its goal.
"""

import collections
import threading
import time
from typing import Any

from rclpy.action import ActionServer

RCL_KEEP = 10.0
"""Seconds rcl holds a finished goal (rclpy's own default result_timeout)."""


class ReasonActionServer(ActionServer):
    """An rclpy ActionServer whose finished goals cost nothing once their result was collected.

    Args:
        result_timeout: seconds an uncollected result stays collectable.
        Everything else: as rclpy's ActionServer.
    """

    def __init__(self, *args: Any, result_timeout: float, **kwargs: Any):
        self._keep_for = float(result_timeout)
        self._store_lock = threading.Lock()
        self._requested: set[bytes] = set()
        """Goals still in rcl whose result a client asked for."""
        self._uncollected: collections.OrderedDict[bytes, tuple[float, Any]] = \
            collections.OrderedDict()
        """Results of goals rcl expired before anyone asked: goal id -> (when, response)."""
        super().__init__(*args, result_timeout=int(max(1, min(RCL_KEEP, self._keep_for))),
                         **kwargs)

    @property
    def held(self) -> dict[str, int]:
        """What the server holds now: goals in rcl and results in the store (for tests and
        benchmarks).
        """
        with self._store_lock:
            return {'goals': len(self._goal_handles), 'uncollected': len(self._uncollected),
                    'requested': len(self._requested)}

    async def _execute_get_result_request(self, request_header_and_message: Any) -> None:
        request_header, request = request_header_and_message
        goal_id = bytes(request.goal_id.uuid)
        if goal_id not in self._goal_handles:
            with self._store_lock:
                stored = self._uncollected.pop(goal_id, None)
            if stored is not None and time.monotonic() - stored[0] + RCL_KEEP < self._keep_for:
                with self._lock:
                    self._handle.send_result_response(request_header, stored[1])
                return
        else:
            with self._store_lock:
                self._requested.add(goal_id)
        await super()._execute_get_result_request(request_header_and_message)

    async def _execute_expire_goals(self, expired_goals: Any) -> None:
        now = time.monotonic()
        with self._store_lock:
            for goal in expired_goals:
                goal_id = bytes(goal.goal_id.uuid)
                future = self._result_futures.get(goal_id)
                if goal_id in self._requested:
                    self._requested.discard(goal_id)
                elif future is not None and future.done() and self._keep_for > RCL_KEEP:
                    self._uncollected[goal_id] = (now, future.result())
            # Oldest first: drop those past result_timeout (counted from their goal's end).
            while self._uncollected:
                goal_id, (stored, _) = next(iter(self._uncollected.items()))
                if now - stored + RCL_KEEP < self._keep_for:
                    break
                del self._uncollected[goal_id]
        await super()._execute_expire_goals(expired_goals)

    def destroy(self) -> None:
        with self._store_lock:
            self._uncollected.clear()
            self._requested.clear()
        super().destroy()


__all__ = ['RCL_KEEP', 'ReasonActionServer']
