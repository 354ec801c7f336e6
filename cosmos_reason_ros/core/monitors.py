"""Standing queries: the monitor spec and its checks, the normalized answer, the tick schedule.

A monitor is a question asked on the node's own schedule every `period` seconds. The schedule
holds no thread: the node's timer asks it which monitor is due (MonitorSchedule.begin) and runs
that tick on the goal scheduler's terms (core/scheduling.py). A due tick that cannot start at
once, because a goal or another tick holds the model, is skipped and counted, never queued.
"""

from collections.abc import Iterable, Mapping, Sequence
import dataclasses
import math
import pathlib
import re
import threading
from typing import Any

import yaml

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import ParsedAnswer
from cosmos_reason_ros.core.answers.prompts import MAX_CHOICES
from cosmos_reason_ros.core.camera.views import DEFAULT_CAMERA
from cosmos_reason_ros.core.reasoner import ReasonRequest

LATE_TOLERANCE = 0.25
"""Seconds a tick may start after it fell due; later, that tick is skipped and counted. It
covers the timer's check interval and executor jitter, not a wait for the model."""

TICK_PRIORITY = -1
"""The priority a tick's request carries: below a goal's default 0, so that a server with priority
scheduling (remote.send_priority) serves planners' goals first."""

_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
MAX_NAME_CHARS = 64
_FIELDS = ('name', 'task', 'mode', 'period', 'window_duration', 'max_frames', 'reasoning',
           'choices', 'object_name', 'max_new_tokens', 'on_change_only', 'cameras')


class InvalidMonitorError(ValueError):
    """A monitor was refused; `field` names what to change (the message says how).

    Attributes:
        field: the monitor field at fault ('name', 'period', ...); '' for the file itself.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f'{field}: {message}' if field else message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class MonitorSpec:
    """One standing query, as declared. Zero fields take the goal defaults, as a goal's do."""

    name: str
    period: float
    mode: Mode = Mode.QUESTION
    task: str = ''
    window_duration: float = 0.0
    max_frames: int = 0
    reasoning: bool = False
    choices: tuple[str, ...] = ()
    object_name: str = ''
    max_new_tokens: int = 0
    on_change_only: bool = True
    """Publish an event only when the normalized answer changes (else one per answered tick)."""
    cameras: tuple[str, ...] = ()
    """The cameras each tick asks about, in prompt order; empty: every camera of the node."""

    def request(self) -> ReasonRequest:
        """The request one tick asks: about the newest frames, greedy (so that an unchanged
        scene gives an unchanged answer and events mean a change in what is seen).
        """
        return ReasonRequest(
            mode=self.mode, task=self.task, choices=self.choices,
            object_name=self.object_name, reasoning=self.reasoning,
            window_duration=self.window_duration, max_frames=self.max_frames,
            max_new_tokens=self.max_new_tokens, greedy=True, priority=TICK_PRIORITY,
            cameras=self.cameras)


@dataclasses.dataclass(frozen=True)
class MonitorBounds:
    """How many monitors a node takes, how often they may tick, and who yields to whom."""

    max_count: int = 64
    min_period: float = 0.5
    """Seconds; a shorter period is refused."""
    goal_policy: str = 'preempt'
    """What a goal does to a tick holding the model: preempt (stop it) or wait (TickYield)."""


def parse_monitor(entry: Mapping[str, Any], bounds: MonitorBounds = MonitorBounds()
                  ) -> MonitorSpec:
    """Read and check one monitor (a YAML mapping or a service request's fields).

    Raises:
        InvalidMonitorError: an unknown or ill-typed field, a name that is not a topic name
            token, an unknown mode, a period below bounds.min_period, or a field the mode needs
            left empty; the error names the field.
    """
    if not isinstance(entry, Mapping):
        raise InvalidMonitorError('', f'a monitor is a mapping of its fields, got {entry!r}')
    unknown = sorted(set(map(str, entry)) - set(_FIELDS))
    if unknown:
        raise InvalidMonitorError(unknown[0], f'unknown field; the fields are: '
                                              f"{', '.join(_FIELDS)}")
    name = _text(entry, 'name')
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME_CHARS:
        raise InvalidMonitorError('name', (
            f'{name!r} is not a valid topic name token (it becomes ~/monitors/<name>): a letter, '
            f'then letters, digits or underscores, at most {MAX_NAME_CHARS} characters'))
    try:
        mode = Mode.from_name(_text(entry, 'mode'))
    except ValueError as error:
        raise InvalidMonitorError('mode', str(error)) from None
    period = _number(entry, 'period', float, None)
    if period is None:
        raise InvalidMonitorError('period', 'missing: seconds between ticks')
    if not period >= bounds.min_period:
        raise InvalidMonitorError('period', (
            f'{period:g} s is below monitors.min_period ({bounds.min_period:g} s): tick less '
            'often, or lower monitors.min_period'))
    window_duration = _number(entry, 'window_duration', float, 0.0)
    max_frames = _number(entry, 'max_frames', int, 0)
    max_new_tokens = _number(entry, 'max_new_tokens', int, 0)
    for field, value in (('window_duration', window_duration), ('max_frames', max_frames),
                         ('max_new_tokens', max_new_tokens)):
        if value < 0:
            raise InvalidMonitorError(field, f'{value} is negative; 0 takes the goal default')
    choices = entry.get('choices') or ()
    if isinstance(choices, str) or not isinstance(choices, Iterable):
        raise InvalidMonitorError('choices', 'a list of option texts')
    choices = tuple(str(choice).strip() for choice in choices)
    task, object_name = _text(entry, 'task'), _text(entry, 'object_name')
    if mode in (Mode.QUESTION, Mode.TRAJECTORY, Mode.MULTIPLE_CHOICE) and not task:
        raise InvalidMonitorError('task', f'{mode.value} mode needs the task text')
    if mode is Mode.MULTIPLE_CHOICE and not 2 <= len(choices) <= MAX_CHOICES:
        raise InvalidMonitorError('choices', (
            f'multiple_choice mode needs 2 to {MAX_CHOICES} choices, got {len(choices)}'))
    if mode is Mode.MULTIPLE_CHOICE and not all(choices):
        raise InvalidMonitorError('choices', 'every choice needs text')
    if mode is Mode.GROUNDING and not object_name:
        raise InvalidMonitorError('object_name', 'grounding mode needs the object to locate')
    cameras = entry.get('cameras') or ()
    if isinstance(cameras, str) or not isinstance(cameras, Iterable) or \
            not all(isinstance(camera, str) for camera in cameras):
        raise InvalidMonitorError('cameras', f'a list of camera names, got {cameras!r}')
    cameras = tuple(camera.strip() for camera in cameras)
    repeated = sorted({camera for camera in cameras if cameras.count(camera) > 1})
    if repeated:
        raise InvalidMonitorError('cameras', f"'{repeated[0]}' is named more than once")
    return MonitorSpec(
        name=name, period=period, mode=mode, task=task, window_duration=window_duration,
        max_frames=max_frames, reasoning=_flag(entry, 'reasoning', False), choices=choices,
        object_name=object_name, max_new_tokens=max_new_tokens,
        on_change_only=_flag(entry, 'on_change_only', True), cameras=cameras)


def read_monitor_file(path: str | pathlib.Path, bounds: MonitorBounds = MonitorBounds(),
                      cameras: Sequence[str] = (DEFAULT_CAMERA,)
                      ) -> tuple[list[MonitorSpec], list[InvalidMonitorError]]:
    """The monitors of a YAML file (a list of mappings, or a mapping with a `monitors` list).

    Each invalid monitor is refused on its own (a duplicate name, beyond max_count, a bad
    field, a camera not in `cameras`: the node's camera names) and the others are kept.

    Returns:
        The valid monitors in file order, and one error per refused one (its message starts
        with the monitor's position and name).

    Raises:
        InvalidMonitorError: the file cannot be read, is not YAML, or holds no list.
    """
    path = pathlib.Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise InvalidMonitorError('', f'monitors_file {str(path)!r} cannot be read: '
                                      f'{error}') from None
    if isinstance(document, Mapping):
        document = document.get('monitors')
    if document is None:
        return [], []
    if not isinstance(document, list):
        raise InvalidMonitorError('', f"monitors_file {str(path)!r} must hold a list of "
                                      "monitors (or a mapping with a 'monitors' list)")
    specs: list[MonitorSpec] = []
    errors: list[InvalidMonitorError] = []
    for index, entry in enumerate(document):
        label = (f"monitor {index + 1} ({entry.get('name')!r})" if isinstance(entry, Mapping)
                 else f'monitor {index + 1}')
        try:
            spec = parse_monitor(entry, bounds)
            check_addable(spec, [each.name for each in specs], bounds, cameras)
        except InvalidMonitorError as error:
            located = InvalidMonitorError('', f'{label}: {error}')
            located.field = error.field
            errors.append(located)
            continue
        specs.append(spec)
    return specs, errors


def check_addable(spec: MonitorSpec, names: Iterable[str], bounds: MonitorBounds,
                  cameras: Sequence[str] = (DEFAULT_CAMERA,)) -> None:
    """Refuse a monitor whose name is taken, that would exceed max_count, or that names a
    camera the node does not have.

    Args:
        spec: the monitor.
        names: the monitors there already.
        bounds: the node's monitor bounds.
        cameras: the node's camera names, in configuration order (DEFAULT_CAMERA alone: one
            unnamed camera).

    Raises:
        InvalidMonitorError: naming 'name' or 'cameras'.
    """
    for camera in spec.cameras:
        if camera not in cameras or camera == DEFAULT_CAMERA:
            known = ', '.join(f"'{name}'" for name in cameras if name)
            has = f'the cameras {known}' if known else 'one unnamed camera'
            raise InvalidMonitorError('cameras', (
                f"unknown camera '{camera}': this node has {has}; leave cameras empty for "
                'all of them'))
    names = list(names)
    if spec.name in names:
        raise InvalidMonitorError('name', (
            f'{spec.name!r} is taken by another monitor: choose another name, or remove that '
            'one first'))
    if len(names) >= bounds.max_count:
        raise InvalidMonitorError('name', (
            f'{len(names)} monitors already run, monitors.max_count: remove one first, or '
            'raise monitors.max_count'))


def normalized_answer(mode: Mode, parsed: ParsedAnswer) -> str:
    """What a change event compares: the verdict of a yes/no question, the letter of a
    multiple choice, the next action, else the answer text; case, surrounding whitespace, runs
    of whitespace and a final full stop do not count.
    """
    if mode is Mode.QUESTION and parsed.verdict:
        return parsed.verdict
    if mode is Mode.MULTIPLE_CHOICE and parsed.choice:
        return parsed.choice
    text = parsed.next_action if mode is Mode.NEXT_ACTION and parsed.next_action \
        else parsed.answer
    return ' '.join(text.split()).lower().rstrip('.').rstrip()


@dataclasses.dataclass
class MonitorState:
    """One monitor in the schedule: its spec, next due time and counters."""

    spec: MonitorSpec
    next_due: float
    ticks: int = 0
    """Ticks started."""
    skipped: int = 0
    """Due ticks that did not start (the model was busy, or the tick came too late)."""
    stopped: int = 0
    """Ticks stopped before their result (a goal took the model, deactivate); not published."""
    last_started: float = -math.inf
    last_latency: float | None = None
    """Seconds the last published tick took."""
    last_answer_at: float | None = None
    """When (schedule clock) the last answer was published."""
    answer: str | None = None
    """The last normalized answer; None before the first."""

    def observe(self, normalized: str) -> tuple[str, bool]:
        """Record an answer; returns the previous normalized answer ('' before the first) and
        whether this one differs from it (the first answer always does).
        """
        previous = self.answer
        self.answer = normalized
        return previous or '', previous != normalized


@dataclasses.dataclass(frozen=True)
class MonitorStats:
    """A monitor's counters at one moment, for /diagnostics."""

    name: str
    ticks: int
    skipped: int
    stopped: int
    last_latency: float | None
    last_answer_age: float | None


class MonitorSchedule:
    """The monitors of a node and when each ticks next. Thread-safe; holds no thread.

    Every due instant of a monitor (its start, then each period) becomes exactly one tick or one
    counted skip: after any run, ticks + skipped equals the instants passed. At one check the
    due monitor that ticked longest ago goes first, so monitors that fall due together take
    turns instead of one starving the others.
    """

    def __init__(self, bounds: MonitorBounds = MonitorBounds(), *,
                 late_tolerance: float = LATE_TOLERANCE,
                 cameras: Sequence[str] = (DEFAULT_CAMERA,)):
        """Hold no monitor yet.

        Args:
            bounds: how many monitors, how often.
            late_tolerance: seconds a tick may start after it fell due.
            cameras: the node's camera names; a monitor naming another is refused.
        """
        self.bounds = bounds
        self.cameras = tuple(cameras)
        self.late_tolerance = late_tolerance
        self._lock = threading.Lock()
        self._monitors: dict[str, MonitorState] = {}
        self._running = False

    @property
    def specs(self) -> list[MonitorSpec]:
        """The monitors, in the order they were added."""
        with self._lock:
            return [state.spec for state in self._monitors.values()]

    def add(self, spec: MonitorSpec, now: float) -> MonitorState:
        """Add a monitor; while the schedule runs, its first tick is due at once.

        Raises:
            InvalidMonitorError: the name is taken, max_count is reached, or a camera is
                unknown.
        """
        with self._lock:
            check_addable(spec, self._monitors, self.bounds, self.cameras)
            state = MonitorState(spec, next_due=now)
            self._monitors[spec.name] = state
            return state

    def remove(self, name: str) -> bool:
        """Remove a monitor (a tick of it that runs publishes nothing); False if unknown."""
        with self._lock:
            return self._monitors.pop(name, None) is not None

    def holds(self, state: MonitorState) -> bool:
        """Whether this very monitor is still in the schedule (not removed, not replaced)."""
        with self._lock:
            return self._monitors.get(state.spec.name) is state

    def start(self, now: float) -> None:
        """Start ticking (activate): the first ticks are spread over the shortest period, the
        n-th of N monitors due n/N of it from now, so that they do not all fall due together.
        """
        with self._lock:
            count = len(self._monitors)
            shortest = min((state.spec.period for state in self._monitors.values()),
                           default=0.0)
            for index, state in enumerate(self._monitors.values()):
                state.next_due = now + shortest * index / count
            self._running = True

    def stop(self) -> None:
        """Stop ticking (deactivate); start() resumes."""
        with self._lock:
            self._running = False

    def any_due(self, now: float) -> bool:
        """Whether a monitor is due at `now` (cheap: checked at every timer event)."""
        with self._lock:
            return self._running and any(state.next_due <= now
                                         for state in self._monitors.values())

    def begin(self, now: float, model_free: bool) -> MonitorState | None:
        """Settle the due monitors at `now`: one ticks (returned); the others are skipped, except
        that with the model free those still within late_tolerance stay due for the next check
        (after the chosen tick, if it is short enough).

        Args:
            now: the schedule's clock (monotonic seconds).
            model_free: the scheduler granted a tick a slot.

        Returns:
            The monitor to tick now, or None (model busy, nothing due, or every due monitor
            came later than late_tolerance).
        """
        with self._lock:
            if not self._running:
                return None
            due = [state for state in self._monitors.values() if state.next_due <= now]
            on_time = [state for state in due if now - state.next_due <= self.late_tolerance]
            chosen = min(on_time, key=lambda state: (state.last_started, state.next_due),
                         default=None) if model_free else None
            for state in due:
                if model_free and state is not chosen and state in on_time:
                    continue
                passed = math.floor((now - state.next_due) / state.spec.period) + 1
                state.next_due += passed * state.spec.period
                if state is chosen:
                    state.ticks += 1
                    state.skipped += passed - 1
                    state.last_started = now
                else:
                    state.skipped += passed
            return chosen

    def finished(self, state: MonitorState, now: float, *, latency: float | None,
                 answered: bool) -> None:
        """Record a tick's end: published (answered or an error result) or stopped (latency
        None).
        """
        with self._lock:
            if latency is None:
                state.stopped += 1
                return
            state.last_latency = latency
            if answered:
                state.last_answer_at = now

    def stats(self, now: float) -> list[MonitorStats]:
        """Every monitor's counters, for /diagnostics."""
        with self._lock:
            return [MonitorStats(
                name=name, ticks=state.ticks, skipped=state.skipped, stopped=state.stopped,
                last_latency=state.last_latency,
                last_answer_age=(None if state.last_answer_at is None
                                 else now - state.last_answer_at))
                for name, state in self._monitors.items()]


def _text(entry: Mapping[str, Any], field: str) -> str:
    value = entry.get(field)
    if value is None:
        return ''
    if not isinstance(value, str):
        raise InvalidMonitorError(field, f'text expected, got {value!r}')
    return value.strip()


def _number(entry: Mapping[str, Any], field: str, kind: type, default: Any) -> Any:
    value = entry.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (kind is int and not float(value).is_integer()) or not math.isfinite(value):
        what = 'a whole number' if kind is int else 'a number'
        raise InvalidMonitorError(field, f'{what} expected, got {value!r}')
    return kind(value)


def _flag(entry: Mapping[str, Any], field: str, default: bool) -> bool:
    value = entry.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidMonitorError(field, f'true or false expected, got {value!r}')
    return value


__all__ = [
    'InvalidMonitorError', 'LATE_TOLERANCE', 'MonitorBounds', 'MonitorSchedule', 'MonitorSpec',
    'MonitorState', 'MonitorStats', 'check_addable', 'normalized_answer', 'parse_monitor',
    'read_monitor_file', 'TICK_PRIORITY',
]
