"""The node's stamp filter on a real rclpy graph: frames the window skips are never delivered."""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_graph import Graph, TIMEOUT
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_reason_ros.core.camera.frames import StampBounds
from cosmos_reason_ros.ros import stamp_filter as stamp_filter_module
from cosmos_reason_ros.ros.conversions import to_time
from cosmos_reason_ros.ros.stamp_filter import (
    expression_parameters,
    HAS_CONTENT_FILTER_API,
    StampFilter,
)

PIXELS = np.full((120, 160, 3), 90, np.uint8).tobytes()


class Diagnostics:
    """The latest /diagnostics values of the node, as the peer receives them."""

    def __init__(self, graph: Graph):
        self._latest: dict[str, str] = {}
        self._arrived = threading.Condition()
        graph.peer.create_subscription(DiagnosticArray, '/diagnostics', self._on_message, 10)

    def _on_message(self, array: DiagnosticArray) -> None:
        with self._arrived:
            self._latest = {kv.key: kv.value for status in array.status for kv in status.values}
            self._arrived.notify_all()

    def after(self, settle: float) -> dict[str, str]:
        """The first message that arrives `settle` seconds from now."""
        time.sleep(settle)
        with self._arrived:
            assert self._arrived.wait(TIMEOUT), 'no /diagnostics'
            return dict(self._latest)


def stream(graph: Graph, seconds: float, start: float = 0.0, fps: float = 30.0) -> int:
    """Publish `seconds` of a camera's stamps in real time; returns the count."""
    count = int(seconds * fps)
    for index in range(count):
        header = Header(stamp=to_time(start + index / fps), frame_id='camera')
        graph.images.publish(Image(header=header, height=120, width=160, encoding='rgb8',
                                   step=480, data=PIXELS))
        time.sleep(1.0 / fps)
    return count


@pytest.fixture(params=[True, False], ids=['dds filter', 'node filter'])
def camera_graph(request, tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, camera=False, diagnostics_period=0.2,
                  **{'window.dds_filter': request.param})
    graph.images = graph.peer.create_publisher(Image, '/image', qos_profile_sensor_data)
    graph.diagnostics = Diagnostics(graph)
    assert graph.node.wait_until_loaded(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while graph.images.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield graph, request.param
    graph.close()


def test_the_window_keeps_the_same_frames_and_only_those_arrive(camera_graph):
    graph, dds_filter = camera_graph
    # Content filters need rclpy's API (Kilted on); Jazzy's rclpy falls back to the node.
    in_dds = dds_filter and HAS_CONTENT_FILTER_API
    published = stream(graph, 2.0)  # sim time from zero: the rewind bound is negative
    values = graph.diagnostics.after(0.5)

    assert values['frames_kept'] == '8'  # 2 s at 4 fps
    if in_dds:
        assert values['frame_filter'] == 'dds'
        assert values['frame_filter_reason'] == ''
        # Frames already queued when the filter moves still arrive (a loaded machine queues
        # some); without the filter all 60 do.
        assert int(values['frames_received']) < 30, values
    else:
        assert values['frame_filter'] == 'node'
        assert values['frame_filter_reason'] == (
            'this rclpy has no content-filter API (it arrived after ROS 2 Jazzy; Kilted has it)'
            if dds_filter else 'window.dds_filter is false')
        assert int(values['frames_received']) > 0.9 * published, values

    stream(graph, 2.0)  # the bag starts again: the window rewinds, frames still come
    values = graph.diagnostics.after(0.5)
    assert values['frames_kept'] == '16'
    if in_dds:
        assert int(values['frames_received']) < 60, values


@pytest.mark.parametrize('bounds, parameters', [
    (None, ['-2147483648', '0', '-2147483648', '0']),
    (StampBounds(at_least=1700000000.249, below=1699999999.751),
     ['1700000000', '249000000', '1699999999', '751000000']),
    (StampBounds(at_least=0.124, below=-0.499), ['0', '124000000', '-1', '501000000']),
])
def test_expression_parameters_split_the_bounds_like_a_header_stamp(bounds, parameters):
    got = expression_parameters(bounds)
    assert got[0] == parameters[0] and got[2] == parameters[2]
    # A float near 1.7e9 s is exact to about 200 ns (the window widens its bounds by 1 ms).
    assert abs(int(got[1]) - int(parameters[1])) < 1000
    assert abs(int(got[3]) - int(parameters[3])) < 1000


class RefusingSubscription:
    """A subscription whose middleware refuses every filter change."""

    is_cft_enabled = True

    def __init__(self):
        self.calls = []

    def set_content_filter(self, expression, parameters):
        self.calls.append(parameters)
        raise RuntimeError('not supported')


class Logger:
    def __init__(self):
        self.infos = []
        self.errors = []

    def info(self, message):
        self.infos.append(message)

    def error(self, message):
        self.errors.append(message)


class PlainSubscription:
    """A subscription without a content filter (Cyclone DDS, or Jazzy's rclpy)."""

    is_cft_enabled = False


def test_without_rclpys_filter_api_the_node_filters_and_says_why_once(monkeypatch):
    monkeypatch.setattr(stamp_filter_module, 'ContentFilterOptions', None)  # Jazzy's rclpy
    logger = Logger()
    stamp_filter = StampFilter(PlainSubscription(), logger, requested=True)

    assert not stamp_filter.active
    assert 'no content-filter API' in stamp_filter.reason
    assert len(logger.infos) == 1
    assert 'in the node' in logger.infos[0] and stamp_filter.reason in logger.infos[0]
    stamp_filter.update(StampBounds(at_least=10.249, below=9.751))  # a no-op, no more lines
    assert len(logger.infos) == 1 and not logger.errors


def test_a_middleware_without_filters_is_named_as_the_reason():
    logger = Logger()
    stamp_filter = StampFilter(PlainSubscription(), logger, requested=True)

    if HAS_CONTENT_FILTER_API:
        assert 'did not enable a content filter' in stamp_filter.reason
    assert len(logger.infos) == 1


def test_a_filter_turned_off_by_parameter_is_not_logged():
    logger = Logger()
    stamp_filter = StampFilter(RefusingSubscription(), logger, requested=False)

    assert not stamp_filter.active
    assert stamp_filter.reason == 'window.dds_filter is false'
    assert not logger.infos


def test_a_refused_update_turns_the_filter_off_and_lets_every_frame_through():
    subscription, logger = RefusingSubscription(), Logger()
    stamp_filter = StampFilter(subscription, logger)
    assert stamp_filter.active

    stamp_filter.update(StampBounds(at_least=10.249, below=9.751))
    assert not stamp_filter.active
    assert subscription.calls[-1] == expression_parameters(None)  # tried to let all through
    assert 'every frame' in logger.errors[0]
    assert stamp_filter.reason == 'the middleware refused a filter update (not supported)'

    stamp_filter.update(StampBounds(at_least=10.499, below=10.001))
    assert len(subscription.calls) == 2  # no further attempts


def test_the_middleware_filter_is_off_unless_asked_for():
    # Fast DDS applies the filter in the camera's process, which crashed with it on
    # (bench/filter_soak.py): a node with default parameters must not put it there.
    from cosmos_reason_ros.ros.parameters import SPECS

    (spec,) = [spec for spec in SPECS if spec.name == 'window.dds_filter']
    assert spec.default is False
    assert 'crash' in spec.description and 'Fast-DDS issue 4878' in spec.description
