"""Monitors in the core: the spec and its checks, the normalized answer, the tick schedule, and
the goal scheduler's rules between goals and ticks (table-driven).
"""

import pathlib

import pytest

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import ParsedAnswer, ParseStatus
from cosmos_reason_ros.core.monitors import (
    InvalidMonitorError,
    MonitorBounds,
    MonitorSchedule,
    MonitorSpec,
    normalized_answer,
    parse_monitor,
    read_monitor_file,
)
from cosmos_reason_ros.core.reasoner import ReasonRequest
from cosmos_reason_ros.core.scheduling import (
    BusyError,
    GoalScheduler,
    Policy,
    TicketState,
    TickYield,
)

# Goal scheduler: ticks below goals ---------------------------------------------------------


class _Slots:
    """A scheduler with a log of what started and what was stopped."""

    def __init__(self, policy: Policy, tick_yield: TickYield, slots: int = 1):
        self.scheduler = GoalScheduler(policy, slots=slots, tick_yield=tick_yield)
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.tickets = {}

    def goal(self, name: str) -> str:
        """Admit a goal; 'running', 'waiting' or 'busy'."""
        try:
            ticket = self.scheduler.admit(lambda ticket: self.started.append(name),
                                          lambda ticket: self.stopped.append(name))
        except BusyError:
            return 'busy'
        self.tickets[name] = ticket
        return 'running' if ticket.running else 'waiting'

    def tick(self, name: str) -> str:
        """Ask for a tick's slot; 'running' or 'skipped'."""
        ticket = self.scheduler.admit_tick(lambda ticket: self.stopped.append(name))
        if ticket is None:
            return 'skipped'
        self.tickets[name] = ticket
        return 'running'


# Each row: policy, tick_yield, slots, steps (kind, name, expected outcome), ticks stopped.
SCHEDULER_RULES = [
    # A tick due while a goal runs (or waits) is skipped, under every policy.
    (Policy.REJECT, TickYield.PREEMPT, 1, [('goal', 'g', 'running'), ('tick', 't', 'skipped')],
     []),
    (Policy.QUEUE, TickYield.WAIT, 1, [('goal', 'g', 'running'), ('tick', 't', 'skipped')], []),
    (Policy.PREEMPT, TickYield.PREEMPT, 1,
     [('goal', 'g', 'running'), ('tick', 't', 'skipped')], []),
    # A tick never queues behind another tick.
    (Policy.QUEUE, TickYield.WAIT, 1, [('tick', 't1', 'running'), ('tick', 't2', 'skipped')],
     []),
    # A goal arriving during a tick waits for its slot, under reject too (never BUSY); under
    # preempt the tick is stopped, under wait it is not.
    (Policy.REJECT, TickYield.PREEMPT, 1, [('tick', 't', 'running'), ('goal', 'g', 'waiting')],
     ['t']),
    (Policy.REJECT, TickYield.WAIT, 1, [('tick', 't', 'running'), ('goal', 'g', 'waiting')],
     []),
    (Policy.QUEUE, TickYield.PREEMPT, 1, [('tick', 't', 'running'), ('goal', 'g', 'waiting')],
     ['t']),
    (Policy.QUEUE, TickYield.WAIT, 1, [('tick', 't', 'running'), ('goal', 'g', 'waiting')], []),
    (Policy.PREEMPT, TickYield.PREEMPT, 1,
     [('tick', 't', 'running'), ('goal', 'g', 'waiting')], ['t']),
    (Policy.PREEMPT, TickYield.WAIT, 1, [('tick', 't', 'running'), ('goal', 'g', 'waiting')],
     []),
    # Only one goal takes the tick's slot: a second one meets the goal policy as if the first
    # held the model.
    (Policy.REJECT, TickYield.PREEMPT, 1,
     [('tick', 't', 'running'), ('goal', 'g1', 'waiting'), ('goal', 'g2', 'busy')], ['t']),
    (Policy.QUEUE, TickYield.PREEMPT, 1,
     [('tick', 't', 'running'), ('goal', 'g1', 'waiting'), ('goal', 'g2', 'waiting')], ['t']),
    # A waiting goal keeps ticks out.
    (Policy.REJECT, TickYield.WAIT, 1,
     [('tick', 't1', 'running'), ('goal', 'g', 'waiting'), ('tick', 't2', 'skipped')], []),
    # Several slots: a tick takes a free one; a goal then takes the other.
    (Policy.REJECT, TickYield.PREEMPT, 2,
     [('tick', 't', 'running'), ('goal', 'g1', 'running'), ('goal', 'g2', 'waiting')], ['t']),
]


@pytest.mark.parametrize('policy, tick_yield, slots, steps, stopped', SCHEDULER_RULES)
def test_scheduler_rules_between_goals_and_ticks(policy, tick_yield, slots, steps, stopped):
    slots_ = _Slots(policy, tick_yield, slots)
    for kind, name, expected in steps:
        assert getattr(slots_, kind)(name) == expected, (kind, name)
    assert slots_.stopped == stopped


@pytest.mark.parametrize('tick_yield', list(TickYield))
def test_the_waiting_goal_starts_when_the_tick_gives_its_slot_back(tick_yield):
    slots = _Slots(Policy.REJECT, tick_yield)
    slots.tick('t')
    slots.goal('g')
    assert slots.started == [] and slots.scheduler.ticking == 1
    slots.tickets['t'].release()
    assert slots.started == ['g'] and slots.tickets['g'].running
    assert slots.scheduler.ticking == 0 and slots.scheduler.busy == 1
    slots.tickets['g'].release()
    assert slots.tick('t2') == 'running', 'the model is free for ticks again'


def test_a_goal_preempting_under_policy_preempt_ends_waiting_goals_not_the_waiting_tick():
    slots = _Slots(Policy.PREEMPT, TickYield.WAIT)
    slots.tick('t')
    assert slots.goal('g1') == 'waiting'
    assert slots.goal('g2') == 'waiting'
    # g1 is ended (started without a slot, as the node's queued goals are); the tick runs on.
    assert slots.tickets['g1'].state is TicketState.WITHDRAWN and slots.started == ['g1']
    assert slots.stopped == []
    slots.tickets['t'].release()
    assert slots.started == ['g1', 'g2'] and slots.tickets['g2'].running


# Monitor spec ------------------------------------------------------------------------------


@pytest.mark.parametrize('entry, field, words', [
    ({'name': 'door', 'mode': 'dance', 'task': 'x', 'period': 1}, 'mode', 'unknown mode'),
    ({'name': 'door', 'task': 'x', 'period': 0}, 'period', 'below monitors.min_period'),
    ({'name': 'door', 'task': 'x', 'period': 0.1}, 'period', 'below monitors.min_period'),
    ({'name': 'door', 'task': 'x'}, 'period', 'missing'),
    ({'name': 'door', 'task': 'x', 'period': float('nan')}, 'period', 'a number expected'),
    ({'name': 'door', 'task': 'x', 'period': 'often'}, 'period', 'a number expected'),
    ({'name': 'front door', 'task': 'x', 'period': 1}, 'name', 'not a valid topic name'),
    ({'name': '1door', 'task': 'x', 'period': 1}, 'name', 'not a valid topic name'),
    ({'name': 'door/open', 'task': 'x', 'period': 1}, 'name', 'not a valid topic name'),
    ({'name': '', 'task': 'x', 'period': 1}, 'name', 'not a valid topic name'),
    ({'name': 'door', 'period': 1}, 'task', 'question mode needs'),
    ({'name': 'door', 'mode': 'grounding', 'period': 1}, 'object_name', 'object to locate'),
    ({'name': 'door', 'mode': 'multiple_choice', 'task': 'x', 'choices': ['a'], 'period': 1},
     'choices', '2 to 26 choices'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'max_frames': 2.5}, 'max_frames', 'whole'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'max_new_tokens': -1}, 'max_new_tokens',
     'negative'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'on_change_only': 'yes'}, 'on_change_only',
     'true or false'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'every': 2}, 'every', 'unknown field'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'cameras': 'head'}, 'cameras',
     'a list of camera names'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'cameras': ['head', 3]}, 'cameras',
     'a list of camera names'),
    ({'name': 'door', 'task': 'x', 'period': 1, 'cameras': ['head', 'head']}, 'cameras',
     "'head' is named more than once"),
])
def test_an_invalid_monitor_is_refused_naming_its_field(entry, field, words):
    with pytest.raises(InvalidMonitorError, match=words) as caught:
        parse_monitor(entry, MonitorBounds(min_period=0.5))
    assert caught.value.field == field
    assert str(caught.value).startswith(f'{field}:')


def test_a_valid_monitor_reads_every_field_and_asks_greedily():
    spec = parse_monitor({
        'name': 'shelf_state', 'mode': 'multiple_choice', 'task': ' Is the shelf full? ',
        'choices': ['full', 'empty'], 'period': 2, 'window_duration': 4.0, 'max_frames': 8,
        'reasoning': True, 'max_new_tokens': 64, 'on_change_only': False})
    assert spec == MonitorSpec(
        name='shelf_state', period=2.0, mode=Mode.MULTIPLE_CHOICE, task='Is the shelf full?',
        window_duration=4.0, max_frames=8, reasoning=True, choices=('full', 'empty'),
        max_new_tokens=64, on_change_only=False)
    request = spec.request()
    assert request.greedy and request.window_end is None
    assert (request.mode, request.choices, request.max_frames) == (
        Mode.MULTIPLE_CHOICE, ('full', 'empty'), 8)
    assert request.priority == -1 < ReasonRequest(mode=Mode.QUESTION, task='?').priority


def test_a_monitor_file_keeps_the_valid_monitors_and_names_each_refused_one(tmp_path):
    path = tmp_path / 'monitors.yaml'
    path.write_text("""
monitors:
  - {name: person_in_path, task: "Is a person in the robot's path?", period: 1.0}
  - {name: bad_mode, mode: dance, task: x, period: 1.0}
  - {name: zero_period, task: x, period: 0}
  - {name: person_in_path, task: again, period: 2.0}
  - {name: not a topic, task: x, period: 1.0}
  - {name: scene, mode: caption, period: 2.0}
  - {name: third, mode: caption, period: 2.0}
""")
    specs, errors = read_monitor_file(path, MonitorBounds(max_count=2))
    assert [spec.name for spec in specs] == ['person_in_path', 'scene']
    assert [error.field for error in errors] == ['mode', 'period', 'name', 'name', 'name']
    messages = [str(error) for error in errors]
    assert messages[0].startswith("monitor 2 ('bad_mode'): mode:")
    assert 'taken by another monitor' in messages[2]
    assert 'monitors.max_count' in messages[4]


@pytest.mark.parametrize('text, words', [
    ('[unclosed', 'cannot be read'),
    ('monitors: 3', 'must hold a list'),
])
def test_an_unreadable_monitor_file_is_one_error_for_the_file(tmp_path, text, words):
    path = tmp_path / 'monitors.yaml'
    path.write_text(text)
    with pytest.raises(InvalidMonitorError, match=words):
        read_monitor_file(path)
    with pytest.raises(InvalidMonitorError, match='cannot be read'):
        read_monitor_file(tmp_path / 'missing.yaml')


def test_a_monitor_naming_cameras_asks_each_tick_about_them_in_its_order():
    spec = parse_monitor({'name': 'grasp', 'task': 'Does the gripper hold the part?',
                          'period': 1, 'cameras': ['wrist', 'head']})
    assert spec.cameras == ('wrist', 'head')
    assert spec.request().cameras == ('wrist', 'head')
    assert parse_monitor({'name': 'any', 'task': 'x', 'period': 1}).request().cameras == ()


@pytest.mark.parametrize('node_cameras, named, words', [
    (('head', 'wrist'), ('wrist', 'gripper'),
     "unknown camera 'gripper': this node has the cameras 'head', 'wrist'"),
    (('',), ('head',), "unknown camera 'head': this node has one unnamed camera"),
    (('head',), ('',), "unknown camera '': this node has the cameras 'head'"),
])
def test_a_monitor_naming_a_camera_the_node_lacks_is_refused_naming_the_known_ones(
        node_cameras, named, words):
    schedule = MonitorSchedule(MonitorBounds(), cameras=node_cameras)
    spec = MonitorSpec(name='grasp', period=1.0, task='x', cameras=named)
    with pytest.raises(InvalidMonitorError, match=words) as caught:
        schedule.add(spec, now=0.0)
    assert caught.value.field == 'cameras' and not schedule.specs


def test_a_monitor_naming_the_nodes_cameras_is_added():
    schedule = MonitorSchedule(MonitorBounds(), cameras=('head', 'wrist'))
    schedule.add(MonitorSpec(name='grasp', period=1.0, task='x', cameras=('wrist',)), now=0.0)
    schedule.add(MonitorSpec(name='both', period=1.0, task='x',
                             cameras=('wrist', 'head')), now=0.0)
    schedule.add(MonitorSpec(name='all', period=1.0, task='x'), now=0.0)
    assert [spec.name for spec in schedule.specs] == ['grasp', 'both', 'all']


def test_a_monitor_file_refuses_a_monitor_with_an_unknown_camera_and_keeps_the_rest(tmp_path):
    path = tmp_path / 'monitors.yaml'
    path.write_text("""
- {name: grasp, task: "Does the gripper hold the part?", period: 1.0, cameras: [wrist]}
- {name: shelf, task: "Is the shelf full?", period: 2.0, cameras: [shelf_cam]}
- {name: scene, mode: caption, period: 2.0}
""")
    specs, errors = read_monitor_file(path, MonitorBounds(), cameras=('head', 'wrist'))
    assert [(spec.name, spec.cameras) for spec in specs] == [('grasp', ('wrist',)),
                                                             ('scene', ())]
    assert [error.field for error in errors] == ['cameras']
    assert str(errors[0]).startswith("monitor 2 ('shelf'): cameras: unknown camera 'shelf_cam'")


def test_the_example_monitor_file_is_valid():
    path = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'monitors' / 'example.yaml'
    specs, errors = read_monitor_file(path)
    assert specs and not errors


# Normalized answer -------------------------------------------------------------------------


def _parsed(answer: str = '', **fields) -> ParsedAnswer:
    return ParsedAnswer(reasoning='', answer=answer, status=ParseStatus.OK, **fields)


@pytest.mark.parametrize('mode, parsed, normalized', [
    (Mode.QUESTION, _parsed('Yes, a person stands there.', verdict='yes'), 'yes'),
    (Mode.QUESTION, _parsed('No.', verdict='no'), 'no'),
    (Mode.QUESTION, _parsed('  Two   People. '), 'two people'),
    (Mode.MULTIPLE_CHOICE, _parsed('(B) empty', choice='B'), 'B'),
    (Mode.NEXT_ACTION, _parsed('Open the door.\n\nThen go.', next_action='Open the door.'),
     'open the door'),
    (Mode.CAPTION, _parsed('A robot arm\npicks a cup.'), 'a robot arm picks a cup'),
    (Mode.CAPTION, _parsed(''), ''),
])
def test_the_normalized_answer_of_each_mode(mode, parsed, normalized):
    assert normalized_answer(mode, parsed) == normalized


def test_only_a_change_of_the_normalized_answer_is_a_change():
    state = MonitorSchedule().add(MonitorSpec(name='door', period=1.0, task='x'), now=0.0)
    seen = [state.observe(normalized_answer(Mode.QUESTION, parsed)) for parsed in (
        _parsed('Yes.', verdict='yes'), _parsed('Yes, it is open', verdict='yes'),
        _parsed('No', verdict='no'), _parsed('no.', verdict='no'))]
    assert seen == [('', True), ('yes', False), ('yes', True), ('no', False)]


# Tick schedule -----------------------------------------------------------------------------


def _schedule(*periods: float, start: float = 0.0) -> MonitorSchedule:
    schedule = MonitorSchedule(MonitorBounds(min_period=0.1))
    for index, period in enumerate(periods):
        schedule.add(MonitorSpec(name=f'm{index}', period=period, task='x'), now=start)
    schedule.start(start)
    return schedule


def _run(schedule: MonitorSchedule, until: float, *, step: float = 0.05,
         tick_time: float = 0.0, busy=lambda now: False) -> list[tuple[float, str]]:
    """Drive the schedule as the node's timer does; returns (start, name) of each tick."""
    ticks = []
    now = 0.0
    while now < until:
        if schedule.any_due(now):
            state = schedule.begin(now, model_free=not busy(now))
            if state is not None:
                ticks.append((round(now, 3), state.spec.name))
                now += tick_time  # the timer's thread runs the tick
                schedule.finished(state, now, latency=tick_time, answered=True)
        now = round(now + step, 6)
    return ticks


def test_monitors_with_different_periods_are_spread_over_the_shortest():
    schedule = _schedule(0.5, 1.0)
    ticks = _run(schedule, until=2.0)
    assert ticks == [(0.0, 'm0'), (0.25, 'm1'), (0.5, 'm0'), (1.0, 'm0'), (1.25, 'm1'),
                     (1.5, 'm0')]


def test_monitors_tick_at_their_periods_spread_over_the_period():
    schedule = _schedule(1.0, 1.0)
    ticks = _run(schedule, until=3.0)
    assert ticks == [(0.0, 'm0'), (0.5, 'm1'), (1.0, 'm0'), (1.5, 'm1'), (2.0, 'm0'),
                     (2.5, 'm1')]
    assert [stats.skipped for stats in schedule.stats(3.0)] == [0, 0]


def test_a_tick_due_while_a_goal_runs_is_skipped_and_counted_not_backlogged():
    schedule = _schedule(1.0)
    # A goal holds the model from 0.5 s to 3.7 s: the ticks due at 1, 2 and 3 s are skipped.
    ticks = _run(schedule, until=6.0, busy=lambda now: 0.5 <= now < 3.7)
    assert ticks == [(0.0, 'm0'), (4.0, 'm0'), (5.0, 'm0')], 'no catch-up burst at 3.7 s'
    stats, = schedule.stats(6.0)
    assert (stats.ticks, stats.skipped) == (3, 3)


def test_a_tick_longer_than_its_period_counts_the_instants_it_covered():
    schedule = _schedule(1.0)
    ticks = _run(schedule, until=5.0, tick_time=2.5)
    stats, = schedule.stats(5.0)
    # 0 and 3 ticked; 1 and 2 fell due during the first tick and were skipped when it ended
    # (4 falls in the second tick, settled when that one ends).
    assert [start for start, _ in ticks] == [0.0, 3.0]
    assert (stats.ticks, stats.skipped) == (2, 2)


def test_two_monitors_with_the_same_period_do_not_starve_a_third():
    schedule = MonitorSchedule(MonitorBounds(min_period=0.1))
    for name in ('a', 'b', 'c'):
        schedule.add(MonitorSpec(name=name, period=1.0, task='x'), now=0.0)
    schedule.start(0.0)
    for name in ('b', 'c'):  # all three fall due together at every second
        schedule.remove(name)
        schedule.add(MonitorSpec(name=name, period=1.0, task='x'), now=0.0)
    # Each tick takes 0.1 s: the second starts 0.15 s late, the third would start 0.3 s late,
    # beyond the tolerance, and is skipped; the one skipped goes first next time.
    ticks = _run(schedule, until=6.0, tick_time=0.1)
    assert ticks[:6] == [(0.0, 'a'), (0.15, 'b'), (1.0, 'c'), (1.15, 'a'), (2.0, 'b'),
                         (2.15, 'c')], 'they take turns'
    assert [stats.ticks for stats in schedule.stats(6.0)] == [4, 4, 4]
    assert [stats.skipped for stats in schedule.stats(6.0)] == [2, 2, 2]


def test_a_tick_that_would_start_late_is_skipped():
    schedule = MonitorSchedule(MonitorBounds(min_period=0.1), late_tolerance=0.25)
    schedule.add(MonitorSpec(name='m', period=1.0, task='x'), now=0.0)
    schedule.start(0.0)
    assert schedule.begin(0.3, model_free=True) is None
    stats, = schedule.stats(0.3)
    assert (stats.ticks, stats.skipped) == (0, 1)
    assert schedule.begin(1.1, model_free=True) is not None


def test_a_monitor_removed_during_its_tick_is_no_longer_held():
    schedule = _schedule(1.0, 1.0)
    state = schedule.begin(0.0, model_free=True)
    assert schedule.holds(state)
    assert schedule.remove(state.spec.name) and not schedule.holds(state)
    schedule.add(state.spec, now=0.1)
    assert not schedule.holds(state), 'a monitor added again under the name is another one'
    assert not schedule.remove('nobody')


def test_nothing_ticks_while_stopped_and_start_spreads_the_first_ticks_again():
    schedule = _schedule(1.0, 1.0)
    schedule.stop()
    assert not schedule.any_due(10.0) and schedule.begin(10.0, model_free=True) is None
    schedule.start(20.0)
    assert schedule.begin(20.0, model_free=True).spec.name == 'm0'
    assert not schedule.any_due(20.4) and schedule.any_due(20.5)


def test_adding_beyond_max_count_or_a_taken_name_is_refused():
    schedule = MonitorSchedule(MonitorBounds(max_count=64))
    for index in range(64):
        schedule.add(MonitorSpec(name=f'm{index}', period=1.0, task='x'), now=0.0)
    with pytest.raises(InvalidMonitorError, match='64 monitors already run'):
        schedule.add(MonitorSpec(name='m64', period=1.0, task='x'), now=0.0)
    schedule.remove('m0')
    with pytest.raises(InvalidMonitorError, match='taken'):
        schedule.add(MonitorSpec(name='m1', period=1.0, task='x'), now=0.0)
    schedule.add(MonitorSpec(name='m64', period=1.0, task='x'), now=0.0)
    assert len(schedule.specs) == 64
