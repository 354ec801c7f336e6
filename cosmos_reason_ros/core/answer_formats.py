"""The form each structured mode's answer must take, as a JSON schema or a regular expression.

Declared here once, beside the parser that reads the answers (core.parsing): the constrained
decoding of both backends takes these formats, and a test draws answers from the compiled
grammars and parses them, so the two cannot drift apart. Free-text modes have no format.
"""

import dataclasses
import json
from typing import Any, Dict, Optional, Tuple

from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.core.families import Coordinates, family_spec
from cosmos_reason_ros.core.modes import Mode, ModelFamily

# Bounds keep a constrained answer short enough to finish within a modest max_new_tokens even
# when the model wanders (each string is as long as the model likes up to its bound).
MAX_WAYPOINTS = 10
"""Most points of a constrained trajectory (NVIDIA's examples use five)."""
MIN_WAYPOINTS = 2
MAX_BOXES = 10
MAX_EVENTS = 8
MAX_LABEL_CHARS = 40
MAX_CAPTION_CHARS = 120
MAX_REPEAT = 128
"""No string bound above this: xgrammar 0.2.8 (vLLM 0.32's) fails to compile a pattern repeated
more than 128 times, and the server then fails the request."""
NORMALIZED_MAX = 1000
"""0-1000 coordinates (Qwen3-VL, Cosmos 3), inclusive."""
STRUCTURED_MODES = (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE)
"""The modes whose answers have a format (the others are free text)."""
CLOCK_PATTERN = r'^[0-9]{2}:[0-5][0-9]\.[0-9]{2}$'
"""'mm:ss.ff', the time form the temporal-localization prompt asks for."""


@dataclasses.dataclass(frozen=True)
class StructuredAnswer:
    """A request to constrain a generation's answer to its mode's format.

    The backend builds the AnswerFormat itself (answer_format()), since only it knows the
    family and the model input size that bound the coordinates.
    """

    mode: Mode
    num_choices: int = 0
    max_reasoning_tokens: int = 0
    """Free reasoning tokens at most before the answer is forced to start (0: no cap)."""


@dataclasses.dataclass(frozen=True)
class AnswerFormat:
    """What a structured answer must look like: exactly one of json_schema and regex."""

    mode: Mode
    json_schema: Optional[Dict[str, Any]] = None
    regex: Optional[str] = None

    @property
    def key(self) -> str:
        """A stable text naming the format (grammar cache key, logs)."""
        if self.regex is not None:
            return f'regex:{self.regex}'
        return 'json:' + json.dumps(self.json_schema, sort_keys=True, separators=(',', ':'))


def answer_format(mode: Mode, *, family: ModelFamily, num_choices: int = 0,
                  model_input_size: Optional[Tuple[int, int]] = None) -> Optional[AnswerFormat]:
    """The answer format of a goal, or None for a free-text mode (question, caption, next action).

    Coordinates are bounded to the family's range: 0-1000 for Qwen3-VL and Cosmos 3, the pixels
    of the model input for Qwen2.5-VL (which needs model_input_size).

    Args:
        mode: What the goal asks for.
        family: Model family (coordinate convention).
        num_choices: Options of a multiple-choice goal.
        model_input_size: (width, height) the model sees; needed for pixel-coordinate families.

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
        return AnswerFormat(mode, regex=f'[A-{last}]')
    if mode is Mode.TRAJECTORY:
        point = _coordinates(family, model_input_size, corners=1)
        return AnswerFormat(mode, json_schema=_list_of(
            {'point_2d': point, 'label': _text(MAX_LABEL_CHARS)}, MIN_WAYPOINTS, MAX_WAYPOINTS))
    if mode is Mode.GROUNDING:
        box = _coordinates(family, model_input_size, corners=2)
        return AnswerFormat(mode, json_schema=_list_of(
            {'bbox_2d': box, 'label': _text(MAX_LABEL_CHARS)}, 1, MAX_BOXES))
    if mode is Mode.TEMPORAL:
        clock = {'type': 'string', 'pattern': CLOCK_PATTERN}
        return AnswerFormat(mode, json_schema=_list_of(
            {'start': clock, 'end': clock, 'caption': _text(MAX_CAPTION_CHARS)}, 1, MAX_EVENTS))
    return None


def _coordinates(family: ModelFamily, model_input_size: Optional[Tuple[int, int]], *,
                 corners: int) -> Dict[str, Any]:
    """[x, y] (corners=1) or [x1, y1, x2, y2] (corners=2) integers in the family's range."""
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
    return {'type': 'array', 'prefixItems': axes, 'items': False, 'minItems': 2 * corners,
            'maxItems': 2 * corners}


def _text(max_chars: int) -> Dict[str, Any]:
    # No angle brackets: a label holding '</think>' would end the reasoning for the parser.
    # No control characters or escapes: plain text the planner can print.
    return {'type': 'string', 'pattern': f'^[^<>"\\\\\\x00-\\x1f]{{1,{max_chars}}}$'}


def _list_of(properties: Dict[str, Any], min_items: int, max_items: int) -> Dict[str, Any]:
    item = {'type': 'object', 'properties': properties, 'required': list(properties),
            'additionalProperties': False}
    return {'type': 'array', 'items': item, 'minItems': min_items, 'maxItems': max_items}


__all__ = ['AnswerFormat', 'STRUCTURED_MODES', 'StructuredAnswer', 'answer_format', 'CLOCK_PATTERN', 'MAX_BOXES', 'MAX_EVENTS',
           'MAX_WAYPOINTS', 'MIN_WAYPOINTS']
