"""A planner's handle on the reasoning node: build a goal, send it, get the typed result.

Works from plain scripts (ask() spins the node until the result arrives) and from nodes that are
already spinning in an executor (ask() waits on the result, ask_async() can be awaited), on every
rclpy we build for, including Jazzy's, whose action client can drop a response (see
OrderedActionClient).
"""

from collections.abc import Callable, Sequence
import threading

from action_msgs.msg import GoalStatus
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.ros.action_qos import action_service_qos

FeedbackCallback = Callable[[Reason.Feedback], None]
DEFAULT_ACTION = '/cosmos_reason/reason'


class GoalRejectedError(RuntimeError):
    """The action server did not accept the goal."""


_STATUS_NAMES = {getattr(GoalStatus, name): name for name in (
    'STATUS_UNKNOWN', 'STATUS_ACCEPTED', 'STATUS_EXECUTING', 'STATUS_CANCELING',
    'STATUS_SUCCEEDED', 'STATUS_CANCELED', 'STATUS_ABORTED')}


class GoalFailedError(RuntimeError):
    """The goal ended without success: aborted with an error code, canceled, or of unknown
    status (its result expired on the server before it was collected).

    Attributes:
        status: the action_msgs/GoalStatus the server reported.
        result: the Reason.Result; its error_code and message say why. For an unknown status it
            is empty, and its error_code 0 does not mean success.
    """

    def __init__(self, status: int, result: Reason.Result):
        self.status = status
        self.result = result
        name = _STATUS_NAMES.get(status, str(status)).replace('STATUS_', '').lower()
        if status in (GoalStatus.STATUS_ABORTED, GoalStatus.STATUS_CANCELED):
            text = f'the goal ended {name} (error_code {result.error_code}): {result.message}'
        else:
            text = (f'the goal ended with status {name}: the node no longer knows its result '
                    "(it expired: raise the node's result_timeout, or collect results sooner) "
                    'or the node went away')
        super().__init__(text)


def result_of(response) -> Reason.Result:
    """The Result of a get_result response, or GoalFailedError unless the goal SUCCEEDED.

    error_code 0 (SUCCESS) is also the default of an empty result, so only the status tells a
    success from a result the server no longer had.

    Raises:
        GoalFailedError: any status other than STATUS_SUCCEEDED.
    """
    if response.status != GoalStatus.STATUS_SUCCEEDED:
        raise GoalFailedError(response.status, response.result)
    return response.result


def make_goal(task: str = '', mode: str = Reason.Goal.MODE_QUESTION, *,
              cameras: Sequence[str] = (), **fields) -> Reason.Goal:
    """Build a Reason goal from keyword arguments named like its fields.

    Example: make_goal('Move the tape into the basket', 'trajectory', reasoning=True,
    cameras=['head', 'wrist'])

    Args:
        task: the question or task instruction.
        mode: one of Reason.Goal.MODE_*.
        cameras: the cameras to ask about, in prompt order (the node's `cameras` names); empty:
            every camera of the node, in its configuration order.
        **fields: any other goal field by name.

    Raises:
        AttributeError: a keyword that is not a goal field.
        TypeError: cameras given as one string instead of a list of names.
    """
    if isinstance(cameras, str):
        raise TypeError(f'cameras is a list of camera names: cameras=[{cameras!r}], not '
                        f'cameras={cameras!r}')
    goal = Reason.Goal(task=task, mode=mode, cameras=list(cameras))
    for name, value in fields.items():
        if name not in Reason.Goal.get_fields_and_field_types():
            raise AttributeError(f'Reason.Goal has no field {name!r}')
        setattr(goal, name, value)
    return goal


class OrderedActionClient(ActionClient):
    """An rclpy ActionClient that records each request before its response can be processed.

    Jazzy's rclpy (7.1) sends a goal, cancel or result request and only then records it, without a
    lock (ros2/rclpy#1123). When another thread spins the node, as in a planner that calls ask()
    while its executor runs, the response can be processed in between, finds no record, and is
    dropped ("Ignoring unexpected goal response"): the caller then waits until its timeout.
    Later rclpy sends and records under a lock. Here every send holds a lock of ours until it
    returns, and the executor takes that lock before it processes any response, so a response
    always meets its record, whatever the rclpy.
    """

    def __init__(self, *args, **kwargs):
        self._sending = threading.Lock()
        super().__init__(*args, **kwargs)

    def send_goal_async(self, *args, **kwargs) -> Future:
        """ActionClient.send_goal_async, recorded before the response is looked at, leaving
        no future behind.

        Kilted's rclpy (9.1) records each goal request twice: under its lock with one Future,
        then again with a second Future that replaces the first in its pending requests. The
        first is never completed, so it stays in the client's futures for good: one more per
        goal, each visited by the executor whenever the client has data (per-goal latency grew
        from 0.06 to 0.18 s over 3,000 goals). It is removed here; a single Future (Jazzy's
        rclpy) is left alone.
        """
        with self._sending:
            before = {id(future) for future in self._futures}
            future = super().send_goal_async(*args, **kwargs)
            pending = {id(waiting) for waiting in self._pending_goal_requests.values()}
            for orphan in [added for added in self._futures
                           if id(added) not in before and id(added) not in pending]:
                self.remove_future(orphan)
            return future

    # ClientGoalHandle.cancel_goal_async() and get_result_async() call these two.
    def _cancel_goal_async(self, *args, **kwargs) -> Future:
        with self._sending:
            return super()._cancel_goal_async(*args, **kwargs)

    def _get_result_async(self, *args, **kwargs) -> Future:
        with self._sending:
            return super()._get_result_async(*args, **kwargs)

    async def execute(self, taken_data) -> None:
        """Process responses once no send is between sending and recording its request."""
        with self._sending:
            pass
        await super().execute(taken_data)


class ReasonClient:
    """Sends Reason goals to the node serving `action_name`."""

    def __init__(self, node: Node, action_name: str = DEFAULT_ACTION):
        self._node = node
        self._client = OrderedActionClient(node, Reason, action_name, **action_service_qos())

    def wait_for_server(self, timeout: float | None = None) -> bool:
        """True once the action server is discovered (False after `timeout` seconds)."""
        return self._client.wait_for_server(timeout_sec=timeout)

    def send(self, goal: Reason.Goal,
             feedback_callback: FeedbackCallback | None = None) -> Future:
        """Send a goal without waiting. The future yields a ClientGoalHandle, whose
        cancel_goal_async() and get_result_async() a planner uses to cancel or collect it.
        """
        return self._client.send_goal_async(goal, feedback_callback=_unwrap(feedback_callback))

    async def ask_async(self, goal: Reason.Goal,
                        feedback_callback: FeedbackCallback | None = None) -> Reason.Result:
        """Send a goal and await its result (inside a coroutine run by an rclpy executor).

        Raises:
            GoalRejectedError: the server did not accept the goal.
            GoalFailedError: the goal did not succeed; `result` says why.
        """
        handle = await self.send(goal, feedback_callback)
        if not handle.accepted:
            raise GoalRejectedError('the reasoning node rejected the goal')
        return result_of(await handle.get_result_async())

    def ask(self, goal: Reason.Goal, feedback_callback: FeedbackCallback | None = None,
            timeout: float | None = None) -> Reason.Result:
        """Send a goal and block until its result.

        Spins the node when no executor manages it; when it belongs to an executor (which must
        be spinning in another thread), only waits.

        Raises:
            GoalRejectedError: the server did not accept the goal.
            GoalFailedError: the goal did not succeed (any status but SUCCEEDED); its `result`
                holds the error code and message.
            TimeoutError: no result after `timeout` seconds (the goal is cancelled).
        """
        handle = self._wait(self.send(goal, feedback_callback), timeout)
        if handle is None:
            raise TimeoutError('the reasoning node did not answer the goal request '
                               f'within {timeout} s: is it running?')
        if not handle.accepted:
            raise GoalRejectedError('the reasoning node rejected the goal')
        response = self._wait(handle.get_result_async(), timeout)
        if response is None:
            handle.cancel_goal_async()
            raise TimeoutError(f'no result within {timeout} s; the goal was cancelled')
        return result_of(response)

    def destroy(self) -> None:
        """Release the action client."""
        self._client.destroy()

    def _wait(self, future: Future, timeout: float | None):
        executor = self._node.executor
        # rclpy leaves node.executor set after spin_until_future_complete removed the node, so
        # ask the executor whether it still manages the node.
        if executor is None or self._node not in executor.get_nodes():
            own = SingleThreadedExecutor(context=self._node.context)
            try:
                rclpy.spin_until_future_complete(self._node, future, executor=own,
                                                 timeout_sec=timeout)
                # The completed futures' done callbacks (the action client's own bookkeeping:
                # the pending request, its sequence number, the feedback callback) are tasks
                # of this executor: run them before it goes, or they never run and those
                # records stay, one set per goal. Queued tasks run before new work, one per
                # spin; not behind a marker task, since Jazzy's executor runs the newest first.
                for _ in range(_FLUSH_SPINS):
                    own.spin_once(timeout_sec=0.0)
            finally:
                # Shut down now: garbage-collected after rclpy.shutdown(), an executor prints
                # an InvalidHandle traceback at exit (seen at the end of `ask`).
                own.shutdown()
        else:
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            done.wait(timeout)
        return future.result() if future.done() else None


_FLUSH_SPINS = 8
"""Spins of ask()'s own executor for the done callbacks of what completed (one or two a wait;
a spin with nothing queued returns at once)."""


def _unwrap(callback: FeedbackCallback | None):
    if callback is None:
        return None
    return lambda message: callback(message.feedback)
