"""Goal scheduling: reject, queue and preempt above the number of model slots; stop reasons.

A waiting goal holds no thread: the scheduler calls its start function when its turn comes.
"""

import threading

import pytest

from cosmos_reason_ros.core.scheduling import (
    BusyError,
    GoalScheduler,
    GoalStop,
    Policy,
    StopReason,
    Ticket,
    TicketState,
)


class _Goals:
    """Records which goals were started (and whether they got a slot) and preempted."""

    def __init__(self, scheduler: GoalScheduler):
        self.scheduler = scheduler
        self.started = []
        self.preempted = []

    def admit(self, name: str) -> Ticket:
        return self.scheduler.admit(
            lambda ticket: self.started.append((name, ticket.running)),
            lambda ticket: self.preempted.append(name))


@pytest.mark.parametrize('policy', list(Policy))
def test_a_free_slot_is_started_at_once(policy):
    goals = _Goals(GoalScheduler(policy))
    ticket = goals.admit('first')

    assert goals.started == [('first', True)] and ticket.running
    ticket.release()
    assert ticket.state is TicketState.RELEASED


def test_reject_turns_a_second_goal_away_with_the_fix_in_the_message():
    goals = _Goals(GoalScheduler(Policy.REJECT))
    running = goals.admit('first')
    with pytest.raises(BusyError, match="concurrency_policy is 'reject'"):
        goals.admit('second')
    running.release()
    assert goals.admit('third').running


def test_queue_starts_goals_in_arrival_order_as_slots_free_up():
    scheduler = GoalScheduler(Policy.QUEUE)
    goals = _Goals(scheduler)
    threads = threading.active_count()
    first = goals.admit('first')
    second, third = goals.admit('second'), goals.admit('third')

    assert goals.started == [('first', True)]
    assert scheduler.queued == 2
    assert threading.active_count() == threads, 'waiting goals hold no thread'
    first.release()
    assert goals.started[-1] == ('second', True) and scheduler.queued == 1
    second.release()
    assert goals.started[-1] == ('third', True)
    third.release()
    assert scheduler.busy == 0 and scheduler.queued == 0


def test_a_full_queue_rejects():
    goals = _Goals(GoalScheduler(Policy.QUEUE, max_queued=1))
    goals.admit('running')
    goals.admit('waiting')
    with pytest.raises(BusyError, match='queue is full'):
        goals.admit('one too many')


def test_preempt_stops_the_running_goal_and_starts_the_new_one_when_it_released():
    goals = _Goals(GoalScheduler(Policy.PREEMPT))
    old = goals.admit('old')
    new = goals.admit('new')

    assert goals.preempted == ['old'] and old.preempted
    assert not new.running, 'the new goal waits until the old one gave its slot back'
    old.release()
    assert goals.started == [('old', True), ('new', True)] and not new.preempted


def test_preempt_ends_goals_still_waiting_without_a_slot():
    goals = _Goals(GoalScheduler(Policy.PREEMPT))
    goals.admit('running')
    waiting = goals.admit('waiting')
    goals.admit('newest')

    assert ('waiting', False) in goals.started, 'started only to end, holding no slot'
    assert waiting.preempted and waiting.state is TicketState.WITHDRAWN


def test_a_goal_withdrawn_from_the_queue_never_starts():
    scheduler = GoalScheduler(Policy.QUEUE)
    goals = _Goals(scheduler)
    running = goals.admit('running')
    waiting = goals.admit('waiting')

    assert waiting.withdraw() and not waiting.withdraw()
    assert scheduler.queued == 0
    running.release()
    assert goals.started == [('running', True)] and scheduler.busy == 0
    assert not running.withdraw(), 'a running goal is stopped, not withdrawn'


def test_several_slots_run_goals_side_by_side():
    goals = _Goals(GoalScheduler(Policy.REJECT, slots=2))
    tickets = [goals.admit(name) for name in ('a', 'b')]
    assert all(ticket.running for ticket in tickets)
    with pytest.raises(BusyError):
        goals.admit('c')


def test_a_stop_keeps_its_first_reason_and_sets_the_event():
    stop = GoalStop()
    assert stop.request(StopReason.CANCELED) and stop.request(StopReason.SHUTDOWN)

    assert stop.event.is_set() and stop.reason is StopReason.CANCELED
    assert stop.finish() is StopReason.CANCELED


def test_a_finished_goal_can_no_longer_be_stopped():
    stop = GoalStop()
    assert stop.finish() is None

    assert not stop.request(StopReason.CANCELED)
    assert not stop.event.is_set() and stop.reason is None
