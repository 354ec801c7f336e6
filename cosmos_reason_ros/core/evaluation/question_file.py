"""The YAML question-set reader: the format documented in examples/questions_sample.yaml.

Every problem is reported at once, naming the file and the item; a JSON file (or YAML holding
benchmark entries) goes to the Reason1 benchmark reader.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
import pathlib
from typing import Any

import yaml

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import Box, Event, parse_timestamp
from cosmos_reason_ros.core.answers.prompts import MAX_CHOICES
from cosmos_reason_ros.core.camera.views import check_camera_names
from cosmos_reason_ros.core.evaluation.monitor_labels import parse_monitor_items
from cosmos_reason_ros.core.evaluation.questions import (
    AskTime,
    CameraTopics,
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_TOLERANCE,
    DEFAULT_TOLERANCE_3D,
    Expected,
    EXPECTED_3D_MODES,
    EXPECTED_KINDS,
    QuestionItem,
    QuestionSet,
    QuestionSetError,
)
from cosmos_reason_ros.core.evaluation.reason1_benchmark import load_benchmark

FORMAT_VERSION = 1
"""Version of the YAML question-set format this module reads."""
_ITEM_FIELDS = frozenset({
    'id', 'at', 'stamp', 'mode', 'task', 'choices', 'object_name', 'reasoning',
    'window_duration', 'max_frames', 'max_new_tokens', 'tolerance', 'iou_threshold',
    'tolerance_3d', 'source', 'topic', 'depth_topic', 'camera_info_topic', 'expected',
    'cameras'})
_TOPIC_FIELDS = ('topic', 'depth_topic', 'camera_info_topic')
_DEFAULT_FIELDS = _ITEM_FIELDS - {'id', 'at', 'stamp', 'expected', 'source', *_TOPIC_FIELDS}
_SET_FIELDS = frozenset({'version', 'name', 'source', *_TOPIC_FIELDS, 'defaults', 'items',
                        'monitors', 'cameras'})
_CAMERA_FIELDS = ('image', 'depth', 'camera_info')
_KINDS_BY_MODE = {
    Mode.MULTIPLE_CHOICE: ('choice',),
    Mode.QUESTION: ('verdict', 'keywords'),
    Mode.TRAJECTORY: ('trajectory',),
    Mode.GROUNDING: ('boxes',),
    Mode.TEMPORAL: ('events',),
    Mode.CAPTION: ('keywords',),
    Mode.NEXT_ACTION: ('keywords',),
}


def load_questions(path: str | pathlib.Path, *, source: str | pathlib.Path | None = None,
                   topic: str | None = None, depth_topic: str | None = None,
                   camera_info_topic: str | None = None) -> QuestionSet:
    """Load a YAML question set or a Cosmos-Reason1 benchmark file (JSON or JSON lines).

    Paths given here (the command line's) are relative to the current directory; paths inside
    the file are relative to the file's folder.

    Args:
        path: the file.
        source: replaces the bag or clip named in a YAML set; for a benchmark file, the folder
            its `video` paths are relative to (default: the file's folder).
        topic: replaces the topic named in a YAML set.
        depth_topic: replaces the depth topic named in a YAML set.
        camera_info_topic: replaces the CameraInfo topic named in a YAML set.

    Raises:
        QuestionSetError: unreadable file, or items that do not validate (all are listed).
    """
    path = pathlib.Path(path)
    if source is not None:
        source = pathlib.Path(source).expanduser().resolve()
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as error:
        raise QuestionSetError(f"cannot read question set '{path}': {error}") from None
    if path.suffix.lower() in ('.json', '.jsonl'):
        return load_benchmark(path, media_root=source, text=text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise QuestionSetError(f"'{path}' is not valid YAML: {error}") from None
    if isinstance(data, list) and data and isinstance(data[0], dict) and 'qa_pairs' in data[0]:
        return load_benchmark(path, media_root=source, text=text)
    return parse_question_set(data, path, source=source, topic=topic, depth_topic=depth_topic,
                              camera_info_topic=camera_info_topic)


def parse_question_set(data: Any, path: str | pathlib.Path, *,
                       source: str | pathlib.Path | None = None,
                       topic: str | None = None, depth_topic: str | None = None,
                       camera_info_topic: str | None = None) -> QuestionSet:
    """Validate loaded YAML data as a question set.

    Args:
        data: what yaml.safe_load returned.
        path: the file it came from (for messages, and the folder relative paths in it start
            from).
        source: replaces the set's (and every item's) source; a relative path is taken from
            the current directory, not from the file's folder.
        topic: replaces the set's (and every item's) topic.
        depth_topic: replaces the set's (and every item's) depth topic.
        camera_info_topic: replaces the set's (and every item's) CameraInfo topic.

    Raises:
        QuestionSetError: every problem found, each naming its item.
    """
    path = pathlib.Path(path)
    if source is not None:
        source = pathlib.Path(source).expanduser().resolve()
    if not isinstance(data, dict):
        raise QuestionSetError(
            f"'{path}' must hold a mapping with 'source', 'topic' and 'items' (see "
            'examples/questions_sample.yaml), got ' + type(data).__name__)
    problems = [f"unknown field '{key}' (known: {', '.join(sorted(_SET_FIELDS))})"
                for key in data if key not in _SET_FIELDS]
    version = data.get('version', FORMAT_VERSION)
    if version != FORMAT_VERSION:
        problems.append(f'version {version!r} is not supported; this reader knows version '
                        f'{FORMAT_VERSION}')
    defaults = data.get('defaults') or {}
    if not isinstance(defaults, dict):
        problems.append('defaults must be a mapping of item fields')
        defaults = {}
    problems += [f"defaults: field '{key}' cannot have a default (allowed: "
                 f"{', '.join(sorted(_DEFAULT_FIELDS))})"
                 for key in defaults if key not in _DEFAULT_FIELDS]
    set_source = source if source is not None else data.get('source')
    overrides = {'topic': topic, 'depth_topic': depth_topic,
                 'camera_info_topic': camera_info_topic}
    set_topics = {name: str(data.get(name) or '') if overrides[name] is None
                  else overrides[name] for name in _TOPIC_FIELDS}
    cameras = _set_cameras(data.get('cameras'), problems)
    if cameras:
        given = [name for name in _TOPIC_FIELDS if set_topics[name]]
        if given:
            problems.append(
                f"{' and '.join(given)} name one unnamed camera, but this set names its cameras "
                "in 'cameras': give each camera's topics there (image, depth, camera_info)")
    monitors = parse_monitor_items(data.get('monitors'), path.parent, set_source=set_source,
                                   set_topic=set_topics['topic'], problems=problems,
                                   replace_source=source is not None,
                                   replace_topic=topic is not None)
    raw_items = data.get('items')
    if raw_items is None and data.get('monitors'):
        raw_items = []  # a set of monitors only
    elif not isinstance(raw_items, list) or not raw_items:
        problems.append("'items' must be a non-empty list (or leave it out and give "
                        "'monitors')")
        raw_items = []
    items: list[QuestionItem] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_items, start=1):
        label = _item_label(index, raw)
        if not isinstance(raw, dict):
            problems.append(f'{label}: must be a mapping, got {type(raw).__name__}')
            continue
        merged = {**{k: v for k, v in defaults.items() if k in _DEFAULT_FIELDS}, **raw}
        if source is not None:
            merged['source'] = source
        merged.update({name: value for name, value in overrides.items() if value is not None})
        item, item_problems = _parse_item(merged, index, path.parent, set_source, set_topics,
                                          cameras)
        problems += [f'{label}: {problem}' for problem in item_problems]
        if item is None:
            continue
        if item.id in seen:
            problems.append(f'{label}: id {item.id!r} is already used by item {seen[item.id]}')
        seen.setdefault(item.id, index)
        items.append(item)
    if problems:
        raise QuestionSetError.listing(path, problems)
    name = str(data.get('name') or path.stem)
    return QuestionSet(name=name, path=str(path), items=tuple(items), format='yaml',
                       monitors=monitors)


# --- items ---------------------------------------------------------------------------------------

def _parse_item(raw: dict, index: int, base: pathlib.Path, set_source: Any,
                set_topics: Mapping[str, str], cameras: tuple[CameraTopics, ...] = ()
                ) -> tuple[QuestionItem | None, list[str]]:
    problems = [f"unknown field '{key}' (known: {', '.join(sorted(_ITEM_FIELDS))})"
                for key in raw if key not in _ITEM_FIELDS]
    try:
        mode = Mode.from_name(str(raw.get('mode') or ''))
    except ValueError as error:
        return None, problems + [str(error)]
    source = raw.get('source', set_source)
    if not source:
        problems.append("no bag or clip: set 'source' (in the file or on the command line)")
        source = ''
    source_path = pathlib.Path(str(source)).expanduser()
    if source and not source_path.is_absolute():
        source_path = base / source_path
    time = _ask_time(raw, problems)
    choices = _string_list(raw.get('choices', ()), 'choices', problems)
    task = str(raw.get('task') or '').strip()
    object_name = str(raw.get('object_name') or '').strip()
    if mode in (Mode.QUESTION, Mode.TRAJECTORY, Mode.MULTIPLE_CHOICE) and not task:
        problems.append(f"mode {mode.value} needs 'task' (the question or instruction)")
    if mode is Mode.GROUNDING and not object_name:
        problems.append("mode grounding needs 'object_name'")
    if mode is Mode.MULTIPLE_CHOICE and not 2 <= len(choices) <= MAX_CHOICES:
        problems.append(f"mode multiple_choice needs 2 to {MAX_CHOICES} 'choices', "
                        f'got {len(choices)}')
    expected = _expected(raw.get('expected'), mode, choices, problems)
    topics = {name: _topic_name(str(raw.get(name, set_topics.get(name, '')) or ''))
              for name in _TOPIC_FIELDS}
    asked: tuple[str, ...] = ()
    if cameras:
        asked = _item_cameras(raw, cameras, problems)
        _check_truth_camera(expected, asked, cameras, problems)
        topics = {'topic': cameras[0].image, 'depth_topic': '', 'camera_info_topic': ''}
    else:
        if 'cameras' in raw:
            problems.append("'cameras' names cameras of the set: name them in the set's "
                            "'cameras' mapping (name: topic) first")
        if expected.camera:
            problems.append(f"expected camera '{expected.camera}' names a camera, but the set "
                            "has none: map the cameras in the set's 'cameras'")
        if bool(topics['depth_topic']) != bool(topics['camera_info_topic']):
            problems.append("lifting answers into 3D needs both 'depth_topic' and "
                            "'camera_info_topic' (the colour camera's CameraInfo)")
        if expected.in_3d and not topics['depth_topic']:
            problems.append(f"expected {expected.in_3d} needs 'depth_topic' and "
                            "'camera_info_topic' (an aligned depth image and the CameraInfo, "
                            'in the bag) to lift the answer with')
    item = QuestionItem(
        id=str(raw.get('id') or f'item-{index}'),
        source=str(source_path.resolve()) if source else '',
        **topics,
        time=time, mode=mode, task=task, choices=choices, object_name=object_name,
        reasoning=_boolean(raw.get('reasoning', False), 'reasoning', problems),
        window_duration=_window_duration(raw.get('window_duration', 0.0), problems),
        max_frames=_count(raw.get('max_frames', 0), 'max_frames', problems),
        max_new_tokens=_count(raw.get('max_new_tokens', 0), 'max_new_tokens', problems),
        tolerance=_fraction(raw.get('tolerance', DEFAULT_TOLERANCE), 'tolerance', problems),
        iou_threshold=_fraction(raw.get('iou_threshold', DEFAULT_IOU_THRESHOLD),
                                'iou_threshold', problems),
        tolerance_3d=_metres(raw.get('tolerance_3d', DEFAULT_TOLERANCE_3D), 'tolerance_3d',
                             problems),
        expected=expected, camera_topics=cameras, cameras=asked)
    return item, problems


def _set_cameras(raw: Any, problems: list[str]) -> tuple[CameraTopics, ...]:
    """The set's 'cameras' mapping: name -> image topic, or name -> {image, depth,
    camera_info}.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        problems.append("'cameras' must map camera names to their image topic (head: "
                        '/head/image_raw) or to {image: ..., depth: ..., camera_info: ...}, got '
                        f'{_short(raw)}')
        return ()
    try:
        check_camera_names([str(name) for name in raw])
    except ValueError as error:
        problems.append(f"'cameras': {error}")
        return ()
    cameras = []
    for name, value in raw.items():
        fields = {'image': value} if isinstance(value, str) else value
        if not isinstance(fields, dict) or not isinstance(fields.get('image'), str) \
                or not fields['image'].strip():
            problems.append(f"camera '{name}' needs its image topic: '{name}: /topic' or "
                            f"'{name}: {{image: /topic, depth: ..., camera_info: ...}}', got "
                            f'{_short(value)}')
            continue
        unknown = [key for key in fields if key not in _CAMERA_FIELDS]
        if unknown:
            problems.append(f"camera '{name}': unknown field '{unknown[0]}' (known: "
                            f"{', '.join(_CAMERA_FIELDS)})")
        topics = {key: _topic_name(str(fields.get(key) or '')) for key in _CAMERA_FIELDS}
        if bool(topics['depth']) != bool(topics['camera_info']):
            problems.append(f"camera '{name}': lifting answers into 3D needs both 'depth' and "
                            "'camera_info' (this camera's CameraInfo)")
        cameras.append(CameraTopics(str(name), topics['image'], topics['depth'],
                                    topics['camera_info']))
    return tuple(cameras)


def _item_cameras(raw: dict, cameras: tuple[CameraTopics, ...],
                  problems: list[str]) -> tuple[str, ...]:
    """The cameras an item asks about: its 'cameras' list, or all of the set's."""
    known = [camera.name for camera in cameras]
    if 'cameras' not in raw:
        return tuple(known)
    names = _string_list(raw['cameras'], 'cameras', problems)
    listing = ', '.join(known)
    for name in names:
        if name not in known:
            problems.append(f"camera '{name}' is not one of the set's cameras ({listing}): "
                            "add it to the set's 'cameras' or leave it out")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"'cameras' names '{repeated[0]}' more than once")
    if not names:
        problems.append(f"'cameras' is empty: name at least one of {listing}, or leave it out "
                        'for all')
    return names


def _check_truth_camera(expected: Expected, asked: tuple[str, ...],
                        cameras: tuple[CameraTopics, ...], problems: list[str]) -> None:
    """The camera the expected answer is in must be one the item asks about (with depth for
    an answer in metres).
    """
    if expected.camera and asked and expected.camera not in asked:
        problems.append(f"expected camera '{expected.camera}' is not one the item asks about "
                        f"({', '.join(asked)})")
        return
    truth = expected.camera or (asked[0] if asked else '')
    camera = next((camera for camera in cameras if camera.name == truth), None)
    if expected.in_3d and camera is not None and not camera.depth:
        problems.append(f"expected {expected.in_3d} is in camera '{truth}', which has no "
                        "'depth' and 'camera_info' in the set's 'cameras' to lift the answer "
                        'with')


def _ask_time(raw: dict, problems: list[str]) -> AskTime:
    has_at, has_stamp = 'at' in raw, 'stamp' in raw
    if has_at == has_stamp:
        problems.append("give exactly one of 'at' (seconds after the start, or 'end') and "
                        "'stamp' (absolute bag time in seconds)")
        return AskTime(offset=0.0)
    if has_stamp:
        stamp = _number(raw['stamp'], 'stamp', problems)
        return AskTime(stamp=stamp)
    value = raw['at']
    if isinstance(value, str) and value.strip().lower() == 'end':
        return AskTime(at_end=True)
    if isinstance(value, str):
        try:
            return AskTime(offset=parse_timestamp(value))
        except ValueError as error:
            problems.append(f"'at': {error}")
            return AskTime(offset=0.0)
    offset = _number(value, 'at', problems)
    if offset < 0:
        problems.append(f"'at' must not be negative (seconds after the start), got {offset}")
    return AskTime(offset=offset)


def _expected(raw: Any, mode: Mode, choices: Sequence[str], problems: list[str]) -> Expected:
    if raw is None:
        return Expected()
    if isinstance(raw, dict) and 'camera' in raw:
        raw = dict(raw)
        camera = raw.pop('camera')
        if not isinstance(camera, str) or not camera.strip():
            problems.append(f'expected camera must be a camera name, got {_short(camera)}')
            camera = ''
        answer = _expected(raw, mode, choices, problems) if raw else Expected()
        if camera and not (answer.trajectory or answer.boxes or answer.in_3d):
            problems.append('expected camera names the view of points or boxes: give it with '
                            'trajectory, boxes, trajectory_3d or centres_3d')
        return dataclasses.replace(answer, camera=camera.strip())
    names_3d = [name for name in EXPECTED_3D_MODES if isinstance(raw, dict) and name in raw]
    if names_3d:
        raw = dict(raw)
        lifted = {name: _expected_points_3d(name, raw.pop(name), mode, problems)
                  for name in names_3d}
        in_pixels = _expected(raw, mode, choices, problems) if raw else Expected()
        return dataclasses.replace(in_pixels, **lifted)
    if not isinstance(raw, dict) or len(raw) != 1:
        problems.append(f"'expected' must hold exactly one of {', '.join(EXPECTED_KINDS)} "
                        '(a trajectory may have trajectory_3d beside it, a grounding '
                        'centres_3d)')
        return Expected()
    ((kind, value),) = raw.items()
    allowed = _KINDS_BY_MODE[mode]
    if kind not in EXPECTED_KINDS:
        problems.append(f"unknown expected answer '{kind}' (known: {', '.join(EXPECTED_KINDS)})")
        return Expected()
    if kind not in allowed:
        problems.append(f"mode {mode.value} is scored with expected {' or '.join(allowed)}, "
                        f"not '{kind}'")
        return Expected()
    reader = {'choice': _expected_choice, 'verdict': _expected_verdict,
              'trajectory': _expected_trajectory, 'boxes': _expected_boxes,
              'events': _expected_events, 'keywords': _expected_keywords}[kind]
    count = len(problems)
    expected = reader(value, choices, problems)
    return expected if len(problems) == count else Expected()


def _expected_choice(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    letters = [chr(ord('A') + i) for i in range(len(choices))]
    text = str(value).strip()
    if text.upper() in letters and len(text) == 1:
        return Expected(choice=text.upper())
    matches = [letter for letter, choice in zip(letters, choices, strict=True) if choice == text]
    if len(matches) == 1:
        return Expected(choice=matches[0])
    problems.append(f'expected choice {value!r} is neither one of the letters '
                    f"{', '.join(letters) or '(no choices)'} nor the text of one choice")
    return Expected()


def _expected_verdict(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    # YAML 1.1 reads a bare yes/no as a boolean.
    if isinstance(value, bool):
        return Expected(verdict='yes' if value else 'no')
    text = str(value).strip().lower()
    if text in ('yes', 'no'):
        return Expected(verdict=text)
    problems.append(f'expected verdict must be yes or no, got {value!r}')
    return Expected()


def _expected_trajectory(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    points = []
    if isinstance(value, list):
        for point in value:
            if isinstance(point, dict):
                point = point.get('point_2d', point.get('point'))
            if not (isinstance(point, list) and len(point) == 2 and all(map(_finite, point))):
                break
            points.append((float(point[0]), float(point[1])))
        else:
            if points:
                return Expected(trajectory=tuple(points))
    problems.append('expected trajectory must be a non-empty list of [x, y] points in source '
                    f'pixels, got {_short(value)}')
    return Expected()


def _expected_points_3d(name: str, value: Any, mode: Mode,
                        problems: list[str]) -> tuple[tuple[float, float, float], ...]:
    if mode is not EXPECTED_3D_MODES[name]:
        problems.append(f'expected {name} belongs to mode {EXPECTED_3D_MODES[name].value}, not '
                        f'{mode.value}')
        return ()
    points = []
    for point in value if isinstance(value, list) and value else [None]:
        if not (isinstance(point, list) and len(point) == 3 and all(map(_finite, point))):
            problems.append(f'expected {name} must be a non-empty list of [x, y, z] '
                            "points in metres in the colour camera's optical frame, got "
                            f'{_short(value)}')
            return ()
        points.append((float(point[0]), float(point[1]), float(point[2])))
    return tuple(points)


def _expected_boxes(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    boxes = []
    for entry in value if isinstance(value, list) else [None]:
        label = ''
        if isinstance(entry, dict):
            label = str(entry.get('label') or '')
            entry = next((entry[key] for key in ('bbox_2d', 'bbox', 'box_2d', 'box')
                          if key in entry), None)
        if not (isinstance(entry, list) and len(entry) == 4 and all(map(_finite, entry))):
            problems.append('expected boxes must be a non-empty list of [x1, y1, x2, y2] (or '
                            f'{{bbox: [x1, y1, x2, y2], label: ...}}) in source pixels, got '
                            f'{_short(value)}')
            return Expected()
        x1, y1, x2, y2 = (float(v) for v in entry)
        if x1 == x2 or y1 == y2:
            problems.append(f'expected box {entry} has no area')
            return Expected()
        boxes.append(Box(label, min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    if not boxes:
        problems.append('expected boxes is empty')
        return Expected()
    return Expected(boxes=tuple(boxes))


def _expected_events(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    events = []
    for entry in value if isinstance(value, list) and value else [None]:
        if not isinstance(entry, dict) or 'start' not in entry or 'end' not in entry:
            problems.append('expected events must be a non-empty list of {start, end, caption} '
                            f'with times in seconds after the start, got {_short(value)}')
            return Expected()
        try:
            start, end = parse_timestamp(entry['start']), parse_timestamp(entry['end'])
        except ValueError as error:
            problems.append(f'expected event {_short(entry)}: {error}')
            return Expected()
        if end < start:
            problems.append(f'expected event {_short(entry)} ends before it starts')
            return Expected()
        events.append(Event(start, end, str(entry.get('caption') or '')))
    return Expected(events=tuple(events))


def _expected_keywords(value: Any, choices: Sequence[str], problems: list[str]) -> Expected:
    keywords = []
    for entry in value if isinstance(value, list) and value else [None]:
        options = entry if isinstance(entry, list) else [entry]
        words = tuple(str(word).strip() for word in options
                      if isinstance(word, (str, int, float)) and str(word).strip())
        if not words or len(words) != len(options):
            problems.append('expected keywords must be a non-empty list of words (or lists of '
                            f'alternative words), got {_short(value)}')
            return Expected()
        keywords.append(words)
    return Expected(keywords=tuple(keywords))


# --- small readers -------------------------------------------------------------------------------

def _item_label(index: int, raw: Any) -> str:
    if isinstance(raw, dict) and raw.get('id'):
        return f"item {index} ({raw['id']!r})"
    return f'item {index}'


def _topic_name(topic: str) -> str:
    topic = topic.strip()
    return topic if not topic or topic.startswith('/') else '/' + topic


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _number(value: Any, name: str, problems: list[str]) -> float:
    if _finite(value):
        return float(value)
    problems.append(f"'{name}' must be a number, got {value!r}")
    return 0.0


def _count(value: Any, name: str, problems: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.append(f"'{name}' must be a whole number >= 0 (0: the run's default), got {value!r}")
    return 0


def _fraction(value: Any, name: str, problems: list[str]) -> float:
    if _finite(value) and 0 < value <= 1:
        return float(value)
    problems.append(f"'{name}' must be a number in (0, 1], got {value!r}")
    return 0.5


def _metres(value: Any, name: str, problems: list[str]) -> float:
    if _finite(value) and value > 0:
        return float(value)
    problems.append(f"'{name}' must be metres > 0, got {value!r}")
    return DEFAULT_TOLERANCE_3D


def _boolean(value: Any, name: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    problems.append(f"'{name}' must be true or false, got {value!r}")
    return False


def _window_duration(value: Any, problems: list[str]) -> float:
    if isinstance(value, str) and value.strip().lower() == 'all':
        return math.inf
    if _finite(value) and value >= 0:
        return float(value)
    problems.append("'window_duration' must be seconds >= 0 (0: the run's default) or 'all', "
                    f'got {value!r}')
    return 0.0


def _string_list(value: Any, name: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return tuple(str(v).strip() for v in value)
    problems.append(f"'{name}' must be a list of strings, got {_short(value)}")
    return ()


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


__all__ = ['FORMAT_VERSION', 'load_questions', 'parse_question_set']
