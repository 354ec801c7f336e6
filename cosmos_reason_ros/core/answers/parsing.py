"""Turn a model's raw output into reasoning, answer and typed results for the goal's mode.

Coordinates come back in pixels of the source camera image, times in seconds from the first frame.
"""

from collections.abc import Iterator
import dataclasses
import enum
import json
import re
from typing import TypeGuard

from cosmos_reason_ros.core.answers.families import Coordinates, family_spec
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily


class ParseStatus(enum.IntEnum):
    """How far parsing got; values match ReasoningResult.msg's PARSE_* constants."""

    OK = 0
    """The answer holds what the mode asks for (free-text modes: a non-empty answer)."""
    TRUNCATED = 1
    """Generation stopped inside <think> (no </think>): reasoning only, the answer is ''."""
    FAILED = 2
    """The answer lacks the structure the mode asks for; `error` says why."""
    NOT_RUN = 3
    """Nothing to parse; callers use it for goals that failed before generation ended."""


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Waypoints the model proposed, in order, in pixels of the source image."""

    label: str
    points: tuple[tuple[float, float], ...]
    camera: str = ''
    """The view the points are in ('' for one unnamed view; with one named view, its name)."""


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the source image, corners ordered min then max."""

    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    camera: str = ''
    """The view the box is in ('' for one unnamed view; with one named view, its name)."""


@dataclasses.dataclass(frozen=True)
class Event:
    """An event the model found, in seconds from the first frame of the window."""

    start: float
    end: float
    caption: str


@dataclasses.dataclass(frozen=True)
class ParsedAnswer:
    """Everything parse_answer read from one model output."""

    reasoning: str
    """Text of <think>...</think> (or the server's reasoning), stripped."""
    answer: str
    """The final answer, reasoning and tags removed, stripped."""
    status: ParseStatus
    error: str = ''
    """Why the status is FAILED or TRUNCATED; with OK, a note on what was skipped (or '')."""
    trajectories: tuple[Trajectory, ...] = ()
    boxes: tuple[Box, ...] = ()
    events: tuple[Event, ...] = ()
    choice: str = ''
    """Multiple choice: the option letter 'A'..'Z', else ''."""
    verdict: str = ''
    """Question mode: 'yes' or 'no' when the answer starts with one, else ''."""
    next_action: str = ''
    """Next-action mode: the first paragraph of the answer."""


Size = tuple[int, int]
Number = int | float


@dataclasses.dataclass(frozen=True)
class ViewGeometry:
    """One camera view of a multi-view answer: the sizes its coordinates map between."""

    name: str
    source_size: Size
    """(width, height) of this camera's image."""
    model_input_size: Size | None = None
    """(width, height) the model saw this view at; needed for Qwen2.5-VL coordinates (None:
    parse_answer's model_input_size)."""


_THINK_OPEN = re.compile(r'<think>', re.IGNORECASE)
_THINK_CLOSE = re.compile(r'</think>', re.IGNORECASE)
_LEADING_THINK_OPEN = re.compile(r'^\s*<think>', re.IGNORECASE)
_ANSWER_OPEN = re.compile(r'<answer>', re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r'</answer>', re.IGNORECASE)

_NORMALIZED_MAX = 1000.0
_POINT_KEYS = ('point_2d', 'point')
_BOX_KEYS = ('bbox_2d', 'box_2d', 'bbox', 'box', 'bounding_box')
_CAPTION_KEYS = ('caption', 'event', 'description')
_MAX_PROBLEMS_SHOWN = 3
_MAX_MAGNITUDE = 1e15  # beyond any pixel or second; huge JSON ints would overflow floats

_TRUNCATED_LOCAL = (
    'generation stopped inside <think> before </think>, so there is no answer; raise '
    'max_new_tokens (4096 is recommended with reasoning) or ask without reasoning')
_TRUNCATED_SERVER = (
    'the server returned reasoning but no content (no </think> in the output): generation most '
    'likely stopped inside the reasoning, so raise max_tokens; if the request did not ask for '
    "reasoning, the server's reasoning parser (vLLM --reasoning-parser) moved the whole answer "
    'into the reasoning field: pass it as the text instead')


# --- reasoning and answer ------------------------------------------------------------------------

def split_reasoning(text: str, *, starts_in_reasoning: bool = False) -> tuple[str, str, bool]:
    """Separate the reasoning from the final answer.

    Handles `<think>...</think>` followed by the answer (Reason2), an answer inside
    `<answer>...</answer>` (Reason1), a `</think>` without its opening tag (the opening tag was
    part of the prompt, as Cosmos3-Edge's template does with thinking on), and an unterminated
    `<think>` (generation stopped while reasoning). Text before `<think>` is kept as part of the
    answer.

    Args:
        text: the model's output.
        starts_in_reasoning: the prompt ended with an opened `<think>`, so the output starts
            inside the reasoning: without `</think>` it is all reasoning, cut off.

    Returns:
        (reasoning, answer, truncated), both strings stripped. truncated is True when a `<think>`
        is never closed; then reasoning is everything after the tag and answer is ''.
    """
    if starts_in_reasoning:
        # Everything up to the first </think> is reasoning, a <think> written inside it
        # included: taking it for an opening tag would make the reasoning before it the answer.
        closed = _THINK_CLOSE.search(text)
        if closed is None:
            return text.strip(), '', True
        reasoning = _LEADING_THINK_OPEN.sub('', text[:closed.start()], count=1)
        return reasoning.strip(), _inside_answer_tags(text[closed.end():]).strip(), False
    opened = _THINK_OPEN.search(text)
    closed = _THINK_CLOSE.search(text, opened.end() if opened else 0)
    if closed is None and opened is not None:
        return text[opened.end():].strip(), '', True
    if closed is None:
        return '', _inside_answer_tags(text).strip(), False
    reasoning_start = opened.end() if opened else 0
    before = text[:opened.start()] if opened else ''
    reasoning = text[reasoning_start:closed.start()]
    answer = before + _inside_answer_tags(text[closed.end():])
    return reasoning.strip(), answer.strip(), False


def _inside_answer_tags(text: str) -> str:
    """The text inside <answer>...</answer>, what follows an unclosed <answer>, or all of it."""
    opened = _ANSWER_OPEN.search(text)
    if opened is None:
        closed = _ANSWER_CLOSE.search(text)
        return text[:closed.start()] if closed else text
    closed = _ANSWER_CLOSE.search(text, opened.end())
    return text[opened.end():closed.start() if closed else len(text)]


def _separate(text: str, server_reasoning: str | None,
              starts_in_reasoning: bool) -> tuple[str, str, str]:
    """Reasoning, answer and a truncation note ('' when not truncated) for local or server output.

    A server that splits reasoning off (vLLM's reasoning parser) returns the content as `text`;
    when the output had no </think>, the content is empty and everything sits in the reasoning.
    """
    if server_reasoning is None:
        reasoning, answer, truncated = split_reasoning(text,
                                                       starts_in_reasoning=starts_in_reasoning)
        return reasoning, answer, _TRUNCATED_LOCAL if truncated else ''
    if text.strip():
        reasoning, answer, truncated = split_reasoning(text)
        server_part = _THINK_OPEN.sub('', server_reasoning).strip()
        joined = '\n\n'.join(part for part in (server_part, reasoning) if part)
        return joined, answer, _TRUNCATED_LOCAL if truncated else ''
    if _THINK_CLOSE.search(server_reasoning) or _ANSWER_OPEN.search(server_reasoning):
        reasoning, answer, truncated = split_reasoning(server_reasoning)
        return reasoning, answer, _TRUNCATED_LOCAL if truncated else ''
    return _THINK_OPEN.sub('', server_reasoning).strip(), '', _TRUNCATED_SERVER


# --- JSON ----------------------------------------------------------------------------------------

_FENCE = re.compile(r'```[ \t]*[\w+-]*[ \t]*\n?(.*?)(```|\Z)', re.DOTALL)
_TRAILING_COMMA = re.compile(r',\s*([\]}])')
_OPENERS = {'[': ']', '{': '}'}
_MAX_UNCLOSED = 32  # bounds the work on prose full of stray brackets
# What follows an opening bracket in JSON (rather than in prose such as '[approximately').
_JSON_CONTENT = re.compile(r'\s*[\[{"\'\d-]')


def find_json(text: str) -> dict | list | None:
    """Return the first JSON object or array in `text`, or None.

    Fenced blocks (```json ... ```) come first, then bare JSON in the prose around them, in order
    of appearance. Lists with trailing commas and single-quoted JSON are read as a fallback. A
    value that is cut off or broken yields nothing: no fragments from inside it are returned.

    Args:
        text: an answer, possibly prose around the JSON.

    Returns:
        The parsed dict or list, or None when the text holds none.
    """
    values, _ = _scan_json(text)
    return values[0] if values else None


def _scan_json(text: str) -> tuple[list, list[str]]:
    """All JSON objects and arrays in `text` (fences first) and why others did not parse."""
    values: list = []
    problems: list[str] = []
    prose = []
    last_end = 0
    for fence in _FENCE.finditer(text):
        prose.append(text[last_end:fence.start()])
        last_end = fence.end()
        value, problem = _loads(fence.group(1))
        if problem and not fence.group(2):
            problem = (f'the ```json block is never closed (cut off? raise max_new_tokens) and '
                       f'{problem}')
        _collect(value, problem, values, problems)
    prose.append(text[last_end:])
    for segment in prose:
        for value, problem in _bare_json(segment):
            _collect(value, problem, values, problems)
    return values, problems


def _collect(value: object, problem: str, values: list, problems: list[str]) -> None:
    if problem:
        problems.append(problem)
    elif isinstance(value, (dict, list)):
        values.append(value)


def _bare_json(text: str) -> Iterator[tuple[object, str]]:
    """(value, '') or (None, problem) for each bracketed span of `text`, left to right."""
    position = 0
    unclosed_left = _MAX_UNCLOSED
    while unclosed_left > 0:
        start = _next_opener(text, position)
        if start < 0:
            return
        end = _matching_close(text, start)
        if end < 0 and _JSON_CONTENT.match(text, start + 1):
            # JSON that was cut off: fragments from inside it would pass for a whole answer.
            yield None, (f'JSON {_excerpt(text[start:])} is cut off (raise max_new_tokens?) or '
                         'its brackets do not match')
            return
        if end < 0:
            unclosed_left -= 1  # a bracket in prose, e.g. '[approximately'
            position = start + 1
            continue
        span = text[start:end + 1]
        value, problem = _loads(span)
        if not problem:
            yield value, ''
        elif _JSON_CONTENT.match(span, 1):
            yield None, problem
        position = end + 1


def _next_opener(text: str, position: int) -> int:
    found = [i for i in (text.find('[', position), text.find('{', position)) if i >= 0]
    return min(found) if found else -1


def _matching_close(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`; -1 if never closed or closed wrongly."""
    stack = []
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
        elif char in ']}':
            if not stack or stack.pop() != char:
                return -1
            if not stack:
                return index
    return -1


def _loads(candidate: str) -> tuple[object, str]:
    """(value, '') or (None, why) for one JSON candidate, retrying with cheap, safe repairs."""
    try:
        # strict=False: a raw control character inside a string (a tab, a stray byte a
        # byte-level tokenizer produced) does not make the whole answer unreadable.
        return json.loads(candidate, strict=False), ''
    except (ValueError, RecursionError) as exc:
        first_error = exc
    repaired = _TRAILING_COMMA.sub(r'\1', candidate)
    if '"' not in repaired:
        repaired = repaired.replace("'", '"')
    if repaired != candidate:
        try:
            return json.loads(repaired, strict=False), ''
        except (ValueError, RecursionError):
            pass
    return None, f'JSON {_excerpt(candidate)} does not parse ({_reason(first_error)})'


def _reason(exc: Exception) -> str:
    return 'nested too deeply' if isinstance(exc, RecursionError) else str(exc)


def _excerpt(text: str, limit: int = 40) -> str:
    flat = ' '.join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + '...')


# --- coordinates and times -----------------------------------------------------------------------

def to_source_pixels(x: float, y: float, family: ModelFamily, source_size: Size,
                     model_input_size: Size | None = None) -> tuple[float, float]:
    """Map a point from the model's coordinate convention to source-image pixels.

    Args:
        x: horizontal coordinate as the model wrote it.
        y: vertical coordinate as the model wrote it.
        family: Qwen3-VL and Cosmos 3 answer 0-1000 per axis; Qwen2.5-VL answers pixels of its
            resized input (FamilySpec.coordinates).
        source_size: (width, height) of the camera image.
        model_input_size: (width, height) of the image the model saw; needed for Qwen2.5-VL.

    Returns:
        (x, y) in pixels of the source image, origin top left. Nothing is clamped.

    Raises:
        ValueError: a size is not positive, or Qwen2.5-VL without model_input_size.
    """
    width, height = _positive_size(source_size, 'source_size')
    scale_x, scale_y = _coordinate_range(family, model_input_size)
    return x / scale_x * width, y / scale_y * height


def _coordinate_range(family: ModelFamily,
                      model_input_size: Size | None) -> tuple[float, float]:
    """The largest x and y the family's convention allows."""
    if family_spec(family).coordinates is Coordinates.NORMALIZED_1000:
        return _NORMALIZED_MAX, _NORMALIZED_MAX
    if model_input_size is None:
        raise ValueError(
            'model_input_size is needed to map Qwen2.5-VL (Cosmos-Reason1) coordinates, which '
            'are pixels of the resized model input; pass GenerationResult.model_input_size')
    return _positive_size(model_input_size, 'model_input_size')


def _positive_size(size: Size, name: str) -> tuple[float, float]:
    width, height = size
    if not (_is_number(width) and _is_number(height) and width > 0 and height > 0):
        raise ValueError(f'{name} must be two positive numbers (width, height), got {size!r}')
    return float(width), float(height)


_CLOCK_PART = re.compile(r'\d+')
_SECONDS_PART = re.compile(r'\d+(\.\d*)?|\.\d+')
_SECONDS_SUFFIX = re.compile(r'\s*(s|sec|secs|second|seconds)$')


def parse_timestamp(value: str | Number) -> float:
    """Read a time as seconds: 'mm:ss.ff', 'mm:ss.fff', 'hh:mm:ss.ff', '12.5', '12.5s' or 12.5.

    Args:
        value: a string in one of those forms, or a number of seconds.

    Returns:
        Seconds, never negative.

    Raises:
        ValueError: the value is none of those forms, negative, not finite, or has a minutes or
            seconds field of 60 or more after the first field.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not _is_number(value) or value < 0:
            raise ValueError(f'time {value!r} is not a finite, non-negative number of seconds')
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f'time {value!r} is neither a string nor a number')
    fields = _SECONDS_SUFFIX.sub('', value.strip().lower()).split(':')
    if len(fields) > 3 or not _SECONDS_PART.fullmatch(fields[-1]):
        raise ValueError(f"time {value!r} is not 'mm:ss.ff', 'hh:mm:ss.ff' or seconds")
    if not all(_CLOCK_PART.fullmatch(field) for field in fields[:-1]):
        raise ValueError(f"time {value!r} is not 'mm:ss.ff', 'hh:mm:ss.ff' or seconds")
    numbers = [float(field) for field in fields]
    if any(number >= 60 for number in numbers[1:]):
        raise ValueError(f'time {value!r} has a field of 60 or more')
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def _is_number(value: object) -> bool:
    """A usable JSON number: not a bool, finite, small enough for float arithmetic."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < _MAX_MAGNITUDE  # also False for NaN and infinities


def _is_pair(value: object) -> TypeGuard[list]:
    return isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))


def _is_quad(value: object) -> TypeGuard[list]:
    return isinstance(value, list) and len(value) == 4 and all(map(_is_number, value))


def _label_of(item: dict, default: str) -> str:
    label = item.get('label')
    return default if label is None or label == '' else str(label)


# --- choices and verdicts ------------------------------------------------------------------------

_DECORATION = '*_#>`"\' \t\n'
_ONLY_LETTER = re.compile(r'\(?([A-Za-z])\)?[.:]?')
_LEADING_LETTER = re.compile(r'(?:\(([A-Z])\)|([A-Z])[).:,])(?=\s|$)')
_STATED_LETTER = re.compile(
    r"\b(?:(?:answer|option|choice)\s*(?:is|:)?|(?:it|that|this)\s+is|it's|would\s+be|"
    r'choose|select|pick)\s*:?\s*'
    r'(?:option\s+|choice\s+)?(\()?([A-Za-z])(\))?(?![A-Za-z])', re.IGNORECASE)
_BRACKETED_LETTER = re.compile(r'\(([A-Z])\)')
_ANSWER_PREFIX = re.compile(r'(final\s+)?answer\s*:', re.IGNORECASE)
_YES_NO = re.compile(r'(yes|no)\b', re.IGNORECASE)


def parse_choice(answer: str) -> str:
    """Find the option letter in a multiple-choice answer.

    Recognised: the answer is just a letter ('C', '(B)', 'b.'), starts with one ('(B) The car
    stops', 'B. ...'), or says it ('Answer: C', 'The correct answer is (D) ...', 'Option B',
    'I think it is B.', 'I would choose C'), or quotes an option label ('go straight (B)').
    Markdown emphasis is ignored. A lowercase letter counts only alone, in parentheses
    ('Answer: (b)') or ending the answer ('The answer is b'), since 'a' is a word elsewhere
    ('The answer is a car').

    Args:
        answer: the final answer text.

    Returns:
        The letter in upper case, or '' when none is found.
    """
    text = answer.replace('**', '').strip(_DECORATION)
    only = _ONLY_LETTER.fullmatch(text)
    if only:
        return only.group(1).upper()
    leading = _LEADING_LETTER.match(text)
    if leading:
        return leading.group(1) or leading.group(2)
    for stated in _STATED_LETTER.finditer(text):
        opened, letter, closed = stated.groups()
        at_end = not text[stated.end():].strip(_DECORATION + '.!')
        if letter.isupper() or (opened and closed) or at_end:
            return letter.upper()
    # Last: an option label quoted anywhere ('go straight (B)').
    bracketed = _BRACKETED_LETTER.search(text)
    return bracketed.group(1) if bracketed else ''


def parse_verdict(answer: str) -> str:
    """'yes' or 'no' when the answer starts with that word, else ''.

    Leading markdown ('**No**'), quotes and an 'Answer:' prefix are skipped. Only the first word
    counts: 'it is **not safe**' gives '' because reading negations robustly is not this
    function's job; the planner has the full answer for that.

    Args:
        answer: the final answer text.

    Returns:
        'yes', 'no' or ''.
    """
    text = answer.lstrip(_DECORATION)
    prefix = _ANSWER_PREFIX.match(text)
    if prefix:
        text = text[prefix.end():].lstrip(_DECORATION)
    word = _YES_NO.match(text)
    return word.group(1).lower() if word else ''


# --- modes ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Context:
    """What a mode parser needs besides the answer."""

    family: ModelFamily
    source_size: Size
    model_input_size: Size | None
    num_choices: int
    object_name: str
    views: tuple[ViewGeometry, ...] = ()

    @property
    def camera_names(self) -> tuple[str, ...]:
        """The views' names when there are several (dict keys that name a camera)."""
        return tuple(view.name for view in self.views) if len(self.views) > 1 else ()

    def locate(self, camera: object, what: str, problems: list[str]
               ) -> tuple[str, Size, Size | None]:
        """The camera an item is in and the sizes that map its coordinates.

        No views: '' and the goal's sizes. One view: that view, whatever the item says (its
        prompt asked for no camera). Several: the view the item's `camera` names; an item
        naming none, or a name not among the views, is a problem (added to `problems`, which
        makes the status FAILED) and is mapped with the first view's sizes, keeping the name
        it gave ('' for none), so that it is drawn on no view.
        """
        if not self.views:
            return '', self.source_size, self.model_input_size
        if len(self.views) == 1 or any(view.name == camera for view in self.views):
            view = (self.views[0] if len(self.views) == 1
                    else next(view for view in self.views if view.name == camera))
            return view.name, view.source_size, view.model_input_size or self.model_input_size
        names = ', '.join(f"'{view.name}'" for view in self.views)
        first = self.views[0]
        given = ('names no camera' if camera is None
                 else f'names camera {_excerpt(json.dumps(camera))}')
        problems.append(f'{what} {given}; expected "camera" to be one of {names} (mapped with '
                        f"the first view, '{first.name}')")
        return (camera if isinstance(camera, str) else '', first.source_size,
                first.model_input_size or self.model_input_size)


def _summary(problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    return '; '.join(shown) + (f'; and {more} more' if more > 0 else '')


def _failed(base: ParsedAnswer, error: str) -> ParsedAnswer:
    return dataclasses.replace(base, status=ParseStatus.FAILED, error=error)


def _missing_error(values: list, problems: list[str], what: str, expected: str) -> str:
    """Why an answer yielded none of `what`, and what the model should have written."""
    if problems:
        return f'{_summary(problems)}; expected {expected}'
    if values:
        return f'the JSON in the answer holds no {what}; expected {expected}'
    return f'the answer holds no JSON; expected {expected}'


def _parse_caption(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    return base


def _parse_question(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    return dataclasses.replace(base, verdict=parse_verdict(base.answer))


def _parse_next_action(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    first_paragraph = re.split(r'\n\s*\n', base.answer, maxsplit=1)[0].strip()
    return dataclasses.replace(base, next_action=first_paragraph)


def _parse_multiple_choice(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    letter = parse_choice(base.answer)
    if not letter:
        return _failed(base, f'no option letter in the answer {_excerpt(base.answer)}; expected '
                             "a letter such as 'B' or '(B)' or 'Answer: B'")
    count = min(context.num_choices, 26)
    if count > 0 and ord(letter) - ord('A') >= count:
        last = chr(ord('A') + count - 1)
        return _failed(base, f'the answer chose {letter} but the question has {count} options '
                             f'(A-{last})')
    return dataclasses.replace(base, choice=letter)


_TRAJECTORY_FORM = 'JSON like [{"point_2d": [x, y], "label": "gripper trajectory"}, ...]'


Found = tuple[str, object, list]
"""(label, camera as the answer gave it or None, coordinates) of one point or box."""


def _walk_points(value: object, label: str, problems: list[str], *, camera: object = None,
                 cameras: tuple[str, ...] = ()) -> Iterator[Found]:
    """(label, camera, [x, y]) for each waypoint in a JSON value, in order.

    A bare [x, y] counts only inside a list of pairs or under a point key, so that a single pair
    quoted in prose is not taken for a one-point trajectory. An item's "camera" names its view;
    so does a dict key that is one of `cameras` ({"head": [...], "wrist": [...]}); any other
    key is a label.
    """
    if isinstance(value, dict):
        camera = value.get('camera', camera)
        key = next((k for k in _POINT_KEYS if k in value), None)
        if key is not None:
            yield from _points_of_item(value[key], _label_of(value, label), camera, key,
                                       problems)
            return
        for child_key, child in value.items():
            if child_key in cameras:
                yield from _walk_points(child, label, problems, camera=child_key,
                                        cameras=cameras)
            else:
                yield from _walk_points(child, str(child_key), problems, camera=camera,
                                        cameras=cameras)
    elif isinstance(value, list):
        if value and all(map(_is_pair, value)):
            yield from ((label, camera, pair) for pair in value)
            return
        for child in value:
            if not _is_pair(child):
                yield from _walk_points(child, label, problems, camera=camera, cameras=cameras)


def _points_of_item(coords: object, label: str, camera: object, key: str,
                    problems: list[str]) -> Iterator[Found]:
    if _is_pair(coords):
        yield label, camera, coords
    elif isinstance(coords, list) and coords and all(map(_is_pair, coords)):
        yield from ((label, camera, pair) for pair in coords)
    else:
        problems.append(f'{key} {_excerpt(json.dumps(coords))} is not [x, y] numbers')


def _range_problem(what: str, x: float, y: float, context: _Context,
                   model_input_size: Size | None) -> str:
    """'' if (x, y) lies in the family's coordinate range (for a view seen at
    model_input_size), else the problem in words.
    """
    max_x, max_y = _coordinate_range(context.family, model_input_size)
    if 0 <= x <= max_x and 0 <= y <= max_y:
        return ''
    spec = family_spec(context.family)
    if spec.coordinates is Coordinates.NORMALIZED_1000:
        convention = f'the 0-1000 range of {spec.title}'
    else:
        convention = f'the {max_x:g}x{max_y:g} model input of {spec.title}'
    return f'{what} ({x:g}, {y:g}) lies outside {convention}; kept unclamped'


def _parse_trajectory(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    values, problems = _scan_json(base.answer)
    found: list[Found] = []
    for value in values:
        found = list(_walk_points(value, '', problems, cameras=context.camera_names))
        if found:
            break
    if not found:
        return _failed(base, _missing_error(values, problems, 'waypoints', _TRAJECTORY_FORM))
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for index, (label, camera, (x, y)) in enumerate(found):
        camera, source_size, input_size = context.locate(camera, f'trajectory {label!r}',
                                                         problems)
        problems.append(_range_problem(f'point {index + 1} of {label!r}', x, y, context,
                                       input_size))
        grouped.setdefault((label, camera), []).append(to_source_pixels(
            x, y, context.family, source_size, input_size))
    trajectories = tuple(Trajectory(label, tuple(points), camera)
                         for (label, camera), points in grouped.items())
    parsed = dataclasses.replace(base, trajectories=trajectories)
    return _with_range_status(parsed, [p for p in problems if p])


def _with_range_status(parsed: ParsedAnswer, problems: list[str]) -> ParsedAnswer:
    """Unchanged, or FAILED naming the problems but still carrying what was parsed."""
    if problems:
        return _failed(parsed, _summary(list(dict.fromkeys(problems))))
    return parsed


_BOX_FORM = 'JSON like [{"bbox_2d": [x1, y1, x2, y2], "label": "cup"}]'


def _walk_boxes(value: object, label: str, problems: list[str], *, camera: object = None,
                cameras: tuple[str, ...] = ()) -> Iterator[Found]:
    """(label, camera, [x1, y1, x2, y2]) for each box anywhere in a JSON value, in order.

    An item's "camera" names its view, as does a dict key that is one of `cameras`.
    """
    if isinstance(value, dict):
        camera = value.get('camera', camera)
        key = next((k for k in _BOX_KEYS if k in value), None)
        if key is not None:
            item_label = _label_of(value, label)
            coords = value[key]
            if _is_quad(coords):
                yield item_label, camera, coords
            elif isinstance(coords, list) and coords and all(map(_is_quad, coords)):
                yield from ((item_label, camera, quad) for quad in coords)
            else:
                problems.append(f'{key} {_excerpt(json.dumps(coords))} is not four numbers')
        for child_key, child in value.items():
            if child_key not in _BOX_KEYS:
                yield from _walk_boxes(child, label, problems, cameras=cameras,
                                       camera=child_key if child_key in cameras else camera)
    elif isinstance(value, list):
        if value and camera in cameras and all(map(_is_quad, value)):
            # {"wrist": [[x1, y1, x2, y2], ...]}: bare boxes under a camera's key.
            yield from ((label, camera, quad) for quad in value)
            return
        for child in value:
            yield from _walk_boxes(child, label, problems, camera=camera, cameras=cameras)


def _parse_grounding(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    values, problems = _scan_json(base.answer)
    found: list[Found] = []
    for value in values:
        # A bare [x1, y1, x2, y2] answer is a box of the object asked for.
        found = ([(context.object_name, None, value)] if _is_quad(value)
                 else list(_walk_boxes(value, context.object_name, problems,
                                       cameras=context.camera_names)))
        if found:
            break
    if not found:
        return _failed(base, _missing_error(values, problems, 'boxes', _BOX_FORM))
    boxes = []
    for index, (label, camera, (x1, y1, x2, y2)) in enumerate(found):
        camera, source_size, input_size = context.locate(camera, f'box {index + 1}', problems)
        for corner, (x, y) in (('top left', (x1, y1)), ('bottom right', (x2, y2))):
            problems.append(_range_problem(f'box {index + 1} {corner}', x, y, context,
                                           input_size))
        left, top = to_source_pixels(min(x1, x2), min(y1, y2), context.family, source_size,
                                     input_size)
        right, bottom = to_source_pixels(max(x1, x2), max(y1, y2), context.family,
                                         source_size, input_size)
        boxes.append(Box(label, left, top, right, bottom, camera))
    parsed = dataclasses.replace(base, boxes=tuple(boxes))
    return _with_range_status(parsed, [p for p in problems if p])


_EVENT_FORM = ('JSON like [{"start": "mm:ss.ff", "end": "mm:ss.ff", "caption": "..."}] with '
               'times in seconds or mm:ss.ff')


def _walk_events(value: object) -> Iterator[dict]:
    """Each object with 'start' and 'end' keys anywhere in a JSON value, in order."""
    if isinstance(value, dict):
        if 'start' in value and 'end' in value:
            yield value
            return
        for child in value.values():
            yield from _walk_events(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk_events(child)


def _event_of(item: dict) -> Event:
    """The event an object describes. Raises ValueError for unreadable or reversed times."""
    start = parse_timestamp(item['start'])
    end = parse_timestamp(item['end'])
    if end < start:
        raise ValueError(f'event ends ({end:g} s) before it starts ({start:g} s)')
    caption = next((item[k] for k in _CAPTION_KEYS if k in item), None)
    if caption is not None and not isinstance(caption, str):
        caption = json.dumps(caption)
    return Event(start, end, caption or '')


def _parse_temporal(base: ParsedAnswer, context: _Context) -> ParsedAnswer:
    values, problems = _scan_json(base.answer)
    items: list[dict] = []
    for value in values:
        items = list(_walk_events(value))
        if items:
            break
    events = []
    for index, item in enumerate(items):
        try:
            events.append(_event_of(item))
        except ValueError as exc:
            problems.append(f'skipped event {index + 1}: {exc}')
    if not events:
        return _failed(base, _missing_error(values, problems, 'events', _EVENT_FORM))
    # Skipped items are worth a note, but the events that did parse are a usable answer.
    return dataclasses.replace(base, events=tuple(events), error=_summary(problems))


_PARSERS = {
    Mode.QUESTION: _parse_question,
    Mode.CAPTION: _parse_caption,
    Mode.NEXT_ACTION: _parse_next_action,
    Mode.MULTIPLE_CHOICE: _parse_multiple_choice,
    Mode.TRAJECTORY: _parse_trajectory,
    Mode.GROUNDING: _parse_grounding,
    Mode.TEMPORAL: _parse_temporal,
}
_FREE_TEXT_MODES = (Mode.QUESTION, Mode.CAPTION, Mode.NEXT_ACTION)


# --- entry point ---------------------------------------------------------------------------------

def parse_answer(text: str, mode: Mode, *, family: ModelFamily,
                 source_size: Size,
                 model_input_size: Size | None = None,
                 reasoning: str | None = None,
                 num_choices: int = 0, object_name: str = '',
                 starts_in_reasoning: bool = False,
                 views: tuple[ViewGeometry, ...] = ()) -> ParsedAnswer:
    """Parse one model output for the goal's mode. Never raises.

    Reasoning: see split_reasoning. With a server's separate `reasoning`, `text` is the content.
    When the content is empty, the answer is looked for in the reasoning (after a </think>, or
    inside <answer> tags); failing that, structured modes (trajectory, grounding, temporal,
    multiple choice) try the whole reasoning text as the answer, since the answer to a request
    without reasoning lands there too. Only when that finds nothing is the result TRUNCATED;
    free-text modes cannot tell an answer from cut-off reasoning there, so they report TRUNCATED.

    Coordinates: points and box corners are mapped to source pixels and never clamped. One
    outside the family's range (0-1000 for Qwen3-VL and Cosmos 3, the model input size for
    Qwen2.5-VL) makes the status FAILED with an error naming it, but everything parsed is still
    returned.

    Temporal events with unreadable or reversed times are skipped and named in `error`; the
    status stays OK while at least one event parses. `verdict` is filled in question mode only.

    Args:
        text: the model's output, or a server's content when it split the reasoning off.
        mode: what the goal asked for.
        family: model family; decides the coordinate convention.
        source_size: (width, height) of the camera image.
        model_input_size: (width, height) the model saw; needed for Qwen2.5-VL coordinates.
        reasoning: reasoning a server returned separately (None for local models).
        num_choices: number of options in a multiple-choice question (0: not checked).
        object_name: label for boxes the model did not label.
        starts_in_reasoning: the prompt opened `<think>` itself (Cosmos3-Edge with thinking
            on), so an output without `</think>` is reasoning cut off, not an answer.
        views: the camera views, in prompt order (empty: one unnamed view, camera ''). With
            several, each point or box is mapped with, and range-checked against, the sizes
            of the view its "camera" field names (or the camera whose key holds it, as in
            {"head": [...], "wrist": [...]}); trajectories group by (label, camera). An item
            naming no camera, or one not among the views, makes the status FAILED naming it;
            it is still returned, mapped with the first view's sizes, its camera as written
            ('' when missing), so no view claims it. One view: every item is that view's,
            whatever it says. A view without model_input_size takes the argument's.

    Returns:
        The reasoning and answer (always, whatever the status) and the typed fields of the mode.
    """
    text = text if isinstance(text, str) else ''
    reasoning = reasoning if isinstance(reasoning, str) else None
    reasoning_text, answer, truncation = _separate(text, reasoning, starts_in_reasoning)
    base = ParsedAnswer(reasoning_text, answer, ParseStatus.OK)
    try:
        context = _Context(_family(family), source_size, model_input_size, num_choices,
                           object_name, tuple(views))
        return _parse_mode(base, Mode.from_name(mode), context, truncation)
    except ValueError as exc:  # bad arguments (unknown mode, sizes) carry their own fix
        return _failed(base, str(exc))
    except Exception as exc:  # a parser bug must not take the goal down with it
        return _failed(base, f'parser error ({type(exc).__name__}: {exc}); please report it '
                             'with the raw answer')


def _family(family: ModelFamily | str) -> ModelFamily:
    try:
        return ModelFamily(family)
    except ValueError:
        valid = ', '.join(f.value for f in ModelFamily)
        raise ValueError(f'unknown model family {family!r}; use one of: {valid}') from None


def _parse_mode(base: ParsedAnswer, mode: Mode, context: _Context,
                truncation: str) -> ParsedAnswer:
    parser = _PARSERS[mode]
    if truncation == _TRUNCATED_SERVER and mode not in _FREE_TEXT_MODES:
        recovered = parser(dataclasses.replace(base, reasoning='', answer=base.reasoning),
                           context)
        if recovered.status is ParseStatus.OK:
            return recovered
    if truncation:
        return dataclasses.replace(base, status=ParseStatus.TRUNCATED, error=truncation)
    if not base.answer:
        return _failed(base, 'the answer is empty: the model wrote nothing after its reasoning'
                       if base.reasoning else 'the model returned no answer text')
    return parser(base, context)
