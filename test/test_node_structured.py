"""Constrained answers through the node on a real rclpy graph: with the tiny random model a
trajectory goal comes back parsed (random points, in form), the result says it was constrained,
and a goal can ask to stay free text.
"""

import pytest
from ros_graph import Graph, TIMEOUT
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.demo.sample_scene import render_scene
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros.client import make_goal
from cosmos_reason_ros.ros.conversions import to_time

Result = Reason.Result


@pytest.fixture(scope='module')
def graph(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, **{'goal.max_new_tokens': 600})
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.wait_for_diagnostics('window_fill', 9)
    yield graph
    graph.close()


def scene_images() -> list:
    """Two fixed frames of the sample scene: with greedy decoding the random model's answer is
    the same on every run (the camera's frames move, and a random model may close its
    reasoning by chance on some of them).
    """
    return [Image(header=Header(stamp=to_time(10.0 + 0.25 * index)), height=120, width=160,
                  encoding='rgb8', step=160 * 3,
                  data=render_scene(0.25 * index, 160, 120).tobytes()) for index in range(2)]


@pytest.mark.parametrize('reasoning', [False, True])
def test_a_trajectory_goal_is_answered_in_form(graph, reasoning):
    result, _ = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                    reasoning=reasoning, greedy=True, images=scene_images()))
    assert result.error_code == Result.SUCCESS, result.message
    output = result.output
    assert output.constrained and 'constrained' in result.message
    assert output.parse_status == ReasoningResult.PARSE_OK, (output.raw_text, output.parse_error)
    points = [point for trajectory in output.trajectories for point in trajectory.points]
    assert len(points) >= 2
    assert all(0 <= p.x <= output.image_width and 0 <= p.y <= output.image_height
               for p in points)
    if reasoning:
        assert output.reasoning and output.reasoning_cut, 'its reasoning runs to the cap'


def test_a_goal_can_ask_for_free_text(graph):
    result, _ = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                    unconstrained=True, max_new_tokens=40))
    assert result.error_code == Result.SUCCESS, result.message
    assert not result.output.constrained
    assert result.output.parse_status != ReasoningResult.PARSE_OK


def test_diagnostics_say_structured_output_is_available(graph):
    values = graph.diagnostics_where(lambda values: 'structured_output' in values)
    assert values['structured_output'] == 'auto'


def test_a_budget_too_small_for_the_answer_is_refused_before_generation(graph):
    result, _ = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                    reasoning=True, max_new_tokens=60, images=scene_images()))
    assert result.error_code == Result.INVALID_GOAL, result.message
    assert 'max_new_tokens 60 cannot hold a complete trajectory answer' in result.message
    assert 'needs at least' in result.message
    assert result.output.completion_tokens == 0
    # The minimum it names is enough, and the node serves it.
    minimum = int(result.message.split('needs at least ')[1].split()[0])
    result, _ = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                    reasoning=True, max_new_tokens=minimum, greedy=True,
                                    images=scene_images()))
    assert result.error_code == Result.SUCCESS, result.message
    assert result.output.constrained
    assert result.output.parse_status == ReasoningResult.PARSE_OK, result.output.raw_text


def test_a_server_that_ignores_the_format_is_recorded_once_and_never_reported_constrained():
    from test_openai_backend import _delta, _sse, ScriptedServer

    def free_text(handler):
        _sse(handler, [_delta('The marker goes into the basket.', 'stop')])

    # Takes the structured-output fields without complaint, answers free text, ends normally.
    server = ScriptedServer([free_text, free_text], model='cosmos')
    graph = Graph('cosmos', backend='openai', **{
        'remote.base_url': server.url, 'remote.served_model': 'cosmos',
        'goal.max_new_tokens': 600})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        for _ in range(2):
            result, _ = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                            images=scene_images()))
            assert result.error_code == Result.SUCCESS, result.message
            assert not result.output.constrained
            assert 'not constrained: the answer does not match its format' in result.message
        assert all('structured_outputs' in body for body in server.bodies)
        values = graph.diagnostics_where(
            lambda values: 'not held' in values.get('structured_output', ''))
        assert f'{server.url} did not hold the structured-output fields' in \
            values['structured_output']
    finally:
        graph.close()
        server.close()
