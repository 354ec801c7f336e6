"""Who runs when several goals arrive: reject, queue or preempt, above a number of model slots.

A local model serves one goal at a time (one slot); a remote server batches, so it may have more.
A waiting goal holds no thread: the scheduler calls the goal's `start` function when its turn
comes (the node then hands the goal to its executor), as ros2/examples' queue server does.

Monitor ticks (core/monitors.py) take slots from the same scheduler, below goals: a tick gets a
slot only when one is free and no goal waits, never waits itself, and a goal never meets BUSY
because of a tick: it waits for the tick's slot, stopping the tick first under TickYield.PREEMPT.
"""

import collections
from collections.abc import Callable
import enum
import threading

from cosmos_reason_ros.core.errors import Failure, ReasonError

MAX_QUEUED = 8
"""Goals that may wait under the queue policy, unless configured (max_queued_goals)."""


class Policy(str, enum.Enum):
    """What happens to a goal that arrives while every slot is busy."""

    REJECT = 'reject'    # it fails at once with BUSY
    QUEUE = 'queue'      # it waits its turn (first come, first served), up to max_queued
    PREEMPT = 'preempt'  # the goals running (and waiting) are stopped in its favour


class TickYield(str, enum.Enum):
    """What a goal does to a monitor tick that holds the slot it needs."""

    PREEMPT = 'preempt'  # the tick is stopped (its result is not published); the goal runs next
    WAIT = 'wait'        # the goal waits until the tick ends (bounded by goal.time_limit)


class BusyError(ReasonError):
    """Every slot is busy and the policy does not let the goal wait."""

    kind = Failure.BUSY


class TicketState(enum.Enum):
    """Where a goal stands in the scheduler."""

    WAITING = 'waiting'    # queued; start() not called yet
    RUNNING = 'running'    # holds a slot
    WITHDRAWN = 'withdrawn'  # left the queue without a slot (cancelled or preempted)
    RELEASED = 'released'  # gave its slot back


class Ticket:
    """One goal's place in the scheduler.

    Attributes:
        preempted: a newer goal stopped this one (policy preempt, or a tick under
            TickYield.PREEMPT).
        tick: the ticket is a monitor tick's, not a goal's.
    """

    def __init__(self, scheduler: 'GoalScheduler', start: Callable[['Ticket'], None],
                 preempt: Callable[['Ticket'], None], *, tick: bool = False):
        self._scheduler = scheduler
        self._start = start
        self._preempt = preempt
        self.state = TicketState.WAITING
        self.preempted = False
        self.tick = tick

    @property
    def running(self) -> bool:
        """Whether this goal holds a slot now."""
        return self.state is TicketState.RUNNING

    def withdraw(self) -> bool:
        """Leave the queue (a waiting goal was cancelled); True if it was waiting."""
        return self._scheduler._withdraw(self)

    def release(self) -> None:
        """Give the slot back (or leave the queue); the next waiting goal starts."""
        self._scheduler._release(self)


class GoalScheduler:
    """Grants model slots to goals according to a Policy. Thread-safe.

    `start` and `preempt` callbacks run outside the scheduler's lock, in the thread that
    admitted or released a goal; they must not block.
    """

    def __init__(self, policy: Policy, *, slots: int = 1, max_queued: int = MAX_QUEUED,
                 tick_yield: TickYield = TickYield.PREEMPT):
        if slots < 1:
            raise ValueError(f'slots must be at least 1, got {slots}')
        self.policy = policy
        self.slots = slots
        self.max_queued = max_queued
        self.tick_yield = tick_yield
        self._lock = threading.Lock()
        self._running: list[Ticket] = []
        self._waiting: collections.deque[Ticket] = collections.deque()

    @property
    def busy(self) -> int:
        """Slots held now (by goals and monitor ticks)."""
        with self._lock:
            return len(self._running)

    @property
    def ticking(self) -> int:
        """Slots held now by monitor ticks."""
        with self._lock:
            return sum(ticket.tick for ticket in self._running)

    def admit_tick(self, stop: Callable[[Ticket], None]) -> Ticket | None:
        """A slot for a monitor tick, only if one is free and no goal waits; never queued.

        Args:
            stop: called (outside the lock) when a goal takes the tick's slot under
                TickYield.PREEMPT, or a goal preempts everything under Policy.PREEMPT: stop
                the tick; its slot is taken back by release().

        Returns:
            The running ticket (release it when the tick ends), or None: the tick is skipped.
        """
        with self._lock:
            if len(self._running) >= self.slots or self._waiting:
                return None
            ticket = Ticket(self, lambda ticket: None, stop, tick=True)
            self._grant(ticket)
            return ticket

    @property
    def queued(self) -> int:
        """Goals waiting for a slot."""
        with self._lock:
            return len(self._waiting)

    def admit(self, start: Callable[[Ticket], None],
              preempt: Callable[[Ticket], None] = lambda ticket: None) -> Ticket:
        """Register a goal; `start(ticket)` is called when it may run (at once, or later).

        Args:
            start: called once when the goal gets a slot, or when it leaves the queue because
                preempt() stopped it (then ticket.running is False and ticket.preempted True).
            preempt: called when a newer goal preempts this one while it runs (or waits): stop
                the goal; its slot is taken back by release().

        Raises:
            BusyError: all slots are busy and the policy (or a full queue) turns the goal away.
        """
        ticket = Ticket(self, start, preempt)
        to_start: list[Ticket] = []
        to_preempt: list[Ticket] = []
        with self._lock:
            ticks = [other for other in self._running if other.tick]
            if len(self._running) < self.slots and not self._waiting:
                self._grant(ticket)
                to_start.append(ticket)
            elif len(self._waiting) < len(ticks):
                # A tick holds the slot this goal would otherwise have had: the goal waits for
                # it under every policy (a tick never makes a goal BUSY).
                self._waiting.append(ticket)
                if self.tick_yield is TickYield.PREEMPT:
                    tick = next((other for other in ticks if not other.preempted), None)
                    if tick is not None:
                        tick.preempted = True
                        to_preempt.append(tick)
            elif self.policy is Policy.REJECT:
                raise BusyError(
                    f'{len(self._running)} goal(s) already running and concurrency_policy is '
                    "'reject': wait for the result, cancel the running goal, or set "
                    "concurrency_policy to 'queue' or 'preempt'")
            elif self.policy is Policy.PREEMPT:
                for other in self._running:
                    if other.tick and (other.preempted or self.tick_yield is TickYield.WAIT):
                        continue
                    other.preempted = True
                    to_preempt.append(other)
                while self._waiting:
                    other = self._waiting.popleft()
                    other.preempted = True
                    other.state = TicketState.WITHDRAWN
                    to_start.append(other)
                self._waiting.append(ticket)
            elif len(self._waiting) >= self.max_queued:
                raise BusyError(
                    f'the goal queue is full ({self.max_queued} waiting): retry later or raise '
                    'max_queued_goals')
            else:
                self._waiting.append(ticket)
        for other in to_preempt:
            other._preempt(other)
        for other in to_start:
            other._start(other)
        return ticket

    def _grant(self, ticket: Ticket) -> None:
        self._running.append(ticket)
        ticket.state = TicketState.RUNNING

    def _withdraw(self, ticket: Ticket) -> bool:
        with self._lock:
            if ticket.state is not TicketState.WAITING:
                return False
            self._waiting.remove(ticket)
            ticket.state = TicketState.WITHDRAWN
            return True

    def _release(self, ticket: Ticket) -> None:
        started: list[Ticket] = []
        with self._lock:
            if ticket.state is TicketState.WAITING:
                self._waiting.remove(ticket)
            if ticket.state is TicketState.RUNNING:
                self._running.remove(ticket)
            if ticket.state is not TicketState.WITHDRAWN:
                ticket.state = TicketState.RELEASED
            while self._waiting and len(self._running) < self.slots:
                waiting = self._waiting.popleft()
                self._grant(waiting)
                started.append(waiting)
        for waiting in started:
            waiting._start(waiting)


class StopReason(enum.Enum):
    """Why a goal was stopped before it finished."""

    CANCELED = 'canceled'        # its client cancelled it
    PREEMPTED = 'preempted'      # a newer goal took its place (policy preempt)
    DEACTIVATED = 'deactivated'  # the node was deactivated (lifecycle)
    SHUTDOWN = 'shutdown'        # the node is shutting down
    CLIENT_GONE = 'client_gone'  # no action client is left to read its result


class GoalStop:
    """A goal's cancel event together with the reason it was set.

    The first reason wins. Once the goal has its answer (finish()), it can no longer be stopped:
    a cancel that arrives then is refused, so the client's cancel response and the goal's final
    status always agree.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._reason: StopReason | None = None
        self._finished = False

    @property
    def reason(self) -> StopReason | None:
        """Why the goal was stopped; None while nobody stopped it."""
        return self._reason

    def request(self, reason: StopReason) -> bool:
        """Stop the goal for `reason`; False when it already finished (nothing to stop)."""
        with self._lock:
            if self._finished:
                return False
            if self._reason is None:
                self._reason = reason
            self.event.set()
            return True

    def finish(self) -> StopReason | None:
        """Mark the goal finished; returns the reason it was stopped before that, if any."""
        with self._lock:
            self._finished = True
            return self._reason


__all__ = ['BusyError', 'GoalScheduler', 'GoalStop', 'MAX_QUEUED', 'Policy', 'StopReason',
           'Ticket', 'TicketState', 'TickYield']
