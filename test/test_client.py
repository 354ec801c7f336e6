"""ReasonClient on a real rclpy graph: no response is lost when another thread spins the node.

Jazzy's rclpy records a goal (or result) request only after sending it (ros2/rclpy#1123); the
tests hold the sender right after the send until the executor thread has had the response, the
widest form of that window, and check that ask() still gets its answer.
"""

from collections.abc import Callable, Iterator
import contextlib
import functools
import json
import os
import subprocess
import sys
import threading

from builtin_interfaces.msg import Time
import pytest
import rclpy
from rclpy.action import ActionClient, ActionServer
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from ros_graph import next_domain, TIMEOUT

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.msg import CameraView, Point2D, Trajectory2D
from cosmos_reason_ros.ros.ask import build_goal, parse_args
from cosmos_reason_ros.ros.client import make_goal, ReasonClient
from cosmos_reason_ros.ros.spinning import spinning

HELD = 2.0
"""Longest a send is held open waiting for its response to be processed (with the workaround the
response waits for the send instead, so the hold ends by this timeout)."""


class Echo(Node):
    """An action server on /cosmos_reason/reason that answers every goal at once."""

    def __init__(self, **kwargs):
        super().__init__('echo_reason', **kwargs)
        self._server = ActionServer(self, Reason, '/cosmos_reason/reason', self._execute)

    def _execute(self, goal_handle) -> Reason.Result:
        goal_handle.succeed()
        result = Reason.Result(error_code=Reason.Result.SUCCESS,
                               message=f'echo: {goal_handle.request.task}')
        # One view per camera the goal named, in its order (a camera 'sideways' missed a slot),
        # and one trajectory in each: what a two-camera node returns.
        for index, name in enumerate(goal_handle.request.cameras):
            stamps = [Time(sec=10, nanosec=250_000_000 * slot) for slot in range(4)]
            missing = stamps[2:3] if name == 'sideways' else []
            result.output.views.append(CameraView(
                name=name, frame_id=f'{name}_optical', image_width=640 * (index + 1),
                image_height=480, stamps=[stamp for stamp in stamps if stamp not in missing],
                missing_stamps=missing))
            result.output.trajectories.append(Trajectory2D(
                camera=name, label=f'seen by {name}', points=[Point2D(x=1.0, y=2.0)]))
        return result


class HeldSends:
    """Wraps rclpy's action-client handle: a send of `kind` returns only after the executor
    processed a response of that kind (or HELD seconds passed).
    """

    def __init__(self, handle, kind: str, processed: threading.Event):
        self._handle = handle
        self._kind = kind
        self._processed = processed

    def __getattr__(self, name: str):
        attribute = getattr(self._handle, name)
        if name != f'send_{self._kind}_request':
            return attribute

        def send(request):
            sequence_number = attribute(request)
            self._processed.wait(HELD)
            return sequence_number
        return send


@contextlib.contextmanager
def echo_graph(spin_planner: bool = True) -> Iterator[tuple[Node, list[ReasonClient]]]:
    """An echo server spun by a 2-thread executor in the background, and a planner node (spun
    by it too unless spin_planner is False: then ask() spins it); yields the planner and a
    list for the clients made on it, destroyed at the end.
    """
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=next_domain())
    server, planner = Echo(context=context), Node('planner', context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(server)
    if spin_planner:
        executor.add_node(planner)
    clients: list[ReasonClient] = []

    def destroy_clients() -> None:
        for client in clients:
            client.destroy()

    with spinning(executor, timeout=10.0,
                  destroy=(destroy_clients, server.destroy_node, planner.destroy_node),
                  context=context):
        yield planner, clients


@pytest.fixture
def graph() -> Iterator[Callable[[str], ReasonClient]]:
    """A planner node spun by a 2-thread executor in the background, next to an echo server;
    yields a function that makes a client whose `kind` requests are held open.
    """
    with echo_graph() as (planner, clients):
        yield functools.partial(_held_client, planner, clients)


def _held_client(planner: Node, clients: list[ReasonClient], kind: str,
                 monkeypatch: pytest.MonkeyPatch) -> ReasonClient:
    processed = threading.Event()
    execute = ActionClient.execute

    async def execute_and_tell(action_client, taken_data):
        await execute(action_client, taken_data)
        if kind in taken_data:
            processed.set()

    monkeypatch.setattr(ActionClient, 'execute', execute_and_tell)
    client = ReasonClient(planner, '/cosmos_reason/reason')
    assert client.wait_for_server(timeout=TIMEOUT)
    action_client = client._client
    action_client._client_handle = HeldSends(action_client._client_handle, kind, processed)
    clients.append(client)
    return client


@pytest.mark.parametrize('kind', ['goal', 'result'])
def test_ask_from_another_thread_gets_the_answer_when_the_response_outruns_the_send(
        graph, kind, monkeypatch):
    client = graph(kind, monkeypatch)

    result = client.ask(make_goal('Is the door open?'), timeout=HELD + 10.0)

    assert result.error_code == Reason.Result.SUCCESS
    assert result.message == 'echo: Is the door open?'


BOOKKEEPING = ('_futures', '_goal_handles', '_pending_goal_requests', '_pending_cancel_requests',
               '_pending_result_requests', '_goal_sequence_number_to_goal_id',
               '_result_sequence_number_to_goal_id', '_feedback_callbacks')
"""What rclpy's ActionClient keeps per goal until the goal is done (absent ones count 0)."""


def bookkeeping(client: ReasonClient) -> dict[str, int]:
    return {name: len(getattr(client._client, name, ())) for name in BOOKKEEPING}


@pytest.mark.parametrize('spin_planner', [True, False], ids=['executor', 'script'])
def test_a_client_keeps_nothing_per_finished_goal(spin_planner):
    # A planner lives for days: 300 goals after a warm-up leave the client's records as they
    # were (a terminal status can trail its result by a message: one goal handle may remain).
    with echo_graph(spin_planner) as (planner, clients):
        client = ReasonClient(planner, '/cosmos_reason/reason')
        clients.append(client)
        assert client.wait_for_server(timeout=TIMEOUT)

        def ask(count: int) -> None:
            for index in range(count):
                result = client.ask(make_goal(f'goal {index}'), lambda feedback: None,
                                    timeout=TIMEOUT)
                assert result.message == f'echo: goal {index}'

        ask(20)
        warm = bookkeeping(client)
        ask(300)
        after = bookkeeping(client)
        assert all(after[name] <= warm[name] + 1 for name in BOOKKEEPING), (warm, after)
        assert after['_futures'] <= 1 and after['_pending_goal_requests'] == 0, after


def test_make_goal_carries_the_cameras_in_their_order():
    assert list(make_goal('Is the part gripped?', cameras=('wrist', 'head')).cameras) == [
        'wrist', 'head']
    assert list(make_goal('Is the part gripped?').cameras) == []
    with pytest.raises(TypeError, match=r"cameras=\['wrist'\], not cameras='wrist'"):
        make_goal('Is the part gripped?', cameras='wrist')


def test_ask_camera_options_become_the_goals_cameras_in_their_order():
    args = parse_args(['Is the part gripped?', '--camera', 'wrist', '--camera', 'head'])
    assert list(build_goal(args).cameras) == ['wrist', 'head']
    assert list(build_goal(parse_args(['Is the part gripped?'])).cameras) == []


def _run_ask(domain: int, *args: str) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    done = subprocess.run(
        [sys.executable, '-c', 'import sys; from cosmos_reason_ros.ros.ask import main; '
         'sys.exit(main())', *args, '--quiet', '--timeout', str(TIMEOUT)],
        env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ask_sends_its_cameras_and_prints_the_views_used_and_each_trajectorys_camera():
    with echo_graph() as (planner, _):
        domain = planner.context.get_domain_id()
        printed = _run_ask(domain, 'Where should the gripper go?', '--camera', 'sideways',
                           '--camera', 'head')
        unnamed = _run_ask(domain, 'Where should the gripper go?')

    assert printed['status'] == 'succeeded'
    assert printed['views'] == [
        {'camera': 'sideways', 'size': [640, 480], 'frames': 3, 'missing': 1},
        {'camera': 'head', 'size': [1280, 480], 'frames': 4, 'missing': 0}]
    assert [(trajectory['camera'], trajectory['label'])
            for trajectory in printed['output']['trajectories']] == [
        ('sideways', 'seen by sideways'), ('head', 'seen by head')]
    assert printed['output']['views'][0]['frame_id'] == 'sideways_optical'
    # One unnamed camera: the output is as it was, no views summary up front.
    assert 'views' not in unnamed and unnamed['output']['views'] == []
