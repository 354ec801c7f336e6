"""Monitors on a real rclpy graph: the file and the services, the rate of ticks, latched results,
change events, /diagnostics, lifecycle, and goals beside ticks.

Events need answers the test chooses, so the first tests put a scripted backend behind the node
(the seam test_node_depth.py uses); the last runs the tiny random model, whose answers mean
nothing, for what does not depend on them: goals beside real ticks.
"""

import threading
import time

from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import Graph, TIMEOUT, wait_for
from scripted_backend import ScriptedBackend

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.msg import Monitor, MonitorEvent, ReasoningResult
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.client import make_goal
from cosmos_reason_ros.ros.sample_stream import SampleStream
from cosmos_reason_ros.srv import AddMonitor, ListMonitors, RemoveMonitor

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
MONITORS = """
monitors:
  - {name: door, task: "Is the door open?", period: 0.5}
  - {name: scene, mode: caption, period: 1.0, on_change_only: false}
"""


class _Topic:
    """Messages received on one topic, with their arrival times."""

    def __init__(self, graph: Graph, kind, name: str, qos=10):
        self.messages: list = []
        self.times: list[float] = []
        self._arrived = threading.Condition()
        self.subscription = graph.peer.create_subscription(kind, name, self._on_message, qos)

    def _on_message(self, message) -> None:
        with self._arrived:
            self.messages.append(message)
            self.times.append(time.monotonic())
            self._arrived.notify_all()

    def wait(self, count: int, timeout: float = TIMEOUT) -> list:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.messages) >= count, timeout), \
                f'{len(self.messages)} messages, waited for {count}'
            return list(self.messages)


def _scripted_graph(monkeypatch, tmp_path, **parameters) -> Graph:
    backend = ScriptedBackend({'Is the door open?': ['Yes.', 'Yes, it is.', 'No.']},
                              default='A quiet room.', family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    path = tmp_path / 'monitors.yaml'
    path.write_text(MONITORS)
    return Graph('scripted', autostart=False, monitors_file=str(path), **parameters)


def _call(graph: Graph, kind, name: str, request):
    client = graph.peer.create_client(kind, f'/cosmos_reason/{name}')
    assert client.wait_for_service(timeout_sec=TIMEOUT)
    return wait_for(client.call_async(request))


def test_a_monitor_file_ticks_at_its_rates_latches_and_fires_events_on_change(
        monkeypatch, tmp_path):
    graph = _scripted_graph(monkeypatch, tmp_path)
    try:
        assert graph.transition('configure')
        events = _Topic(graph, MonitorEvent, '/cosmos_reason/monitor_events')
        door = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/door', LATCHED)
        scene = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/scene', LATCHED)
        assert graph.transition('activate')
        door.wait(2)
        started = time.monotonic()
        time.sleep(4.0)
        # Rates over 4 s, counted from the door's second result: 0.5 s and 1 s periods; a tick
        # may be skipped (and counted) when the executor is late, so the tolerance is one tick
        # of either, and no more than the periods allow.
        door_count = sum(started <= each < started + 4.0 for each in door.times)
        scene_count = sum(started <= each < started + 4.0 for each in scene.times)
        assert 7 <= door_count <= 9, door_count
        assert 3 <= scene_count <= 5, scene_count

        changes = [(event.monitor, event.previous_answer, event.answer)
                   for event in events.messages if event.monitor == 'door']
        assert changes == [('door', '', 'yes'), ('door', 'yes', 'no')], 'one event per change'
        scene_events = [event for event in events.messages if event.monitor == 'scene']
        assert len(scene_events) >= 3, 'on_change_only false: an event per answer'
        event = events.messages[-1]
        assert event.result.error_code == ReasoningResult.SUCCESS
        assert event.result.answer and event.header.stamp == event.result.header.stamp
        assert event.result.frame_stamps, 'the event carries the full result'

        late = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/door', LATCHED)
        assert late.wait(1, timeout=5.0)[0].answer == 'No.', 'a late subscriber sees the state'

        values = graph.diagnostics_where(lambda values: int(
            values.get('monitor.door.ticks', 0)) >= 8)
        assert values['monitor.door.last_latency_s'] != 'never'
        assert float(values['monitor.door.last_answer_age_s']) < 2.0
        assert int(values['monitor.scene.skipped']) >= 0 and 'monitor.scene.stopped' in values

        assert graph.transition('deactivate')
        count = len(door.messages)
        time.sleep(1.5)
        assert len(door.messages) == count, 'no ticks while inactive'
        assert graph.transition('activate')
        door.wait(count + 2, timeout=10.0)
    finally:
        graph.close()


def test_services_add_list_and_remove_and_refuse_naming_the_field(monkeypatch, tmp_path):
    graph = _scripted_graph(monkeypatch, tmp_path, **{'monitors.max_count': 3})
    try:
        refused = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(
            monitor=Monitor(name='shelf', task='x', period=1.0)))
        assert not refused.success and 'unconfigured' in refused.message
        assert graph.transition('configure')
        for monitor, words in [
                (Monitor(name='shelf', task='Is the shelf full?', period=0.0), 'period:'),
                (Monitor(name='shelf', task='x', mode='dance', period=1.0), 'mode:'),
                (Monitor(name='the shelf', task='x', period=1.0), 'name:'),
                (Monitor(name='door', task='x', period=1.0), 'taken')]:
            answer = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(monitor=monitor))
            assert not answer.success and words in answer.message, answer.message
        added = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(
            monitor=Monitor(name='shelf', task='Is the shelf full?', period=1.0)))
        assert added.success, added.message
        over = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(
            monitor=Monitor(name='fourth', task='x', period=1.0)))
        assert not over.success and 'monitors.max_count' in over.message
        listed = _call(graph, ListMonitors, 'list_monitors', ListMonitors.Request())
        assert [monitor.name for monitor in listed.monitors] == ['door', 'scene', 'shelf']
        assert listed.monitors[1].mode == 'caption' and not listed.monitors[1].on_change_only

        shelf = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/shelf', LATCHED)
        assert graph.transition('activate')
        shelf.wait(1)
        removed = _call(graph, RemoveMonitor, 'remove_monitor',
                        RemoveMonitor.Request(name='door'))
        assert removed.success
        assert not _call(graph, RemoveMonitor, 'remove_monitor',
                         RemoveMonitor.Request(name='door')).success
        listed = _call(graph, ListMonitors, 'list_monitors', ListMonitors.Request())
        assert [monitor.name for monitor in listed.monitors] == ['scene', 'shelf']
        count = len(shelf.messages)
        shelf.wait(count + 1, timeout=5.0)  # the others run on
    finally:
        graph.close()


def test_a_tick_without_frames_publishes_its_error_code_not_an_answer(monkeypatch, tmp_path):
    backend = ScriptedBackend({}, default='Yes.', family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    path = tmp_path / 'monitors.yaml'
    path.write_text('[{name: door, task: "Is the door open?", period: 1.0}]')
    graph = Graph('scripted', camera=False, monitors_file=str(path),
                  **{'goal.frame_wait_timeout': 0.1})
    try:
        door = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/door', LATCHED)
        result = door.wait(1)[0]
        assert result.parse_status == ReasoningResult.PARSE_NOT_RUN and not result.answer
        assert result.error_code == ReasoningResult.NO_FRAMES == Reason.Result.NO_FRAMES
        assert result.parse_error.startswith('NO_FRAMES: '), result.parse_error
        assert not backend.requests
    finally:
        graph.close()


def test_a_bad_monitor_file_fails_configure_and_bad_entries_are_refused_alone(
        monkeypatch, tmp_path):
    backend = ScriptedBackend({}, default='Yes.', family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    path = tmp_path / 'monitors.yaml'
    path.write_text('[{name: door, task: x, period: 1.0}, {name: door, task: y, period: 1.0},'
                    ' {name: zero, task: x, period: 0}]')
    graph = Graph('scripted', camera=False, autostart=False,
                  monitors_file=str(tmp_path / 'missing.yaml'))
    try:
        assert not graph.transition('configure')
        assert 'cannot be read' in graph.node._model_error
        graph.node.set_parameters([Parameter('monitors_file', value=str(path))])
        assert graph.transition('configure')
        listed = _call(graph, ListMonitors, 'list_monitors', ListMonitors.Request())
        assert [monitor.name for monitor in listed.monitors] == ['door']
    finally:
        graph.close()


def test_goals_beside_real_ticks_never_meet_busy_and_deactivate_stops_a_tick(
        tiny_qwen3_checkpoint, tmp_path):
    # The tiny model never stops early: each tick generates for seconds, so goals always meet
    # a tick holding the model, and deactivate always finds one running.
    path = tmp_path / 'monitors.yaml'
    path.write_text('[{name: scene, mode: caption, period: 0.5, max_new_tokens: 4000}]')
    graph = Graph(tiny_qwen3_checkpoint, monitors_file=str(path),
                  concurrency_policy='reject', **{'monitors.goal_policy': 'preempt'})
    monitors = graph.node._monitors

    def tick_running() -> None:
        deadline = time.monotonic() + TIMEOUT
        while monitors._tick is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert monitors._tick is not None, 'no tick started'

    try:
        scene = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/scene', LATCHED)
        for _ in range(3):
            tick_running()
            result, _ = graph.ask(make_goal('Describe the scene', max_new_tokens=4))
            assert result.error_code == Reason.Result.SUCCESS, result.message
        stats = monitors.stats()[0]
        # Each goal stopped the tick it met (goal_policy preempt) and none met BUSY.
        assert stats.stopped >= 3 and stats.ticks >= 3, stats
        tick_running()
        assert graph.transition('deactivate')
        assert graph.node._scheduler.busy == 0, 'the tick gave the model back'
        assert monitors.stats()[0].stopped == stats.stopped + 1
        time.sleep(1.0)
        assert scene.messages == [], 'a stopped tick publishes nothing'
    finally:
        graph.close()


def test_a_monitor_asks_about_its_cameras_and_one_the_node_lacks_is_refused(monkeypatch,
                                                                             tmp_path):
    # Two cameras; only the wrist publishes: a monitor on the wrist answers, one on every
    # camera fails naming the head, and a monitor naming a third camera is never added.
    graph = _scripted_graph(monkeypatch, tmp_path, cameras=['head', 'wrist'], camera=False,
                            **{'goal.frame_wait_timeout': 0.0})
    try:
        graph.add_node(SampleStream(context=graph.context, cli_args=[
            '--ros-args', '-r', 'image:=wrist/image'], parameter_overrides=[
                Parameter('width', value=160), Parameter('height', value=120)]))
        assert graph.transition('configure')
        refused = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(monitor=Monitor(
            name='gripper', task='Is the door open?', period=0.5, cameras=['gripper'])))
        assert not refused.success
        assert refused.message == ("cameras: unknown camera 'gripper': this node has the "
                                   "cameras 'head', 'wrist'; leave cameras empty for all of them")
        added = _call(graph, AddMonitor, 'add_monitor', AddMonitor.Request(monitor=Monitor(
            name='grasp', task='Is the door open?', period=0.5, cameras=['wrist'])))
        assert added.success, added.message
        listed = _call(graph, ListMonitors, 'list_monitors', ListMonitors.Request())
        assert [list(monitor.cameras) for monitor in listed.monitors] == [[], [], ['wrist']]

        grasp = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/grasp', LATCHED)
        door = _Topic(graph, ReasoningResult, '/cosmos_reason/monitors/door', LATCHED)
        assert graph.transition('activate')
        # The first ticks may come before the wrist's first frame: wait for an answer.
        answered = None
        deadline = time.monotonic() + TIMEOUT
        while answered is None and time.monotonic() < deadline:
            answered = next((result for result in grasp.wait(len(grasp.messages) + 1)
                             if result.error_code == ReasoningResult.SUCCESS), None)
        assert answered is not None, [result.parse_error for result in grasp.messages]
        assert [view.name for view in answered.views] == ['wrist']
        failed = door.wait(1)[0]
        assert failed.error_code in (ReasoningResult.NO_FRAMES, ReasoningResult.STALE_FRAMES)
        assert "'head'" in failed.parse_error, failed.parse_error
    finally:
        graph.close()
