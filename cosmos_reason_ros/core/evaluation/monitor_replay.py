"""Offline replay of labelled monitors: a recording fed through the node's tick schedule, each
tick asked through the same Reasoner as the items, its answer normalized as the node does.

The node's monitors start ticking at activate; offline, activate is the first frame of the
stream: MonitorSchedule (core/monitors.py) starts there and says which monitor is due when,
so tick k of a monitor falls at that first frame's log time plus its activate offset (several
monitors are spread over the shortest period, as on the node) plus k periods. A tick sees the
frames logged up to its time, in the node's frame window (same settings), ending at the newest
one; its staleness is checked as an item's.

Not modelled: offline there are no goals, and a tick takes no time on the stream's clock, so
no tick is skipped for a busy model. On the node a tick that falls due while a goal (or a long
tick) holds the model is skipped and counted; a live run shows those skips.
"""

from collections.abc import Iterator, Sequence
import dataclasses
import threading

from cosmos_reason_ros.core.backends.base import Backend
from cosmos_reason_ros.core.errors import ReasonError
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings, TIME_EPSILON
from cosmos_reason_ros.core.evaluation.monitor_labels import MonitorItem
from cosmos_reason_ros.core.evaluation.questions import AskTime, QuestionItem
from cosmos_reason_ros.core.evaluation.replay import SourceRun
from cosmos_reason_ros.core.evaluation.results import ANSWERED, ItemResult
from cosmos_reason_ros.core.evaluation.sources import open_source, SourceFrame
from cosmos_reason_ros.core.monitors import (
    MonitorBounds,
    MonitorSchedule,
    MonitorState,
    normalized_answer,
)


@dataclasses.dataclass(frozen=True)
class MonitorTick:
    """One tick of a monitor in the replay."""

    offset: float
    """Seconds after the start of the source (bag time)."""
    status: str
    """ANSWERED or ERROR (results.py)."""
    answer: str | None = None
    """The normalized answer (None when the tick failed: no answer, as on the node)."""
    raw_text: str = ''
    error_code: str = ''
    error: str = ''
    total_time: float | None = None
    """Seconds the tick's generation took (wall clock, not the stream's)."""
    frame_age: float | None = None
    """Seconds from the log time of the newest frame the model saw to the tick."""


@dataclasses.dataclass
class MonitorRun:
    """What the replay of one monitor gave: its ticks in time order."""

    monitor: MonitorItem
    ticks: list[MonitorTick] = dataclasses.field(default_factory=list)
    end_offset: float | None = None
    """Seconds after the start of the source of the last frame read (None: none)."""
    error: str = ''
    """Why the recording could not be read (to the end)."""


def tick_times(schedule: MonitorSchedule, states: Sequence[MonitorState],
               until: float) -> Iterator[tuple[float, MonitorState]]:
    """The ticks a started schedule runs up to `until`, in order, with the model always free.

    Args:
        schedule: a started schedule (its clock is the stream's: bag time in seconds).
        states: its monitors.
        until: the last time (inclusive) to tick at.

    Yields:
        (tick time, monitor) as MonitorSchedule.begin chooses them.
    """
    while states:
        now = min(state.next_due for state in states)
        if now > until + TIME_EPSILON:
            return
        # Every monitor due at `now` ticks at `now`: a tick takes no time on the stream's clock.
        while (state := schedule.begin(now, model_free=True)) is not None:
            yield now, state


def replay_monitors(monitors: Sequence[MonitorItem], backend: Backend,
                    settings: ReplaySettings = ReplaySettings(), *,
                    cancel: threading.Event | None = None) -> tuple[list[MonitorRun], bool]:
    """Replay every monitor over its recording (one pass per recording).

    Args:
        monitors: the labelled monitors.
        backend: a loaded backend.
        settings: the node's window and goal defaults; ticks decode greedily, as the node's.
        cancel: set it to stop the replay.

    Returns:
        One run per monitor, in the given order, and whether Ctrl-C stopped the replay (the
        ticks done so far are kept).
    """
    settings = dataclasses.replace(settings, greedy=True, protocol=None)
    cancel = cancel or threading.Event()
    runs = {monitor.spec.name: MonitorRun(monitor) for monitor in monitors}
    sources = list(dict.fromkeys((monitor.source, monitor.topic) for monitor in monitors))
    try:
        for path, topic in sources:
            group = [runs[monitor.spec.name] for monitor in monitors
                     if (monitor.source, monitor.topic) == (path, topic)]
            _replay_source(path, topic, group, backend, settings, cancel)
    except KeyboardInterrupt:
        cancel.set()
        return list(runs.values()), True
    return list(runs.values()), False


def _replay_source(path: str, topic: str, group: Sequence[MonitorRun], backend: Backend,
                   settings: ReplaySettings, cancel: threading.Event) -> None:
    try:
        source = open_source(path, topic)
    except ReasonError as error:
        for run in group:
            run.error = str(error)
        return
    # The node's own window: no items here to stretch it for.
    feed = SourceRun(source, settings, backend, cancel, [])
    by_name = {run.monitor.spec.name: run for run in group}
    schedule = MonitorSchedule(MonitorBounds(max_count=max(len(group), 1), min_period=0.0))
    states: list[MonitorState] = []
    frames = iter(feed.frames())
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except Exception as error:  # noqa: BLE001 - a corrupt recording ends its monitors
            message = f"reading '{path}' failed after {feed.summary_data.frames} frames: {error}"
            for run in group:
                run.error = message
            break
        if not states:
            # Activate at the first frame: the ticks' phase relative to the stream.
            states = [schedule.add(run.monitor.spec, frame.bag_time) for run in group]
            schedule.start(frame.bag_time)
        # A tick at time t sees the frames logged up to t: those before this one.
        for when, state in tick_times(schedule, states, frame.bag_time - 2 * TIME_EPSILON):
            _tick(feed, by_name[state.spec.name], when, upcoming=frame)
        feed.offer(frame)
    if feed.newest is not None:
        for when, state in tick_times(schedule, states, feed.newest.bag_time):
            _tick(feed, by_name[state.spec.name], when, upcoming=None)
        for run in group:
            run.end_offset = feed.newest.bag_time - source.start


def _tick(feed: SourceRun, run: MonitorRun, when: float, *,
          upcoming: SourceFrame | None) -> None:
    spec = run.monitor.spec
    item = QuestionItem(
        id=f'{spec.name}@{when - feed.source.start:.3f}', source=run.monitor.source,
        topic=run.monitor.topic, time=AskTime(stamp=when), mode=spec.mode, task=spec.task,
        choices=spec.choices, object_name=spec.object_name, reasoning=spec.reasoning,
        window_duration=spec.window_duration, max_frames=spec.max_frames,
        max_new_tokens=spec.max_new_tokens)
    asked = feed.prepare(len(run.ticks) + 1, item, when, upcoming=upcoming)
    result = asked if isinstance(asked, ItemResult) else asked.finish(asked.answer())
    answered = result.status == ANSWERED and result.parsed is not None
    run.ticks.append(MonitorTick(
        offset=when - feed.source.start, status=result.status,
        answer=normalized_answer(spec.mode, result.parsed) if answered else None,
        raw_text=result.raw_text, error_code=getattr(result.error_code, 'value',
                                                     result.error_code),
        error=result.error, total_time=result.total_time, frame_age=result.frame_age))


__all__ = ['MonitorRun', 'MonitorTick', 'replay_monitors', 'tick_times']
