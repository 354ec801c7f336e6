"""The node as a managed (lifecycle) node, driven through its lifecycle services on a real graph.

Each transition goes through `change_state`, as `ros2 lifecycle set` and Nav2's lifecycle
manager call it; goals are sent in every state.
"""

import threading

from action_msgs.msg import GoalStatus
import pytest
from rclpy.parameter import Parameter
from ros_graph import Graph, TIMEOUT, wait_for

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.backends import transformers_backend
from cosmos_reason_ros.ros.client import make_goal

Result = Reason.Result


@pytest.fixture
def managed(tiny_qwen3_checkpoint):
    """A node started with autostart false: it waits, unconfigured, for a lifecycle manager."""
    graph = Graph(tiny_qwen3_checkpoint, autostart=False)
    yield graph
    graph.close()



def test_each_transition_and_a_goal_in_each_state(managed):
    assert managed.state() == 'unconfigured'
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.NOT_ACTIVE
    assert 'unconfigured' in result.message and 'configure' in result.message

    assert managed.transition('configure')
    assert managed.state() == 'inactive' and managed.node.model_state == 'ready'
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.NOT_ACTIVE and 'inactive' in result.message

    assert managed.transition('activate')
    assert managed.state() == 'active'
    managed.wait_for_diagnostics('window_fill', 2)
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.SUCCESS, result.message

    assert managed.transition('deactivate')
    assert managed.state() == 'inactive'
    assert managed.node._images.subscription is None, 'an inactive node takes no frames'
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.NOT_ACTIVE and 'inactive' in result.message

    assert managed.transition('cleanup')
    assert managed.state() == 'unconfigured' and managed.node.model_state == 'unloaded'

    assert managed.transition('shutdown')
    assert managed.state() == 'finalized'
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.NOT_ACTIVE and 'finalized' in result.message


def test_during_a_long_load_configure_waits_get_state_answers_and_goals_hear_loading(
        managed, monkeypatch):
    auto = transformers_backend.AutoModelForImageTextToText
    real = auto.from_pretrained
    reading, release = threading.Event(), threading.Event()

    def slow_weights(*args, **kwargs):
        reading.set()
        assert release.wait(TIMEOUT)
        return real(*args, **kwargs)

    monkeypatch.setattr(auto, 'from_pretrained', slow_weights)
    outcome = []
    configure = threading.Thread(target=lambda: outcome.append(managed.transition('configure')))
    configure.start()
    try:
        assert reading.wait(TIMEOUT)
        assert managed.state() == 'configuring', 'get_state answers during the load'
        result, _ = managed.ask(make_goal('Is the marker red?'))
        assert result.error_code == Result.MODEL_NOT_READY and 'loading' in result.message
        values = managed.diagnostics_where(lambda values: values.get('model_state') == 'loading')
        assert values['lifecycle_state'] == 'configuring'
        assert not outcome, 'configure answers only once the model is loaded'
    finally:
        release.set()
        configure.join(TIMEOUT)
    assert outcome == [True] and managed.state() == 'inactive'


def test_diagnostics_report_the_lifecycle_state(managed):
    values = managed.diagnostics_where(lambda values: 'lifecycle_state' in values)
    assert values['lifecycle_state'] == 'unconfigured' and values['model_state'] == 'unloaded'
    assert values['level'] == '1', 'WARN: the node does not serve goals'


def test_a_failed_load_leaves_the_node_unconfigured_and_a_retry_with_a_good_model_works(
        managed, tmp_path):
    good = managed.node.get_parameter('model').value
    missing = str(tmp_path / 'no-such-model')
    managed.node.set_parameters([Parameter('model', value=missing)])

    assert not managed.transition('configure')
    assert managed.state() == 'unconfigured' and managed.node.model_state == 'failed'
    result, _ = managed.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.MODEL_LOAD_FAILED and 'no-such-model' in result.message
    values = managed.diagnostics_where(lambda values: values.get('model_state') == 'failed')
    assert 'no-such-model' in values['message'] and values['level'] == '2'

    assert managed.node.set_parameters([Parameter('model', value=good)])[0].successful
    assert managed.transition('configure') and managed.transition('activate')
    managed.wait_for_diagnostics('window_fill', 2)
    assert managed.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS


def test_parameters_change_only_while_unconfigured(managed):
    assert managed.transition('configure')
    outcome = managed.node.set_parameters([Parameter('goal.max_frames', value=4)])[0]
    assert not outcome.successful and 'cleanup' in outcome.reason

    assert managed.transition('cleanup')
    assert managed.node.set_parameters([Parameter('goal.max_frames', value=4)])[0].successful
    assert managed.transition('configure')
    assert managed.node._config.goals.max_frames == 4, 'read again at configure'
    outcome = managed.node.set_parameters([Parameter('autostart', value=True)])[0]
    assert not outcome.successful


def test_cleanup_frees_the_model_and_configure_loads_it_again(managed):
    assert managed.transition('configure')
    backend = managed.node._backend
    assert backend.loaded

    assert managed.transition('cleanup')
    assert not backend.loaded and managed.node._backend is None
    assert managed.transition('configure') and managed.transition('activate')
    managed.wait_for_diagnostics('window_fill', 2)
    assert managed.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS


def test_deactivate_during_a_goal_aborts_it_with_not_active(managed):
    assert managed.transition('configure') and managed.transition('activate')
    managed.wait_for_diagnostics('window_fill', 2)
    handle = managed.send_generating()

    assert managed.transition('deactivate')
    response = wait_for(handle.get_result_async())
    assert response.status == GoalStatus.STATUS_ABORTED
    assert response.result.error_code == Result.NOT_ACTIVE
    assert 'deactivated' in response.result.message
    assert response.result.output.raw_text, 'the partial text is kept'
    assert managed.node._scheduler.busy == 0, 'the model is free again'


def test_a_queued_goal_ends_when_the_node_is_deactivated(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy='queue')
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        running = graph.send_generating()
        queued = graph.send(make_goal('Is the marker red?'))

        assert graph.transition('deactivate')
        for handle in (running, queued):
            response = wait_for(handle.get_result_async())
            assert response.result.error_code == Result.NOT_ACTIVE, response.result.message
    finally:
        graph.close()


def test_autostart_walks_to_active_on_its_own(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, camera=False)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        assert graph.state() == 'active'
    finally:
        graph.close()
