"""Question sets: the YAML format, its validation messages, and the Cosmos-Reason1 benchmark."""

import json
import math
import pathlib

import pytest
import yaml

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.evaluation.question_file import load_questions, parse_question_set
from cosmos_reason_ros.core.evaluation.questions import AskTime, expected_to_dict, QuestionSetError
from cosmos_reason_ros.core.evaluation.reason1_benchmark import load_benchmark
from cosmos_reason_ros.demo.sample_data import question_set_yaml

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / 'examples' / 'questions_sample.yaml'


def _set(items, **fields):
    return {'version': 1, 'source': 'bag', 'topic': 'camera/image', 'items': items, **fields}


def _parse(data, tmp_path=pathlib.Path('/data')):
    return parse_question_set(data, tmp_path / 'questions.yaml')


def test_the_documented_example_is_what_the_generator_writes():
    assert EXAMPLE.read_text(encoding='utf-8') == question_set_yaml()


def test_the_example_loads_with_every_kind_of_expected_answer():
    questions = load_questions(EXAMPLE)
    kinds = {item.id: item.expected.kind for item in questions.items}
    assert kinds == {
        'marker-path-1s': 'trajectory', 'marker-path-2.5s': 'trajectory',
        'marker-into-basket': 'trajectory', 'basket-box': 'boxes',
        'marker-box': 'boxes', 'marker-direction': 'choice', 'marker-in-basket': 'verdict',
        'marker-below-basket': 'events', 'scene-caption': 'keywords'}
    in_3d = [item.id for item in questions.items if item.expected.trajectory_3d]
    assert in_3d == ['marker-path-1s', 'marker-path-2.5s', 'marker-into-basket']
    first = questions.items[0]
    assert first.source == str(EXAMPLE.parent / 'sample_bag')
    assert first.topic == '/camera/image_raw'
    assert first.depth_topic == '/camera/aligned_depth_to_color/image_raw'
    assert first.camera_info_topic == '/camera/camera_info'
    assert first.tolerance_3d == 0.05
    assert len(first.expected.trajectory_3d) == len(first.expected.trajectory)
    assert first.time == AskTime(offset=1.0)
    assert (first.window_duration, first.max_frames, first.max_new_tokens) == (2.0, 8, 400)
    assert len(first.expected.trajectory) == 5
    verdict = next(item for item in questions.items if item.id == 'marker-in-basket')
    assert verdict.expected.verdict == 'no', 'YAML reads a bare no as False; it means "no"'
    assert questions.items[-1].time.at_end


def test_fields_and_forms_are_read_as_documented(tmp_path):
    questions = _parse(_set([
        {'id': 'mc', 'stamp': 1700000001.5, 'mode': 'multiple_choice', 'task': 'Which?',
         'choices': ['left', 'right'], 'expected': {'choice': 'right'}},
        {'id': 'box', 'at': '00:01.50', 'mode': 'grounding', 'object_name': 'cup',
         'expected': {'boxes': [{'bbox': [30, 40, 10, 20], 'label': 'cup'}]}},
        {'id': 'events', 'at': 2, 'mode': 'temporal_localization', 'window_duration': 'all',
         'expected': {'events': [{'start': '00:01.25', 'end': 2, 'caption': 'x'}]}},
        {'id': 'words', 'at': 'end', 'mode': 'caption',
         'expected': {'keywords': ['red', ['ball', 'marker']]}},
        {'id': 'free', 'at': 0, 'mode': 'next_action', 'source': '/abs/clip.mp4', 'topic': ''},
    ], defaults={'max_new_tokens': 32, 'reasoning': True}), tmp_path)
    mc, box, events, words, free = questions.items
    assert mc.time.resolve(100.0, 200.0) == 1700000001.5
    assert mc.expected.choice == 'B'
    assert box.time.offset == 1.5
    assert (box.expected.boxes[0].x_min, box.expected.boxes[0].y_max) == (10.0, 40.0)
    assert math.isinf(events.window_duration)
    assert (events.expected.events[0].start, events.expected.events[0].end) == (1.25, 2.0)
    assert words.time.resolve(10.0, 14.0) == 14.0
    assert words.expected.keywords == (('red',), ('ball', 'marker'))
    assert free.expected.kind == '' and free.source == '/abs/clip.mp4' and free.topic == ''
    assert all(item.max_new_tokens == 32 and item.reasoning for item in questions.items)
    assert mc.source == str(tmp_path / 'bag') and mc.topic == '/camera/image'
    assert questions.sources() == [(str(tmp_path / 'bag'), '/camera/image'),
                                   ('/abs/clip.mp4', '')]


def test_source_and_topic_given_on_the_command_line_replace_the_files(tmp_path):
    path = tmp_path / 'q.yaml'
    path.write_text(yaml.safe_dump(_set([{'at': 1, 'mode': 'caption'}])))
    questions = load_questions(path, source=tmp_path / 'other.mcap', topic='/cam')
    assert questions.sources() == [(str(tmp_path / 'other.mcap'), '/cam')]
    assert questions.items[0].id == 'item-1'


@pytest.mark.parametrize('item, message', [
    ({'mode': 'caption'}, "give exactly one of 'at'"),
    ({'at': 1, 'stamp': 2, 'mode': 'caption'}, "give exactly one of 'at'"),
    ({'at': -1, 'mode': 'caption'}, "'at' must not be negative"),
    ({'at': 'soon', 'mode': 'caption'}, "'at': time 'soon'"),
    ({'at': 1, 'mode': 'guess'}, "unknown mode 'guess'"),
    ({'at': 1, 'mode': 'caption', 'expect': {}}, "unknown field 'expect'"),
    ({'at': 1, 'mode': 'question'}, "mode question needs 'task'"),
    ({'at': 1, 'mode': 'grounding'}, "mode grounding needs 'object_name'"),
    ({'at': 1, 'mode': 'multiple_choice', 'task': 'q', 'choices': ['a']}, '2 to 26'),
    ({'at': 1, 'mode': 'multiple_choice', 'task': 'q', 'choices': ['a', 'b'],
      'expected': {'choice': 'C'}}, "expected choice 'C' is neither one of the letters A, B"),
    ({'at': 1, 'mode': 'caption', 'expected': {'verdict': 'yes'}},
     'mode caption is scored with expected keywords'),
    ({'at': 1, 'mode': 'question', 'task': 'q', 'expected': {'verdict': 'maybe'}},
     'verdict must be yes or no'),
    ({'at': 1, 'mode': 'trajectory', 'task': 't', 'expected': {'trajectory': [[1, 2, 3]]}},
     'list of [x, y] points'),
    ({'at': 1, 'mode': 'grounding', 'object_name': 'o', 'expected': {'boxes': [[1, 1, 1, 5]]}},
     'has no area'),
    ({'at': 1, 'mode': 'temporal_localization',
      'expected': {'events': [{'start': 3, 'end': 1}]}}, 'ends before it starts'),
    ({'at': 1, 'mode': 'caption', 'expected': {'keywords': []}}, 'non-empty list of words'),
    ({'at': 1, 'mode': 'caption', 'expected': {'verdict': 'yes', 'keywords': ['a']}},
     "'expected' must hold exactly one of"),
    ({'at': 1, 'mode': 'caption', 'max_frames': -2}, "'max_frames' must be a whole number"),
    ({'at': 1, 'mode': 'caption', 'tolerance': 2}, "'tolerance' must be a number in (0, 1]"),
    ({'at': 1, 'mode': 'caption', 'window_duration': 'long'}, "'window_duration' must be"),
])
def test_a_bad_item_is_named_with_its_problem(item, message):
    with pytest.raises(QuestionSetError) as raised:
        _parse(_set([{'at': 0, 'mode': 'caption'}, {'id': 'bad', **item}]))
    text = str(raised.value)
    assert "item 2 ('bad')" in text and message in text
    assert 'item 1' not in text, 'the good item is not blamed'


def test_every_problem_is_listed_at_once():
    with pytest.raises(QuestionSetError) as raised:
        _parse(_set([{'id': 'a', 'mode': 'caption'}, {'id': 'a', 'at': 1, 'mode': 'nope'},
                     {'id': 'c', 'at': 1, 'mode': 'caption'}, {'id': 'c', 'at': 2,
                                                                'mode': 'caption'}],
                    version=2, extra=True))
    text = str(raised.value)
    for fragment in ("item 1 ('a'): give exactly one of", "item 2 ('a'): unknown mode",
                     "item 4 ('c'): id 'c' is already used by item 3", 'version 2',
                     "unknown field 'extra'"):
        assert fragment in text


@pytest.mark.parametrize('data, message', [
    ([1, 2], 'must hold a mapping'),
    ({'version': 1, 'source': 'b', 'items': []}, "'items' must be a non-empty list"),
    ({'version': 1, 'items': [{'at': 1, 'mode': 'caption'}]}, "no bag or clip: set 'source'"),
    ({'version': 1, 'source': 'b', 'defaults': {'id': 'x'}, 'items': [{'at': 1}]},
     "defaults: field 'id' cannot have a default"),
])
def test_a_bad_file_says_what_to_fix(data, message):
    with pytest.raises(QuestionSetError, match=message):
        _parse(data)


def test_unreadable_files_are_reported(tmp_path):
    with pytest.raises(QuestionSetError, match='cannot read question set'):
        load_questions(tmp_path / 'missing.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('items: [\n')
    with pytest.raises(QuestionSetError, match='not valid YAML'):
        load_questions(broken)


def test_benchmark_layout_becomes_multiple_choice_items_about_whole_clips(tmp_path):
    entries = [
        {'video': 'clips/a.mp4', 'qa_pairs': {
            'question': 'What happens?', 'index2ans': {'A': 'stop', 'B': 'go'}, 'answer': 'B'}},
        {'video': 'clips/b.mp4', 'qa_pairs': [
            {'question': 'Q1', 'index2ans': {'A': 'x', 'B': 'y', 'C': 'z'},
             'correct_answer': 'A'},
            {'question': 'Q2', 'index2ans': {'1': 'p', '2': 'q'}, 'answer': '2'}]},
    ]
    path = tmp_path / 'av_benchmark_qa_pairs.json'
    path.write_text(json.dumps(entries))
    questions = load_questions(path, source=tmp_path / 'media')
    assert questions.format == 'cosmos_reason1_benchmark'
    assert [item.id for item in questions.items] == ['a#0', 'b#0', 'b#1']
    first, second, third = questions.items
    assert first.mode is Mode.MULTIPLE_CHOICE and first.choices == ('stop', 'go')
    assert first.expected.choice == 'B' and second.expected.choice == 'A'
    assert third.expected.choice == 'B', 'keys other than letters map by position'
    assert first.time.at_end and math.isinf(first.window_duration)
    assert first.source == str(tmp_path / 'media' / 'clips' / 'a.mp4')
    lines = tmp_path / 'b.jsonl'
    lines.write_text('\n'.join(json.dumps(entry) for entry in entries))
    assert len(load_benchmark(lines).items) == 3


def test_benchmark_problems_name_the_entry(tmp_path):
    path = tmp_path / 'bench.json'
    path.write_text(json.dumps([{'video': 'v.mp4', 'qa_pairs': {
        'question': 'Q', 'index2ans': {'A': 'x', 'B': 'y'}, 'answer': 'D'}}, {'qa_pairs': {}}]))
    with pytest.raises(QuestionSetError) as raised:
        load_questions(path)
    text = str(raised.value)
    assert "entry 1 (v.mp4), question 0: answer 'D' is not one of" in text
    assert "entry 2: needs a 'video' path" in text


def test_a_trajectory_may_expect_its_path_in_3d_beside_or_instead_of_pixels(tmp_path):
    depth = {'depth_topic': 'camera/depth', 'camera_info_topic': '/camera/camera_info'}
    questions = _parse(_set([
        {'id': 'both', 'at': 1, 'mode': 'trajectory', 'task': 'go', 'tolerance_3d': 0.02,
         'expected': {'trajectory': [[1, 2], [3, 4]],
                      'trajectory_3d': [[0.1, 0.2, 1.5], [0.3, 0.4, 1.2]]}},
        {'id': 'metres', 'at': 1, 'mode': 'trajectory', 'task': 'go',
         'expected': {'trajectory_3d': [[0, 0, 1]]}},
    ], **depth), tmp_path)
    both, metres = questions.items
    assert both.expected.kind == 'trajectory' and both.expected.scored
    assert both.expected.trajectory_3d == ((0.1, 0.2, 1.5), (0.3, 0.4, 1.2))
    assert (both.depth_topic, both.tolerance_3d) == ('/camera/depth', 0.02)
    assert metres.expected.kind == '' and metres.expected.scored
    assert metres.expected.trajectory_3d == ((0.0, 0.0, 1.0),) and questions.lifted


def test_the_command_line_names_the_depth_topics(tmp_path):
    path = tmp_path / 'q.yaml'
    path.write_text(yaml.safe_dump(_set([{'at': 1, 'mode': 'caption'}])))
    item, = load_questions(path, depth_topic='/d', camera_info_topic='/i').items
    assert (item.depth_topic, item.camera_info_topic) == ('/d', '/i')
    assert not load_questions(path).lifted


def test_a_grounding_may_expect_its_box_centres_in_3d(tmp_path):
    questions = _parse(_set([
        {'id': 'cup', 'at': 1, 'mode': 'grounding', 'object_name': 'cup',
         'expected': {'boxes': [[0, 0, 10, 10]], 'centres_3d': [[0.1, 0.2, 1.5]]}},
    ], depth_topic='/d', camera_info_topic='/i'), tmp_path)
    expected = questions.items[0].expected
    assert expected.kind == 'boxes' and expected.in_3d == 'centres_3d'
    assert expected.centres_3d == ((0.1, 0.2, 1.5),)
    assert expected_to_dict(expected)['centres_3d'] == [[0.1, 0.2, 1.5]]


@pytest.mark.parametrize('item, fields, message', [
    ({'mode': 'grounding', 'object_name': 'cup', 'expected': {'trajectory_3d': [[0, 0, 1]]}},
     {'depth_topic': '/d', 'camera_info_topic': '/i'},
     'expected trajectory_3d belongs to mode trajectory, not grounding'),
    ({'mode': 'trajectory', 'task': 'go', 'expected': {'centres_3d': [[0, 0, 1]]}},
     {'depth_topic': '/d', 'camera_info_topic': '/i'},
     'expected centres_3d belongs to mode grounding, not trajectory'),
    ({'mode': 'trajectory', 'task': 'go', 'expected': {'trajectory_3d': [[0, 0]]}},
     {'depth_topic': '/d', 'camera_info_topic': '/i'},
     r'trajectory_3d must be a non-empty list of \[x, y, z\] points in metres'),
    ({'mode': 'trajectory', 'task': 'go', 'expected': {'trajectory_3d': [[0, 0, 1]]}}, {},
     "expected trajectory_3d needs 'depth_topic' and 'camera_info_topic'"),
    ({'mode': 'caption'}, {'depth_topic': '/d'},
     "needs both 'depth_topic' and 'camera_info_topic'"),
    ({'mode': 'trajectory', 'task': 'go', 'tolerance_3d': 0,
      'expected': {'trajectory_3d': [[0, 0, 1]]}},
     {'depth_topic': '/d', 'camera_info_topic': '/i'}, "'tolerance_3d' must be metres > 0"),
    ({'mode': 'trajectory', 'task': 'go',
      'expected': {'trajectory': [[0, 0]], 'boxes': [[0, 0, 1, 1]],
                   'trajectory_3d': [[0, 0, 1]]}},
     {'depth_topic': '/d', 'camera_info_topic': '/i'}, 'must hold exactly one of'),
])
def test_3d_expectations_that_cannot_be_scored_are_refused(tmp_path, item, fields, message):
    with pytest.raises(QuestionSetError, match=message):
        _parse(_set([{'at': 1, **item}], **fields), tmp_path)
