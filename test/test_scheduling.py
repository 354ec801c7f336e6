"""Goal scheduling: reject, queue and preempt above the number of model slots."""

import threading

import pytest

from cosmos_reason_ros.core.scheduling import BusyError, GoalScheduler, Policy

TIMEOUT = 5.0


def _admit_and_wait(scheduler: GoalScheduler, cancel: threading.Event, results: list) -> None:
    ticket = scheduler.admit(cancel)
    results.append(ticket.wait())
    if results[-1]:
        ticket.release()


@pytest.mark.parametrize('policy', list(Policy))
def test_a_free_slot_is_granted_at_once(policy):
    ticket = GoalScheduler(policy).admit(threading.Event())
    assert ticket.wait()
    ticket.release()


def test_reject_turns_a_second_goal_away_with_the_fix_in_the_message():
    scheduler = GoalScheduler(Policy.REJECT)
    running = scheduler.admit(threading.Event())
    with pytest.raises(BusyError, match="concurrency_policy is 'reject'"):
        scheduler.admit(threading.Event())
    running.release()
    assert scheduler.admit(threading.Event()).wait()


def test_queue_runs_goals_in_arrival_order():
    scheduler = GoalScheduler(Policy.QUEUE)
    first = scheduler.admit(threading.Event())
    assert first.wait()
    order = []
    waiters = []
    for name in ('second', 'third'):
        ticket = scheduler.admit(threading.Event())
        thread = threading.Thread(target=lambda t=ticket, n=name: (t.wait(), order.append(n),
                                                                    t.release()))
        thread.start()
        waiters.append(thread)
    assert scheduler.queued == 2
    first.release()
    for thread in waiters:
        thread.join(TIMEOUT)
    assert order == ['second', 'third']
    assert scheduler.busy == 0 and scheduler.queued == 0


def test_a_full_queue_rejects():
    scheduler = GoalScheduler(Policy.QUEUE, max_queued=1)
    scheduler.admit(threading.Event()).wait()
    scheduler.admit(threading.Event())
    with pytest.raises(BusyError, match='queue is full'):
        scheduler.admit(threading.Event())


def test_preempt_cancels_the_running_goal_and_runs_the_new_one():
    scheduler = GoalScheduler(Policy.PREEMPT)
    old_cancel = threading.Event()
    old = scheduler.admit(old_cancel)
    assert old.wait()
    new = scheduler.admit(threading.Event())

    assert old_cancel.is_set() and old.preempted
    old.release()  # the running goal notices its cancel event and gives the slot back
    assert new.wait()
    assert not new.preempted


def test_a_goal_cancelled_while_queued_leaves_the_queue():
    scheduler = GoalScheduler(Policy.QUEUE)
    running = scheduler.admit(threading.Event())
    running.wait()
    cancel = threading.Event()
    results = []
    thread = threading.Thread(target=_admit_and_wait, args=(scheduler, cancel, results))
    thread.start()
    cancel.set()
    thread.join(TIMEOUT)
    assert results == [False]
    assert scheduler.queued == 0
    running.release()
    assert scheduler.busy == 0


def test_several_slots_run_goals_side_by_side():
    scheduler = GoalScheduler(Policy.REJECT, slots=2)
    tickets = [scheduler.admit(threading.Event()) for _ in range(2)]
    assert all(ticket.wait() for ticket in tickets)
    with pytest.raises(BusyError):
        scheduler.admit(threading.Event())
