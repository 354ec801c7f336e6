"""Live evaluation of labelled monitors: added to a running node, their published results
collected while the bag plays, then removed; scored by core/evaluation/monitor_scoring.py.

A result on `~/monitors/<name>` is one tick: its header stamp is the newest frame the answer
refers to, and that frame's bag time is the tick's time (the node ticks on its own clock, so a
tick the node skipped because the model was busy shows up as later detection, or a miss).
"""

from collections.abc import Callable, Sequence
import threading
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription

from cosmos_reason_ros.core.answers.parsing import (
    Box,
    Event,
    ParsedAnswer,
    ParseStatus,
    Trajectory,
)
from cosmos_reason_ros.core.camera.images import stamp_seconds
from cosmos_reason_ros.core.errors import ReasonError
from cosmos_reason_ros.core.evaluation.monitor_labels import MonitorItem
from cosmos_reason_ros.core.evaluation.monitor_replay import MonitorRun, MonitorTick
from cosmos_reason_ros.core.evaluation.results import ANSWERED, ERROR
from cosmos_reason_ros.core.evaluation.sources import (
    BagSource,
    check_stamps,
    open_source,
    SourceError,
    Timeline,
)
from cosmos_reason_ros.core.monitors import MonitorSpec, normalized_answer
from cosmos_reason_ros.msg import Monitor, ReasoningResult
from cosmos_reason_ros.srv import AddMonitor, RemoveMonitor

SERVICE_TIMEOUT = 10.0
"""Seconds to wait for the node's monitor services (discovery and one call)."""
RESULTS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Matches the node's latched ~/monitors/<name>; depth 10 so a slow client loses no tick."""


def monitor_message(spec: MonitorSpec) -> Monitor:
    """A monitor of a question set as the ~/add_monitor request carries it."""
    return Monitor(name=spec.name, task=spec.task, mode=spec.mode.value, period=spec.period,
                   window_duration=float(spec.window_duration),
                   max_frames=int(spec.max_frames), reasoning=spec.reasoning,
                   choices=list(spec.choices), object_name=spec.object_name,
                   max_new_tokens=int(spec.max_new_tokens),
                   on_change_only=spec.on_change_only)


class _Watched:
    """One monitor being evaluated: its run, its bag's timeline and its subscription."""

    def __init__(self, monitor: MonitorItem):
        self.run = MonitorRun(monitor)
        self.timeline: Timeline | None = None
        self.subscription: Subscription | None = None
        self.added = False


class LiveMonitors:
    """Adds a question set's monitors to the node, records their ticks, removes them."""

    def __init__(self, node: Node, monitors: Sequence[MonitorItem], *, target: str,
                 clock_now: Callable[[], float | None] | None = None):
        """Read each monitor's bag timeline (nothing is sent yet).

        Args:
            node: the client's node (spinning in an executor on another thread).
            monitors: the labelled monitors.
            target: the reasoning node's name with its namespace (e.g. /cosmos_reason).
            clock_now: the latest /clock time in seconds (None before the first), to place a
                failed tick, which has no frame stamp, on the bag's time.
        """
        self._node = node
        self._target = target.rstrip('/')
        self._clock_now = clock_now or (lambda: None)
        self._lock = threading.Lock()
        self._watched = [_Watched(monitor) for monitor in monitors]
        timelines: dict[tuple[str, str], Timeline | str] = {}
        for watched in self._watched:
            key = (watched.run.monitor.source, watched.run.monitor.topic)
            if key not in timelines:
                timelines[key] = _timeline(*key)
            timeline = timelines[key]
            if isinstance(timeline, str):
                watched.run.error = timeline
            else:
                watched.timeline = timeline
        self._add = node.create_client(AddMonitor, f'{self._target}/add_monitor')
        self._remove = node.create_client(RemoveMonitor, f'{self._target}/remove_monitor')

    @property
    def last_bag_times(self) -> list[float]:
        """The last bag time of each distinct recording of the monitors (to wait for)."""
        return sorted({w.timeline.bag_times[-1] for w in self._watched
                       if w.timeline is not None and w.timeline.bag_times})

    @property
    def longest_period(self) -> float:
        """The longest period of the monitors that run (0 when none does)."""
        return max((w.run.monitor.spec.period for w in self._watched if w.added), default=0.0)

    def start(self) -> None:
        """Subscribe to each monitor's results, then add it to the node; a refusal is the
        monitor's error (the node's message), and the others still run.
        """
        for watched in self._watched:
            if watched.timeline is None:
                continue
            spec = watched.run.monitor.spec
            watched.subscription = self._node.create_subscription(
                ReasoningResult, f'{self._target}/monitors/{spec.name}',
                lambda msg, watched=watched: self._on_result(watched, msg), RESULTS_QOS)
            message = self._call(self._add, AddMonitor.Request(monitor=monitor_message(spec)))
            if message is None:
                watched.added = True
            else:
                watched.run.error = f'not run: the node refused it: {message}'
                self._unsubscribe(watched)

    def stop(self) -> list[MonitorRun]:
        """Remove the monitors from the node and stop listening; the runs, ticks in order."""
        for watched in self._watched:
            if watched.added:
                message = self._call(self._remove, RemoveMonitor.Request(
                    name=watched.run.monitor.spec.name))
                if message is not None:
                    self._node.get_logger().warning(
                        f"could not remove monitor '{watched.run.monitor.spec.name}': "
                        f'{message}')
                watched.added = False
            self._unsubscribe(watched)
        with self._lock:
            for watched in self._watched:
                watched.run.ticks.sort(key=lambda tick: tick.offset)
                timeline = watched.timeline
                if timeline is not None and timeline.bag_times and not watched.run.error:
                    watched.run.end_offset = timeline.bag_times[-1] - timeline.start
            return [watched.run for watched in self._watched]

    def destroy(self) -> None:
        """Release the service clients (stop() first)."""
        for watched in self._watched:
            self._unsubscribe(watched)
        self._node.destroy_client(self._add)
        self._node.destroy_client(self._remove)

    def _unsubscribe(self, watched: _Watched) -> None:
        if watched.subscription is not None:
            self._node.destroy_subscription(watched.subscription)
            watched.subscription = None

    def _call(self, client, request) -> str | None:
        """None when the call succeeded, else why not."""
        if not client.wait_for_service(timeout_sec=SERVICE_TIMEOUT):
            return (f"no service '{client.srv_name}' within {SERVICE_TIMEOUT:g} s: does the "
                    'node support monitors, and is --node its name?')
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(SERVICE_TIMEOUT):
            return f"'{client.srv_name}' did not answer within {SERVICE_TIMEOUT:g} s"
        response = future.result()
        return None if response.success else response.message

    def _on_result(self, watched: _Watched, msg: ReasoningResult) -> None:
        tick = _tick_of(watched.run.monitor.spec, watched.timeline, msg, self._clock_now())
        if tick is not None:
            with self._lock:
                watched.run.ticks.append(tick)


def parsed_from_msg(output: Any) -> ParsedAnswer:
    """A ReasoningResult message back into the core's ParsedAnswer (each trajectory and box
    with the camera it names).
    """
    return ParsedAnswer(
        reasoning=output.reasoning, answer=output.answer,
        status=ParseStatus(output.parse_status), error=output.parse_error,
        trajectories=tuple(Trajectory(t.label, tuple((p.x, p.y) for p in t.points),
                                      camera=t.camera) for t in output.trajectories),
        boxes=tuple(Box(b.label, b.x_min, b.y_min, b.x_max, b.y_max, camera=b.camera)
                    for b in output.boxes),
        events=tuple(Event(e.start_offset, e.end_offset, e.caption) for e in output.events),
        choice=output.choice, verdict=output.verdict,
        next_action=output.next_action[0].description if output.next_action else '')


def _tick_of(spec: MonitorSpec, timeline: Timeline, msg: ReasoningResult,
             clock_now: float | None) -> MonitorTick | None:
    """The tick a published result is, on the bag's time; None for a result outside the
    recording (before the bag plays: no frames yet; another stream's frame).
    """
    if msg.parse_status == int(ParseStatus.NOT_RUN):
        # A failed tick carries no frame stamp: place it at the bag's clock when it arrived,
        # and only while the recording plays (before it, the node has no frame to look at).
        if clock_now is None or not timeline.bag_times or not (
                timeline.bag_times[0] <= clock_now <= timeline.bag_times[-1] + spec.period):
            return None
        code, _, error = msg.parse_error.partition(': ')
        return MonitorTick(offset=clock_now - timeline.start, status=ERROR,
                           raw_text=msg.raw_text, error_code=code.lower(), error=error,
                           total_time=msg.total_time)
    bag_time = timeline.bag_time_of(stamp_seconds(msg.header.stamp))
    if bag_time is None:
        return None
    frame_age = None if clock_now is None else max(clock_now - bag_time, 0.0)
    return MonitorTick(offset=bag_time - timeline.start, status=ANSWERED,
                       answer=normalized_answer(spec.mode, parsed_from_msg(msg)),
                       raw_text=msg.raw_text, total_time=msg.total_time, frame_age=frame_age)


def open_played_bag(path: str, topic: str) -> tuple[BagSource, Timeline]:
    """The bag a live run plays, and its timeline.

    Raises:
        ReasonError: the recording cannot be read, is not a bag, or its header stamps do not
            advance (which a live run cannot work around: the node orders frames by stamp).
    """
    source = open_source(path, topic)
    if not isinstance(source, BagSource):
        raise SourceError(f"'{path}' is not a bag: live evaluation plays bags only (use "
                          '`cosmos-reason eval` for clips)')
    note = check_stamps(source)
    if note:
        raise SourceError(
            f'{note}. A live run cannot work around it, since the node orders frames by header '
            'stamp: evaluate offline (cosmos-reason eval), which falls back to log time')
    return source, Timeline.read(source)


def _timeline(path: str, topic: str) -> Timeline | str:
    """The recording's timeline, or why it cannot be evaluated live."""
    try:
        return open_played_bag(path, topic)[1]
    except ReasonError as error:
        return f'not run: {error}'


__all__ = ['LiveMonitors', 'monitor_message', 'open_played_bag', 'parsed_from_msg',
           'RESULTS_QOS']
