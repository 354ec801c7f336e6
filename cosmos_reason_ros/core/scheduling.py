"""Who runs when several goals arrive: reject, queue or preempt, above a number of model slots.

A local model serves one goal at a time (one slot); a remote server batches, so it may have more.
"""

import collections
import enum
import threading
from typing import Deque, List

from cosmos_reason_ros.core.errors import Failure, ReasonError


class Policy(str, enum.Enum):
    """What happens to a goal that arrives while every slot is busy."""

    REJECT = 'reject'    # it fails at once with BUSY
    QUEUE = 'queue'      # it waits its turn (first come, first served), up to max_queued
    PREEMPT = 'preempt'  # the goals running (and waiting) are stopped in its favour


class BusyError(ReasonError):
    """Every slot is busy and the policy does not let the goal wait."""

    kind = Failure.BUSY


class Ticket:
    """One goal's place in the scheduler. Use as `with ticket:` after wait() returned True."""

    def __init__(self, scheduler: 'GoalScheduler', cancel: threading.Event):
        self._scheduler = scheduler
        self.cancel = cancel
        self.granted = threading.Event()
        self.preempted = False

    def wait(self) -> bool:
        """Block until this goal may run; False (holding no slot) when cancelled or preempted
        first."""
        # Wake up regularly to notice cancellation of a goal that waits in the queue.
        while not self.granted.wait(0.05):
            if self.cancel.is_set():
                break
        if self.cancel.is_set():
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give the slot back; the next waiting goal starts."""
        self._scheduler._release(self)

    def __enter__(self) -> 'Ticket':
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class GoalScheduler:
    """Grants model slots to goals according to a Policy. Thread-safe."""

    def __init__(self, policy: Policy, *, slots: int = 1, max_queued: int = 8):
        if slots < 1:
            raise ValueError(f'slots must be at least 1, got {slots}')
        self.policy = policy
        self.slots = slots
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._running: List[Ticket] = []
        self._waiting: Deque[Ticket] = collections.deque()

    @property
    def busy(self) -> int:
        """Goals running now."""
        with self._lock:
            return len(self._running)

    @property
    def queued(self) -> int:
        """Goals waiting for a slot."""
        with self._lock:
            return len(self._waiting)

    def admit(self, cancel: threading.Event) -> Ticket:
        """Register a goal; call ticket.wait() before running it.

        Args:
            cancel: the goal's cancel event; preemption sets it on the goals it stops.

        Raises:
            BusyError: all slots are busy and the policy (or a full queue) turns the goal away.
        """
        ticket = Ticket(self, cancel)
        with self._lock:
            if len(self._running) < self.slots and not self._waiting:
                self._grant(ticket)
                return ticket
            if self.policy is Policy.REJECT:
                raise BusyError(
                    f'{len(self._running)} goal(s) already running and concurrency_policy is '
                    "'reject': wait for the result, cancel the running goal, or set "
                    "concurrency_policy to 'queue' or 'preempt'")
            if self.policy is Policy.PREEMPT:
                for other in [*self._running, *self._waiting]:
                    other.preempted = True
                    other.cancel.set()
            elif len(self._waiting) >= self.max_queued:
                raise BusyError(
                    f'the goal queue is full ({self.max_queued} waiting): retry later or raise '
                    'max_queued_goals')
            self._waiting.append(ticket)
        return ticket

    def _grant(self, ticket: Ticket) -> None:
        self._running.append(ticket)
        ticket.granted.set()

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            if ticket in self._running:
                self._running.remove(ticket)
            while self._waiting and len(self._running) < self.slots:
                self._grant(self._waiting.popleft())

