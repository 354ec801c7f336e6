"""The form each structured mode's answer must take, as a JSON schema or a regular expression.

Declared here once, beside the parser that reads the answers (answers.parsing): the constrained
decoding of both backends takes these formats, and a test draws answers from the compiled
grammars and parses them, so the two cannot drift apart. Free-text modes have no format.
"""

from collections.abc import Iterator, Sequence
import dataclasses
import json
from typing import Any

from cosmos_reason_ros.core.answers.families import Coordinates, family_spec
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.errors import InvalidRequestError

# Bounds keep a constrained answer short enough to finish within a modest max_new_tokens even
# when the model wanders (each string is as long as the model likes up to its bound). When a
# goal's budget is smaller, the format shrinks to fit it (fit_answer_format).
MAX_WAYPOINTS = 10
"""Most points of a constrained trajectory (NVIDIA's examples use five)."""
MIN_WAYPOINTS = 2
MAX_BOXES = 10
MAX_EVENTS = 8
MAX_LABEL_CHARS = 40
MIN_LABEL_CHARS = 16
"""Labels shrink down to this when a small budget must hold more items."""
MAX_CAPTION_CHARS = 120
MIN_CAPTION_CHARS = 32
_TEXT_STEP = 8
"""Text bounds shrink in steps of this many characters."""
MAX_REPEAT = 128
"""No string bound above this: xgrammar 0.2.8 (vLLM 0.32's) fails to compile a pattern repeated
more than 128 times, and the server then fails the request."""
NORMALIZED_MAX = 1000
"""0-1000 coordinates (Qwen3-VL, Cosmos 3), inclusive."""
STRUCTURED_MODES = (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE)
"""The modes whose answers have a format (the others are free text)."""
CLOCK_PATTERN = r'^[0-9]{2}:[0-5][0-9]\.[0-9]{2}$'
"""'mm:ss.ff', the time form the temporal-localization prompt asks for. Fixed width, so one
time is later than another exactly when its text sorts after it."""
_CLOCK_LONGEST = '00:00.00'
JSON_SEPARATORS = (', ', ': ')
"""What xgrammar writes between items and after keys in a JSON answer without free whitespace
(vLLM's disable_any_whitespace too): the widest of the compact forms."""
THINK_OPEN = '<think>'
THINK_CLOSE = '</think>'
ANSWER_OPEN = '<answer>'
ANSWER_CLOSE = '</answer>'
MAX_SEPARATION = 4
"""Whitespace characters at most between </think> (or a tag) and the answer."""


class AnswerBudgetError(InvalidRequestError):
    """max_new_tokens cannot hold a complete constrained answer; the message gives the minimum.

    Apart from the other InvalidRequestErrors of this module (a format that cannot be built,
    after which the answer goes unconstrained), this one refuses the goal.
    """


@dataclasses.dataclass(frozen=True)
class StructuredAnswer:
    """A request to constrain a generation's answer to its mode's format.

    The backend builds the AnswerFormat itself (plan_answer()), since only it knows the
    family and the model input size that bound the coordinates.
    """

    mode: Mode
    num_choices: int = 0
    max_reasoning_tokens: int = 0
    """Free reasoning tokens asked for at most before the answer is forced to start (0: half
    of max_new_tokens); plan_answer() lowers it where the answer would not fit."""
    cameras: tuple[str, ...] = ()
    """The views' names, in prompt order, when a goal has several: each point or box must
    name one of them in a `camera` field. Empty (one view): no camera field."""


@dataclasses.dataclass(frozen=True)
class AnswerFormat:
    """What a structured answer must look like: exactly one of json_schema and regex."""

    mode: Mode
    json_schema: dict[str, Any] | None = None
    regex: str | None = None
    longest: str = ''
    """The longest answer the format accepts (the budget reserves room for it)."""

    @property
    def key(self) -> str:
        """A stable text naming the format (grammar cache key, logs)."""
        if self.regex is not None:
            return f'regex:{self.regex}'
        return 'json:' + json.dumps(self.json_schema, sort_keys=True, separators=(',', ':'))

    @property
    def max_tokens(self) -> int:
        """Tokens the longest answer can take: its UTF-8 bytes, since every token a grammar
        lets through carries at least one byte (exact for byte-level BPE tokenizers, which can
        spell any text a byte at a time).
        """
        return len(self.longest.encode('utf-8'))


@dataclasses.dataclass(frozen=True)
class AnswerPlan:
    """How one generation's max_new_tokens is shared between reasoning and a structured answer."""

    format: AnswerFormat
    max_reasoning_tokens: int
    """Free reasoning tokens at most; the grammar then closes the reasoning (0 without it)."""
    framing_tokens: int
    """Tokens at most of what the grammar writes around the answer (tags, whitespace, the stop
    token)."""

    @property
    def reserved_tokens(self) -> int:
        """Tokens held back from the reasoning for the longest answer and its framing."""
        return self.format.max_tokens + self.framing_tokens


def answer_format(mode: Mode, *, family: ModelFamily, num_choices: int = 0,
                  model_input_size: tuple[int, int] | None = None,
                  max_items: int | None = None,
                  max_text_chars: int | None = None,
                  cameras: Sequence[str] = ()) -> AnswerFormat | None:
    """The answer format of a goal, or None for a free-text mode (question, caption, next action).

    Coordinates are bounded to the family's range: 0-1000 for Qwen3-VL and Cosmos 3, the pixels
    of the model input for Qwen2.5-VL (which needs model_input_size). With several cameras, each
    point or box of the trajectory and grounding formats has a required `camera` field, one of
    their names; the longest answer names the longest. Qwen2.5-VL's bounds are then those of
    the element-wise largest view input size (the backend passes it as model_input_size): one
    schema cannot tie an item's bounds to the camera it names, so the parser checks each item
    against its own view's input size.

    Args:
        mode: What the goal asks for.
        family: Model family (coordinate convention).
        num_choices: Options of a multiple-choice goal.
        model_input_size: (width, height) the model sees; needed for pixel-coordinate families.
        max_items: Fewer points, boxes or events than the mode's most (None: the most).
        max_text_chars: Shorter labels or captions than the mode's bound (None: the bound).
        cameras: The goal's view names when it has several (one or none: no camera field).

    Raises:
        InvalidRequestError: the format cannot be built (fewer than two choices, more than 26,
            or a pixel-coordinate family without the model input size); the message says why.
    """
    mode = Mode(mode)
    if mode is Mode.MULTIPLE_CHOICE:
        if not 2 <= num_choices <= 26:
            raise InvalidRequestError(
                f'no answer format for {num_choices} choices: a multiple-choice goal needs 2 to '
                '26 choices')
        last = chr(ord('A') + num_choices - 1)
        return AnswerFormat(mode, regex=f'[A-{last}]', longest='A')
    if mode not in STRUCTURED_MODES:
        return None
    min_items, most_items, text_bound = _BOUNDS[mode]
    items = most_items if max_items is None else max(min_items, min(max_items, most_items))
    chars = text_bound if max_text_chars is None else max(1, min(max_text_chars, text_bound))
    if mode is Mode.TRAJECTORY:
        item = {'point_2d': _coordinates(family, model_input_size, corners=1),
                'label': _text(chars), **_camera(cameras)}
    elif mode is Mode.GROUNDING:
        item = {'bbox_2d': _coordinates(family, model_input_size, corners=2),
                'label': _text(chars), **_camera(cameras)}
    else:
        clock = ({'type': 'string', 'pattern': CLOCK_PATTERN}, _CLOCK_LONGEST)
        item = {'start': clock, 'end': clock, 'caption': _text(chars)}
    schema, longest = _list_of(item, min_items, items)
    return AnswerFormat(mode, json_schema=schema,
                        longest=json.dumps(longest, separators=JSON_SEPARATORS))


def fit_answer_format(mode: Mode, max_tokens: int, *, family: ModelFamily, num_choices: int = 0,
                      model_input_size: tuple[int, int] | None = None,
                      cameras: Sequence[str] = ()) -> AnswerFormat | None:
    """The largest format of a mode whose longest answer takes at most max_tokens.

    Shrinks the text bound first (down to its floor), then the number of items (down to the
    mode's minimum): a trajectory of more points with shorter labels is the better answer.

    Returns:
        The format, or None when even the smallest one does not fit (see smallest_answer_format).

    Raises:
        InvalidRequestError: as answer_format().
    """
    candidates = _candidates(mode, family, num_choices, model_input_size, cameras)
    return next((fmt for fmt in candidates if fmt.max_tokens <= max_tokens), None)


def smallest_answer_format(mode: Mode, *, family: ModelFamily, num_choices: int = 0,
                           model_input_size: tuple[int, int] | None = None,
                           cameras: Sequence[str] = ()) -> AnswerFormat | None:
    """The smallest format fit_answer_format() can choose (None for a free-text mode)."""
    formats = list(_candidates(mode, family, num_choices, model_input_size, cameras))
    return formats[-1] if formats else None


def framing_tokens(*, reasoning: bool, opens_reasoning: bool, answer_tags: bool) -> int:
    """Tokens at most that a constrained generation writes besides the free reasoning and the
    answer: the opening <think> the model must write, the </think> that closes a capped
    reasoning, Reason1's <answer> tags, the whitespace around them, and the stop token.
    """
    text = ''
    if reasoning:
        text += (THINK_OPEN if opens_reasoning else '') + THINK_CLOSE
    if answer_tags:
        text += ANSWER_OPEN + ANSWER_CLOSE + ' ' * (2 * MAX_SEPARATION)
    if reasoning:
        text += ' ' * MAX_SEPARATION
    return len(text.encode('utf-8')) + 1


def plan_answer(structured: StructuredAnswer, *, max_new_tokens: int, reasoning: bool,
                framing: int, family: ModelFamily,
                model_input_size: tuple[int, int] | None = None) -> AnswerPlan | None:
    """Share max_new_tokens so that a constrained answer is never cut by it.

    The reasoning gets its cap (structured.max_reasoning_tokens, 0: half of max_new_tokens) but
    never more than leaves room for the smallest complete answer; the answer's format is the
    largest that fits what the reasoning leaves (fit_answer_format). Every answer the format
    allows then fits, however long the model makes its strings.

    Args:
        structured: The mode and the reasoning cap asked for.
        max_new_tokens: The generation's whole budget.
        reasoning: The prompt asks for reasoning first.
        framing: framing_tokens() of the backend's grammar.
        family: As answer_format().
        model_input_size: As answer_format(); with several views (structured.cameras), the
            element-wise largest of their input sizes.

    Returns:
        The plan, or None for a mode without a format.

    Raises:
        AnswerBudgetError: max_new_tokens cannot hold even the smallest complete answer (the
            message gives the minimum).
        InvalidRequestError: the format cannot be built.
    """
    mode = Mode(structured.mode)
    kwargs = {'family': family, 'num_choices': structured.num_choices,
              'model_input_size': model_input_size, 'cameras': structured.cameras}
    smallest = smallest_answer_format(mode, **kwargs)
    if smallest is None:
        return None
    needed = smallest.max_tokens + framing
    if max_new_tokens < needed:
        raise AnswerBudgetError(
            f'max_new_tokens {max_new_tokens} cannot hold a complete {mode.value} answer: its '
            f'format needs at least {needed} tokens ({smallest.max_tokens} for the shortest '
            f'bounded answer, {framing} for the tags and the stop token around it); raise '
            f'max_new_tokens to {needed} or more, or ask with unconstrained')
    cap = 0
    if reasoning:
        asked = structured.max_reasoning_tokens or max_new_tokens // 2
        cap = max(0, min(asked, max_new_tokens - needed))
    fitted = fit_answer_format(mode, max_new_tokens - cap - framing, **kwargs)
    assert fitted is not None  # the smallest format fits by the check above
    return AnswerPlan(format=fitted, max_reasoning_tokens=cap, framing_tokens=framing)


_BOUNDS = {
    Mode.TRAJECTORY: (MIN_WAYPOINTS, MAX_WAYPOINTS, MAX_LABEL_CHARS),
    Mode.GROUNDING: (1, MAX_BOXES, MAX_LABEL_CHARS),
    Mode.TEMPORAL: (1, MAX_EVENTS, MAX_CAPTION_CHARS),
}
"""Per mode with a list answer: fewest items, most items, longest text."""
_TEXT_FLOOR = {Mode.TRAJECTORY: MIN_LABEL_CHARS, Mode.GROUNDING: MIN_LABEL_CHARS,
               Mode.TEMPORAL: MIN_CAPTION_CHARS}


def _candidates(mode: Mode, family: ModelFamily, num_choices: int,
                model_input_size: tuple[int, int] | None,
                cameras: Sequence[str] = ()) -> Iterator[AnswerFormat]:
    """The formats of a mode from the largest to the smallest, in the order they shrink."""
    mode = Mode(mode)
    if mode not in _BOUNDS:
        fmt = answer_format(mode, family=family, num_choices=num_choices,
                            model_input_size=model_input_size)
        if fmt is not None:
            yield fmt
        return
    min_items, most_items, text_bound = _BOUNDS[mode]
    for items in range(most_items, min_items - 1, -1):
        for chars in range(text_bound, _TEXT_FLOOR[mode] - 1, -_TEXT_STEP):
            yield answer_format(mode, family=family, model_input_size=model_input_size,
                                max_items=items, max_text_chars=chars, cameras=cameras)


def _coordinates(family: ModelFamily, model_input_size: tuple[int, int] | None, *,
                 corners: int) -> tuple[dict[str, Any], list]:
    """[x, y] (corners=1) or [x1, y1, x2, y2] (corners=2) integers in the family's range, and
    the longest value.
    """
    if family_spec(family).coordinates is Coordinates.NORMALIZED_1000:
        max_x = max_y = NORMALIZED_MAX
    elif model_input_size is None:
        raise InvalidRequestError(
            f'no answer format for {family_spec(family).title} without the model input size: '
            'its coordinates are pixels of that input')
    else:
        max_x, max_y = model_input_size[0] - 1, model_input_size[1] - 1
    axes = [{'type': 'integer', 'minimum': 0, 'maximum': max_x},
            {'type': 'integer', 'minimum': 0, 'maximum': max_y}] * corners
    schema = {'type': 'array', 'prefixItems': axes, 'items': False, 'minItems': 2 * corners,
              'maxItems': 2 * corners}
    return schema, [max_x, max_y] * corners


def _camera(cameras: Sequence[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """The `camera` field of a point or box over several views ({} for one view)."""
    if len(cameras) < 2:
        return {}
    # Camera names are ROS name tokens (views.check_camera_names): one byte a character, no
    # escapes, so the longest name's bytes bound its tokens as the labels' do.
    return {'camera': ({'type': 'string', 'enum': list(cameras)}, max(cameras, key=len))}


def _text(max_chars: int) -> tuple[dict[str, Any], str]:
    # Printable ASCII, one byte a character, so that the longest answer's bytes bound its
    # tokens. No angle brackets: a label holding '</think>' would end the reasoning for the
    # parser. No quotes or backslashes: no escapes, plain text the planner can print.
    schema = {'type': 'string', 'pattern': f'^[ !#-;=?-\\[\\]-~]{{1,{max_chars}}}$'}
    return schema, 'x' * max_chars


def _list_of(properties: dict[str, tuple[dict[str, Any], Any]], min_items: int,
             max_items: int) -> tuple[dict[str, Any], list]:
    item = {'type': 'object', 'properties': {key: schema for key, (schema, _) in
                                             properties.items()},
            'required': list(properties), 'additionalProperties': False}
    longest = {key: value for key, (_, value) in properties.items()}
    schema = {'type': 'array', 'items': item, 'minItems': min_items, 'maxItems': max_items}
    return schema, [longest] * max_items


__all__ = ['AnswerBudgetError', 'AnswerFormat', 'AnswerPlan', 'CLOCK_PATTERN', 'MAX_BOXES',
           'MAX_EVENTS', 'MAX_WAYPOINTS', 'MIN_WAYPOINTS', 'STRUCTURED_MODES', 'StructuredAnswer',
           'answer_format', 'fit_answer_format', 'framing_tokens', 'plan_answer',
           'smallest_answer_format']
