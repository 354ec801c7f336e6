"""Live evaluation on a real rclpy graph: the node on sim time, a bag player publishing frames and
/clock, and the live client sending each item as a goal at its bag time.

The same items replayed offline must pick the same frames and, with greedy decoding, get the same
answers whenever the node received every frame (best-effort DDS may drop one on a busy machine).
"""

import threading
import time

from bag_player import BagPlayer
import pytest
import rclpy
from rclpy.node import Node
from recordings import write_bag
from ros_graph import Graph, TIMEOUT
from scripted_backend import ScriptedBackend

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import ModelConfig, WindowConfig
from cosmos_reason_ros.core.depth.geometry import LiftStatus
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.question_file import parse_question_set
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import load_report, write_report
from cosmos_reason_ros.core.evaluation.results import ItemResult
from cosmos_reason_ros.core.evaluation.sources import BagSource
from cosmos_reason_ros.demo.sample_data import (
    CAMERA_INFO_TOPIC,
    DEPTH_TOPIC,
    marker_path,
    RAW_TOPIC,
    SIDE_HEIGHT,
    SIDE_OFFSET,
    SIDE_RAW_TOPIC,
    SIDE_WIDTH,
    START,
    write_sample_bag,
)
from cosmos_reason_ros.demo.sample_scene import basket_box, marker_position, scene_point
from cosmos_reason_ros.msg import CameraView, Trajectory2D, Trajectory3D
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.live_eval import (
    _lifted,
    _result_to_item,
    LiveEvaluation,
    LiveSettings,
    parsed_from_msg,
)

W, H, SECONDS = 160, 120, 3.0
SETTINGS = ReplaySettings(window=WindowConfig(max_pixels=W * H))


def near(value: float, tolerance: float = 1e-5):
    """Approx with an absolute tolerance: a relative one is ~1700 s at these stamps."""
    return pytest.approx(value, abs=tolerance, rel=0)


@pytest.fixture
def bag(tmp_path):
    return write_sample_bag(tmp_path / 'bag', width=W, height=H, seconds=SECONDS,
                            compressed=False)


def _frames_offered(graph: Graph, published: int, timeout: float = 5.0,
                    cameras: tuple[str, ...] = ()) -> int:
    """Frames the node's window (its cameras' windows) was offered, once it caught up with the
    player (or timeout).
    """
    def offered() -> int:
        if not cameras:
            return graph.node._window.stats.offered
        return sum(graph.node._windows.window(name).stats.offered for name in cameras)

    caught_up = threading.Event()
    deadline = time.monotonic() + timeout
    while offered() < published and time.monotonic() < deadline:
        caught_up.wait(0.05)  # the image callback has no event to wait on; poll its counter
    return offered()


def _play_and_evaluate(graph: Graph, player: BagPlayer, questions, subscribers: dict):
    """Play the bag to the node while the live client asks the questions; the client's run."""
    assert graph.node.wait_until_loaded(TIMEOUT), graph.node.model_state
    evaluation = LiveEvaluation(
        graph.peer, questions, action='/cosmos_reason/reason',
        settings=LiveSettings(replay=SETTINGS, start_timeout=TIMEOUT, stall_timeout=10.0,
                              result_timeout=TIMEOUT))
    assert player.wait_for_subscribers(subscribers, TIMEOUT)
    # The client's side of discovery too: a goal sent before it sees the server is lost.
    assert evaluation.wait_for_server(TIMEOUT)
    runs = []
    client = threading.Thread(target=lambda: runs.append(evaluation.run()))
    client.start()
    player.start()
    client.join(TIMEOUT)
    assert not client.is_alive(), 'the live client did not finish'
    assert player.finished.wait(TIMEOUT) and player.error is None
    (live,) = runs
    return live


def _questions(bag, tmp_path):
    return parse_question_set({
        'version': 1, 'source': str(bag), 'topic': RAW_TOPIC,
        'defaults': {'window_duration': 1.0, 'max_frames': 4, 'max_new_tokens': 8},
        'items': [
            # Room for a constrained trajectory (115 tokens at least): both sides constrain it.
            {'id': 'path', 'at': 1.0, 'mode': 'trajectory', 'task': 'Follow the marker',
             'max_new_tokens': 120,
             'expected': {'trajectory': [list(p) for p in marker_path(1.0, 2.0, W, H)]}},
            {'id': 'too-early', 'stamp': START - 10.0, 'mode': 'caption'},
            {'id': 'inside', 'at': 2.2, 'mode': 'question', 'task': 'Is the marker inside?',
             'expected': {'verdict': 'no'}},
            {'id': 'too-late', 'at': 9.0, 'mode': 'caption'},
        ]}, tmp_path / 'questions.yaml')


def test_live_run_through_the_action_agrees_with_the_offline_replay(
        bag, tmp_path, tiny_qwen3_checkpoint):
    questions = _questions(bag, tmp_path)
    graph = Graph(tiny_qwen3_checkpoint, camera=False, use_sim_time=True,
                  **{'window.max_pixels': W * H, 'goal.frame_wait_timeout': 5.0})
    player = BagPlayer(graph.context, bag, {RAW_TOPIC: '/image'})
    try:
        # The node's time source and the live client both listen to /clock.
        live = _play_and_evaluate(graph, player, questions, {'/image': 1, '/clock': 2})
        frames_received = _frames_offered(graph, player.published)
    finally:
        player.stop()
        graph.close()

    assert live.live and not live.interrupted
    by_id = {result.item.id: result for result in live.results}
    assert by_id['too-early'].error_code == 'before_start'
    assert by_id['too-late'].error_code == 'after_end'
    bag_stamps = [frame.stamp for frame in BagSource(bag, RAW_TOPIC).frames()]
    # At 2.2 s the window's newest frame is the one of 2.0 s (4 fps slots).
    for name, window_end in (('path', START + 1.0), ('inside', START + 2.0)):
        result = by_id[name]
        assert result.status == 'answered', (result.error_code, result.error)
        assert result.window_end == near(window_end)
        assert 0 <= result.frame_age < 0.26, 'the newest frame is at most a 4 fps slot old'
        assert result.frame_stamps[-1] <= result.window_end + 1e-6
        assert all(min(abs(s - b) for b in bag_stamps) < 1e-6 for s in result.frame_stamps)
        assert result.source_size == (W, H)
        if name == 'path':
            assert result.constrained and 0 < result.completion_tokens <= 120
        else:
            assert result.completion_tokens == 8
        assert result.round_trip > 0 and result.send_delay >= 0
        assert result.image is not None, 'the picture is decoded from the bag'
        # 1 s at 4 fps ending at a kept frame: 4 frames asked for, held and sent.
        assert result.window['frames_in_range'] == result.window['frames_held'] == 4
        assert not result.window['truncated'] and result.window['frames_seen'] == 4

    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu',
                                              dtype='fp32'))
    backend.load()
    offline = {r.item.id: r for r in Replay(backend, SETTINGS).run(questions).results}
    backend.close()
    for name in ('path', 'inside'):
        assert offline[name].window_end == by_id[name].window_end
        if frames_received == len(bag_stamps):
            assert by_id[name].frame_stamps == pytest.approx(offline[name].frame_stamps,
                                                             abs=1e-6, rel=0)
            assert by_id[name].raw_text == offline[name].raw_text
            assert by_id[name].constrained == offline[name].constrained

    report = load_report(write_report(live, tmp_path / 'live'))
    assert report['run']['kind'] == 'live' and report['complete']
    assert report['summary']['answered'] == 2 and report['summary']['errors'] == 2
    assert report['items'][0]['timing']['round_trip'] > 0
    assert (tmp_path / 'live' / report['items'][0]['image']).is_file()


def test_a_bag_whose_stamps_do_not_advance_is_refused_live_with_the_fix(tmp_path):
    bag = write_bag(tmp_path / 'zero', [(i / 30, -START) for i in range(30)])
    questions = parse_question_set({'version': 1, 'source': str(bag), 'topic': '/camera/image',
                                    'items': [{'id': 'q', 'at': 0.5, 'mode': 'caption'}]},
                                   tmp_path / 'questions.yaml')
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('zero_stamps_client', context=context)
    evaluation = LiveEvaluation(node, questions, settings=LiveSettings(replay=SETTINGS))
    try:
        (result,) = evaluation.run().results
    finally:
        evaluation.destroy()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert result.error_code == 'source'
    assert 'do not advance' in result.error and 'evaluate offline' in result.error


def test_live_3d_answers_of_the_node_agree_with_the_offline_lifting(bag, tmp_path, monkeypatch):
    """The node lifts with the depth and CameraInfo it receives from the playing bag; the
    offline run lifts from the bag itself: both must land on the scene's geometry.
    """
    x1, y1, x2, y2 = basket_box(W, H)
    path = [marker_position(1.5, W, H), ((x1 + x2) / 2, (y1 + y2) / 2)]
    answer = '```json\n[' + ', '.join(
        f'{{"point_2d": [{x / W * 1000:.4f}, {y / H * 1000:.4f}], "label": "path"}}'
        for x, y in path) + ']\n```'
    questions = parse_question_set({
        'version': 1, 'source': str(bag), 'topic': RAW_TOPIC, 'depth_topic': DEPTH_TOPIC,
        'camera_info_topic': CAMERA_INFO_TOPIC,
        'defaults': {'window_duration': 1.0, 'max_frames': 4, 'max_new_tokens': 8},
        'items': [{'id': 'into-basket', 'at': 1.5, 'mode': 'trajectory',
                   'task': 'Put the marker into the basket', 'expected': {
                       'trajectory_3d': [list(scene_point(x, y, 1.5, W, H))
                                         for x, y in path]}}]}, tmp_path / 'questions.yaml')
    backend = ScriptedBackend({}, default=answer, family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False, use_sim_time=True, **{
        'window.max_pixels': W * H, 'goal.frame_wait_timeout': 5.0, 'depth.enabled': True})
    player = BagPlayer(graph.context, bag, {RAW_TOPIC: '/image', DEPTH_TOPIC: '/depth',
                                            CAMERA_INFO_TOPIC: '/camera_info'})
    try:
        live = _play_and_evaluate(graph, player, questions, {
            '/image': 1, '/depth': 1, '/camera_info': 1, '/clock': 2})
    finally:
        player.stop()
        graph.close()

    (result,) = live.results
    assert result.status == 'answered', (result.error_code, result.error)
    assert result.lifted.status.name == 'OK', result.lifted.message
    assert result.score.correct_3d and result.score.trajectory_3d.mean_m < 1e-3
    offline, = Replay(ScriptedBackend({}, default=answer, family=ModelFamily.QWEN3_VL),
                      SETTINGS).run(questions).results
    assert offline.depth_stamp == near(result.depth_stamp)
    for ours, theirs in zip(result.lifted.trajectories[0].points,
                            offline.lifted.trajectories[0].points):
        assert ours == pytest.approx(theirs, abs=1e-6)


def _two_camera_questions(bag, tmp_path):
    return parse_question_set({
        'version': 1, 'source': str(bag), 'cameras': {'head': RAW_TOPIC, 'side': SIDE_RAW_TOPIC},
        'defaults': {'window_duration': 1.0, 'max_frames': 4, 'max_new_tokens': 8},
        'items': [
            # Both views, head first; the side frames are stamped 7 ms after the head's.
            {'id': 'both', 'at': 2.1, 'mode': 'question', 'task': 'Is there a blue cube?',
             'expected': {'verdict': 'yes'}},
            # Side first, its answer constrained to name a camera (room for the format).
            {'id': 'side-first', 'at': 1.1, 'mode': 'trajectory', 'cameras': ['side', 'head'],
             'task': 'Follow the marker', 'max_new_tokens': 200,
             'expected': {'camera': 'side', 'trajectory': [[10, 10], [20, 20]]}},
        ]}, tmp_path / 'two.yaml')


def test_live_two_camera_goals_carry_the_items_cameras_and_agree_with_the_offline_replay(
        tmp_path, tiny_qwen3_checkpoint):
    bag = write_sample_bag(tmp_path / 'two', width=W, height=H, seconds=SECONDS,
                           compressed=False, side=True)
    questions = _two_camera_questions(bag, tmp_path)
    graph = Graph(tiny_qwen3_checkpoint, camera=False, use_sim_time=True, **{
        'cameras': ['head', 'side'], 'window.max_pixels': W * H,
        'goal.frame_wait_timeout': 5.0})
    # The node's `head/image` and `side/image`, remapped to the bag's topics.
    player = BagPlayer(graph.context, bag, {RAW_TOPIC: '/head/image',
                                            SIDE_RAW_TOPIC: '/side/image'})
    try:
        live = _play_and_evaluate(graph, player, questions,
                                  {'/head/image': 1, '/side/image': 1, '/clock': 2})
        frames_received = _frames_offered(graph, player.published, cameras=('head', 'side'))
    finally:
        player.stop()
        graph.close()

    by_id = {result.item.id: result for result in live.results}
    for result in by_id.values():
        assert result.status == 'answered', (result.error_code, result.error)
    both, side_first = by_id['both'], by_id['side-first']
    assert [view.name for view in both.views] == ['head', 'side']
    assert [view.name for view in side_first.views] == ['side', 'head']
    assert both.views[0].source_size == (W, H)
    assert both.views[1].source_size == (SIDE_WIDTH, SIDE_HEIGHT)
    # The views end at the oldest of their newest kept frames: the head's, 7 ms before the side's.
    assert side_first.window_end == near(START + 1.0)
    assert both.window_end == near(START + 2.0)
    side, head = side_first.views
    assert side.stamps[-1] == near(START + 1.0 + SIDE_OFFSET)
    assert head.stamps[-1] == near(START + 1.0)
    assert side_first.frame_stamps == side.stamps, 'frame_stamps stay the first view'
    assert side_first.source_size == (SIDE_WIDTH, SIDE_HEIGHT)
    assert side_first.picture_camera == 'side'
    # The pictures: each view's newest frame, decoded from the bag as the window stored it.
    assert [(view.name, view.frames[0].stamp) for view in side_first.view_pictures] == [
        ('side', side.stamps[-1]), ('head', head.stamps[-1])]
    assert side_first.view_pictures[0].frames[0].image.shape == (120, 160, 3)

    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu',
                                              dtype='fp32'))
    backend.load()
    offline = {r.item.id: r for r in Replay(backend, SETTINGS).run(questions).results}
    backend.close()
    for name, result in by_id.items():
        assert offline[name].window_end == result.window_end
        if frames_received == player.published:
            assert [(view.name, view.source_size, view.missing) for view in result.views] == [
                (view.name, view.source_size, view.missing) for view in offline[name].views]
            for ours, theirs in zip(result.views, offline[name].views):
                assert ours.stamps == pytest.approx(theirs.stamps, abs=1e-6, rel=0)
            assert result.raw_text == offline[name].raw_text
            assert result.constrained == offline[name].constrained
            assert result.parsed.trajectories == offline[name].parsed.trajectories
            assert result.score.correct == offline[name].score.correct

    report = load_report(write_report(live, tmp_path / 'live'))
    item = next(i for i in report['items'] if i['id'] == 'side-first')
    assert [view['name'] for view in item['views']] == ['side', 'head']
    assert (tmp_path / 'live' / item['image']).is_file()


def test_a_camera_missing_from_the_bag_is_named_in_each_items_error(tmp_path):
    bag = write_sample_bag(tmp_path / 'two', width=W, height=H, seconds=1.0, compressed=False,
                           side=True)
    questions = parse_question_set({
        'version': 1, 'source': str(bag),
        'cameras': {'head': RAW_TOPIC, 'wrist': '/wrist/image_raw'},
        'items': [{'id': 'q', 'at': 0.5, 'mode': 'caption'}]}, tmp_path / 'questions.yaml')
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('missing_camera_client', context=context)
    evaluation = LiveEvaluation(node, questions, settings=LiveSettings(replay=SETTINGS))
    try:
        run = evaluation.run()
    finally:
        evaluation.destroy()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    (result,) = run.results
    assert result.error_code == 'source'
    assert result.error.startswith("camera 'wrist': ") and '/wrist/image_raw' in result.error


def test_a_result_without_the_truths_view_says_to_configure_the_nodes_cameras(tmp_path):
    questions = _two_camera_questions(tmp_path / 'bag', tmp_path)
    item = next(item for item in questions.items if item.id == 'side-first')
    result = Reason.Result(error_code=Reason.Result.SUCCESS)
    result.output.views = [CameraView(name='')]
    base = ItemResult(index=1, item=item, status='error')
    answer = _result_to_item(base, item, result, {})
    assert answer.status == 'error' and answer.error_code == 'no_answer'
    assert "no view of camera 'side'" in answer.error
    assert "configured with the question set's cameras" in answer.error


def test_live_3d_answers_are_scored_in_the_truths_camera_only(tmp_path):
    questions = parse_question_set({
        'version': 1, 'source': str(tmp_path / 'bag'), 'cameras': {
            'head': RAW_TOPIC, 'side': {'image': SIDE_RAW_TOPIC, 'depth': '/side/depth',
                                        'camera_info': '/side/info'}},
        'items': [{'id': 'path', 'at': 1.0, 'mode': 'trajectory', 'task': 'Follow it',
                   'expected': {'camera': 'side', 'trajectory': [[1, 1], [2, 2]],
                                'trajectory_3d': [[0, 0, 1], [0, 0, 1]]}}]},
        tmp_path / 'two.yaml')
    (item,) = questions.items
    output = Reason.Result().output
    output.lift_status = int(LiftStatus.OK)
    output.trajectories_3d = [Trajectory3D(label=camera, camera=camera, valid=[True])
                              for camera in ('head', 'side', '')]
    lifted, _ = _lifted(item, output, parsed_from_msg(output))
    # '' is the item's first camera, head: only the side's path counts.
    assert [trajectory.label for trajectory in lifted.trajectories] == ['side']
    output.lift_status, output.trajectories_3d = int(LiftStatus.NONE), []
    output.trajectories = [Trajectory2D(label='p', camera='side')]
    lifted, _ = _lifted(item, output, parsed_from_msg(output))
    assert lifted.message.startswith("camera 'side': the node lifted nothing")
    assert "side/depth and side/camera_info to the bag's '/side/depth' and '/side/info'" in \
        lifted.message
