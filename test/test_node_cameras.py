"""The node with several cameras on a real rclpy graph: views, routing, 3D per camera, bad input.

Two cameras of different sizes publish on one clock: head (160x120) and wrist (96x64). A third
configured camera, ghost, never publishes. The tiny model answers the goals whose content does
not matter; a scripted test double answers with known pixels where routing and 3D are checked.
"""

import threading
import time

from generate_spy import GenerateSpy
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from ros_graph import Graph, TIMEOUT
from scripted_backend import ScriptedBackend
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.answers.prompts import view_label
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.client import make_goal
from cosmos_reason_ros.ros.conversions import to_time

Result = Reason.Result
SIZES = {'head': (160, 120), 'wrist': (96, 64)}
FPS = 15.0
# Per camera: intrinsics (fx = fy, cx, cy) of its own image size, and a flat scene at depth Z.
INTRINSICS = {'head': (150.0, 80.0, 60.0), 'wrist': (80.0, 48.0, 32.0)}
DEPTH_Z = {'head': 2.0, 'wrist': 0.5}
TOLERANCE_M = 1e-3
# The scripted answer: one point on each camera, in pixels of that camera's image.
PIXELS = {'head': (100.0, 40.0), 'wrist': (70.0, 20.0)}


def optical_frame(camera: str) -> str:
    return f'{camera}_color_optical_frame'


def truth(camera: str) -> np.ndarray:
    """The 3D point of the camera's scripted pixel: its ray at the camera's depth."""
    f, cx, cy = INTRINSICS[camera]
    u, v = PIXELS[camera]
    z = DEPTH_Z[camera]
    return np.array([(u - cx) / f * z, (v - cy) / f * z, z])


class Cameras(Node):
    """head and wrist at 15 fps on one clock; with depth, each camera's depth and CameraInfo."""

    def __init__(self, context, *, depth: bool = False):
        super().__init__('two_cameras', context=context)
        self.paused: set[str] = set()
        self._depth = depth
        self._images = {name: self.create_publisher(Image, f'/{name}/image',
                                                    qos_profile_sensor_data) for name in SIZES}
        self._depths = {name: self.create_publisher(Image, f'/{name}/depth',
                                                    qos_profile_sensor_data) for name in SIZES}
        self._infos = {name: self.create_publisher(CameraInfo, f'/{name}/camera_info',
                                                   qos_profile_sensor_data) for name in SIZES}
        self.create_timer(1.0 / FPS, self._publish)

    def _publish(self) -> None:
        if not self.context.ok():
            return
        stamp = to_time(self.get_clock().now().nanoseconds * 1e-9)
        for name, (width, height) in SIZES.items():
            if name in self.paused:
                continue
            header = Header(stamp=stamp, frame_id=optical_frame(name))
            pixels = np.full((height, width, 3), 60 if name == 'head' else 180, np.uint8)
            self._images[name].publish(Image(header=header, width=width, height=height,
                                             encoding='rgb8', step=width * 3,
                                             data=pixels.tobytes()))
            if not self._depth:
                continue
            depth = np.full((height, width), DEPTH_Z[name], np.float32)
            self._depths[name].publish(Image(header=header, width=width, height=height,
                                             encoding='32FC1', step=width * 4,
                                             data=depth.tobytes()))
            f, cx, cy = INTRINSICS[name]
            self._infos[name].publish(CameraInfo(
                header=header, width=width, height=height, distortion_model='plumb_bob',
                d=[0.0] * 5, k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]))


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@pytest.fixture(scope='module')
def graph(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, camera=False, **{
        'cameras': ['head', 'wrist', 'ghost'], 'goal.max_cameras': 2,
        'goal.frame_wait_timeout': 1.0, 'goal.window_duration': 1.0, 'goal.max_frames': 4})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.cameras = Cameras(graph.context)
        graph.add_node(graph.cameras)
        graph.wait_for_diagnostics('camera.head.window_fill', 4)
        graph.wait_for_diagnostics('camera.wrist.window_fill', 4)
        yield graph
    finally:
        graph.close()


def test_a_two_view_goal_sees_both_cameras_in_the_goals_order(graph):
    result, _ = graph.ask(make_goal('Does the gripper hold the part?', cameras=['wrist', 'head']))

    assert result.error_code == Result.SUCCESS, result.message
    output = result.output
    assert [view.name for view in output.views] == ['wrist', 'head']
    for view in output.views:
        assert (view.image_width, view.image_height) == SIZES[view.name]
        assert view.frame_id == optical_frame(view.name)
        assert len(view.stamps) >= 2 and len(view.stamps) % 2 == 0  # Qwen3-VL pairs frames
    # The first view is the result's own frame_stamps and size.
    wrist, head = output.views
    assert list(output.frame_stamps) == list(wrist.stamps)
    assert (output.image_width, output.image_height) == SIZES['wrist']
    assert output.header.frame_id == optical_frame('wrist')
    # Both cameras publish together: every frame of one view has a partner in the other within
    # the sync tolerance (0.1 s), and no slot was missed.
    for one, other in ((wrist, head), (head, wrist)):
        partners = [min(abs(seconds(a) - seconds(b)) for b in other.stamps) for a in one.stamps]
        assert max(partners) <= 0.1, partners
    assert not wrist.missing_stamps and not head.missing_stamps


@pytest.mark.parametrize('family', ['qwen3', 'qwen25', 'edge', 'omni'])
def test_each_familys_node_prompt_holds_both_videos_in_the_goals_order(family, request,
                                                                       monkeypatch):
    # The token ids the model received, per family: wrist's label, then wrist's video
    # placeholders, then head's label and video, then the task.
    checkpoint = request.getfixturevalue(f'tiny_{family}_checkpoint')
    graph = Graph(checkpoint, camera=False, **{
        'cameras': ['head', 'wrist'], 'goal.window_duration': 1.0, 'goal.max_frames': 2})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.add_node(Cameras(graph.context))
        graph.wait_for_diagnostics('camera.head.window_fill', 2)
        graph.wait_for_diagnostics('camera.wrist.window_fill', 2)
        spy = GenerateSpy(monkeypatch, graph.node._backend)
        task = 'Does the gripper hold the part?'
        result, _ = graph.ask(make_goal(task, cameras=['wrist', 'head'], max_new_tokens=2))
        assert result.error_code == Result.SUCCESS, result.message
        tokenizer = graph.node._backend._processor.tokenizer
    finally:
        graph.close()
    ids = spy.calls[0]['input_ids'][0].tolist()
    pad = tokenizer.convert_tokens_to_ids('<|video_pad|>')

    def first(text: str) -> int:
        tokens = tokenizer(text, add_special_tokens=False)['input_ids']
        return next(i for i in range(len(ids)) if ids[i:i + len(tokens)] == tokens)

    wrist, head, asked = first(view_label('wrist')), first(view_label('head')), first(task)
    assert wrist < head < asked
    assert ids[wrist:head].count(pad) > 0 and ids[head:asked].count(pad) > 0
    assert pad not in ids[:wrist] and pad not in ids[asked:]
    # The views differ in size (96x64 and 160x120): each has its own placeholder count.
    assert ids[wrist:head].count(pad) < ids[head:asked].count(pad)
    assert [view.name for view in result.output.views] == ['wrist', 'head']


def test_a_goal_naming_one_camera_uses_only_that_camera(graph):
    result, _ = graph.ask(make_goal('What does the wrist camera see?', cameras=['wrist']))

    assert result.error_code == Result.SUCCESS, result.message
    output = result.output
    assert [view.name for view in output.views] == ['wrist']
    assert (output.image_width, output.image_height) == SIZES['wrist']
    assert output.header.frame_id == optical_frame('wrist')


def test_an_unknown_camera_is_an_invalid_goal_listing_the_known_ones(graph):
    result, _ = graph.ask(make_goal('Anything?', cameras=['head', 'elbow']))

    assert result.error_code == Result.INVALID_GOAL
    assert "unknown camera 'elbow'" in result.message
    assert "'head', 'wrist', 'ghost'" in result.message


def test_more_views_than_max_cameras_is_an_invalid_goal(graph):
    result, _ = graph.ask(make_goal('Anything?', cameras=['head', 'wrist', 'ghost']))

    assert result.error_code == Result.INVALID_GOAL
    assert 'goal.max_cameras (2)' in result.message


def test_a_camera_that_never_published_ends_no_frames_naming_it(graph):
    started = time.monotonic()
    result, _ = graph.ask(make_goal('Anything?', cameras=['head', 'ghost']))

    assert result.error_code == Result.NO_FRAMES, result.message
    assert result.message.startswith("camera 'ghost': "), result.message
    assert time.monotonic() - started >= 1.0, 'it waited goal.frame_wait_timeout first'


def test_a_stale_camera_ends_stale_frames_naming_it_and_the_node_goes_on(graph):
    graph.cameras.paused.add('wrist')
    try:
        # goal.max_frame_age is 2 s: let the wrist's newest frame grow older than that.
        newest = graph.node._windows.window('wrist').newest_stamp
        while graph.node.get_clock().now().nanoseconds * 1e-9 - newest < 2.3:
            time.sleep(0.1)
        result, _ = graph.ask(make_goal('Anything?', cameras=['head', 'wrist']))
        assert result.error_code == Result.STALE_FRAMES, result.message
        assert result.message.startswith("camera 'wrist': "), result.message
    finally:
        graph.cameras.paused.discard('wrist')
    # Back: once the wrist has frames two slots on (a camera resuming mid-slot keeps a frame
    # later in that slot than the head's, more than the sync tolerance away from it).
    resumed = graph.node.get_clock().now().nanoseconds * 1e-9
    window = graph.node._windows.window('wrist')
    deadline = time.monotonic() + TIMEOUT
    while window.newest_stamp < resumed + 0.6 and time.monotonic() < deadline:
        time.sleep(0.05)
    result, _ = graph.ask(make_goal('And now?', cameras=['head', 'wrist']))
    assert result.error_code == Result.SUCCESS, result.message


def test_diagnostics_report_each_cameras_window(graph):
    values = graph.diagnostics_where(lambda v: int(v.get('camera.wrist.frames_kept', 0)) > 0)

    for name in ('head', 'wrist'):
        assert values[f'camera.{name}.topic'] == f'/{name}/image'
        assert int(values[f'camera.{name}.window_fill']) > 0
        assert float(values[f'camera.{name}.newest_age_s']) < 2.0
        assert int(values[f'camera.{name}.frames_skipped']) >= 0
    assert values['camera.ghost.newest_age_s'] == 'none'
    assert values['camera.ghost.window_fill'] == '0'
    assert 'ghost' in values['message'], 'a configured camera without frames is a warning'


# The scripted double with depth on: routing and 3D per camera --------------------------------

def scripted_answer() -> str:
    """A Reason2 answer (0-1000 coordinates of each camera's image), one point per camera."""
    items = []
    for name in ('wrist', 'head'):
        width, height = SIZES[name]
        u, v = PIXELS[name]
        items.append(f'{{"point_2d": [{u / width * 1000!r}, {v / height * 1000!r}], '
                     f'"label": "{name} path", "camera": "{name}"}}')
    return '```json\n[' + ', '.join(items) + ']\n```'


@pytest.fixture(scope='module')
def depth_graph():
    backend = ScriptedBackend({}, default=scripted_answer(), family=ModelFamily.QWEN3_VL)
    patch = pytest.MonkeyPatch()
    patch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False, **{
        'cameras': ['head', 'wrist'], 'depth.enabled': True, 'goal.window_duration': 1.0,
        'goal.max_frames': 2})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.add_node(Cameras(graph.context, depth=True))
        for name in SIZES:
            graph.wait_for_diagnostics(f'camera.{name}.camera_info_received', 1)
            graph.wait_for_diagnostics(f'camera.{name}.depth_frames_received', 1)
        yield graph
    finally:
        graph.close()
        patch.undo()


def test_points_come_back_on_the_camera_they_name_lifted_with_its_own_depth(depth_graph):
    mosaics: list[Image] = []
    arrived = threading.Event()
    depth_graph.peer.create_subscription(
        Image, '/cosmos_reason/debug_image',
        lambda image: (mosaics.append(image), arrived.set()), 1)
    deadline = time.monotonic() + TIMEOUT
    while depth_graph.node._debug_pub.get_subscription_count() == 0 and \
            time.monotonic() < deadline:
        time.sleep(0.05)  # the debug image is drawn only while someone subscribes

    result, _ = depth_graph.ask(make_goal('Move the gripper to the part', mode='trajectory'))

    assert result.error_code == Result.SUCCESS, result.message
    output = result.output
    assert output.parse_status == ReasoningResult.PARSE_OK, output.parse_error
    assert [view.name for view in output.views] == ['head', 'wrist']
    by_camera = {trajectory.camera: trajectory for trajectory in output.trajectories}
    assert set(by_camera) == {'head', 'wrist'}
    for name, trajectory in by_camera.items():
        assert (trajectory.image_width, trajectory.image_height) == SIZES[name]
        assert trajectory.header.frame_id == optical_frame(name)
        (point,) = trajectory.points
        assert (point.x, point.y) == pytest.approx(PIXELS[name], abs=0.01)
    # 3D: each point with its own camera's depth and intrinsics, in its optical frame.
    assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
    assert [t.camera for t in output.trajectories_3d] == \
        [t.camera for t in output.trajectories]
    for trajectory in output.trajectories_3d:
        assert trajectory.header.frame_id == optical_frame(trajectory.camera)
        assert list(trajectory.valid) == [True]
        (point,) = trajectory.points
        np.testing.assert_allclose([point.x, point.y, point.z], truth(trajectory.camera),
                                   atol=TOLERANCE_M)
    # The debug image: both views side by side, 360 px high (draw_views' tiles).
    assert arrived.wait(10.0), 'no debug image'
    mosaic = mosaics[-1]
    tiles = [round(width * 360 / height) for width, height in SIZES.values()]
    assert (mosaic.width, mosaic.height) == (sum(tiles) + 4, 360)
