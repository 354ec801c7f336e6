"""Behaviour of the output parser: reasoning forms, JSON forms, coordinates, times and letters.

Real model outputs live in test/fixtures (see its README); the rest are small hand-made variants.
"""

import pathlib
import random

import pytest

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import (
    Box,
    Event,
    find_json,
    parse_answer,
    parse_choice,
    parse_timestamp,
    parse_verdict,
    ParseStatus,
    split_reasoning,
    to_source_pixels,
    Trajectory,
)

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
QWEN3 = ModelFamily.QWEN3_VL
QWEN25 = ModelFamily.QWEN2_5_VL
SOURCE = (1910, 1190)
TAPE_POINTS = [(195, 630), (485, 657), (496, 650), (496, 423), (496, 388)]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding='utf-8')


def flat(pairs) -> list[float]:
    """Points or (start, end) pairs as one flat list, the form pytest.approx compares."""
    return [number for pair in pairs for number in pair]


def parse(text, mode, **kwargs):
    kwargs.setdefault('family', QWEN3)
    kwargs.setdefault('source_size', SOURCE)
    return parse_answer(text, mode, **kwargs)


# --- the real outputs ----------------------------------------------------------------------------

def test_turn_right_question_splits_reasoning_from_answer():
    result = parse(fixture('reason2_turn_right_reasoning.txt'), Mode.QUESTION)
    assert result.status is ParseStatus.OK
    assert result.reasoning.startswith("Okay, let's see")
    assert result.reasoning.endswith('potential hazards before proceeding.')
    assert result.answer.startswith('Based on the video')
    assert '<think>' not in result.answer and '</think>' not in result.answer
    assert result.verdict == ''  # 'it is **not safe**' is not read as a verdict, by design


def test_temporal_vllm_gives_one_event():
    result = parse(fixture('reason2_temporal_vllm.txt'), Mode.TEMPORAL, reasoning='')
    assert result.status is ParseStatus.OK, result.error
    assert len(result.events) == 1
    event = result.events[0]
    assert event.start == pytest.approx(0.1)
    assert event.end == pytest.approx(2.1)
    assert event.caption.startswith('The camera is positioned at the front of a vehicle')


def test_trajectory_tape_maps_to_source_pixels():
    result = parse(fixture('reason2_trajectory_tape.txt'), Mode.TRAJECTORY)
    assert result.status is ParseStatus.OK, result.error
    assert result.reasoning.startswith('I will move my left gripper')
    assert result.answer.startswith('```json')
    (trajectory,) = result.trajectories
    assert trajectory.label == 'gripper trajectory'
    expected = [(x / 1000 * 1910, y / 1000 * 1190) for x, y in TAPE_POINTS]
    assert flat(trajectory.points) == pytest.approx(flat(expected))
    assert trajectory.points[0] == pytest.approx((372.45, 749.7))


def test_trajectory_tape_reasoning_only_is_truncated_not_a_trajectory():
    # The reasoning quotes [195, 630] and friends: those must not become a trajectory.
    cut = fixture('reason2_trajectory_tape.txt').split('</think>')[0]
    result = parse(cut, Mode.TRAJECTORY)
    assert result.status is ParseStatus.TRUNCATED
    assert result.trajectories == ()
    assert result.reasoning.startswith('I will move')


# design.md does not record the reasoning field of this output; this is a marked stand-in.
NEXT_ACTION_REASONING = 'STAND-IN: the reasoning trace vLLM returned separately (not recorded).'


def test_next_action_from_server_split_output():
    content = fixture('reason2_next_action_content.txt')
    result = parse(content, Mode.NEXT_ACTION, reasoning=NEXT_ACTION_REASONING)
    assert result.status is ParseStatus.OK
    assert result.reasoning == NEXT_ACTION_REASONING
    assert result.next_action == content
    assert result.answer == content


# --- reasoning forms -----------------------------------------------------------------------------

@pytest.mark.parametrize('text, reasoning, answer, truncated', [
    ('<think>\nwhy\n</think>\n\nYes.', 'why', 'Yes.', False),
    ('<think>why</think>Yes.', 'why', 'Yes.', False),
    ('<think>why</think>\n\n\n\nYes.\n\n', 'why', 'Yes.', False),
    ('<THINK>why</THINK> Yes.', 'why', 'Yes.', False),
    ('<think>\n\n</think>\n\nYes.', '', 'Yes.', False),
    ('why, since the prompt opened the tag\n</think>\nYes.',
     'why, since the prompt opened the tag', 'Yes.', False),
    ('<think>\nwhy\n</think>\n\n<answer>\nB\n</answer>', 'why', 'B', False),
    ('<think>why</think><answer>B', 'why', 'B', False),
    ('<answer>B</answer>', '', 'B', False),
    ('<think>\nstill thinking when max tokens', 'still thinking when max tokens', '', True),
    ('<think>', '', '', True),
    ('</think>', '', '', False),
    ('', '', '', False),
    ('Plain answer.', '', 'Plain answer.', False),
])
def test_split_reasoning(text, reasoning, answer, truncated):
    assert split_reasoning(text) == (reasoning, answer, truncated)


@pytest.mark.parametrize('text, status', [
    ('<think>long reasoning that never ends', ParseStatus.TRUNCATED),
    ('</think>', ParseStatus.FAILED),
    ('<think>why</think>\n\n', ParseStatus.FAILED),
    ('', ParseStatus.FAILED),
    ('   \n', ParseStatus.FAILED),
    ('A caption.', ParseStatus.OK),
])
def test_caption_status(text, status):
    result = parse(text, Mode.CAPTION)
    assert result.status is status
    assert (result.error != '') == (status is not ParseStatus.OK)


def test_truncated_keeps_reasoning_and_says_what_to_do():
    result = parse('<think>\nThe arm is', Mode.TRAJECTORY)
    assert result.status is ParseStatus.TRUNCATED
    assert result.reasoning == 'The arm is'
    assert result.answer == ''
    assert 'max_new_tokens' in result.error


@pytest.mark.parametrize('content, server_reasoning, mode, status, reasoning, answer', [
    # vLLM split the reasoning off; content holds the answer.
    ('Yes, it is clear.', 'why', Mode.QUESTION, ParseStatus.OK, 'why', 'Yes, it is clear.'),
    # Some servers keep the tags in the reasoning field.
    ('Yes.', '<think>\nwhy\n', Mode.QUESTION, ParseStatus.OK, 'why', 'Yes.'),
    # No </think>: everything landed in the reasoning field and content is empty.
    ('', 'still reasoning when max_tokens', Mode.QUESTION, ParseStatus.TRUNCATED,
     'still reasoning when max_tokens', ''),
    # Content empty, but the answer sits after a </think> inside the reasoning field.
    ('', 'why\n</think>\n\nNo.', Mode.QUESTION, ParseStatus.OK, 'why', 'No.'),
    # Reasoning off: a structured answer in the reasoning field is still found.
    ('', '[{"point_2d": [500, 500], "label": "g"}]', Mode.TRAJECTORY, ParseStatus.OK, '',
     '[{"point_2d": [500, 500], "label": "g"}]'),
    ('', '(C)', Mode.MULTIPLE_CHOICE, ParseStatus.OK, '', '(C)'),
    ('', 'The tape is at [195, 630] and', Mode.TRAJECTORY, ParseStatus.TRUNCATED,
     'The tape is at [195, 630] and', ''),
])
def test_server_split_reasoning(content, server_reasoning, mode, status, reasoning, answer):
    result = parse(content, mode, reasoning=server_reasoning, num_choices=4)
    assert (result.status, result.reasoning, result.answer) == (status, reasoning, answer)


def test_server_truncation_error_names_both_causes():
    result = parse('', Mode.CAPTION, reasoning='thinking...')
    assert result.status is ParseStatus.TRUNCATED
    assert 'max_tokens' in result.error and 'reasoning parser' in result.error


# --- JSON ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('[1, 2]', [1, 2]),
    ('{"a": 1}', {'a': 1}),
    ('```json\n{"a": 1}\n```', {'a': 1}),
    ('```\n{"a": 1}\n```', {'a': 1}),
    ('Here it is:\n```json\n[{"a": 1}]\n```\nDone.', [{'a': 1}]),
    ('The box is {"a": 1} as requested.', {'a': 1}),
    ('From [195, 630] onwards:\n```json\n{"a": 1}\n```', {'a': 1}),  # a fence wins over prose
    ('```json\n{"a": 1}', {'a': 1}),  # closing fence cut off after complete JSON
    ('[{"a": 1},]', [{'a': 1}]),  # trailing comma
    ("[{'a': 'b'}]", [{'a': 'b'}]),  # single quotes
    ('{"caption": "a [bracket] and a } brace"}', {'caption': 'a [bracket] and a } brace'}),
    ('see [approximately here, then {"a": 1}', {'a': 1}),  # a stray bracket in prose
    ('no json here', None),
    ('', None),
    ('```json\n[\n  {"a": 1},\n  {"a": ', None),  # truncated fence: no fragments
    ('[\n  {"a": 1},\n  {"a": ', None),  # truncated bare JSON: no fragments
    ('{"a": 1', None),
    ('[' * 5000 + ']' * 5000, None),  # nested too deeply for json
    ('NaN', None),
    ('"just a string"', None),
])
def test_find_json(text, expected):
    assert find_json(text) == expected


# --- coordinates ---------------------------------------------------------------------------------

@pytest.mark.parametrize('x, y, family, source, model_input, expected', [
    (0, 0, QWEN3, (1910, 1190), None, (0, 0)),
    (1000, 1000, QWEN3, (1910, 1190), None, (1910, 1190)),
    (195, 630, QWEN3, (1910, 1190), None, (372.45, 749.7)),
    (500, 500, QWEN3, (1920, 1080), None, (960, 540)),  # each axis on its own
    (320, 240, QWEN25, (1280, 960), (640, 480), (640, 480)),
    (0, 476, QWEN25, (1920, 1080), (644, 476), (0, 1080)),
])
def test_to_source_pixels(x, y, family, source, model_input, expected):
    assert to_source_pixels(x, y, family, source, model_input) == pytest.approx(expected)


@pytest.mark.parametrize('family, source, model_input, message', [
    (QWEN25, (640, 480), None, 'model_input_size'),
    (QWEN3, (0, 480), None, 'source_size'),
    (QWEN25, (640, 480), (640, -1), 'model_input_size'),
])
def test_to_source_pixels_rejects_what_it_cannot_map(family, source, model_input, message):
    with pytest.raises(ValueError, match=message):
        to_source_pixels(1, 1, family, source, model_input)


# --- trajectories --------------------------------------------------------------------------------

TWO_LABELS = ('[{"point_2d": [100, 200], "label": "left"}, {"point_2d": [300, 400], "label": '
              '"right"}, {"point_2d": [500, 600], "label": "left"}]')


@pytest.mark.parametrize('answer, expected', [
    ('[{"point_2d": [100, 200], "label": "g"}, {"point_2d": [300, 400], "label": "g"}]',
     [Trajectory('g', ((100.0, 200.0), (300.0, 400.0)))]),
    ('{"point_2d": [100, 200], "label": "g"}', [Trajectory('g', ((100.0, 200.0),))]),
    ('{"trajectory": [{"point_2d": [100, 200], "label": "g"}]}',
     [Trajectory('g', ((100.0, 200.0),))]),
    ('{"gripper": [[100, 200], [300, 400]]}',
     [Trajectory('gripper', ((100.0, 200.0), (300.0, 400.0)))]),
    ('[[100, 200], [300, 400]]', [Trajectory('', ((100.0, 200.0), (300.0, 400.0)))]),
    ('{"point_2d": [[100, 200], [300, 400]], "label": "g"}',
     [Trajectory('g', ((100.0, 200.0), (300.0, 400.0)))]),
    ('[{"point_2d": [100, 200]}]', [Trajectory('', ((100.0, 200.0),))]),
    (TWO_LABELS, [Trajectory('left', ((100.0, 200.0), (500.0, 600.0))),
                  Trajectory('right', ((300.0, 400.0),))]),
    ('The path:\n```json\n[{"point_2d": [100.5, 200], "label": "g"}]\n```',
     [Trajectory('g', ((100.5, 200.0),))]),
])
def test_trajectory_forms(answer, expected):
    # A 1000 x 1000 source keeps Qwen3-VL coordinates unchanged, so the forms are easy to read.
    result = parse(answer, Mode.TRAJECTORY, source_size=(1000, 1000))
    assert result.status is ParseStatus.OK, result.error
    assert list(result.trajectories) == expected


@pytest.mark.parametrize('answer, error_part', [
    ('The gripper moves to the basket.', 'no JSON'),
    ('[195, 630]', 'point_2d'),  # one bare pair is not a trajectory
    ('[{"label": "g"}]', 'point_2d'),
    ('[{"point_2d": [100], "label": "g"}]', 'is not [x, y] numbers'),
    ('[{"point_2d": ["a", "b"], "label": "g"}]', 'is not [x, y] numbers'),
    ('```json\n[{"point_2d": [100, 200], "label": "g"},\n {"point_2d": [3', 'never closed'),
    ('[{"point_2d": [100, 200] "label": "g"}]', 'does not parse'),
    ('[{"point_2d": [1e999, 200], "label": "g"}]', 'is not [x, y] numbers'),
    ('[{"point_2d": [1' + '0' * 400 + ', 200], "label": "g"}]', 'is not [x, y] numbers'),
    ('[{"point_2d": [NaN, 200], "label": "g"}]', 'is not [x, y] numbers'),
])
def test_trajectory_failures(answer, error_part):
    result = parse(answer, Mode.TRAJECTORY)
    assert result.status is ParseStatus.FAILED
    assert error_part in result.error
    assert result.trajectories == ()
    assert result.answer == answer


def test_trajectory_out_of_range_points_are_kept_and_named():
    answer = '[{"point_2d": [500, 500], "label": "g"}, {"point_2d": [1200, -5], "label": "g"}]'
    result = parse(answer, Mode.TRAJECTORY, source_size=(2000, 1000))
    assert result.status is ParseStatus.FAILED
    assert "point 2 of 'g' (1200, -5)" in result.error and '0-1000' in result.error
    assert flat(result.trajectories[0].points) == pytest.approx([1000, 500, 2400, -5])


def test_trajectory_qwen25_uses_model_input_pixels():
    answer = '[{"point_2d": [322, 238], "label": "g"}]'
    result = parse(answer, Mode.TRAJECTORY, family=QWEN25, source_size=(1288, 952),
                   model_input_size=(644, 476))
    assert result.status is ParseStatus.OK, result.error
    assert flat(result.trajectories[0].points) == pytest.approx([644, 476])


@pytest.mark.parametrize('model_input, status, error_part', [
    (None, ParseStatus.FAILED, 'model_input_size'),
    ((300, 300), ParseStatus.FAILED, '300x300 model input'),
])
def test_trajectory_qwen25_failures(model_input, status, error_part):
    answer = '[{"point_2d": [322, 238], "label": "g"}]'
    result = parse(answer, Mode.TRAJECTORY, family=QWEN25, source_size=(1288, 952),
                   model_input_size=model_input)
    assert result.status is status
    assert error_part in result.error


# --- grounding -----------------------------------------------------------------------------------

@pytest.mark.parametrize('answer, expected', [
    ('[{"bbox_2d": [100, 200, 300, 400], "label": "cup"}]', [Box('cup', 100, 200, 300, 400)]),
    ('{"box_2d": [100, 200, 300, 400]}', [Box('mug', 100, 200, 300, 400)]),
    ('{"bbox": [300, 400, 100, 200], "label": "cup"}', [Box('cup', 100, 200, 300, 400)]),
    ('[100, 200, 300, 400]', [Box('mug', 100, 200, 300, 400)]),
    ('{"objects": [{"name": "x", "detections": [{"bbox_2d": [1, 2, 3, 4], "label": "a"}]},'
     ' {"bbox_2d": [5, 6, 7, 8]}]}', [Box('a', 1, 2, 3, 4), Box('mug', 5, 6, 7, 8)]),
    ('{"bbox_2d": [[1, 2, 3, 4], [5, 6, 7, 8]], "label": "cups"}',
     [Box('cups', 1, 2, 3, 4), Box('cups', 5, 6, 7, 8)]),
    ('Found it:\n```json\n[\n  {"bbox_2d": [10, 20, 30, 40], "label": "cup"}\n]\n```',
     [Box('cup', 10, 20, 30, 40)]),
])
def test_grounding_forms(answer, expected):
    result = parse(answer, Mode.GROUNDING, source_size=(1000, 1000), object_name='mug')
    assert result.status is ParseStatus.OK, result.error
    assert list(result.boxes) == expected


def test_grounding_maps_both_families():
    answer = '[{"bbox_2d": [250, 500, 750, 1000], "label": "cup"}]'
    qwen3 = parse(answer, Mode.GROUNDING, source_size=(640, 480))
    assert qwen3.boxes == (Box('cup', 160, 240, 480, 480),)
    qwen25 = parse(answer, Mode.GROUNDING, family=QWEN25, source_size=(640, 480),
                   model_input_size=(1000, 1000))
    assert qwen25.boxes == (Box('cup', 160, 240, 480, 480),)


@pytest.mark.parametrize('answer, error_part', [
    ('There is a cup on the table.', 'no JSON'),
    ('[{"bbox_2d": [1, 2, 3], "label": "cup"}]', 'is not four numbers'),
    ('[{"label": "cup"}]', 'bbox_2d'),
    ('```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "cup"', 'never closed'),
    ('[{"bbox_2d": [0, 0, 1001, 10], "label": "cup"}]', 'box 1 bottom right (1001, 10)'),
])
def test_grounding_failures(answer, error_part):
    result = parse(answer, Mode.GROUNDING)
    assert result.status is ParseStatus.FAILED
    assert error_part in result.error


@pytest.mark.parametrize('key', ['bbox_2d', 'box_2d', 'bbox', 'box', 'bounding_box'])
def test_grounding_box_key_fallbacks(key):
    result = parse(f'[{{"{key}": [100, 200, 300, 400], "label": "cup"}}]', Mode.GROUNDING,
                   source_size=(1000, 1000))
    assert result.status is ParseStatus.OK, result.error
    assert result.boxes == (Box('cup', 100, 200, 300, 400),)


# --- Cosmos 3 conventions (design.md 3b): answer after </think> without the opening tag,
# 0-1000 coordinates, events in plain seconds -----------------------------------------------------

EDGE = ModelFamily.COSMOS3_EDGE
OMNI = ModelFamily.COSMOS3_OMNI


@pytest.mark.parametrize('family', [EDGE, OMNI])
def test_cosmos3_trajectory_after_a_closing_think_tag_maps_0_1000_to_source_pixels(family):
    # Edge with thinking on: the template opened <think>, the answer only closes it.
    text = ('I will move the left gripper from the tape to the basket.\n</think>\n\n'
            '```json\n[' + ', '.join(f'{{"point_2d": [{x}, {y}], "label": "gripper trajectory"}}'
                                     for x, y in TAPE_POINTS) + ']\n```')
    result = parse(text, Mode.TRAJECTORY, family=family, starts_in_reasoning=True)
    assert result.status is ParseStatus.OK, result.error
    assert result.reasoning == 'I will move the left gripper from the tape to the basket.'
    assert result.answer.startswith('```json')
    expected = [(x / 1000 * SOURCE[0], y / 1000 * SOURCE[1]) for x, y in TAPE_POINTS]
    assert result.trajectories[0].label == 'gripper trajectory'
    assert flat(result.trajectories[0].points) == pytest.approx(flat(expected))


def test_edge_output_cut_off_inside_the_opened_reasoning_is_truncated():
    text = 'I will move the left gripper from its position at [195, 630] toward'
    result = parse(text, Mode.TRAJECTORY, family=EDGE, starts_in_reasoning=True)
    assert result.status is ParseStatus.TRUNCATED
    assert result.reasoning == text and result.answer == ''
    assert 'raise max_new_tokens' in result.error
    # Without the flag the same text is read as an answer (and has no trajectory).
    assert parse(text, Mode.TRAJECTORY, family=EDGE).status is ParseStatus.FAILED


def test_edge_next_action_on_the_line_after_the_closing_tag():
    text = ('The tape lies left of the basket.</think>\nThe robot arms will extend toward the '
            'blue tape roll and grasp it.')
    result = parse(text, Mode.NEXT_ACTION, family=EDGE, starts_in_reasoning=True)
    assert result.status is ParseStatus.OK
    assert result.reasoning == 'The tape lies left of the basket.'
    assert result.next_action == ('The robot arms will extend toward the blue tape roll and '
                                  'grasp it.')


@pytest.mark.parametrize('reasoning', [
    'The tape is left. <think> maybe it is right',      # a <think> written inside the reasoning
    '<think>The tape is left.',                         # the model opened it again itself
])
def test_edge_reasoning_that_writes_a_think_tag_stays_reasoning(reasoning):
    # The template opened <think>: everything up to </think> is reasoning, and the answer is
    # what follows it (seen with the random Edge model: the reasoning before the inner tag was
    # taken for the answer, and the final check rightly failed it).
    answer = ('[{"point_2d": [932, 1], "label": "tape"}, '
              '{"point_2d": [329, 0], "label": "tape"}]')
    result = parse(f'{reasoning}</think>{answer}', Mode.TRAJECTORY, family=EDGE,
                   starts_in_reasoning=True)
    assert result.status is ParseStatus.OK, result.error
    assert result.answer == answer
    assert result.reasoning == reasoning.replace('<think>The', 'The')
    assert len(result.trajectories[0].points) == 2


def test_edge_thinking_off_answer_is_all_answer():
    result = parse('The robot grasps the tape.', Mode.NEXT_ACTION, family=EDGE)
    assert result.status is ParseStatus.OK and result.reasoning == ''
    assert result.next_action == 'The robot grasps the tape.'


@pytest.mark.parametrize('family', [EDGE, OMNI])
def test_cosmos3_boxes_are_0_1000_with_fallback_keys(family):
    answer = ('</think>[{"bbox_2d": [250, 500, 750, 1000], "label": "cup"}, '
              '{"bounding_box": [0, 0, 500, 500], "label": "basket"}]')
    result = parse(answer, Mode.GROUNDING, family=family, source_size=(640, 480))
    assert result.status is ParseStatus.OK, result.error
    assert result.boxes == (Box('cup', 160, 240, 480, 480), Box('basket', 0, 0, 320, 240))
    out_of_range = parse('[{"bbox_2d": [0, 0, 1200, 10], "label": "cup"}]', Mode.GROUNDING,
                         family=family)
    assert out_of_range.status is ParseStatus.FAILED
    assert 'outside the 0-1000 range of Cosmos3' in out_of_range.error


@pytest.mark.parametrize('family', list(ModelFamily))
@pytest.mark.parametrize('answer', [
    # Cosmos 3's template asks for seconds as numbers; the other for mm:ss.ff strings.
    '[{"start": 0.1, "end": 2.1, "caption": "The car waits at the crosswalk."}]',
    '[{"start": "00:00.10", "end": "00:02.10", "caption": "The car waits at the crosswalk."}]',
    '```json\n[{"start": "0.1", "end": "2.1s", "caption": "The car waits at the crosswalk."}]'
    '\n```',
])
def test_events_in_seconds_or_clock_strings_for_every_family(family, answer):
    result = parse(answer, Mode.TEMPORAL, family=family, model_input_size=(320, 240))
    assert result.status is ParseStatus.OK, result.error
    assert result.events == (Event(pytest.approx(0.1), pytest.approx(2.1),
                                   'The car waits at the crosswalk.'),)


# --- temporal localization -----------------------------------------------------------------------

@pytest.mark.parametrize('value, seconds', [
    ('00:00.100', 0.1),
    ('00:02.10', 2.1),
    ('01:02.5', 62.5),
    ('1:02:03.25', 3723.25),
    ('12', 12.0),
    ('12.5s', 12.5),
    ('3.0 seconds', 3.0),
    (4, 4.0),
    (2.25, 2.25),
    ('00:05', 5.0),
])
def test_parse_timestamp(value, seconds):
    assert parse_timestamp(value) == pytest.approx(seconds)


@pytest.mark.parametrize('value', [
    '', 'soon', '00:75.0', '1:2:3:4', '-1', -1, float('nan'), None, True, '00:.', ':05', [1]])
def test_parse_timestamp_rejects(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize('answer, events, error_part', [
    ('[{"start": 0, "end": 1.5, "caption": "a"}, {"start": "00:01.50", "end": "00:03.000", '
     '"caption": "b"}]', [Event(0, 1.5, 'a'), Event(1.5, 3.0, 'b')], ''),
    ('{"events": [{"start": "00:00.5", "end": "00:01.0", "event": "x"}]}',
     [Event(0.5, 1.0, 'x')], ''),
    ('[{"start": 0, "end": 1}]', [Event(0, 1, '')], ''),
    ('[{"start": 0, "end": 1, "caption": null}]', [Event(0, 1, '')], ''),
    ('[{"start": "soon", "end": 1, "caption": "bad"}, {"start": 1, "end": 2, "caption": "ok"}]',
     [Event(1, 2, 'ok')], 'skipped event 1'),
    ('[{"start": 3, "end": 1, "caption": "reversed"}, {"start": 1, "end": 2, "caption": "ok"}]',
     [Event(1, 2, 'ok')], 'ends (1 s) before it starts (3 s)'),
])
def test_temporal_forms(answer, events, error_part):
    result = parse(answer, Mode.TEMPORAL)
    assert result.status is ParseStatus.OK
    assert [e.caption for e in result.events] == [e.caption for e in events]
    assert flat((e.start, e.end) for e in result.events) == pytest.approx(
        flat((e.start, e.end) for e in events))
    assert error_part in result.error


@pytest.mark.parametrize('answer, error_part', [
    ('The car waits, then turns.', 'no JSON'),
    ('[{"start": "later", "end": "never", "caption": "x"}]', 'skipped event 1'),
    ('[{"begin": 0, "finish": 1}]', 'holds no events'),
    ('```json\n[\n  {\n    "start": "00:00.100",\n    "end": "00:0', 'never closed'),
])
def test_temporal_failures(answer, error_part):
    result = parse(answer, Mode.TEMPORAL)
    assert result.status is ParseStatus.FAILED
    assert result.events == ()
    assert error_part in result.error


# --- multiple choice and verdicts ----------------------------------------------------------------

@pytest.mark.parametrize('answer, letter', [
    ('A', 'A'),
    ('b', 'B'),
    ('(B)', 'B'),
    ('B.', 'B'),
    ('**C**', 'C'),
    ('(D) The car turns left.', 'D'),
    ('C. Because the light is red.', 'C'),
    ('Answer: C', 'C'),
    ('The answer is (D) because the arm is empty.', 'D'),
    ('The correct answer is **B**.', 'B'),
    ('I think the answer is option C.', 'C'),
    ('A car is parked, so the answer is B', 'B'),
    ('The answer is a car.', ''),
    ('I do not know.', ''),
    ('', ''),
])
def test_parse_choice(answer, letter):
    assert parse_choice(answer) == letter


@pytest.mark.parametrize('answer, num_choices, status, choice, error_part', [
    ('<think>why</think>\n\n(B)', 4, ParseStatus.OK, 'B', ''),
    ('D', 4, ParseStatus.OK, 'D', ''),
    ('E', 4, ParseStatus.FAILED, '', 'chose E but the question has 4 options (A-D)'),
    ('Z', 0, ParseStatus.OK, 'Z', ''),  # 0 options: the range is not checked
    ('I cannot tell.', 4, ParseStatus.FAILED, '', 'no option letter'),
])
def test_multiple_choice(answer, num_choices, status, choice, error_part):
    result = parse(answer, Mode.MULTIPLE_CHOICE, num_choices=num_choices)
    assert (result.status, result.choice) == (status, choice)
    assert error_part in result.error


@pytest.mark.parametrize('answer, verdict', [
    ('Yes, the path is clear.', 'yes'),
    ('No.', 'no'),
    ('**No**, a pedestrian is crossing.', 'no'),
    ('NO', 'no'),
    ('Answer: yes', 'yes'),
    ('Nothing blocks the way.', ''),
    ('Based on the video, it is **not safe to turn right immediately**.', ''),
    ('Not safe.', ''),
    ('', ''),
])
def test_parse_verdict(answer, verdict):
    assert parse_verdict(answer) == verdict


def test_verdict_is_filled_in_question_mode_only():
    assert parse('<think>x</think>No.', Mode.QUESTION).verdict == 'no'
    assert parse('No vehicles in view.', Mode.CAPTION).verdict == ''


# --- next action ---------------------------------------------------------------------------------

@pytest.mark.parametrize('text, status, next_action', [
    ('Grasp the tape.', ParseStatus.OK, 'Grasp the tape.'),
    ('<think>hm</think>\n\nGrasp the tape.\n\nThen lift it.', ParseStatus.OK, 'Grasp the tape.'),
    ('<think>hm</think>\n\n', ParseStatus.FAILED, ''),
    ('<think>hm', ParseStatus.TRUNCATED, ''),
])
def test_next_action(text, status, next_action):
    result = parse(text, Mode.NEXT_ACTION)
    assert (result.status, result.next_action) == (status, next_action)


# --- arguments and robustness --------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, error_part', [
    ({'source_size': (0, 0)}, 'source_size'),
    ({'family': 'qwen4'}, "unknown model family 'qwen4'"),
])
def test_bad_arguments_fail_with_a_message(kwargs, error_part):
    result = parse('[{"point_2d": [1, 2]}]', Mode.TRAJECTORY, **kwargs)
    assert result.status is ParseStatus.FAILED
    assert error_part in result.error


def test_mode_given_by_name():
    assert parse('(B)', 'multiple_choice').choice == 'B'


def test_unknown_mode_fails_with_the_valid_modes():
    result = parse('x', 'poem')
    assert result.status is ParseStatus.FAILED
    assert 'trajectory' in result.error


def _random_outputs(count: int) -> list[str]:
    pieces = ['<think>', '</think>', '<answer>', '</answer>', '```json', '```', '[', ']', '{',
              '}', '"', "'", ',', ':', '\n', ' ', 'point_2d', 'bbox_2d', 'start', 'end',
              'label', '00:01.5', '1e999', 'NaN', '-3', '500', 'Yes', '(B)', 'Answer:', '\\',
              '\u2019', '\x00']
    rng = random.Random(20250601)
    outputs = []
    for _ in range(count):
        if rng.random() < 0.5:
            outputs.append(''.join(rng.choice(pieces) for _ in range(rng.randint(0, 40))))
        else:
            outputs.append(''.join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 80))))
    return outputs


@pytest.mark.parametrize('mode', list(Mode))
@pytest.mark.parametrize('family', list(ModelFamily))
def test_never_raises_on_random_text(mode, family):
    for text in _random_outputs(300):
        for reasoning in (None, text[:7]):
            result = parse_answer(text, mode, family=family, source_size=(640, 480),
                                  model_input_size=(320, 240), reasoning=reasoning,
                                  num_choices=3)
            assert isinstance(result.status, ParseStatus)
            assert result.status is not ParseStatus.NOT_RUN
            assert 'parser error' not in result.error  # the safety net must stay unused
            if result.status is not ParseStatus.OK:
                assert result.error


FREE_TEXT_MODES = (Mode.QUESTION, Mode.CAPTION, Mode.NEXT_ACTION)


@pytest.mark.parametrize('text, json_error', [
    ('[' * 100000, 'is cut off'),
    ('{"point_2d": ' * 3000, 'is cut off'),
    ('[' * 950 + ']' * 950, 'the JSON in the answer holds no'),
    ('```' * 1001, 'does not parse'),
    # The scan gives up after 32 stray brackets (bounding its work): the list at the end is unread.
    ('[a' * 20000 + '[{"point_2d": [1, 2]}]', 'the answer holds no JSON'),
], ids=['open brackets', 'open objects', 'nested empty lists', 'fences', 'junk then a list'])
def test_never_raises_on_pathological_text(text, json_error):
    # Free text takes it as the answer; the structured modes fail, each saying why.
    for mode in Mode:
        result = parse(text, mode)
        assert result.answer == text.strip() and result.reasoning == '', mode
        assert not (result.trajectories or result.boxes or result.events or result.choice)
        if mode in FREE_TEXT_MODES:
            assert result.status is ParseStatus.OK and result.error == '', mode
        elif mode is Mode.MULTIPLE_CHOICE:
            assert result.status is ParseStatus.FAILED, mode
            assert result.error.startswith('no option letter in the answer'), result.error
        else:
            assert result.status is ParseStatus.FAILED, mode
            assert json_error in result.error, (mode, result.error)


def test_never_raises_on_no_text_or_an_endless_think():
    for mode in Mode:
        missing = parse(None, mode)
        assert missing.status is ParseStatus.FAILED, mode
        assert missing.error == 'the model returned no answer text' and missing.answer == ''
        endless = parse('<think>' * 1000, mode)
        assert endless.status is ParseStatus.TRUNCATED and endless.answer == '', mode
        assert endless.error.startswith('generation stopped inside <think> before </think>')
