"""A real rclpy graph for node tests: the node under test, a camera, a client, one executor.

Each graph has its own context on its own DDS domain with localhost-only discovery, so tests (and
two test runs on one machine) never see each other's topics.
"""

from collections.abc import Callable
import contextlib
import itertools
import os
import random
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import rclpy
from rclpy.action.client import ClientGoalHandle
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.ros.client import GoalFailedError, make_goal, ReasonClient
from cosmos_reason_ros.ros.executor import ReasonExecutor
from cosmos_reason_ros.ros.node import ReasonNode
from cosmos_reason_ros.ros.sample_stream import SampleStream
from cosmos_reason_ros.ros.spinning import spinning

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
TIMEOUT = 60.0
# Distinct domains for the graphs of one run (a counter), and a random base so that two runs on
# one machine are unlikely to meet; 1-101 are the domains Fast DDS maps to valid ports.
_domains = itertools.count(random.SystemRandom().randint(1, 60))


def next_domain() -> int:
    """A DDS domain no other graph of this run uses."""
    return next(_domains) % 101 + 1


def wait_for(future: Future, timeout: float = TIMEOUT) -> Any:
    """The result of an rclpy future completed by the graph's executor thread."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f'no answer within {timeout} s')
    return future.result()


class Graph:
    """The reasoning node on the tiny model, optionally fed by a 30 fps sample camera."""

    def __init__(self, model: str, *, camera: bool = True, **parameters: Any):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=next_domain())
        overrides = {
            'model': str(model), 'device': 'cpu', 'dtype': 'fp32',
            'window.max_pixels': 160 * 120, 'goal.max_new_tokens': 12,
            'goal.window_duration': 2.0, 'goal.max_frames': 8, 'feedback_period': 0.0,
            'goal.frame_wait_timeout': 5.0, **parameters}
        self.node = ReasonNode(context=self.context, parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])
        self.peer = Node('test_peer', context=self.context)
        self.client = ReasonClient(self.peer, '/cosmos_reason/reason')
        nodes: list[Node] = [self.node, self.peer]
        if camera:
            self.camera = SampleStream(context=self.context, parameter_overrides=[
                Parameter('width', value=160), Parameter('height', value=120)])
            nodes.append(self.camera)
        # The production executor, with two threads more for the peer and the camera.
        self.executor = ReasonExecutor(num_threads=self.node.executor_threads + 2,
                                       context=self.context,
                                       on_middleware_error=self.node.count_publish_error)
        for node in nodes:
            self.executor.add_node(node)
        self._nodes = nodes
        self._change_state = self._get_state = None
        self._teardown = contextlib.ExitStack()
        self._teardown.enter_context(spinning(self.executor, timeout=10.0,
                                              destroy=(self._destroy,), context=self.context))
        assert self.client.wait_for_server(timeout=TIMEOUT), 'action server not discovered'

    def transition(self, label: str, timeout: float = TIMEOUT) -> bool:
        """Ask the node for a lifecycle transition ('configure', 'activate', ...) through its
        change_state service, as `ros2 lifecycle set` does; True when it succeeded.
        """
        if self._change_state is None:
            self._change_state = self.peer.create_client(ChangeState,
                                                         '/cosmos_reason/change_state')
            self._get_state = self.peer.create_client(GetState, '/cosmos_reason/get_state')
            assert self._change_state.wait_for_service(timeout_sec=TIMEOUT)
        request = ChangeState.Request(transition=Transition(label=label))
        return wait_for(self._change_state.call_async(request), timeout).success

    def state(self) -> str:
        """The node's lifecycle state label, from its get_state service."""
        if self._get_state is None:
            self._get_state = self.peer.create_client(GetState, '/cosmos_reason/get_state')
            assert self._get_state.wait_for_service(timeout_sec=TIMEOUT)
        return wait_for(self._get_state.call_async(GetState.Request())).current_state.label

    def add_node(self, node: Node) -> None:
        """Spin another node of this graph's context (a test's own publishers) until close()."""
        self.executor.add_node(node)
        self._nodes.append(node)

    def ask(self, goal: Reason.Goal, timeout: float = TIMEOUT
            ) -> tuple[Reason.Result, list[Reason.Feedback]]:
        """Send a goal and wait for its result; returns the result and the feedback seen."""
        feedback: list[Reason.Feedback] = []
        try:
            return self.client.ask(goal, feedback.append, timeout=timeout), feedback
        except GoalFailedError as error:
            # The tests read the failure's error code and message from the result.
            return error.result, feedback

    def send(self, goal: Reason.Goal,
             on_feedback: Callable[[Reason.Feedback], None] | None = None
             ) -> ClientGoalHandle:
        """Send a goal and return its handle once accepted (to cancel it, or wait later)."""
        handle = wait_for(self.client.send(goal, on_feedback))
        assert handle.accepted
        return handle

    def send_generating(self, max_new_tokens: int = 4000) -> ClientGoalHandle:
        """Send a long greedy goal and return its handle once tokens flow (the tiny model never
        stops early, so the goal is still running when the caller acts on it).
        """
        generating = threading.Event()
        handle = self.send(make_goal('Describe the scene', max_new_tokens=max_new_tokens,
                                     greedy=True),
                           lambda feedback: feedback.tokens > 0 and generating.set())
        assert generating.wait(TIMEOUT), 'the goal never started generating'
        return handle

    def wait_for_fresh_frame(self, timeout: float = TIMEOUT) -> bool:
        """Wait until the node's window holds a frame stamped after this call (the camera
        shares the executor with earlier goals); False when none came within timeout.
        """
        since = self.node.get_clock().now().nanoseconds * 1e-9
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            newest = self.node._window.newest_stamp
            if newest is not None and newest > since:
                return True
            time.sleep(0.05)  # the window has no event to wait on; poll its newest stamp
        return False

    def wait_for_diagnostics(self, key: str, at_least: int,
                             publish: Callable[[], None] | None = None) -> None:
        """Wait until /diagnostics reports `key` >= at_least, calling `publish` (if given)
        every 0.2 s meanwhile (DDS may drop a best-effort message before discovery ends).
        """
        reached = threading.Event()

        def on_diagnostics(array: DiagnosticArray) -> None:
            values = {kv.key: kv.value for status in array.status for kv in status.values}
            if int(values.get(key, 0)) >= at_least:
                reached.set()

        subscription = self.peer.create_subscription(DiagnosticArray, '/diagnostics',
                                                     on_diagnostics, 10)
        deadline = time.monotonic() + TIMEOUT
        while not reached.is_set() and time.monotonic() < deadline:
            if publish is not None:
                publish()
            reached.wait(0.2)
        self.peer.destroy_subscription(subscription)
        assert reached.is_set(), f'/diagnostics never reported {key} >= {at_least}'

    def diagnostics_where(self, condition: Callable[[dict[str, str]], bool]
                          ) -> dict[str, str]:
        """The first /diagnostics status (its values, plus 'message' and 'level') for which
        `condition` holds; fails after TIMEOUT.
        """
        found: list[dict[str, str]] = []
        reached = threading.Event()

        def on_diagnostics(array: DiagnosticArray) -> None:
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                values.update(message=status.message, level=str(int.from_bytes(
                    status.level, 'little') if isinstance(status.level, bytes)
                    else status.level))
                if not reached.is_set() and condition(values):
                    found.append(values)
                    reached.set()

        subscription = self.peer.create_subscription(DiagnosticArray, '/diagnostics',
                                                     on_diagnostics, 10)
        reached.wait(TIMEOUT)
        self.peer.destroy_subscription(subscription)
        assert found, '/diagnostics never reported what the test waits for'
        return found[0]

    def close(self) -> None:
        """Stop the executor, then destroy the client, the nodes and the context."""
        self._teardown.close()

    def _destroy(self) -> None:
        # The client and nodes of now: a test may have replaced the client or added nodes.
        self.client.destroy()
        for node in self._nodes:
            node.destroy_node()
