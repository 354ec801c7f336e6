"""Prompt templates of the Cosmos-Reason models.

Pure functions from a goal's mode and text to a Prompt (system + user text).
"""

from collections.abc import Sequence
import json
import unicodedata

from cosmos_reason_ros.core.answers.families import family_spec, ReasoningPrompt
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.backends.base import Prompt
from cosmos_reason_ros.core.errors import InvalidRequestError

SYSTEM_PROMPT = 'You are a helpful assistant.'

CAPTION_PROMPT = 'Caption the video in detail.'
TEMPORAL_PROMPT = (
    'Describe the notable events in the provided video. Provide the result in json format with '
    "'mm:ss.ff' format for time depiction for each event. Use keywords 'start', 'end' and "
    "'caption' in the json output.")
GROUNDING_PROMPT = 'Locate the bounding box of {object_name}. Return a json.'
NEXT_ACTION_PROMPT = 'What can be the next immediate action?'
NEXT_ACTION_CONTEXT = "The robot's task is: {task}"
TRAJECTORY_ITEM = '{{"point_2d": [x, y], "label": "gripper trajectory"}}'
TRAJECTORY_PROMPT = (
    'You are given the task "{task_instruction}". Specify the 2D trajectory your end effector '
    'should follow in pixel space. Return the trajectory coordinates in JSON format like this: '
    f'{TRAJECTORY_ITEM}.')
MULTIPLE_CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
AV_PROMPT = (
    "The video depicts the observation from the vehicle's camera. You need to think step by step "
    'and identify the objects in the scene that are critical for safe navigation.')
"""NVIDIA's driving prompt; no mode of its own, send it as a QUESTION's task."""

REASONING_SUFFIX_REASON2 = (
    'Answer the question using the following format:\n\n<think>\nYour reasoning.\n</think>\n\n'
    'Write your final answer immediately after the </think> tag.')
"""Qwen3-VL (Cosmos-Reason2) and Cosmos 3: appended to the user text after a blank line."""
REASONING_SUFFIX_REASON1 = (
    'Answer the question in the following format: <think>\nyour reasoning\n</think>\n\n'
    '<answer>\nyour answer\n</answer>.')
"""Qwen2.5-VL (Cosmos-Reason1): appended to the system prompt after a space."""

MAX_CHOICES = 26

VIEW_LABEL = 'Camera "{name}":'
"""The text placed before each view's video (or image) when a goal has several cameras."""


VIEWS_SENTENCE = 'The {count} views are from the cameras {names}, in this order.'
"""Placed before the user text when a goal has several cameras: which view is which."""
TRAJECTORY_ITEM_MULTIVIEW = (
    '{{"point_2d": [x, y], "label": "gripper trajectory", "camera": {first}}}')
"""The trajectory template's JSON example with several cameras: it gains the camera field."""
GROUNDING_ITEM_MULTIVIEW = '{{"bbox_2d": [x1, y1, x2, y2], "label": {label}, "camera": {first}}}'
CAMERA_FIELD_SENTENCE = (
    'Give each {item} the "camera" whose view its coordinates are in: one of {names}.')
"""Placed after a coordinate mode's question with several cameras."""


def view_label(name: str) -> str:
    """The label of one camera's view in a multi-view prompt."""
    return VIEW_LABEL.format(name=name)


def build_prompt(mode: Mode, *, family: ModelFamily, task: str = '', reasoning: bool = False,
                 choices: Sequence[str] = (), object_name: str = '',
                 cameras: Sequence[str] = ()) -> Prompt:
    """Build the Cosmos prompt for one goal.

    The modes with a fixed Cosmos question (caption, temporal localization, grounding, next
    action) take the planner's task text as context placed before that question, so the model
    still sees the wording it was trained on: next action reads "The robot's task is: {task}.
    What can be the next immediate action?", the others "{task}. {Cosmos question}". QUESTION
    sends the task as is, TRAJECTORY puts it into the trajectory template, MULTIPLE_CHOICE uses
    it as the question followed by one "(A) ..." line per choice.

    Args:
        mode: What the goal asks for.
        family: Model family; decides where the reasoning instruction goes (FamilySpec).
        task: The planner's text (question, task instruction or extra context).
        reasoning: Ask the model to think in <think> tags before answering.
        choices: Options of a MULTIPLE_CHOICE goal, lettered (A), (B), ... in this order.
        object_name: What to locate in GROUNDING mode.
        cameras: The views' camera names in prompt order, when the goal has several: the
            user text then starts by naming them in order (VIEWS_SENTENCE), and the coordinate
            modes' JSON example gains `"camera": "<first name>"`, followed by the names the
            field may take (CAMERA_FIELD_SENTENCE). One name or none: today's text exactly.

    Returns:
        The system prompt and the user text (the backend places the media before the text).

    Raises:
        InvalidRequestError: a field the mode needs is empty or the choices are out of range.
    """
    mode = Mode(mode)
    placement = family_spec(family).reasoning_prompt
    user = _user_text(mode, _visible(task), choices, _visible(object_name))
    if len(cameras) > 1:
        user = _with_cameras(mode, _visible(task), user, tuple(cameras), _visible(object_name))
    system = SYSTEM_PROMPT
    if reasoning and placement is ReasoningPrompt.USER_SUFFIX:
        user = f'{user}\n\n{REASONING_SUFFIX_REASON2}'
    elif reasoning:
        system = f'{system} {REASONING_SUFFIX_REASON1}'
    return Prompt(system=system, user=user, reasoning=reasoning)


def _user_text(mode: Mode, task: str, choices: Sequence[str], object_name: str) -> str:
    if mode is Mode.QUESTION:
        _require(task, "question mode needs the question: fill the goal's task field")
        return task
    if mode is Mode.TRAJECTORY:
        _require(task, 'trajectory mode needs the task instruction (e.g. "pick up the cup"): '
                       "fill the goal's task field")
        return TRAJECTORY_PROMPT.format(task_instruction=task)
    if mode is Mode.MULTIPLE_CHOICE:
        _require(task, "multiple_choice mode needs the question: fill the goal's task field")
        return _multiple_choice(task, choices)
    if mode is Mode.NEXT_ACTION:
        if not task:
            return NEXT_ACTION_PROMPT
        return f'{_sentence(NEXT_ACTION_CONTEXT.format(task=task))} {NEXT_ACTION_PROMPT}'
    if mode is Mode.GROUNDING:
        _require(object_name, "grounding mode needs the object to locate: fill the goal's "
                              'object_name field (e.g. "the red cup")')
        question = GROUNDING_PROMPT.format(object_name=object_name)
    elif mode is Mode.CAPTION:
        question = CAPTION_PROMPT
    elif mode is Mode.TEMPORAL:
        question = TEMPORAL_PROMPT
    else:  # pragma: no cover - Mode is a closed enum
        raise InvalidRequestError(f'mode {mode.value!r} has no prompt template')
    return f'{_sentence(task)} {question}' if task else question


def _with_cameras(mode: Mode, task: str, user: str, cameras: tuple[str, ...],
                  object_name: str) -> str:
    """The user text of a goal over several cameras: the views named first, in order; the
    coordinate modes also ask for each item's camera, in the JSON example Cosmos was trained
    on with the field added.
    """
    first = json.dumps(cameras[0])
    field = CAMERA_FIELD_SENTENCE.format(item='point' if mode is Mode.TRAJECTORY else 'box',
                                         names=_listing(cameras, 'or'))
    if mode is Mode.TRAJECTORY:
        template = TRAJECTORY_PROMPT.replace(TRAJECTORY_ITEM, TRAJECTORY_ITEM_MULTIVIEW)
        user = f'{template.format(task_instruction=task, first=first)} {field}'
    elif mode is Mode.GROUNDING:
        item = GROUNDING_ITEM_MULTIVIEW.format(label=json.dumps(object_name), first=first)
        user = f'{user} Write each box as {item}. {field}'
    views = VIEWS_SENTENCE.format(count=len(cameras), names=_listing(cameras, 'and'))
    return f'{views} {user}'


def _listing(names: Sequence[str], conjunction: str) -> str:
    """'"a" and "b"', '"a", "b" or "c"': each name quoted as in JSON."""
    quoted = [json.dumps(name) for name in names]
    return f'{", ".join(quoted[:-1])} {conjunction} {quoted[-1]}'


def _multiple_choice(question: str, choices: Sequence[str]) -> str:
    options = [_visible(str(choice)) for choice in choices]
    if not 2 <= len(options) <= MAX_CHOICES:
        raise InvalidRequestError(
            f'multiple_choice mode needs 2 to {MAX_CHOICES} choices, got {len(options)}: fill '
            "the goal's choices field")
    if not all(options):
        raise InvalidRequestError('multiple_choice mode got an empty choice: every entry of the '
                                  "goal's choices field needs text")
    lines = [f'({chr(ord("A") + i)}) {option}' for i, option in enumerate(options)]
    return '\n'.join([question, *lines, MULTIPLE_CHOICE_INSTRUCTION])


def _visible(text: str) -> str:
    """Text without surrounding white space, or '' when it holds no visible character (only
    spaces, zero-width or other format and control characters, such as '\u3000\u200b').
    """
    text = text.strip()
    return text if any(unicodedata.category(char)[0] not in 'ZC' for char in text) else ''


def _require(value: str, message: str) -> None:
    if not value:
        raise InvalidRequestError(message)


def _sentence(text: str) -> str:
    """End text with a full stop unless it already ends a sentence."""
    return text if text.endswith(('.', '!', '?')) else f'{text}.'
