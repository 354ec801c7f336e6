"""Answers in 3D on a real rclpy graph: colour, depth and CameraInfo of a rendered scene.

The model is a scripted test double (the tiny checkpoints cannot aim): it answers with the
exact pixels of known 3D points, so the 3D path is tested with known 2D input.
"""

import threading
import time

import cv2
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from ros_graph import Graph, TIMEOUT
from scripted_backend import ScriptedBackend
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.depth.compressed import encode_compressed_depth
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.client import make_goal
from cosmos_reason_ros.ros.conversions import to_time

WIDTH, HEIGHT = 160, 120
# The calibration is for 320x240; the stream is 160x120, so the node must scale K.
K_CALIBRATION = (300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0)
K_STREAM = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
D = (-0.25, 0.07, 0.001, -0.001, 0.0)
OPTICAL_FRAME = 'camera_color_optical_frame'
PLANE_Z, BASKET_Z = 2.0, 1.2
BASKET = (slice(60, 111), slice(90, 141))  # rows, columns of the basket in the depth image
HOLE = (slice(10, 31), slice(10, 31))  # no depth return here
TOLERANCE_M = 1e-3
"""The stated tolerance: 1 mm (the lifting is exact up to OpenCV's undistortion iterations)."""
TRUTH = np.array([[-0.5, -0.3, PLANE_Z], [0.25, 0.15, BASKET_Z], [0.35, 0.3, BASKET_Z]])


def render_depth(metres: bool = True) -> np.ndarray:
    depth = np.full((HEIGHT, WIDTH), PLANE_Z, np.float32)
    depth[BASKET] = BASKET_Z
    depth[HOLE] = 0.0
    return depth if metres else np.round(depth * 1000).astype(np.uint16)


def truth_pixels() -> np.ndarray:
    pixels, _ = cv2.projectPoints(TRUTH, np.zeros(3), np.zeros(3), K_STREAM, np.array(D))
    pixels = pixels.reshape(-1, 2)
    # Each truth point lies on its surface, 3 px or more from the edges (the depth window).
    on_basket = [BASKET[1].start + 3 <= u <= BASKET[1].stop - 4 and
                 BASKET[0].start + 3 <= v <= BASKET[0].stop - 4 for u, v in pixels]
    assert on_basket == [z == BASKET_Z for z in TRUTH[:, 2]]
    return pixels


def trajectory_answer(pixels) -> str:
    """The answer a Reason2 model gives: 0-1000 coordinates of the source image."""
    items = [f'{{"point_2d": [{float(u) / WIDTH * 1000!r}, {float(v) / HEIGHT * 1000!r}], '
             '"label": "gripper trajectory"}' for u, v in pixels]
    return '```json\n[' + ', '.join(items) + ']\n```'


class Scene(Node):
    """A colour + aligned depth camera with its CameraInfo, publishing at 30 fps."""

    def __init__(self, context, **faults):
        super().__init__('depth_scene', context=context)
        self.faults = faults
        self._image = self.create_publisher(Image, '/image', qos_profile_sensor_data)
        self._depth = self.create_publisher(Image, '/depth', qos_profile_sensor_data)
        self._png = self.create_publisher(CompressedImage, '/depth/compressedDepth',
                                          qos_profile_sensor_data)
        self._info = self.create_publisher(CameraInfo, '/camera_info', qos_profile_sensor_data)
        self.create_timer(1.0 / 30.0, self._publish)

    def _publish(self) -> None:
        if not self.context.ok():
            return
        stamp = self.get_clock().now().nanoseconds * 1e-9
        header = Header(stamp=to_time(stamp), frame_id=OPTICAL_FRAME)
        pixels = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
        colour = Image(header=header, width=WIDTH, height=HEIGHT, encoding='rgb8',
                       step=WIDTH * 3, data=pixels.tobytes())
        if not self.faults.get('depth_first'):
            self._image.publish(colour)
        encoding = self.faults.get('depth_encoding', '32FC1')
        depth = render_depth(metres=encoding != '16UC1')
        if 'depth_size' in self.faults:
            depth = cv2.resize(depth, self.faults['depth_size'],
                               interpolation=cv2.INTER_NEAREST)
        depth_header = Header(stamp=to_time(stamp + self.faults.get('depth_offset', 0.0)),
                              frame_id=OPTICAL_FRAME)
        if self.faults.get('compressed_depth'):
            format_, data = encode_compressed_depth(depth)
            self._png.publish(CompressedImage(header=depth_header, format=format_, data=data))
        else:
            self._depth.publish(Image(header=depth_header, width=depth.shape[1],
                                      height=depth.shape[0], encoding=encoding,
                                      step=depth.shape[1] * depth.itemsize,
                                      data=depth.tobytes()))
        if self.faults.get('depth_first'):
            self._image.publish(colour)
        self._info.publish(CameraInfo(
            header=header, width=320, height=240, distortion_model='plumb_bob', d=list(D),
            k=list(self.faults.get('k', K_CALIBRATION)), r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]))


def box_answer() -> str:
    """A box around the basket with background at its margins (0-1000 coordinates)."""
    x_min, x_max = (BASKET[1].start - 5) / WIDTH * 1000, (BASKET[1].stop + 5) / WIDTH * 1000
    y_min, y_max = (BASKET[0].start - 5) / HEIGHT * 1000, (BASKET[0].stop + 5) / HEIGHT * 1000
    return f'{{"bbox_2d": [{x_min}, {y_min}, {x_max}, {y_max}], "label": "basket"}}'


def start_graph(monkeypatch, parameters=None, answers=None, **faults):
    backend = ScriptedBackend({'Locate the bounding box': box_answer(), **(answers or {})},
                              default=trajectory_answer([*truth_pixels(), (20.0, 20.0)]),
                              family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False, **{
        'depth.enabled': True, 'goal.window_duration': 1.0, 'goal.max_frames': 2,
        **(parameters or {})})
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.add_node(Scene(graph.context, **faults))
    # Both arrive before the first goal (a goal right at start-up may find no CameraInfo yet).
    graph.wait_for_diagnostics('camera_info_received', 1)
    graph.wait_for_diagnostics('depth_frames_received', 1)
    return graph


def ask_trajectory(graph) -> Reason.Result:
    result, _ = graph.ask(make_goal('Put the tape into the basket', mode='trajectory'))
    assert result.error_code == Reason.Result.SUCCESS, result.message
    return result


def test_trajectory_points_land_on_the_scene_truth_in_the_optical_frame(monkeypatch):
    graph = start_graph(monkeypatch)
    markers: list = []
    arrived = threading.Event()

    def on_markers(array: MarkerArray) -> None:
        markers.append(array)
        arrived.set()

    graph.peer.create_subscription(MarkerArray, '/cosmos_reason/markers', on_markers, 10)
    try:
        output = ask_trajectory(graph).output
        assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
        assert len(output.trajectories[0].points) == 4  # the 2D answer is whole
        lifted = output.trajectories_3d[0]
        assert lifted.header.frame_id == OPTICAL_FRAME
        assert lifted.header.stamp == output.header.stamp == output.frame_stamps[-1]
        # The depth frame is the one published with the answer's frame (same stamp).
        assert output.depth_stamp == output.header.stamp
        points = np.array([[p.x, p.y, p.z] for p in lifted.points])
        assert list(lifted.valid) == [True, True, True, False]
        np.testing.assert_allclose(points[:3], TRUTH, atol=TOLERANCE_M)
        assert np.all(np.isnan(points[3])), 'a point on a depth hole is never invented'
        assert '1 of 4 points have no valid depth' in output.lift_message
        # Markers: the path through the three valid waypoints, in the optical frame.
        assert arrived.wait(TIMEOUT) or _republished(graph, arrived)
        strips = [m for m in markers[-1].markers if m.type == Marker.LINE_STRIP]
        assert len(strips) == 1 and strips[0].header.frame_id == OPTICAL_FRAME
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in strips[0].points], TRUTH,
                                   atol=TOLERANCE_M)
    finally:
        graph.close()


def _republished(graph, arrived: threading.Event) -> bool:
    """Markers are published once per answer: ask again if discovery missed the first."""
    for _ in range(5):
        ask_trajectory(graph)
        if arrived.wait(5.0):
            return True
    return False


def test_a_box_around_the_basket_is_measured_on_the_basket_not_the_floor(monkeypatch):
    graph = start_graph(monkeypatch)
    try:
        result, _ = graph.ask(make_goal(mode='grounding', object_name='the basket'))
        output = result.output
        assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
        box = output.boxes_3d[0]
        assert box.valid and box.label == 'basket'
        assert box.center.z == pytest.approx(BASKET_Z) and box.size.z == pytest.approx(0.0)
        # The basket's surface spans the rays of its corner pixels at 1.2 m.
        corners = np.array([[BASKET[1].start, BASKET[0].start],
                            [BASKET[1].stop - 1, BASKET[0].stop - 1]], dtype=np.float64)
        rays = cv2.undistortPoints(corners.reshape(-1, 1, 2), K_STREAM, np.array(D)).reshape(-1, 2)
        low, high = rays * BASKET_Z
        assert low[0] < box.center.x < high[0] and low[1] < box.center.y < high[1]
        assert box.size.x == pytest.approx(0.9 * (high[0] - low[0]), rel=0.1)
    finally:
        graph.close()


@pytest.mark.parametrize('faults,status,words', [
    ({'k': (0.0,) * 9}, ReasoningResult.LIFT_INVALID_CAMERA_INFO, 'all zeros'),
    ({'depth_encoding': 'bgr8'}, ReasoningResult.LIFT_DEPTH_ENCODING, "'bgr8'"),
    ({'depth_size': (80, 60)}, ReasoningResult.LIFT_DEPTH_SIZE, 'aligned'),
    # Another clock (e.g. use_sim_time on one side): no depth stamp near any colour stamp.
    ({'depth_offset': -100.0}, ReasoningResult.LIFT_NO_DEPTH, 'depth.tolerance'),
], ids=['k_zero', 'encoding', 'size', 'no_depth_in_tolerance'])
def test_bad_depth_input_gives_a_status_and_the_2d_answer(monkeypatch, faults, status, words):
    graph = start_graph(monkeypatch, **faults)
    try:
        for _ in range(2):  # the node keeps serving
            output = ask_trajectory(graph).output
            assert output.lift_status == status, output.lift_message
            assert words in output.lift_message
            assert len(output.trajectories[0].points) == 4
            assert output.trajectories_3d == []
    finally:
        graph.close()


def test_depth_stamped_before_its_colour_frame_still_lifts_once_the_filter_learned_it(
        monkeypatch):
    # 4 ms early and sent before the colour frame, always: after 8 matches the depth filter
    # lets through only stamps from 4.1 ms before the next slot on (the middleware's filter and
    # the node's own rule alike). test_depth_matching pins the rule frame by frame; here
    # whether a too narrow lead drops a depth frame depends on where the slots fall.
    graph = start_graph(monkeypatch, depth_offset=-0.004, depth_first=True)
    try:
        graph.wait_for_diagnostics('frames_kept', 12)
        for _ in range(3):
            output = ask_trajectory(graph).output
            assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
            stamp = output.header.stamp.sec + output.header.stamp.nanosec * 1e-9
            depth = output.depth_stamp.sec + output.depth_stamp.nanosec * 1e-9
            assert depth - stamp == pytest.approx(-0.004, abs=1e-6)
    finally:
        graph.close()


@pytest.mark.parametrize('encoding, tolerance', [
    ('16UC1', TOLERANCE_M),
    # The plugin's inverse-depth quantization: about 0.1 mm per step at 2 m.
    ('32FC1', TOLERANCE_M + 1e-3)])
def test_compressed_depth_lifts_like_raw_depth(monkeypatch, encoding, tolerance):
    graph = start_graph(monkeypatch, {'depth.transport': 'compressedDepth'},
                        compressed_depth=True, depth_encoding=encoding)
    try:
        output = ask_trajectory(graph).output
        assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
        points = np.array([[p.x, p.y, p.z] for p in output.trajectories_3d[0].points])
        np.testing.assert_allclose(points[:3], TRUTH, atol=tolerance)
        assert not output.trajectories_3d[0].valid[3], 'the hole has no depth'
    finally:
        graph.close()


def test_16uc1_millimetres_lift_like_32fc1_metres(monkeypatch):
    graph = start_graph(monkeypatch, depth_encoding='16UC1')
    try:
        output = ask_trajectory(graph).output
        assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
        points = np.array([[p.x, p.y, p.z] for p in output.trajectories_3d[0].points])
        np.testing.assert_allclose(points[:3], TRUTH, atol=TOLERANCE_M)
    finally:
        graph.close()


def test_depth_off_leaves_the_3d_fields_empty(monkeypatch):
    backend = ScriptedBackend({}, default=trajectory_answer(truth_pixels()),
                              family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False)
    assert graph.node.wait_until_loaded(TIMEOUT)
    graph.add_node(Scene(graph.context))
    try:
        output = ask_trajectory(graph).output
        assert output.lift_status == ReasoningResult.LIFT_NONE
        assert output.trajectories_3d == [] and len(output.trajectories[0].points) == 3
    finally:
        graph.close()


def test_the_sample_stream_with_depth_places_the_basket_and_floor_where_the_scene_says(
        monkeypatch):
    """The demo's RGB-D stand-in: its depth and CameraInfo agree with the scene's geometry."""
    from rclpy.parameter import Parameter

    from cosmos_reason_ros.demo.sample_scene import basket_box, scene_point
    from cosmos_reason_ros.ros.sample_stream import SampleStream

    width, height = 160, 120
    x1, y1, x2, y2 = basket_box(width, height)
    # The basket's middle, and a floor point in a corner the marker never reaches.
    pixels = [((x1 + x2) / 2, (y1 + y2) / 2), (8.0, 8.0)]
    answer = '```json\n[' + ', '.join(
        f'{{"point_2d": [{u / width * 1000!r}, {v / height * 1000!r}], "label": "path"}}'
        for u, v in pixels) + ']\n```'
    backend = ScriptedBackend({}, default=answer, family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False, **{
        'depth.enabled': True, 'goal.window_duration': 1.0, 'goal.max_frames': 2})
    try:
        assert graph.node.wait_until_loaded(TIMEOUT)
        graph.add_node(SampleStream(context=graph.context, parameter_overrides=[
            Parameter('width', value=width), Parameter('height', value=height),
            Parameter('depth', value=True)]))
        graph.wait_for_diagnostics('camera_info_received', 1)
        graph.wait_for_diagnostics('depth_frames_received', 1)
        output = ask_trajectory(graph).output
        assert output.lift_status == ReasoningResult.LIFT_OK, output.lift_message
        points = [[p.x, p.y, p.z] for p in output.trajectories_3d[0].points]
        truth = [scene_point(u, v, 0.0, width, height) for u, v in pixels]
        # Millimetre depths in a float32 image: within a micrometre of the truth in metres.
        np.testing.assert_allclose(points, truth, atol=1e-5)
    finally:
        graph.close()


def test_an_answer_about_a_frame_older_than_the_depth_held_says_to_raise_depth_capacity(
        monkeypatch):
    graph = start_graph(monkeypatch, {'depth.capacity': 2, 'goal.max_frame_age': 10.0})
    try:
        newest = graph.node._window.newest_stamp
        deadline = time.monotonic() + TIMEOUT
        # Four more kept frames (4 fps): the frame of `newest` is then older than the two
        # whose depth is held.
        while graph.node._window.newest_stamp < newest + 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the window has no event to wait on; poll its newest stamp
        result, _ = graph.ask(make_goal('Put the tape into the basket', mode='trajectory',
                                        window_end=to_time(newest)))
        assert result.error_code == Reason.Result.SUCCESS, result.message
        output = result.output
        assert output.lift_status == ReasoningResult.LIFT_NO_DEPTH
        assert 'raise depth.capacity' in output.lift_message
        assert output.trajectories, 'the 2D answer stands'
        # The newest frame's depth is held.
        assert ask_trajectory(graph).output.lift_status == ReasoningResult.LIFT_OK
    finally:
        graph.close()


def test_a_goal_slower_than_the_depth_held_still_lifts_its_answer(monkeypatch):
    # The model takes 1.5 s while the camera goes on: six newer frames are kept meanwhile, more
    # than the two whose depth is held, but the goal held the depth of the frame it answers
    # about from the moment its frames were chosen.
    def slow(request):
        time.sleep(1.5)
        return trajectory_answer([*truth_pixels(), (20.0, 20.0)])

    graph = start_graph(monkeypatch, {'depth.capacity': 2}, answers={'slowly': slow})
    try:
        result, _ = graph.ask(make_goal('Put the tape into the basket slowly', mode='trajectory'))
        assert result.error_code == Reason.Result.SUCCESS, result.message
        assert result.output.lift_status == ReasoningResult.LIFT_OK, result.output.lift_message
        last = result.output.frame_stamps[-1]
        answered = last.sec + last.nanosec * 1e-9
        newer = [frame for frame in graph.node._window.frames() if frame.stamp > answered]
        assert len(newer) >= 2, 'fewer newer frames than depth.capacity: the test proves nothing'
    finally:
        graph.close()
