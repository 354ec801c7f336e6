"""The reasoning node on a real rclpy graph: goals, feedback, cancel, policies, bad input."""

import socket
import threading
import time

from action_msgs.msg import GoalStatus, GoalStatusArray
from builtin_interfaces.msg import Time
import cv2
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from ros_graph import Graph, TIMEOUT, wait_for
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros import conversions
from cosmos_reason_ros.ros.client import GoalFailedError, make_goal, ReasonClient, result_of
from cosmos_reason_ros.ros.conversions import to_time

Result = Reason.Result


@pytest.fixture(scope='module')
def graph(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint)
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.wait_for_diagnostics('window_fill', 9)  # a full 2 s window at 4 fps
    yield graph
    graph.close()


@pytest.fixture
def quiet_graph(tiny_qwen3_checkpoint):
    """A node with no camera: the test publishes what the camera would."""
    graph = Graph(tiny_qwen3_checkpoint, camera=False, **{'goal.frame_wait_timeout': 0.3})
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.images = graph.peer.create_publisher(Image, '/image', qos_profile_sensor_data)
    yield graph
    graph.close()


def _image(stamp: float, *, encoding='rgb8', width=160, height=120, data=None) -> Image:
    pixels = np.full((height, width, 3), 90, np.uint8)
    return Image(header=Header(stamp=to_time(stamp), frame_id='camera'), height=height,
                 width=width, encoding=encoding, step=width * 3,
                 data=pixels.tobytes() if data is None else data)


def test_trajectory_goal_succeeds_with_feedback_and_typed_result(graph):
    results = []
    sub = graph.peer.create_subscription(ReasoningResult, '/cosmos_reason/result',
                                         results.append, 10)
    # Free text: 12 tokens cannot hold a constrained trajectory (test_node_structured has that
    # refusal).
    result, feedback = graph.ask(make_goal('Move the marker into the basket', 'trajectory',
                                           reasoning=True, unconstrained=True))

    assert result.error_code == Result.SUCCESS, result.message
    output = result.output
    stages = [message.stage for message in feedback]
    # The 'parsing' stage is sent too, but feedback and result travel on separate DDS channels,
    # so the result may overtake it: only the stages before generation ends are certain.
    assert stages.index('preprocessing') < stages.index('generating')
    assert feedback[-1].tokens > 0 and feedback[-1].elapsed > 0
    assert output.raw_text and output.completion_tokens == 12
    # 12 random tokens hold no trajectory: the parse fails, saying why. Only a <think> the model
    # sampled with no </think> after it would make the answer cut-off reasoning instead.
    opened = output.raw_text.find('<think>')
    if opened >= 0 and '</think>' not in output.raw_text[opened:]:
        assert output.parse_status == ReasoningResult.PARSE_TRUNCATED, output.raw_text
    else:
        assert output.parse_status == ReasoningResult.PARSE_FAILED, output.raw_text
    assert output.parse_error, output.raw_text
    stamps = [s.sec + s.nanosec * 1e-9 for s in output.frame_stamps]
    assert 2 <= len(stamps) <= 8 and len(stamps) % 2 == 0
    gaps = np.diff(stamps)
    # Sampled by stamp at 4 fps: never closer than half a period; a loaded machine's camera
    # timer jitters, so only the typical spacing is pinned.
    assert np.all(gaps >= 0.125) and 0.2 <= np.median(gaps) <= 0.3, gaps
    assert (output.image_width, output.image_height) == (160, 120)
    assert output.header.frame_id == 'camera'
    assert output.mode == 'trajectory' and output.model_id == graph.node._config.model.model
    assert 0 < output.time_to_first_token <= output.generation_time <= output.total_time
    assert output.prompt_tokens > 0 and output.preprocess_time > 0
    deadline = time.monotonic() + 5.0
    while not results and time.monotonic() < deadline:
        time.sleep(0.02)
    graph.peer.destroy_subscription(sub)
    assert results and results[0].raw_text == output.raw_text


def test_a_client_on_a_node_nobody_spins_gets_every_result(graph):
    """ask() spins such a node itself, goal after goal (rclpy keeps node.executor set after a
    spin, which once made the second wait hang).
    """
    node = Node('script_client', context=graph.context)
    client = ReasonClient(node, '/cosmos_reason/reason')
    try:
        assert client.wait_for_server(timeout=TIMEOUT)
        for _ in range(2):
            assert client.ask(make_goal('Is the marker red?'), timeout=TIMEOUT).error_code == \
                Result.SUCCESS
    finally:
        client.destroy()
        node.destroy_node()


def test_cancel_mid_generation_ends_canceled_and_frees_the_model(graph):
    handle = graph.send_generating()
    wait_for(handle.cancel_goal_async())
    response = wait_for(handle.get_result_async())

    assert response.status == GoalStatus.STATUS_CANCELED
    assert response.result.error_code == Result.CANCELED
    assert response.result.output.raw_text, 'the partial text is kept'
    result, _ = graph.ask(make_goal('What happens next?', 'next_action'))
    assert result.error_code == Result.SUCCESS, result.message


def test_reject_policy_turns_away_a_second_goal_while_one_runs(graph):
    first = graph.send_generating()
    second, _ = graph.ask(make_goal('Is the marker red?'))
    wait_for(first.cancel_goal_async())

    assert second.error_code == Result.BUSY
    assert 'concurrency_policy' in second.message
    assert wait_for(first.get_result_async()).result.error_code == Result.CANCELED


@pytest.mark.parametrize('policy, first_code', [('queue', Result.SUCCESS),
                                                ('preempt', Result.PREEMPTED)])
def test_queue_and_preempt_policies(tiny_qwen3_checkpoint, policy, first_code):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy=policy)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        first = graph.send_generating(300)
        second, _ = graph.ask(make_goal('Is the marker red?'))
        first_result = wait_for(first.get_result_async()).result

        assert second.error_code == Result.SUCCESS, second.message
        assert first_result.error_code == first_code, first_result.message
    finally:
        graph.close()


def _publisher(graph: Graph, messages):
    return lambda: [graph.images.publish(message) for message in messages()]


def _jpeg(width: int, height: int) -> bytes:
    return cv2.imencode('.jpg', np.zeros((height, width, 3), np.uint8))[1].tobytes()


def _bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A JPEG of a few hundred bytes whose header declares width x height pixels."""
    jpeg = _jpeg(16, 16)
    start = jpeg.index(b'\xff\xc0')
    return (jpeg[:start + 5] + height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
            + jpeg[start + 9:])


@pytest.mark.parametrize('goal, code, words', [
    (make_goal('Anything', 'poem'), Result.INVALID_GOAL, 'unknown mode'),
    (make_goal('', 'trajectory'), Result.INVALID_GOAL, 'task'),
    (make_goal('', 'grounding'), Result.INVALID_GOAL, 'object_name'),
    (make_goal('Which?', 'multiple_choice', choices=['only one']), Result.INVALID_GOAL,
     'choices'),
    (make_goal('What is this?', compressed_images=[
        CompressedImage(format='jpeg', data=b'\xff\xd8\xff\xe0 not really a jpeg')]),
     Result.INVALID_GOAL, 'goal image 0'),
    (make_goal('Compare', compressed_images=[
        CompressedImage(format='jpeg', data=_jpeg(64, 48)),
        CompressedImage(format='jpeg', data=_jpeg(80, 48))]),
     Result.INVALID_GOAL, 'different sizes'),
    (make_goal('What is this?', compressed_images=[CompressedImage(format='jpeg',
                                                                   data=_bomb())]),
     Result.INVALID_GOAL, '30000x30000'),
    (make_goal('What is this?', images=[_image(float(i), width=8, height=8)
                                        for i in range(200)]),
     Result.INVALID_GOAL, 'max_images'),
    (make_goal('x' * 1_000_000), Result.INVALID_GOAL, 'max_task_chars'),
    (make_goal('Is it safe?', max_new_tokens=1_000_000), Result.INVALID_GOAL, 'ceiling'),
    (make_goal('Is it safe?', temperature=float('inf')), Result.INVALID_GOAL, 'temperature'),
    (make_goal('Is it safe?', temperature=float('nan')), Result.INVALID_GOAL, 'temperature'),
    (make_goal('Is it safe?', window_duration=float('inf')), Result.INVALID_GOAL,
     'window_duration must be a finite number'),
    (make_goal('Is it safe?', window_end=Time(sec=1, nanosec=2 ** 32 - 1)), Result.INVALID_GOAL,
     'nanosec 4294967295'),
    (make_goal('\u3000\u00a0\u200b'), Result.INVALID_GOAL, 'needs the question'),
    (make_goal('\u200b', 'trajectory'), Result.INVALID_GOAL, 'needs the task instruction'),
    # 200:1 passes the processor, but not once downscaled to the window's 160x120 budget.
    (make_goal('What is this?', compressed_images=[
        CompressedImage(format='jpeg', data=_jpeg(20000, 100))]), Result.INVALID_GOAL,
     'goal image 0 is 20000x100 px: its aspect ratio after downscaling'),
    (make_goal('What is this?', compressed_images=[
        CompressedImage(format='jpeg', data=_jpeg(100, 20000))]), Result.INVALID_GOAL,
     'above the 200:1 that the Qwen3-VL video processor takes'),
    (make_goal('What is this?', images=[_image(0.0, width=2000, height=9)]),
     Result.INVALID_GOAL, 'goal image 0 is 2000x9 px: its aspect ratio is 222.2:1'),
])
def test_bad_goals_end_with_a_clear_error_and_the_node_keeps_serving(graph, goal, code, words):
    result, _ = graph.ask(goal)

    assert result.error_code == code
    assert words in result.message
    assert graph.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS


def test_goal_images_are_answered_without_the_camera(quiet_graph):
    images = [CompressedImage(header=Header(stamp=to_time(10.0 + 0.25 * i)), format='jpeg',
                              data=_jpeg(96, 64)) for i in range(4)]
    result, _ = quiet_graph.ask(make_goal('What is shown?', compressed_images=images))

    assert result.error_code == Result.SUCCESS, result.message
    assert (result.output.image_width, result.output.image_height) == (96, 64)
    assert len(result.output.frame_stamps) == 4


def test_no_frames_names_the_topic(quiet_graph):
    result, feedback = quiet_graph.ask(make_goal('Is it safe?'))

    assert result.error_code == Result.NO_FRAMES
    assert "'/image'" in result.message
    assert feedback and feedback[0].stage == Reason.Feedback.STAGE_WAITING_FOR_FRAMES


@pytest.mark.parametrize('broken', [
    _image(0.0, encoding='weird42'),
    _image(0.0, data=bytes(100)),  # far shorter than height * step
])
def test_undecodable_images_are_dropped_counted_and_the_node_keeps_serving(quiet_graph,
                                                                           broken):
    def messages():
        now = quiet_graph.peer.get_clock().now().nanoseconds * 1e-9
        broken.header.stamp = to_time(now)
        return [broken]

    quiet_graph.wait_for_diagnostics('frames_invalid', 1, _publisher(quiet_graph, messages))
    result, _ = quiet_graph.ask(make_goal('Is it safe?'))
    assert result.error_code == Result.NO_FRAMES

    _publish_fresh_frames(quiet_graph)
    assert quiet_graph.ask(make_goal('Is it safe?'))[0].error_code == Result.SUCCESS


def _publish_fresh_frames(graph: Graph) -> None:
    def messages():
        now = graph.peer.get_clock().now().nanoseconds * 1e-9
        return [_image(now)]
    graph.wait_for_diagnostics('window_fill', 2, _publisher(graph, messages))


def test_stale_frames_abort_with_the_age_and_parameter(quiet_graph):
    start = quiet_graph.peer.get_clock().now().nanoseconds * 1e-9 - 60.0
    old = iter(range(10_000))
    quiet_graph.wait_for_diagnostics(
        'window_fill', 2, _publisher(quiet_graph, lambda: [_image(start + 0.25 * next(old))]))
    result, _ = quiet_graph.ask(make_goal('Is it safe?'))

    assert result.error_code == Result.STALE_FRAMES
    assert result.output.error_code == Result.STALE_FRAMES, 'the output says how it ended'
    assert 'max_frame_age' in result.message and "'/image'" in result.message


def test_a_model_that_does_not_load_fails_every_goal_with_the_load_error(tmp_path):
    graph = Graph(str(tmp_path / 'no-such-model'), camera=False)
    try:
        assert not graph.node.wait_until_loaded(TIMEOUT)
        for _ in range(2):
            result, _ = graph.ask(make_goal('Is it safe?'))
            assert result.error_code == Result.MODEL_LOAD_FAILED
            assert 'no-such-model' in result.message
    finally:
        graph.close()


def _jpeg_camera_graph(checkpoint, **parameters) -> Graph:
    """A node on image/compressed with no camera: the test publishes what it would."""
    graph = Graph(checkpoint, camera=False, compressed_input=True, **parameters)
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.images = graph.peer.create_publisher(CompressedImage, '/image/compressed',
                                               qos_profile_sensor_data)
    return graph


def _jpeg_frames(graph: Graph, data: bytes):
    """Publishes one JPEG frame stamped now each time it is called."""
    def messages():
        now = graph.peer.get_clock().now().nanoseconds * 1e-9
        return [CompressedImage(header=Header(stamp=to_time(now)), format='jpeg', data=data)]
    return _publisher(graph, messages)


def expect_dropped_then_served(graph: Graph, data: bytes, dropped: int) -> None:
    """Frames of `data` are dropped and counted, the window stays empty, and once good frames
    come a goal is answered on them.
    """
    graph.wait_for_diagnostics('frames_invalid', dropped, _jpeg_frames(graph, data))
    assert graph.node._window.stats.fill == 0
    graph.wait_for_diagnostics('window_fill', 2, _jpeg_frames(graph, _jpeg(64, 48)))
    result, _ = graph.ask(make_goal('Is it safe?'))
    assert result.error_code == Result.SUCCESS, result.message
    assert (result.output.image_width, result.output.image_height) == (64, 48)


def test_a_decompression_bomb_on_the_camera_is_dropped_before_decoding(tiny_qwen3_checkpoint):
    graph = _jpeg_camera_graph(tiny_qwen3_checkpoint, max_source_pixels=640 * 480)
    try:
        expect_dropped_then_served(graph, _bomb(), 1)
    finally:
        graph.close()


@pytest.mark.parametrize('width, height', [(20000, 100), (100, 20000)])
def test_camera_frames_out_of_shape_are_dropped_counted_and_goals_still_served(
        tiny_qwen3_checkpoint, width, height):
    graph = _jpeg_camera_graph(tiny_qwen3_checkpoint)
    try:
        expect_dropped_then_served(graph, _jpeg(width, height), 2)
    finally:
        graph.close()


@pytest.mark.parametrize('nanosec', [10 ** 9, 2 ** 32 - 1])
def test_camera_stamps_with_nanosec_out_of_range_are_dropped_and_never_clear_the_window(
        quiet_graph, nanosec):
    _publish_fresh_frames(quiet_graph)
    before = quiet_graph.node._window.stats

    def invalid():
        now = quiet_graph.peer.get_clock().now().nanoseconds * 1e-9
        message = _image(now)
        message.header.stamp = Time(sec=int(now), nanosec=nanosec)
        return [message]

    quiet_graph.wait_for_diagnostics('frames_invalid', 3, _publisher(quiet_graph, invalid))
    _publish_fresh_frames(quiet_graph)
    after = quiet_graph.node._window.stats
    assert after.rewinds == before.rewinds == 0 and after.fill >= before.fill
    assert quiet_graph.node._images.unreadable >= 3
    result, _ = quiet_graph.ask(make_goal('Is it safe?'))
    assert result.error_code == Result.SUCCESS, result.message
    now = quiet_graph.peer.get_clock().now().nanoseconds * 1e-9
    assert all(stamp.nanosec < 10 ** 9 and stamp.sec <= now for stamp in
               result.output.frame_stamps)


def test_total_time_counts_from_acceptance_including_the_queue_wait(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy='queue')
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        first = graph.send_generating(300)
        second, feedback = graph.ask(make_goal('Is the marker red?'))
        wait_for(first.get_result_async())

        assert second.error_code == Result.SUCCESS, second.message
        # Feedback counts from acceptance; the first one came after the queue wait.
        assert feedback and second.output.total_time >= max(f.elapsed for f in feedback)
        assert second.output.total_time > (second.output.preprocess_time
                                           + second.output.generation_time)
    finally:
        graph.close()


@pytest.mark.parametrize('policy', ['reject', 'queue'])
def test_a_burst_of_fifty_goals_gets_fifty_answers(tiny_qwen3_checkpoint, policy):
    graph = Graph(tiny_qwen3_checkpoint, concurrency_policy=policy, max_queued_goals=4)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.wait_for_diagnostics('window_fill', 2)
        sent = [graph.client.send(make_goal('Is the marker red?')) for _ in range(50)]
        handles = [wait_for(future, 2 * TIMEOUT) for future in sent]
        assert all(handle.accepted for handle in handles)
        codes = [wait_for(handle.get_result_async(), 2 * TIMEOUT).result.error_code
                 for handle in handles]
        assert set(codes) <= {Result.SUCCESS, Result.BUSY}
        assert codes.count(Result.SUCCESS) >= 1
    finally:
        graph.close()


@pytest.mark.parametrize('result_timeout, kept', [(1, False), (30, True)])
def test_results_are_kept_for_result_timeout_and_an_expired_one_is_no_success(
        tiny_qwen3_checkpoint, result_timeout, kept):
    graph = Graph(tiny_qwen3_checkpoint, result_timeout=result_timeout)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        handle = graph.send(make_goal('Is the marker red?'))
        finished = threading.Event()
        status = graph.peer.create_subscription(
            GoalStatusArray, '/cosmos_reason/reason/_action/status',
            lambda msg: any(s.status == GoalStatus.STATUS_SUCCEEDED for s in msg.status_list)
            and finished.set(), 10)
        assert finished.wait(TIMEOUT)
        graph.peer.destroy_subscription(status)
        # A slow planner asks for the result until the server no longer knows the goal, for at
        # most 3 s: past a 1 s result_timeout, well within 30 s.
        deadline = time.monotonic() + 3.0
        response = wait_for(handle.get_result_async())
        while response.status != GoalStatus.STATUS_UNKNOWN and time.monotonic() < deadline:
            time.sleep(0.1)
            response = wait_for(handle.get_result_async())
        if kept:
            assert result_of(response).error_code == Result.SUCCESS
        else:
            assert response.status == GoalStatus.STATUS_UNKNOWN
            with pytest.raises(GoalFailedError, match='status unknown'):
                result_of(response)
    finally:
        graph.close()


def test_feedback_carries_a_bounded_tail_and_the_result_the_whole_text(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, feedback_text_chars=40)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        result, feedback = graph.ask(make_goal('Describe the scene', max_new_tokens=120,
                                               greedy=True))
        assert result.error_code == Result.SUCCESS, result.message
        texts = [message.partial_text for message in feedback if message.partial_text]
        assert len(result.output.raw_text) > 40 and texts
        assert all(len(text) <= 40 for text in texts)
        assert all(text in result.output.raw_text for text in texts)
    finally:
        graph.close()


def test_ask_raises_for_a_goal_that_did_not_succeed(graph):
    with pytest.raises(GoalFailedError, match='ended aborted') as raised:
        graph.client.ask(make_goal('Anything', 'poem'), timeout=TIMEOUT)
    assert raised.value.result.error_code == Result.INVALID_GOAL
    assert 'unknown mode' in str(raised.value)


def test_a_goal_the_policy_turns_away_decodes_none_of_its_images(graph, monkeypatch):
    decoded = []
    real = conversions.decode_image
    monkeypatch.setattr(conversions, 'decode_image',
                        lambda *args, **kwargs: decoded.append(1) or real(*args, **kwargs))
    first = graph.send_generating()
    images = [CompressedImage(header=Header(stamp=to_time(10.0 + 0.25 * i)), format='jpeg',
                              data=_jpeg(96, 64)) for i in range(4)]
    second, _ = graph.ask(make_goal('What is shown?', compressed_images=images))
    wait_for(first.cancel_goal_async())
    wait_for(first.get_result_async())

    assert second.error_code == Result.BUSY
    assert decoded == []
    third, _ = graph.ask(make_goal('What is shown?', compressed_images=images))
    assert third.error_code == Result.SUCCESS, third.message
    assert len(decoded) == 4


def test_a_model_server_down_at_start_is_found_when_it_comes_up(tiny_qwen3_checkpoint):
    from test_openai_backend import ScriptedServer

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    graph = Graph('cosmos', backend='openai', **{
        'remote.base_url': f'http://127.0.0.1:{port}/v1', 'remote.served_model': 'cosmos'})
    server = None
    try:
        assert not graph.node.wait_until_loaded(TIMEOUT)
        result, _ = graph.ask(make_goal('Is it safe?'))
        # Not a failed load while the node retries: MODEL_NOT_READY, saying when it retries.
        assert result.error_code == Result.MODEL_NOT_READY, result.message
        assert 'cannot reach' in result.message and 'retrying in 1 s' in result.message

        server = ScriptedServer([], model='cosmos', port=port)
        deadline = time.monotonic() + 30.0
        while result.error_code != Result.SUCCESS and time.monotonic() < deadline:
            result, _ = graph.ask(make_goal('Is it safe?'))
        assert result.error_code == Result.SUCCESS, result.message
        assert graph.node.lifecycle_state == 'active' and graph.node.model_state == 'ready'

        server.close()
        server = None
        deadline = time.monotonic() + 30.0
        while graph.node._backend.status.reachable and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not graph.node._backend.status.reachable, 'diagnostics follow the server'
    finally:
        if server is not None:
            server.close()
        graph.close()


def test_a_model_server_down_under_a_lifecycle_manager_is_a_failed_load(tiny_qwen3_checkpoint):
    # Without autostart nothing retries: the manager decides, and the goal says the load failed.
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    graph = Graph('cosmos', camera=False, backend='openai', autostart=False, **{
        'remote.base_url': f'http://127.0.0.1:{port}/v1', 'remote.served_model': 'cosmos'})
    try:
        assert not graph.transition('configure')
        result, _ = graph.ask(make_goal('Is it safe?'))
        assert result.error_code == Result.MODEL_LOAD_FAILED, result.message
        assert 'cannot reach' in result.message and 'retrying' not in result.message
    finally:
        graph.close()


def test_a_remote_answer_past_max_new_tokens_is_cut_and_the_goal_says_so(tiny_qwen3_checkpoint):
    from test_openai_backend import _endless, ScriptedServer

    written, gone = [0], threading.Event()
    server = ScriptedServer([_endless(200_000, written, gone)], model='cosmos')
    graph = Graph('cosmos', backend='openai', **{
        'remote.base_url': server.url, 'remote.served_model': 'cosmos'})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        result, _ = graph.ask(make_goal('Is it safe?', max_new_tokens=16))
        assert result.error_code == Result.SUCCESS, result.message
        assert result.output.completion_tokens == 16 and result.output.answer == 'x' * 16
        assert result.output.answer_cut
        assert 'answer cut at max_new_tokens' in result.message
        assert 'kept sending past max_new_tokens (16 tokens, counted by stream chunks)' in \
            result.message
        assert gone.wait(TIMEOUT) and written[0] < 200_000
    finally:
        graph.close()
        server.close()


def test_a_fleet_node_fails_over_says_who_answered_and_keys_its_requests(tiny_qwen3_checkpoint):
    from test_openai_backend import ScriptedServer

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        dead = f'http://127.0.0.1:{sock.getsockname()[1]}/v1'  # nothing listens once closed
    server = ScriptedServer([], model='cosmos')
    graph = Graph('cosmos', backend='openai', **{
        'remote.base_urls': [dead, server.url], 'remote.served_model': 'cosmos',
        'remote.send_priority': True})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        result, _ = graph.ask(make_goal('Is it safe?', priority=5))

        assert result.error_code == Result.SUCCESS, result.message
        assert result.output.served_by == server.url
        headers = {name.lower(): value for name, value in server.headers[-1].items()}
        assert headers['x-session-id'] == '/cosmos_reason'  # the node's name: the robot's key
        assert server.bodies[-1]['user'] == '/cosmos_reason'
        assert server.bodies[-1]['priority'] == -5  # vLLM serves its lowest value first
        status = graph.diagnostics_where(lambda values: 'endpoint[1]' in values)
        assert status['endpoint[0]'].startswith(f'{dead} open')
        assert status['endpoint[1]'] == f'{server.url} closed'
        assert status['message'] == f'ready; 1 of 2 server endpoints failing: {dead}'
    finally:
        graph.close()
        server.close()


def test_a_fleet_node_with_its_server_down_answers_locally_until_the_server_is_back(
        tiny_qwen3_checkpoint):
    from test_openai_backend import ScriptedServer

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    url = f'http://127.0.0.1:{port}/v1'    # nothing listens yet: the network is down
    graph = Graph(tiny_qwen3_checkpoint, backend='openai', **{
        'remote.base_urls': [url], 'remote.served_model': 'cosmos', 'remote.max_retries': 0,
        'remote.fallback_local': True})
    server = None
    try:
        assert graph.node.wait_until_loaded(TIMEOUT), 'the node did not come up on its local model'
        status = graph.diagnostics_where(lambda values: 'fallback' in values)
        assert status['message'].startswith('serving with the local model: cannot reach')
        assert status['level'] == '1'
        assert status['fallback'].startswith(f'local model ready: {tiny_qwen3_checkpoint}')
        result, _ = graph.ask(make_goal('Is it safe?'))

        assert result.error_code == Result.SUCCESS, result.message
        assert result.output.served_by == 'local'
        assert result.output.model_id == str(tiny_qwen3_checkpoint)
        assert 'answered by the local model: every server endpoint failed (' in result.message
        assert graph.diagnostics_where(
            lambda values: values.get('answered_locally') == '1')['fallback']

        server = ScriptedServer([], model='cosmos', port=port)    # the network is back
        graph.diagnostics_where(lambda values: values['message'] == 'ready')
        result, _ = graph.ask(make_goal('Is it safe?'))
        assert result.error_code == Result.SUCCESS, result.message
        assert (result.output.served_by, result.output.model_id) == (url, 'cosmos')
        assert 'local model' not in result.message
    finally:
        graph.close()
        if server is not None:
            server.close()


def test_a_result_nobody_collected_outlives_rcls_hold_until_result_timeout(
        tiny_qwen3_checkpoint, monkeypatch):
    monkeypatch.setattr('cosmos_reason_ros.ros.action_server.RCL_KEEP', 1.0)
    graph = Graph(tiny_qwen3_checkpoint, result_timeout=30)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        handle = graph.send(make_goal('Is the marker red?'))
        server = graph.node._server
        deadline = time.monotonic() + TIMEOUT
        while server.held['uncollected'] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # rcl expires the finished goal on its own timer
        assert server.held == {'goals': 0, 'uncollected': 1, 'requested': 0}
        response = wait_for(handle.get_result_async())
        assert result_of(response).error_code == Result.SUCCESS
        assert server.held['uncollected'] == 0
    finally:
        graph.close()


def test_collected_results_leave_nothing_in_the_action_server(tiny_qwen3_checkpoint,
                                                              monkeypatch):
    # rclpy would hold every finished goal for result_timeout (900 s): handle, result, status.
    monkeypatch.setattr('cosmos_reason_ros.ros.action_server.RCL_KEEP', 1.0)
    graph = Graph(tiny_qwen3_checkpoint, result_timeout=900)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        for _ in range(30):
            assert graph.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS
        server = graph.node._server
        deadline = time.monotonic() + TIMEOUT
        while server.held['goals'] and time.monotonic() < deadline:
            time.sleep(0.1)  # rcl expires finished goals on its own timer
        assert server.held == {'goals': 0, 'uncollected': 0, 'requested': 0}
    finally:
        graph.close()


def test_a_goal_whose_client_went_away_stops(graph):
    doomed = Node('doomed_planner', context=graph.context)
    graph.executor.add_node(doomed)
    client = ReasonClient(doomed, '/cosmos_reason/reason')
    graph.client.destroy()  # the peer's own client would still count as a client
    try:
        assert client.wait_for_server(timeout=TIMEOUT)
        generating = threading.Event()
        wait_for(client.send(make_goal('Describe the scene', max_new_tokens=16000, greedy=True),
                             lambda feedback: feedback.tokens > 0 and generating.set()))
        assert generating.wait(TIMEOUT)
        client.destroy()  # the planner dies: its subscriptions leave the graph
        graph.executor.remove_node(doomed)
        doomed.destroy_node()
        deadline = time.monotonic() + 15.0
        while graph.node._scheduler.busy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert graph.node._scheduler.busy == 0, 'the goal still holds the model'
    finally:
        graph.client = ReasonClient(graph.peer, '/cosmos_reason/reason')
        assert graph.client.wait_for_server(timeout=TIMEOUT)
    assert graph.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS


def test_an_unexpected_error_while_accepting_a_goal_ends_that_goal_only(graph, monkeypatch):
    def broken(*args, **kwargs):
        raise AttributeError("'Reason_Goal' object has no attribute 'something_new'")
    monkeypatch.setattr('cosmos_reason_ros.ros.node.goal_to_request', broken)
    result, _ = graph.ask(make_goal('Is the marker red?'))
    assert result.error_code == Result.GENERATION_FAILED
    assert 'something_new' in result.message
    monkeypatch.undo()
    assert graph.ask(make_goal('Is the marker red?'))[0].error_code == Result.SUCCESS
