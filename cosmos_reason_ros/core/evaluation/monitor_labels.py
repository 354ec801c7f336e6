"""Monitors in a question set: a standing query with the answer changes labelled in its stream.

A labelled monitor is a MonitorSpec (core/monitors.py, the node's own reader checks it) plus
where it watches and when its normalized answer should change: `events`, each the answer
expected from a time on, and the `initial` answer before the first.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
import pathlib
from typing import Any

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import (
    parse_timestamp,
    parse_verdict,
    ParsedAnswer,
    ParseStatus,
)
from cosmos_reason_ros.core.monitors import (
    InvalidMonitorError,
    MonitorBounds,
    MonitorSpec,
    normalized_answer,
    parse_monitor,
)

MONITOR_EVAL_FIELDS = ('source', 'topic', 'initial', 'events', 'max_latency')
"""The fields a monitor has in a question set beside those of a monitors_file."""
DEFAULT_LATENCY_PERIODS = 3
"""Without `max_latency`, an event is missed when no tick within this many periods of its
time gives the labelled answer."""
_EVENT_FIELDS = ('answer', 'from')


@dataclasses.dataclass(frozen=True)
class LabelledEvent:
    """The monitor's normalized answer should become `answer` at `offset` and stay so until the
    next event.
    """

    answer: str
    """A normalized answer (core/monitors.normalized_answer): 'yes', 'B', 'stop the robot'."""
    offset: float
    """Seconds after the start of the bag or clip (as an item's `at`)."""


@dataclasses.dataclass(frozen=True)
class MonitorItem:
    """One labelled monitor of a question set."""

    spec: MonitorSpec
    source: str
    """Bag or clip, as an absolute path."""
    topic: str
    initial: str = ''
    """The normalized answer before the first event; '' when not labelled (changes before
    the first event are then not judged)."""
    events: tuple[LabelledEvent, ...] = ()
    max_latency: float = 0.0
    """Seconds after an event within which a tick must give its answer to detect it."""

    def truth(self, offset: float, epsilon: float = 1e-6) -> str:
        """The labelled answer at `offset` (seconds after the start); '' when not labelled."""
        answer = self.initial
        for event in self.events:
            if event.offset <= offset + epsilon:
                answer = event.answer
        return answer

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        spec = self.spec
        return {'name': spec.name, 'source': self.source, 'topic': self.topic,
                'mode': spec.mode.value, 'task': spec.task, 'choices': list(spec.choices),
                'object_name': spec.object_name, 'period': spec.period,
                'window_duration': spec.window_duration, 'max_frames': spec.max_frames,
                'max_new_tokens': spec.max_new_tokens, 'reasoning': spec.reasoning,
                'initial': self.initial, 'max_latency': self.max_latency,
                'events': [{'answer': event.answer, 'from': event.offset}
                           for event in self.events]}


def normalized_label(value: Any, mode: Mode, choices: Sequence[str]) -> str:
    """A labelled answer as the node's normalized answer would read it.

    A YAML yes/no (read as a boolean) is a verdict; a multiple choice takes its letter or the
    text of one choice; other text is normalized as the node normalizes an answer's text.

    Raises:
        ValueError: an empty answer, or a multiple choice that names no option.
    """
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if not isinstance(value, (str, int, float)) or not str(value).strip():
        raise ValueError(f'a non-empty answer expected, got {value!r}')
    text = str(value).strip()
    if mode is Mode.MULTIPLE_CHOICE:
        letters = [chr(ord('A') + index) for index in range(len(choices))]
        if text.upper() in letters:
            return text.upper()
        matches = [letter for letter, choice in zip(letters, choices, strict=True)
                   if choice.lower() == text.lower()]
        if len(matches) != 1:
            raise ValueError(f"{value!r} is neither one of the letters {', '.join(letters)} "
                             'nor the text of one choice')
        return matches[0]
    # The node's own normalization, of the label read as an answer would be: a question's
    # verdict when it starts with yes or no, else its text.
    verdict = parse_verdict(text) if mode is Mode.QUESTION else ''
    return normalized_answer(mode, ParsedAnswer(reasoning='', answer=text,
                                                status=ParseStatus.OK, verdict=verdict))


def parse_monitor_items(raw: Any, base: pathlib.Path, *, set_source: Any, set_topic: str,
                        problems: list[str], replace_source: bool = False,
                        replace_topic: bool = False) -> tuple[MonitorItem, ...]:
    """Read a question set's `monitors` list; every problem is appended to `problems`, naming
    the monitor and the field.

    Args:
        raw: the `monitors` value of the file.
        base: the file's folder (relative sources start there).
        set_source: the set's source (or the command line's, which replaces it).
        set_topic: the set's topic.
        problems: where the problems go.
        replace_source: set_source is the command line's: it replaces each monitor's own.
        replace_topic: set_topic is the command line's: it replaces each monitor's own.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append("'monitors' must be a list of monitors (each as in a monitors_file, "
                        'with events)')
        return ()
    monitors: list[MonitorItem] = []
    names: set[str] = set()
    for index, entry in enumerate(raw, start=1):
        label = (f"monitor {index} ({entry.get('name')!r})"
                 if isinstance(entry, Mapping) and entry.get('name') else f'monitor {index}')
        found: list[str] = []
        if isinstance(entry, Mapping):
            entry = {**entry, **({'source': set_source} if replace_source else {}),
                     **({'topic': set_topic} if replace_topic else {})}
        monitor = _parse_monitor_item(entry, base, set_source, set_topic, found)
        problems += [f'{label}: {problem}' for problem in found]
        if monitor is None:
            continue
        if monitor.spec.name in names:
            problems.append(f'{label}: name: {monitor.spec.name!r} is already used by another '
                            'monitor of this set')
        names.add(monitor.spec.name)
        monitors.append(monitor)
    return tuple(monitors)


def _parse_monitor_item(entry: Any, base: pathlib.Path, set_source: Any, set_topic: str,
                        problems: list[str]) -> MonitorItem | None:
    if not isinstance(entry, Mapping):
        problems.append(f'must be a mapping of its fields, got {type(entry).__name__}')
        return None
    fields = {key: value for key, value in entry.items() if key not in MONITOR_EVAL_FIELDS}
    try:
        # Offline as on the node: the node's default bounds (monitors.min_period 0.5 s).
        spec = parse_monitor(fields, MonitorBounds())
    except InvalidMonitorError as error:
        hint = (f" (in a question set also: {', '.join(MONITOR_EVAL_FIELDS)})"
                if 'unknown field' in str(error) else '')
        problems.append(f'{error}{hint}')
        return None
    source = entry.get('source', set_source)
    if not source:
        problems.append("source: no bag or clip: set 'source' (in the file or on the command "
                        'line)')
        source = ''
    source_path = pathlib.Path(str(source)).expanduser()
    if source and not source_path.is_absolute():
        source_path = base / source_path
    topic = str(entry.get('topic', set_topic) or '').strip()
    if topic and not topic.startswith('/'):
        topic = '/' + topic
    initial = ''
    if entry.get('initial') is not None:
        try:
            initial = normalized_label(entry['initial'], spec.mode, spec.choices)
        except ValueError as error:
            problems.append(f'initial: {error}')
    events = _events(entry.get('events'), spec, initial, problems)
    max_latency = entry.get('max_latency', DEFAULT_LATENCY_PERIODS * spec.period)
    if isinstance(max_latency, bool) or not isinstance(max_latency, (int, float)) or \
            not math.isfinite(max_latency) or max_latency <= 0:
        problems.append(f'max_latency: seconds > 0 expected, got {max_latency!r} (default: '
                        f'{DEFAULT_LATENCY_PERIODS} periods)')
        max_latency = DEFAULT_LATENCY_PERIODS * spec.period
    return MonitorItem(spec=spec, source=str(source_path.resolve()) if source else '',
                       topic=topic, initial=initial, events=events,
                       max_latency=float(max_latency))


def _events(raw: Any, spec: MonitorSpec, initial: str,
            problems: list[str]) -> tuple[LabelledEvent, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append('events: a non-empty list of {answer: ..., from: seconds} (the answer '
                        'expected from that time on, seconds after the start of the bag)')
        return ()
    events: list[LabelledEvent] = []
    for index, entry in enumerate(raw):
        where = f'events[{index}]'
        if not isinstance(entry, Mapping) or set(entry) != set(_EVENT_FIELDS):
            problems.append(f'{where}: exactly the fields answer and from expected, got '
                            f'{entry!r}')
            continue
        try:
            offset = parse_timestamp(entry['from'])
        except ValueError as error:
            problems.append(f'{where}.from: {error}')
            continue
        try:
            answer = normalized_label(entry['answer'], spec.mode, spec.choices)
        except ValueError as error:
            problems.append(f'{where}.answer: {error}')
            continue
        previous = events[-1] if events else None
        if previous is not None and offset <= previous.offset:
            problems.append(f'{where}.from: {offset:g} s is not after the event before it '
                            f'({previous.offset:g} s): list the events in time order')
            continue
        before = previous.answer if previous is not None else initial
        if answer == before:
            problems.append(f'{where}.answer: {answer!r} is the answer already labelled before '
                            'it: an event is a change of the answer')
            continue
        events.append(LabelledEvent(answer=answer, offset=offset))
    return tuple(events)


__all__ = ['DEFAULT_LATENCY_PERIODS', 'LabelledEvent', 'MONITOR_EVAL_FIELDS', 'MonitorItem',
           'normalized_label', 'parse_monitor_items']
