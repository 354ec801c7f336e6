"""The node's monitors on ROS: the add/remove/list services, the result and event topics, and
the one timer that runs whichever monitor is due (core/monitors.py decides which).

Monitors exist from configure (the monitors_file, then the services) to cleanup, and tick only
while the node is active. A tick runs in the timer's callback, so all monitors share one
executor thread and at most one tick runs at a time.
"""

from collections.abc import Callable, Sequence
import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer

from cosmos_reason_ros.core.camera.views import DEFAULT_CAMERA
from cosmos_reason_ros.core.errors import (
    failure_of,
    GenerationCancelled,
    ReasonError,
    result_code_of,
)
from cosmos_reason_ros.core.monitors import (
    InvalidMonitorError,
    MonitorBounds,
    MonitorSchedule,
    MonitorSpec,
    MonitorState,
    MonitorStats,
    normalized_answer,
    parse_monitor,
    read_monitor_file,
)
from cosmos_reason_ros.core.reasoner import Reasoner
from cosmos_reason_ros.core.scheduling import GoalScheduler, GoalStop, StopReason
from cosmos_reason_ros.msg import Monitor, MonitorEvent, ReasoningResult
from cosmos_reason_ros.ros.conversions import empty_result_msg, outcome_to_msg
from cosmos_reason_ros.ros.publishing import PublishGuard
from cosmos_reason_ros.srv import AddMonitor, ListMonitors, RemoveMonitor

CHECK_PERIOD = 0.05
"""Seconds between the timer's looks at the schedule (well inside LATE_TOLERANCE)."""
STOP_TIMEOUT = 10.0
"""Longest wait (s) of stop() for a running tick to end; a tick stops within one decoding
step."""
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""~/monitors/<name>: the last result reaches a subscriber that comes late."""


class NodeMonitors:
    """The monitors of one reasoning node."""

    def __init__(self, node: Node, guard: PublishGuard, *, camera_now: Callable[[], float]):
        """Create the services and the event publisher (monitors come at configure).

        Args:
            node: the reasoning node.
            guard: counts (and logs) publishes the middleware failed.
            camera_now: the node's clock in seconds, for the staleness check of each tick.
        """
        self._node = node
        self._guard = guard
        self._camera_now = camera_now
        self._lock = threading.Lock()
        self._schedule: MonitorSchedule | None = None
        self._publishers: dict[str, Publisher] = {}
        self._reasoner: Reasoner | None = None
        self._scheduler: GoalScheduler | None = None
        self._model_id = ''
        self._timer: Timer | None = None
        self._tick: tuple[MonitorState, GoalStop] | None = None  # the tick running now
        self._tick_done = threading.Condition(self._lock)
        self._group = MutuallyExclusiveCallbackGroup()
        self._events = node.create_publisher(MonitorEvent, '~/monitor_events', 10)
        services = MutuallyExclusiveCallbackGroup()
        node.create_service(AddMonitor, '~/add_monitor', self._on_add, callback_group=services)
        node.create_service(RemoveMonitor, '~/remove_monitor', self._on_remove,
                            callback_group=services)
        node.create_service(ListMonitors, '~/list_monitors', self._on_list,
                            callback_group=services)

    # Lifecycle -----------------------------------------------------------------------------

    def configure(self, bounds: MonitorBounds, monitors_file: str,
                  cameras: Sequence[str] = (DEFAULT_CAMERA,)) -> list[str]:
        """Start a new set of monitors from the file (configure); returns the refusals.

        Args:
            bounds: how many monitors, how often, who yields.
            monitors_file: the YAML file of monitors; '' for none.
            cameras: the node's camera names in configuration order (DEFAULT_CAMERA alone: one
                unnamed camera); a monitor naming another camera is refused.

        Raises:
            InvalidMonitorError: the file cannot be read or holds no list.
        """
        specs, errors = (read_monitor_file(monitors_file, bounds, cameras) if monitors_file
                         else ([], []))
        self.clear()
        schedule = MonitorSchedule(bounds, cameras=cameras)
        now = time.monotonic()
        for spec in specs:
            schedule.add(spec, now)
        with self._lock:
            self._schedule = schedule
        for spec in specs:
            self._publisher_for(spec.name)
        return [str(error) for error in errors]

    def start(self, reasoner: Reasoner, scheduler: GoalScheduler, model_id: str) -> None:
        """Tick (activate)."""
        with self._lock:
            schedule = self._schedule
            if schedule is None:
                return
            self._reasoner, self._scheduler, self._model_id = reasoner, scheduler, model_id
        schedule.start(time.monotonic())
        # A steady clock: monitors tick by wall time, also with use_sim_time and no /clock.
        self._timer = self._node.create_timer(
            CHECK_PERIOD, self._check, callback_group=self._group,
            clock=Clock(clock_type=ClockType.STEADY_TIME))

    def stop(self, reason: StopReason = StopReason.DEACTIVATED,
             timeout: float = STOP_TIMEOUT) -> None:
        """Stop ticking (deactivate, shutdown): a running tick is stopped and not published."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            self._node.destroy_timer(timer)
        with self._lock:
            if self._schedule is not None:
                self._schedule.stop()
            if self._tick is not None:
                self._tick[1].request(reason)
            deadline = time.monotonic() + timeout
            while self._tick is not None and time.monotonic() < deadline:
                self._tick_done.wait(deadline - time.monotonic())
            self._reasoner = self._scheduler = None

    def clear(self) -> None:
        """Forget every monitor and its topic (cleanup)."""
        self.stop()
        with self._lock:
            self._schedule = None
            publishers, self._publishers = self._publishers, {}
        for publisher in publishers.values():
            self._node.destroy_publisher(publisher)

    def stats(self) -> list[MonitorStats]:
        """Every monitor's counters, for /diagnostics."""
        schedule = self._schedule
        return schedule.stats(time.monotonic()) if schedule is not None else []

    # Services ------------------------------------------------------------------------------

    def _on_add(self, request: AddMonitor.Request,
                response: AddMonitor.Response) -> AddMonitor.Response:
        schedule = self._schedule
        try:
            if schedule is None:
                raise InvalidMonitorError('', (
                    'the node is unconfigured: configure it first (monitors live from '
                    'configure to cleanup)'))
            spec = parse_monitor(_fields_of(request.monitor), schedule.bounds)
            schedule.add(spec, time.monotonic())
        except InvalidMonitorError as error:
            response.success, response.message = False, str(error)
            return response
        self._publisher_for(spec.name)
        self._node.get_logger().info(f"monitor '{spec.name}' added (every {spec.period:g} s)")
        response.success, response.message = True, f'monitor {spec.name!r} added'
        return response

    def _on_remove(self, request: RemoveMonitor.Request,
                   response: RemoveMonitor.Response) -> RemoveMonitor.Response:
        schedule = self._schedule
        if schedule is None or not schedule.remove(request.name):
            response.success = False
            response.message = f'no monitor is called {request.name!r}'
            return response
        with self._lock:
            publisher = self._publishers.pop(request.name, None)
            current = self._tick
        # A tick of it that runs is stopped; its result is dropped (schedule.holds).
        if current is not None and current[0].spec.name == request.name:
            current[1].request(StopReason.CANCELED)
        if publisher is not None:
            self._node.destroy_publisher(publisher)
        response.success, response.message = True, f'monitor {request.name!r} removed'
        return response

    def _on_list(self, request: ListMonitors.Request,
                 response: ListMonitors.Response) -> ListMonitors.Response:
        schedule = self._schedule
        response.monitors = [monitor_message(spec) for spec in
                             (schedule.specs if schedule is not None else [])]
        return response

    # Ticks ---------------------------------------------------------------------------------

    def _check(self) -> None:
        """The timer: run the monitor that is due, if the model is free; skip the rest."""
        with self._lock:
            schedule, reasoner, scheduler = self._schedule, self._reasoner, self._scheduler
            if schedule is None or reasoner is None or scheduler is None:
                return
            now = time.monotonic()
            if not schedule.any_due(now):
                return
            stop = GoalStop()
            ticket = scheduler.admit_tick(lambda ticket: stop.request(StopReason.PREEMPTED))
            state = schedule.begin(now, model_free=ticket is not None)
            if state is None:
                if ticket is not None:
                    ticket.release()
                return
            self._tick = (state, stop)
        try:
            self._run_tick(schedule, reasoner, state, stop)
        finally:
            ticket.release()
            with self._lock:
                self._tick = None
                self._tick_done.notify_all()

    def _run_tick(self, schedule: MonitorSchedule, reasoner: Reasoner, state: MonitorState,
              stop: GoalStop) -> None:
        spec = state.spec
        request = spec.request()
        started = time.monotonic()
        outcome = error = None
        try:
            outcome = reasoner.run(request, now=self._camera_now(), cancel=stop.event)
        except GenerationCancelled:
            pass
        except ReasonError as failure:
            error = failure
        except Exception as failure:  # noqa: BLE001 - a model failure must not kill the node
            self._node.get_logger().error(f"monitor '{spec.name}' failed: {failure!r}")
            error = failure
        ended = time.monotonic()
        if stop.finish() is not None or (outcome is None and error is None) or \
                not schedule.holds(state):
            # Stopped (a goal took the model, deactivate, removal): not published as if done.
            schedule.finished(state, ended, latency=None, answered=False)
            return
        if outcome is not None:
            msg = outcome_to_msg(outcome)
        else:
            msg = empty_result_msg(request, model_id=self._model_id,
                                   error_code=result_code_of(error))
            # The failure's name also leads parse_error, as before error_code existed.
            msg.parse_error = f'{failure_of(error).value.upper()}: {error}'
        msg.total_time = ended - started
        publisher = self._publishers.get(spec.name)
        if publisher is not None:
            self._guard.publish(publisher, msg)
        schedule.finished(state, ended, latency=msg.total_time, answered=outcome is not None)
        if outcome is None:
            return
        previous, changed = state.observe(normalized_answer(spec.mode, outcome.parsed))
        if changed or not spec.on_change_only:
            self._guard.publish(self._events, MonitorEvent(
                header=msg.header, monitor=spec.name, previous_answer=previous,
                answer=state.answer or '', result=msg))

    def _publisher_for(self, name: str) -> None:
        publisher = self._node.create_publisher(ReasoningResult, f'~/monitors/{name}', LATCHED)
        with self._lock:
            self._publishers[name] = publisher


def _fields_of(monitor: Monitor) -> dict:
    """A Monitor message as the fields parse_monitor reads (zero: the goal default)."""
    return {'name': monitor.name, 'task': monitor.task, 'mode': monitor.mode,
            'period': monitor.period, 'window_duration': monitor.window_duration,
            'max_frames': monitor.max_frames, 'reasoning': monitor.reasoning,
            'choices': list(monitor.choices), 'object_name': monitor.object_name,
            'max_new_tokens': monitor.max_new_tokens, 'on_change_only': monitor.on_change_only,
            'cameras': list(monitor.cameras)}


def monitor_message(spec: MonitorSpec) -> Monitor:
    """A monitor as the Monitor message (~/list_monitors; `ask --add-file` sends it)."""
    return Monitor(name=spec.name, task=spec.task, mode=spec.mode.value, period=spec.period,
                   window_duration=spec.window_duration, max_frames=spec.max_frames,
                   reasoning=spec.reasoning, choices=list(spec.choices),
                   object_name=spec.object_name, max_new_tokens=spec.max_new_tokens,
                   on_change_only=spec.on_change_only, cameras=list(spec.cameras))


__all__ = ['CHECK_PERIOD', 'LATCHED', 'monitor_message', 'NodeMonitors']
