"""How goals end when something stops them: cancel at the last moment, a queued cancel, node
shutdown, and a middleware that refuses a publish. On a real graph with the production executor.
"""

import threading

from action_msgs.msg import GoalStatus
import pytest
from rclpy.action.server import ServerGoalHandle
from ros_graph import Graph, TIMEOUT, wait_for

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.ros.client import make_goal

Result = Reason.Result


@pytest.fixture(scope='module')
def graph(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint)
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.wait_for_diagnostics('window_fill', 2)
    yield graph
    graph.close()



def _cancel_at(graph: Graph, monkeypatch, owner, name: str):
    """Make `owner.name` (a step of the goal path) first cancel the goal and wait for the cancel
    response; returns a dict that receives the goal handle ('handle') and the response.
    """
    seen = {'ready': threading.Event()}
    real = getattr(owner, name)

    def cancel_then_continue(*args, **kwargs):
        result = real(*args, **kwargs) if name == 'run' else None
        assert seen['ready'].wait(TIMEOUT)
        seen['response'] = wait_for(seen['handle'].cancel_goal_async())
        return result if name == 'run' else real(*args, **kwargs)

    monkeypatch.setattr(owner, name, cancel_then_continue)
    return seen


def test_a_cancel_after_generation_before_the_result_ends_canceled_with_the_whole_answer(
        graph, monkeypatch):
    seen = _cancel_at(graph, monkeypatch, graph.node._reasoner, 'run')
    seen['handle'] = graph.send(make_goal('Is the marker red?'))
    seen['ready'].set()
    response = wait_for(seen['handle'].get_result_async())

    assert len(seen['response'].goals_canceling) == 1, 'the cancel was accepted'
    assert response.status == GoalStatus.STATUS_CANCELED
    assert response.result.error_code == Result.CANCELED
    assert 'after the answer was generated' in response.result.message
    assert response.result.output.completion_tokens == 12, 'the whole answer is kept'


def test_a_cancel_once_the_goal_has_its_result_is_refused_and_the_goal_succeeds(
        graph, monkeypatch):
    seen = _cancel_at(graph, monkeypatch, graph.node, '_finish')
    seen['handle'] = graph.send(make_goal('Is the marker red?'))
    seen['ready'].set()
    response = wait_for(seen['handle'].get_result_async())

    assert len(seen['response'].goals_canceling) == 0, 'the cancel was refused'
    assert response.status == GoalStatus.STATUS_SUCCEEDED
    assert response.result.error_code == Result.SUCCESS


def test_a_cancel_mid_generation_never_reads_preempted(graph):
    """The goal reacts to its stop event before rclpy marks it CANCELING; it must still end
    CANCELED (it once read PREEMPTED when the executor thread won that race).
    """
    for _ in range(3):
        handle = graph.send_generating()
        wait_for(handle.cancel_goal_async())
        response = wait_for(handle.get_result_async())
        assert response.status == GoalStatus.STATUS_CANCELED
        assert response.result.error_code == Result.CANCELED


def test_a_queued_goal_holds_no_thread_and_a_cancel_ends_it_at_once(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy='queue', max_queued_goals=64)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        running = graph.send_generating()
        queued = [graph.send(make_goal('Is the marker red?')) for _ in range(12)]
        values = graph.diagnostics_where(lambda values: values.get('goals_queued') == '12')
        assert values['goals_running'] == '1'
        assert graph.executor._executor._max_workers == graph.node.executor_threads + 2
        assert graph.node.executor_threads <= 10 < 64, 'a small fixed pool, whatever the queue'

        wait_for(queued[5].cancel_goal_async())
        response = wait_for(queued[5].get_result_async())
        assert response.status == GoalStatus.STATUS_CANCELED
        assert response.result.error_code == Result.CANCELED
        assert not running.get_result_async().done(), 'ended while the first still runs'

        wait_for(running.cancel_goal_async())
        for index, handle in enumerate(queued):
            if index != 5:
                result = wait_for(handle.get_result_async()).result
                assert result.error_code == Result.SUCCESS, result.message
    finally:
        graph.close()


def test_shutdown_ends_a_running_goal_with_shutting_down_and_refuses_new_ones(
        tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        handle = graph.send_generating()

        assert graph.node.begin_shutdown() == 1
        response = wait_for(handle.get_result_async())
        assert response.status == GoalStatus.STATUS_ABORTED
        assert response.result.error_code == Result.SHUTTING_DOWN
        assert 'shutting down' in response.result.message
        result, _ = graph.ask(make_goal('Is the marker red?'))
        assert result.error_code == Result.SHUTTING_DOWN
    finally:
        graph.close()


def test_shutdown_ends_queued_goals_too_and_their_status_is_published_by_the_executor(
        tiny_qwen3_checkpoint, monkeypatch):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy='queue')
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        running = graph.send_generating()
        queued = [graph.send(make_goal('Is the marker red?')) for _ in range(3)]
        graph.diagnostics_where(lambda values: values.get('goals_queued') == '3')
        stopper = threading.current_thread()
        publishing_threads = []
        execute = ServerGoalHandle.execute
        monkeypatch.setattr(ServerGoalHandle, 'execute', lambda self, *args: (
            publishing_threads.append(threading.current_thread()), execute(self, *args))[1])

        assert graph.node.begin_shutdown() == 4
        for handle in (running, *queued):
            response = wait_for(handle.get_result_async())
            assert response.status == GoalStatus.STATUS_ABORTED
            assert response.result.error_code == Result.SHUTTING_DOWN
        assert len(publishing_threads) == 3 and stopper not in publishing_threads
    finally:
        graph.close()


def test_a_publish_the_middleware_refuses_is_counted_and_the_goal_still_succeeds(
        tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        graph.node.destroy_publisher(graph.node._result_pub)  # publishing now raises

        result, _ = graph.ask(make_goal('Is the marker red?'))
        assert result.error_code == Result.SUCCESS, result.message
        graph.wait_for_diagnostics('publish_errors', 1)
        assert graph.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS
    finally:
        graph.close()
