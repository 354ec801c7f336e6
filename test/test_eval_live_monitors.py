"""Live evaluation of monitors on a real rclpy graph: the node on sim time with a scripted model
that looks at the lamp of the newest frame, a bag player, and the live client that adds the set's
monitors to the node, scores what it publishes against the labels, and removes them.

Timing tolerances: the node ticks every period on its own (wall) clock while the bag plays at
rate 1, so a tick's frame is the newest one at an unknown phase. The lamp's change at 5 s must be
detected within the label's max_latency (2 s: one period plus one period of slack for a loaded
machine), and at least 4 of the 6 ticks due between 1 s and 7 s must arrive.
"""

import threading

from bag_player import BagPlayer
import numpy as np
import pytest
from ros_graph import Graph, TIMEOUT
from scripted_backend import ScriptedBackend
from std_msgs.msg import Header

from cosmos_reason_ros.core.answers.parsing import ParseStatus
from cosmos_reason_ros.core.camera.images import stamp_seconds
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.monitor_labels import MonitorItem
from cosmos_reason_ros.core.evaluation.question_file import parse_question_set
from cosmos_reason_ros.core.evaluation.report import load_report, write_report
from cosmos_reason_ros.core.evaluation.sources import BagSource, Timeline
from cosmos_reason_ros.core.monitors import MonitorSpec
from cosmos_reason_ros.demo.sample_data import LAMP_ON_AT, RAW_TOPIC, write_sample_bag
from cosmos_reason_ros.demo.sample_scene import lamp_box
from cosmos_reason_ros.msg import MonitorEvent, ReasoningResult
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.live_eval import LiveEvaluation, LiveSettings
from cosmos_reason_ros.ros.live_monitors import _tick_of, monitor_message

W, H, SECONDS = 160, 120, 8.0
SETTINGS = ReplaySettings(window=WindowConfig(max_pixels=W * H))
TASK = 'Is the lamp in the top left corner lit green?'


def _lamp_detector(request) -> str:
    """Answers like a perfect model: looks at the lamp in the newest frame it is sent."""
    image = np.asarray(request.frames[-1])
    height, width = image.shape[:2]
    x1, y1, x2, y2 = lamp_box(width, height)
    red, green, _ = image[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
    return 'Yes, it is lit.' if green > 150 and red < 120 else 'No.'


@pytest.fixture
def bag(tmp_path):
    return write_sample_bag(tmp_path / 'bag', width=W, height=H, seconds=SECONDS,
                            compressed=False, depth=False, lamp_on_at=LAMP_ON_AT)


def _questions(bag, tmp_path):
    return parse_question_set({
        'version': 1, 'source': str(bag), 'topic': RAW_TOPIC,
        'defaults': {'window_duration': 1.0, 'max_frames': 2, 'max_new_tokens': 8},
        'items': [{'id': 'lamp-now', 'at': 6.5, 'mode': 'question', 'task': TASK,
                   'expected': {'verdict': 'yes'}}],
        'monitors': [
            {'name': 'lamp_lit', 'task': TASK, 'period': 1.0, 'window_duration': 1.0,
             'max_frames': 2, 'initial': 'no', 'events': [{'answer': 'yes', 'from': LAMP_ON_AT}],
             'max_latency': 2.0},
            # monitors.max_count is 1 on the node: this one is refused, the first still runs.
            {'name': 'lamp_again', 'task': TASK, 'period': 1.0, 'initial': 'no',
             'events': [{'answer': 'yes', 'from': LAMP_ON_AT}]},
        ]}, tmp_path / 'questions.yaml')


def test_live_monitors_are_added_scored_on_what_the_node_publishes_and_removed(
        bag, tmp_path, monkeypatch):
    questions = _questions(bag, tmp_path)
    backend = ScriptedBackend({'lamp': _lamp_detector})
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    graph = Graph('scripted', camera=False, use_sim_time=True, **{
        'window.max_pixels': W * H, 'goal.frame_wait_timeout': 5.0, 'monitors.max_count': 1})
    player = BagPlayer(graph.context, bag, {RAW_TOPIC: '/image'})
    # What the node itself publishes as events, to check the scored changes against.
    events: list[MonitorEvent] = []
    graph.peer.create_subscription(MonitorEvent, '/cosmos_reason/monitor_events',
                                   events.append, 50)
    try:
        assert graph.node.wait_until_loaded(TIMEOUT), graph.node.model_state
        evaluation = LiveEvaluation(
            graph.peer, questions, action='/cosmos_reason/reason',
            settings=LiveSettings(replay=SETTINGS, start_timeout=TIMEOUT, stall_timeout=5.0,
                                  result_timeout=TIMEOUT))
        assert player.wait_for_subscribers({'/image': 1, '/clock': 2}, TIMEOUT)
        runs = []
        client = threading.Thread(target=lambda: runs.append(evaluation.run()))
        client.start()
        player.start()
        client.join(TIMEOUT)
        assert not client.is_alive(), 'the live client did not finish'
        assert player.finished.wait(TIMEOUT) and player.error is None
        left_on_node = [stats.name for stats in graph.node._monitors.stats()]
        evaluation.destroy()
    finally:
        player.stop()
        graph.close()

    (live,) = runs
    assert left_on_node == [], 'the client removes its monitors at the end'
    (item,) = live.results
    assert item.status == 'answered' and item.score.correct, (item.error_code, item.error)
    lamp, refused = live.monitors
    assert 'not run: the node refused it' in refused.error and 'max_count' in refused.error
    assert refused.ticks == []
    assert lamp.error == '' and lamp.end_offset == pytest.approx(SECONDS - 1 / 30, abs=0.05)

    answered = [tick for tick in lamp.ticks if tick.answer is not None]
    assert all(0.0 <= tick.offset <= SECONDS for tick in lamp.ticks)
    # The scripted model is right about every frame it sees: the answer follows the frame.
    for tick in answered:
        assert tick.answer == ('yes' if tick.offset >= LAMP_ON_AT - 1e-6 else 'no'), tick
    assert len([t for t in answered if 1.0 <= t.offset <= 7.0]) >= 4, lamp.ticks

    report = load_report(write_report(live, tmp_path / 'live'))
    block = report['monitors']
    assert block['replayed'] and block['note'].startswith('Evaluated live')
    assert 'extra detection latency' in block['note']
    record, refused_record = block['monitors']
    (event,) = record['events']
    assert event['detected'] is True and 0.0 <= event['latency'] <= 2.0, event
    assert record['missed'] == 0 and record['false_events']['k'] == 0
    assert record['agreement']['k'] == record['agreement']['n'] == len(answered)
    assert refused_record['error'].startswith('not run: the node refused it')
    assert '## Monitors' in (tmp_path / 'live' / 'report.md').read_text()

    # The changes scored are the node's own events (its first one, from no answer, is not a
    # change); none came from the refused monitor.
    timeline = Timeline.read(BagSource(bag, RAW_TOPIC))
    published = [(timeline.bag_time_of(stamp_seconds(event.header.stamp)) - timeline.start,
                  event.previous_answer, event.answer)
                 for event in events if event.previous_answer]
    assert {event.monitor for event in events} == {'lamp_lit'}
    assert published == [(pytest.approx(change['at'], abs=1e-6), change['previous'],
                          change['answer']) for change in record['changes']]
    assert published and published[0][1:] == ('no', 'yes')


def _result(stamp: float, answer: str = '', *, failed: str = '') -> ReasoningResult:
    msg = ReasoningResult(answer=answer, raw_text=answer, mode='question',
                          parse_status=int(ParseStatus.NOT_RUN if failed else ParseStatus.OK))
    msg.header = Header()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round(stamp % 1 * 1e9))
    msg.parse_error = failed
    return msg


def test_a_result_becomes_a_tick_at_its_frames_bag_time_and_failures_at_the_clock():
    # Frames stamped 0.5 s before they were logged, every 0.5 s from bag time 100.
    timeline = Timeline(start=100.0, bag_times=(100.0, 100.5, 101.0),
                        stamps_ns=(99_500_000_000, 100_000_000_000, 100_500_000_000))
    spec = MonitorSpec('door', period=1.0, task='Is the door open?')
    tick = _tick_of(spec, timeline, _result(100.0, 'Yes.'), clock_now=100.7)
    assert tick.offset == pytest.approx(0.5) and tick.answer == 'yes'
    assert tick.frame_age == pytest.approx(0.2)
    assert _tick_of(spec, timeline, _result(42.0, 'Yes.'), clock_now=100.7) is None, \
        'a frame that is not in the recording'
    failed = _result(0.0, failed='STALE_FRAMES: the newest frame is 3 s old')
    tick = _tick_of(spec, timeline, failed, clock_now=100.8)
    assert tick.status == 'error' and tick.answer is None
    assert tick.offset == pytest.approx(0.8) and tick.error_code == 'stale_frames'
    assert _tick_of(spec, timeline, failed, clock_now=None) is None, 'before the bag plays'
    assert _tick_of(spec, timeline, failed, clock_now=99.0) is None


def test_the_add_request_carries_the_sets_spec():
    item = MonitorItem(MonitorSpec('door', period=2.0, task='Open?', max_frames=3,
                                   on_change_only=False), source='bag', topic='/image')
    msg = monitor_message(item.spec)
    assert (msg.name, msg.task, msg.mode, msg.period) == ('door', 'Open?', 'question', 2.0)
    assert msg.max_frames == 3 and msg.on_change_only is False
