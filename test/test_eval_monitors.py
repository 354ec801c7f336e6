"""Evaluation of monitors: the labelled-monitor reader, the replay on the node's tick schedule,
the scoring of detection latency, missed and false events, the report and `cosmos-reason eval`.

Answers come from the ScriptedBackend (in turn, or computed from the frame the model gets), so
every tick's answer, and so every latency and count, is known exactly.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest
from recordings import steady, write_bag
from scripted_backend import ScriptedBackend

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.config import GoalDefaults, WindowConfig
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.monitor_labels import (
    LabelledEvent,
    MonitorItem,
    normalized_label,
)
from cosmos_reason_ros.core.evaluation.monitor_replay import (
    MonitorRun,
    MonitorTick,
    replay_monitors,
    tick_times,
)
from cosmos_reason_ros.core.evaluation.monitor_scoring import score_monitor
from cosmos_reason_ros.core.evaluation.question_file import load_questions, parse_question_set
from cosmos_reason_ros.core.evaluation.questions import QuestionSet, QuestionSetError
from cosmos_reason_ros.core.evaluation.report import build_report, render_markdown
from cosmos_reason_ros.core.evaluation.results import ANSWERED, ERROR, RunResult
from cosmos_reason_ros.core.monitors import MonitorSchedule, MonitorSpec
from cosmos_reason_ros.demo.sample_data import (
    LAMP_ON_AT,
    monitor_set_yaml,
    write_monitor_sample,
)
from cosmos_reason_ros.demo.sample_scene import lamp_box

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / 'examples' / 'monitors_sample.yaml'
TASK = 'Is the door open? Answer yes or no.'


def _set(monitors, **fields):
    return {'version': 1, 'source': 'bag', 'topic': '/camera/image', 'monitors': monitors,
            **fields}


def _door(**fields):
    return {'name': 'door_open', 'task': TASK, 'period': 1.0,
            'events': [{'answer': 'yes', 'from': 12.0}], **fields}


def _problems(data) -> str:
    with pytest.raises(QuestionSetError) as caught:
        parse_question_set(data, pathlib.Path('/data/questions.yaml'))
    return str(caught.value)


# --- the reader ---------------------------------------------------------------------------------

def test_the_documented_example_is_what_the_generator_writes_and_loads():
    assert EXAMPLE.read_text(encoding='utf-8') == monitor_set_yaml()
    questions = load_questions(EXAMPLE)
    assert questions.items == ()
    (monitor,) = questions.monitors
    assert monitor.spec.name == 'lamp_lit' and monitor.spec.period == 1.0
    assert monitor.spec.mode is Mode.QUESTION and monitor.spec.max_frames == 2
    assert monitor.initial == 'no', 'YAML reads a bare no as False; it means "no"'
    assert monitor.events == (LabelledEvent('yes', LAMP_ON_AT),)
    assert monitor.max_latency == 2.0
    assert monitor.source == str(EXAMPLE.parent / 'monitor_bag')
    assert monitor.topic == '/camera/image_raw'


def test_a_monitor_beside_items_and_its_defaults():
    questions = parse_question_set(
        _set([_door(initial=False, events=[{'answer': True, 'from': '0:12'},
                                           {'answer': 'No.', 'from': 20}])],
             items=[{'at': 1.0, 'mode': 'caption'}]),
        pathlib.Path('/data/questions.yaml'))
    assert len(questions.items) == 1
    (monitor,) = questions.monitors
    assert monitor.source == '/data/bag' and monitor.topic == '/camera/image'
    assert monitor.initial == 'no'
    assert monitor.events == (LabelledEvent('yes', 12.0), LabelledEvent('no', 20.0))
    assert monitor.max_latency == 3.0, 'the default is 3 periods'
    assert monitor.truth(11.9) == 'no' and monitor.truth(12.0) == 'yes'
    assert monitor.truth(25.0) == 'no'
    assert MonitorItem(monitor.spec, '', '', events=monitor.events).truth(1.0) == ''


def test_labels_normalize_as_the_node_normalizes_answers():
    assert normalized_label('Yes, it is open.', Mode.QUESTION, ()) == 'yes'
    assert normalized_label('  A person   Walks. ', Mode.CAPTION, ()) == 'a person walks'
    assert normalized_label('b', Mode.MULTIPLE_CHOICE, ('open', 'closed')) == 'B'
    assert normalized_label('Closed', Mode.MULTIPLE_CHOICE, ('open', 'closed')) == 'B'
    with pytest.raises(ValueError, match='neither one of the letters'):
        normalized_label('ajar', Mode.MULTIPLE_CHOICE, ('open', 'closed'))


@pytest.mark.parametrize('fields, message', [
    ({'colour': 'red'}, "monitor 1 ('door_open'): colour: unknown field"),
    ({'period': 0}, "monitor 1 ('door_open'): period: 0 s is below monitors.min_period"),
    ({'mode': 'dance'}, 'mode: '),
    ({'name': 'door open'}, 'name: '),
    ({'events': []}, 'events: a non-empty list'),
    ({'events': [{'answer': 'yes'}]}, 'events[0]: exactly the fields answer and from'),
    ({'events': [{'answer': 'yes', 'from': -1}]}, 'events[0].from: '),
    ({'events': [{'answer': '', 'from': 1}]}, 'events[0].answer: a non-empty answer'),
    ({'events': [{'answer': 'yes', 'from': 5}, {'answer': 'no', 'from': 5}]},
     'events[1].from: 5 s is not after the event before it'),
    ({'initial': 'yes'}, "events[0].answer: 'yes' is the answer already labelled"),
    ({'max_latency': 0}, 'max_latency: seconds > 0 expected'),
    ({'mode': 'multiple_choice', 'choices': ['open', 'closed'],
      'events': [{'answer': 'ajar', 'from': 1}]}, 'events[0].answer: '),
])
def test_invalid_monitors_are_refused_naming_the_field(fields, message):
    assert message in _problems(_set([_door(**fields)]))


def test_every_problem_is_listed_at_once_and_names_are_unique():
    text = _problems(_set([_door(period=0), _door(), _door(), {'task': TASK}]))
    assert 'has 3 problem(s)' in text
    assert "monitor 1 ('door_open'): period" in text
    assert "monitor 3 ('door_open'): name: 'door_open' is already used" in text
    assert 'monitor 4: name' in text


def test_a_set_needs_items_or_monitors():
    assert "'items' must be a non-empty list (or leave it out and give 'monitors')" in \
        _problems({'version': 1, 'source': 'bag'})


# --- the tick schedule ---------------------------------------------------------------------------

def test_ticks_fall_where_the_node_would_tick_them():
    schedule = MonitorSchedule()
    states = [schedule.add(MonitorSpec('fast', period=1.0, task=TASK), 100.0),
              schedule.add(MonitorSpec('slow', period=2.0, task=TASK), 100.0)]
    schedule.start(100.0)
    ticks = [(when, state.spec.name) for when, state in tick_times(schedule, states, 104.0)]
    # At activate the second monitor is due half the shortest period later, as on the node.
    assert ticks == [(100.0, 'fast'), (100.5, 'slow'), (101.0, 'fast'), (102.0, 'fast'),
                     (102.5, 'slow'), (103.0, 'fast'), (104.0, 'fast')]
    assert [state.skipped for state in states] == [0, 0], 'no tick is skipped offline'


def test_the_replay_ticks_from_the_first_frame_on_the_frames_logged_so_far(tmp_path):
    # Frames logged 4 ms after their stamps; the bag starts with a status message at 0.
    bag = write_bag(tmp_path / 'bag', steady(4.0))
    monitor = MonitorItem(spec=MonitorSpec('door', period=1.0, task=TASK, max_frames=2,
                                           window_duration=1.0),
                          source=str(bag), topic='/camera/image', initial='no',
                          events=(LabelledEvent('yes', 2.0),), max_latency=2.0)
    backend = ScriptedBackend({TASK: ['No.', 'no', 'Yes, it is.', 'yes']})
    settings = ReplaySettings(window=WindowConfig(max_pixels=160 * 120),
                              goals=GoalDefaults(max_new_tokens=8))
    (run,), interrupted = replay_monitors([monitor], backend, settings)
    assert not interrupted and run.error == ''
    assert [tick.offset for tick in run.ticks] == pytest.approx([0.004, 1.004, 2.004, 3.004],
                                                                abs=1e-6)
    assert [tick.answer for tick in run.ticks] == ['no', 'no', 'yes', 'yes']
    # Each tick's window ends at the newest frame kept (4 fps by stamp) logged before it.
    ends = [request.timestamps[-1] for request in backend.requests]
    assert len(backend.requests) == 4 and all(len(r.frames) <= 2 for r in backend.requests)
    assert ends[0] == 0.0
    assert all(tick.frame_age is not None and tick.frame_age < 0.26 for tick in run.ticks)
    assert all(request.sampling.greedy for request in backend.requests)
    record = score_monitor(run)
    assert record['events'][0]['latency'] == pytest.approx(0.004, abs=1e-6)
    assert record['detected']['k'] == 1 and record['false_events']['k'] == 0


def test_a_tick_without_frames_fresh_enough_is_an_error_not_an_answer(tmp_path):
    # A camera that stops for 3 s: the tick in the gap gets STALE_FRAMES, as on the node.
    frames = [(t, t) for t in np.arange(0.0, 1.0, 0.25)] + \
             [(t, t) for t in np.arange(4.0, 5.0, 0.25)]
    bag = write_bag(tmp_path / 'bag', frames)
    monitor = MonitorItem(spec=MonitorSpec('door', period=1.0, task=TASK),
                          source=str(bag), topic='/camera/image')
    settings = ReplaySettings(window=WindowConfig(max_pixels=160 * 120),
                              goals=GoalDefaults(max_new_tokens=8, max_frame_age=1.0))
    (run,), _ = replay_monitors([monitor], ScriptedBackend({TASK: 'no'}), settings)
    assert [(round(tick.offset, 3), tick.status, tick.error_code) for tick in run.ticks] == [
        (0.0, ANSWERED, ''), (1.0, ANSWERED, ''), (2.0, ERROR, 'stale_frames'),
        (3.0, ERROR, 'stale_frames'), (4.0, ANSWERED, '')]
    assert run.ticks[2].answer is None


# --- scoring -------------------------------------------------------------------------------------

def _scripted_run(answers, events, *, initial='no', max_latency=2.0) -> MonitorRun:
    monitor = MonitorItem(spec=MonitorSpec('door', period=1.0, task=TASK), source='bag',
                          topic='', initial=initial,
                          events=tuple(LabelledEvent(a, t) for a, t in events),
                          max_latency=max_latency)
    ticks = [MonitorTick(offset=float(t), status=ANSWERED if a else ERROR, answer=a,
                         error_code='' if a else 'stale_frames')
             for t, a in enumerate(answers)]
    return MonitorRun(monitor, ticks, end_offset=len(answers) - 1.0)


def test_latency_missed_and_false_events_on_a_scripted_sequence():
    # t:        0     1     2      3     4     5     6      7      8      9      10     11
    answers = ['no', 'no', 'yes', 'no', None, 'no', 'yes', 'yes', 'yes', 'yes', 'yes', 'yes']
    record = score_monitor(_scripted_run(answers, [('yes', 5.0), ('no', 9.0)]))
    first, second = record['events']
    assert (first['detected'], first['tick'], first['latency']) == (True, 6.0, 1.0)
    assert (second['detected'], second['latency']) == (False, None)
    assert record['missed'] == 1 and record['detected'] == {**record['detected'], 'k': 1, 'n': 2}
    # Changes: 2 to yes (labelled no: false), 3 back to no (right), 6 to yes (the detection).
    assert [(c['at'], c['answer'], c['false']) for c in record['changes']] == [
        (2.0, 'yes', True), (3.0, 'no', False), (6.0, 'yes', False)]
    assert (record['false_events']['k'], record['false_events']['n']) == (1, 3)
    assert record['latency']['count'] == 1 and record['latency']['mean'] == 1.0
    # Agreement: of the 11 answered ticks, 0, 1, 3, 6, 7, 8 give the labelled answer.
    assert (record['agreement']['k'], record['agreement']['n']) == (6, 11)
    assert record['ticks']['errors'] == {'stale_frames': 1}
    low, high = record['false_events']['interval']
    assert 0.0 < low < 1 / 3 < high < 1.0


def test_an_event_the_recording_ends_in_is_not_observable_and_unlabelled_changes_unjudged():
    answers = ['yes', 'no', 'no', 'no']
    record = score_monitor(_scripted_run(answers, [('yes', 2.5)], initial='', max_latency=2.0))
    (event,) = record['events']
    assert event['detected'] is None and record['unobservable'] == 1 and record['missed'] == 0
    assert record['detected']['n'] == 0
    assert record['changes'][0]['false'] is None and record['unjudged_changes'] == 1
    assert record['first_answer'] == {'at': 0.0, 'answer': 'yes', 'labelled': None}


def test_detection_stops_at_the_next_event_and_a_late_answer_is_missed():
    answers = ['no'] * 4 + ['yes'] * 4
    record = score_monitor(_scripted_run(answers, [('yes', 1.0), ('no', 2.5)],
                                         max_latency=5.0))
    assert [event['detected'] for event in record['events']] == [False, True]
    assert record['events'][0]['until'] == 2.5
    assert record['events'][1]['latency'] == 0.5
    (change,) = record['changes']
    assert change['at'] == 4.0 and change['false'] is True


# --- the report ----------------------------------------------------------------------------------

def _run_result(runs, **fields) -> RunResult:
    questions = QuestionSet(name='doors', path='doors.yaml', items=(),
                            monitors=tuple(run.monitor for run in runs))
    return RunResult(question_set=questions, results=[], sources=[], model={}, settings={},
                     monitors=runs, **fields)


def test_the_report_holds_a_monitors_block_and_section():
    runs = [_scripted_run(['no', 'no', 'yes', 'yes'], [('yes', 1.5)]),
            _scripted_run(['no', 'yes', 'no', 'no'], [('yes', 1.0)])]
    runs[1].monitor = dataclasses.replace(runs[1].monitor,
                                          spec=MonitorSpec('window', period=1.0, task=TASK))
    report = build_report(_run_result(runs))
    block = report['monitors']
    assert block['replayed'] and 'Not modelled' in block['note']
    summary = block['summary']
    assert (summary['detected']['k'], summary['detected']['n']) == (2, 2)
    # The second monitor changes to yes at 1 (right) and back to no at 2 (labelled yes: false).
    assert (summary['false_events']['k'], summary['false_events']['n']) == (1, 3)
    assert summary['latency']['max'] == 0.5 and summary['monitors'] == 2
    json.dumps(block, allow_nan=False)
    markdown = render_markdown(report)
    assert '## Monitors' in markdown and '### Monitor `window`' in markdown
    assert '| events detected | 2 of 2 (100.0%, 95% CI' in markdown
    assert '| 2.000 | yes | no | yes | false |' in markdown


def test_reports_of_sets_without_monitors_have_no_block_and_shards_say_why():
    plain = QuestionSet(name='q', path='q.yaml', items=())
    report = build_report(RunResult(question_set=plain, results=[], sources=[], model={},
                                    settings={}))
    assert 'monitors' not in report and '## Monitors' not in render_markdown(report)
    questions = QuestionSet(name='doors', path='doors.yaml', items=(),
                            monitors=(_scripted_run(['no'], [('yes', 1.0)]).monitor,))
    skipped = build_report(RunResult(question_set=questions, results=[], sources=[], model={},
                                     settings={}, monitors_skipped='Not replayed in shard 1/2.'))
    assert skipped['monitors']['replayed'] is False
    assert skipped['monitors']['monitors'] == []
    assert 'Not replayed in shard 1/2.' in render_markdown(skipped)


# --- cosmos-reason eval --------------------------------------------------------------------------

def _lamp_detector(request) -> str:
    """Answers like a perfect model: looks at the lamp in the newest frame it is sent."""
    image = np.asarray(request.frames[-1])
    height, width = image.shape[:2]
    x1, y1, x2, y2 = lamp_box(width, height)
    red, green, blue = image[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
    return 'Yes, it is lit.' if green > 150 and red < 120 else 'No.'


def test_cli_eval_replays_the_monitor_sample_end_to_end(tmp_path, monkeypatch, capsys):
    monitors = write_monitor_sample(tmp_path)
    backend = ScriptedBackend({'lamp': _lamp_detector})
    monkeypatch.setattr(cli, '_load_backend', lambda args: backend)
    out = tmp_path / 'report'
    code = cli.main(['eval', str(tmp_path / 'monitor_bag'), '--questions', str(monitors),
                     '--out', str(out), '--quiet'])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)['monitors']
    assert printed['replayed'] and printed['detected']['k'] == 1
    report = json.loads((out / 'report.json').read_text())
    (record,) = report['monitors']['monitors']
    # The bag starts with the first frame: ticks at 0, 1, ..., 7 s; the lamp lights at 5.0 s
    # and the tick at 5.0 s sees the frame stamped 5.0 s (logged at 5.0 s after the start).
    assert [tick['at'] for tick in record['tick_log']] == pytest.approx(
        [float(t) for t in range(8)], abs=1e-6)
    assert [tick['answer'] for tick in record['tick_log']] == ['no'] * 5 + ['yes'] * 3
    (event,) = record['events']
    assert event['detected'] is True and event['latency'] == pytest.approx(0.0, abs=1e-6)
    assert record['missed'] == 0 and record['false_events']['k'] == 0
    assert record['agreement'] == {**record['agreement'], 'k': 8, 'n': 8}
    assert '## Monitors' in (out / 'report.md').read_text()
    assert len(backend.requests) == 8


def test_cli_eval_with_a_shard_reports_the_monitors_as_not_replayed(tmp_path, monkeypatch,
                                                                     capsys):
    monitors = write_monitor_sample(tmp_path)
    backend = ScriptedBackend({'lamp': 'no'})
    monkeypatch.setattr(cli, '_load_backend', lambda args: backend)
    out = tmp_path / 'report'
    code = cli.main(['eval', str(tmp_path / 'monitor_bag'), '--questions', str(monitors),
                     '--out', str(out), '--quiet', '--shard', '1/2'])
    assert code == 0, capsys.readouterr().err
    block = json.loads((out / 'report.json').read_text())['monitors']
    assert block['replayed'] is False and 'shard 1/2' in block['note']
    assert backend.requests == []
