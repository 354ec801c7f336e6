"""Scoring on hand-computed cases, the run summary, and the comparison of two reports."""

import copy
import dataclasses

import numpy as np
import pytest

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import (
    Box,
    Event,
    ParsedAnswer,
    ParseStatus,
    Trajectory,
)
from cosmos_reason_ros.core.depth.geometry import Box3D, Lifted, LiftStatus, Trajectory3D
from cosmos_reason_ros.core.evaluation.compare import compare_reports, render_comparison
from cosmos_reason_ros.core.evaluation.questions import AskTime, Expected, QuestionItem
from cosmos_reason_ros.core.evaluation.report import report_content
from cosmos_reason_ros.core.evaluation.scoring import (
    box_iou,
    interval_iou,
    keyword_recall,
    mean_best_box_iou,
    mean_best_event_iou,
    percentiles,
    rate,
    resample_path,
    score_answer,
    summarize,
    trajectory_error,
    trajectory_error_3d,
    wilson_interval,
)


def _item(mode: Mode, **expected) -> QuestionItem:
    return QuestionItem(id='i', source='/bag', topic='/cam', time=AskTime(offset=1.0), mode=mode,
                        task='t', expected=Expected(**expected))


def _answer(**fields) -> ParsedAnswer:
    return ParsedAnswer(reasoning='', answer=fields.pop('answer', ''), status=ParseStatus.OK,
                        **fields)


def test_paths_are_resampled_evenly_along_their_length():
    np.testing.assert_allclose(resample_path([(0, 0), (10, 0)], 3), [[0, 0], [5, 0], [10, 0]])
    # An L of legs 3 and 1: a quarter of the way is (1, 0), three quarters is (3, 0).
    np.testing.assert_allclose(resample_path([(0, 0), (3, 0), (3, 1)], 5),
                               [[0, 0], [1, 0], [2, 0], [3, 0], [3, 1]])
    np.testing.assert_allclose(resample_path([(4, 5)], 3), [[4, 5]] * 3)
    np.testing.assert_allclose(resample_path([(4, 5), (4, 5)], 2), [[4, 5]] * 2)
    with pytest.raises(ValueError):
        resample_path([])


def test_paths_in_3d_are_resampled_and_compared_in_metres():
    np.testing.assert_allclose(resample_path([(0, 0, 1), (0, 0, 2)], 3),
                               [[0, 0, 1], [0, 0, 1.5], [0, 0, 2]])
    # A parallel path 3-4-0 away: 5 cm everywhere.
    mean, final = trajectory_error_3d([(0.03, 0.04, 1.0), (0.03, 0.04, 2.0)],
                                      [(0, 0, 1.0), (0, 0, 1.5), (0, 0, 2.0)])
    assert (mean, final) == (pytest.approx(0.05), pytest.approx(0.05))


def test_trajectory_error_in_pixels_and_per_diagonal():
    expected = [(0, 0), (100, 0)]
    shifted = [(3, 4), (103, 4)]
    error = trajectory_error(shifted, expected, (300, 400))
    assert error.mean_px == pytest.approx(5.0) and error.final_px == pytest.approx(5.0)
    assert error.mean_fraction == pytest.approx(0.01) and error.final_fraction == 0.01
    # More waypoints along the same line are the same path.
    same = trajectory_error([(0, 0), (50, 0), (100, 0)], expected, (300, 400))
    assert same.mean_px == pytest.approx(0.0, abs=1e-9) and same.final_px == 0.0
    # Reversed: the ends are 100 px apart, the middles coincide; mean of |100 - 2k*100/19|.
    reverse = trajectory_error([(100, 0), (0, 0)], expected, (300, 400))
    assert reverse.final_px == 100.0
    assert reverse.mean_px == pytest.approx(np.mean(np.abs(100 - 200 * np.arange(20) / 19)))


@pytest.mark.parametrize('a, b, iou', [
    ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),
    ((0, 0, 2, 2), (1, 0, 3, 2), 1 / 3),
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),
    ((0, 0, 2, 2), (2, 0, 4, 2), 0.0),
    ((0, 0, 4, 4), (1, 1, 3, 3), 0.25),
])
def test_box_iou(a, b, iou):
    assert box_iou(Box('', *a), Box('', *b)) == pytest.approx(iou)


def test_each_expected_box_takes_its_best_match():
    expected = [Box('', 0, 0, 2, 2), Box('', 10, 10, 12, 12)]
    predicted = [Box('', 10, 10, 12, 12), Box('', 1, 0, 3, 2)]
    assert mean_best_box_iou(predicted, expected) == pytest.approx((1 / 3 + 1) / 2)
    assert mean_best_box_iou([], expected) == 0.0


@pytest.mark.parametrize('a, b, iou', [
    ((0, 2), (1, 3), 1 / 3), ((0, 1), (2, 3), 0.0), ((1, 1), (1, 1), 1.0), ((1, 1), (2, 2), 0.0),
    ((0, 4), (1, 2), 0.25),
])
def test_interval_iou(a, b, iou):
    assert interval_iou(a, b) == pytest.approx(iou)


def test_event_iou_averages_the_best_match_of_each_expected_event():
    expected = [Event(0, 2, 'a'), Event(5, 6, 'b')]
    assert mean_best_event_iou([Event(1, 3, 'x')], expected) == pytest.approx(1 / 6)


def test_keywords_match_whole_words_ignoring_case_with_alternatives():
    text = 'A Red ball circles the grey box; it was covered.'
    assert keyword_recall(text, [('red',), ('marker', 'ball'), ('basket', 'bin')]) == 2 / 3
    assert keyword_recall(text, [('over',)]) == 0.0, "'covered' does not contain the word over"
    assert keyword_recall(text, [('grey box',)]) == 1.0


def test_choice_and_verdict_must_match_exactly():
    item = _item(Mode.MULTIPLE_CHOICE, choice='B')
    assert score_answer(item, _answer(choice='B'), (10, 10)).correct is True
    wrong = score_answer(item, _answer(choice=''), (10, 10))
    assert wrong.correct is False and wrong.detail == 'no option letter in the answer'
    item = _item(Mode.QUESTION, verdict='no')
    assert score_answer(item, _answer(verdict='no'), (10, 10)).correct is True
    assert score_answer(item, _answer(verdict='yes'), (10, 10)).correct is False


def test_trajectory_is_right_within_the_tolerance_of_the_diagonal():
    item = _item(Mode.TRAJECTORY, trajectory=((0.0, 0.0), (100.0, 0.0)))
    close = _answer(trajectories=(Trajectory('a', ((30, 40), (130, 40))),))
    far = _answer(trajectories=(Trajectory('a', ((60, 80), (160, 80))),))
    near = score_answer(item, close, (300, 400))  # mean 50 px = 0.1 of the 500 px diagonal
    assert near.correct is True and near.trajectory.mean_fraction == pytest.approx(0.1)
    assert score_answer(item, far, (300, 400)).correct is False
    none = score_answer(item, _answer(), (300, 400))
    assert none.correct is False and none.trajectory is None
    assert none.detail == 'no trajectory in the answer'


def test_events_are_compared_in_time_after_the_start_of_the_recording():
    item = _item(Mode.TEMPORAL, events=(Event(2.0, 3.0, 'x'),))
    # The model counts from the first frame it saw, 1.5 s into the recording.
    answer = _answer(events=(Event(0.5, 1.5, 'x'),))
    assert score_answer(item, answer, (10, 10), window_offset=1.5).iou == pytest.approx(1.0)
    assert score_answer(item, answer, (10, 10), window_offset=0.0).correct is False


def test_boxes_keywords_and_unscored_items():
    item = _item(Mode.GROUNDING, boxes=(Box('', 0, 0, 2, 2),))
    assert score_answer(item, _answer(boxes=(Box('', 1, 0, 3, 2),)), (9, 9)).correct is False
    assert score_answer(item, _answer(boxes=(Box('', 0, 0, 2, 2),)), (9, 9)).iou == 1.0
    item = _item(Mode.CAPTION, keywords=(('red',), ('ball',)))
    score = score_answer(item, _answer(answer='a red ball'), (9, 9))
    assert score.correct is True and score.keyword_recall == 1.0
    assert score_answer(_item(Mode.CAPTION), _answer(), (9, 9)).correct is None


def test_percentiles_interpolate_and_survive_no_data():
    stats = percentiles([4.0, 1.0, 3.0, 2.0], (50, 90))
    assert stats == {'count': 4, 'mean': 2.5, 'p50': 2.5, 'p90': pytest.approx(3.7),
                     'max': 4.0}
    assert percentiles([], (50,)) == {'count': 0, 'mean': None, 'p50': None, 'max': None}


def _record(index, mode, *, status='answered', correct=None, parse='ok', total=1.0,
            generation=0.5, completion=10, trajectory=None, raw='x', finish='stop'):
    answered = status == 'answered'
    return {
        'index': index, 'id': f'item{index}', 'source': '/data/bag', 'status': status,
        'error': '' if answered else 'no frame', 'question': {'mode': mode},
        'answer': {'parse_status': parse, 'raw_text': raw} if answered else None,
        'score': ({'kind': 'trajectory' if trajectory else 'choice', 'correct': correct,
                   'trajectory': trajectory, 'iou': None} if answered else None),
        'timing': {'total': total if answered else None, 'generation': generation,
                   'preprocess': 0.1, 'time_to_first_token': 0.2, 'overhead': 0.01,
                   'round_trip': None},
        'tokens': {'prompt': 100, 'completion': completion if answered else 0,
                   'finish_reason': finish if answered else ''},
    }


def _report(items):
    return {'schema': 'cosmos_reason_ros.eval_report', 'schema_version': 3,
            'created': '2025-01-01T00:00:00+00:00', 'complete': True,
            'run': {'kind': 'offline', 'question_set': {'name': 'q', 'path': '/q.yaml'},
                    'sources': [{'path': '/data/bag'}],
                    'model': {'id': 'm', 'family': 'qwen3_vl', 'device': 'cpu',
                              'dtype': 'float32'},
                    'prompt_digest': 'abc', 'settings': {'greedy': True}, 'wall_time': 3.0},
            'summary': summarize(items), 'items': items}


def test_summary_counts_accuracy_parse_rate_and_speed():
    error = {'mean_px': 10.0, 'final_px': 20.0, 'mean_fraction': 0.1, 'final_fraction': 0.2}
    items = [
        _record(1, 'multiple_choice', correct=True, total=1.0),
        _record(2, 'multiple_choice', correct=False, parse='failed', total=3.0),
        _record(3, 'trajectory', correct=False, trajectory=error, total=2.0),
        _record(4, 'trajectory', status='error'),
        _record(5, 'caption', correct=None, total=4.0),
    ]
    summary = summarize(items)
    assert (summary['items'], summary['answered'], summary['errors']) == (5, 4, 1)
    assert (summary['scored'], summary['correct']) == (3, 1)
    assert summary['accuracy'] == pytest.approx(1 / 3)
    assert summary['accuracy_by_mode']['multiple_choice']['accuracy'] == 0.5
    trajectory = summary['accuracy_by_mode']['trajectory']
    assert trajectory.pop('accuracy_interval') == pytest.approx([0.0, 0.7935], abs=1e-4)
    assert trajectory == {'items': 2, 'answered': 1, 'scored': 1, 'correct': 0,
                          'accuracy': 0.0}
    assert summary['accuracy_by_mode']['caption']['accuracy'] is None
    success = summary['parse'].pop('success')
    assert (success['k'], success['n'], success['rate']) == (3, 4, 0.75)
    assert summary['parse'] == {'ok': 3, 'unterminated_reasoning': 0, 'failed': 1,
                                'not_run': 0, 'success_rate': 0.75}
    assert summary['accuracy_interval'] == pytest.approx([0.0615, 0.7923], abs=1e-4)
    assert summary['trajectory_error']['mean_px']['p50'] == 10.0
    assert summary['latency']['total']['p50'] == 2.5
    assert summary['latency']['total']['p95'] == pytest.approx(3.85)
    assert summary['latency']['round_trip']['count'] == 0
    assert summary['tokens'] == {'prompt': 400, 'completion': 40, 'tokens_per_second': 20.0}


def test_the_summary_counts_answers_cut_by_the_token_limit_under_that_name():
    # Five of seven answers stopped at max_new_tokens; one of them inside its reasoning.
    items = [_record(i, 'caption', finish='length') for i in range(1, 5)]
    items += [_record(5, 'caption', finish='length', parse='truncated'),
              _record(6, 'caption'), _record(7, 'caption', parse='failed')]
    summary = summarize(items)
    assert summary['cut_by_token_limit'] == {
        'count': 5, 'items': ['item1', 'item2', 'item3', 'item4', 'item5']}
    assert (summary['parse']['ok'], summary['parse']['unterminated_reasoning']) == (5, 1)
    assert 'truncated' not in summary['parse']


def test_comparison_lists_flips_metric_deltas_and_setup_changes():
    before = _report([_record(1, 'multiple_choice', correct=True),
                      _record(2, 'multiple_choice', correct=False),
                      _record(3, 'question', correct=False, parse='failed'),
                      _record(4, 'caption', status='error')])
    after_items = copy.deepcopy(before['items'])
    after_items[0]['score']['correct'] = False
    after_items[1]['score']['correct'] = True
    after_items[1]['answer']['raw_text'] = 'B'
    after_items[2]['answer']['parse_status'] = 'ok'
    after_items[3] = _record(4, 'caption', correct=None)
    after = _report(after_items)
    after['run']['model']['id'] = 'm2'
    after['run']['settings'] = {'greedy': False}
    comparison = compare_reports(before, after)
    assert [(f['key'], f['change']) for f in comparison['flipped']] == [
        ('bag:item1', 'broken'), ('bag:item2', 'fixed')]
    assert comparison['parse_changed'] == [
        {'key': 'bag:item3', 'mode': 'question', 'a': 'failed', 'b': 'ok'}]
    assert comparison['status_changed'][0]['key'] == 'bag:item4'
    assert comparison['answers_changed'] == 1
    fields = {change['field']: (change['a'], change['b']) for change in comparison['setup']}
    assert fields == {'model': ('m', 'm2'), 'settings.greedy': (True, False)}
    metrics = {m['metric']: m for m in comparison['metrics']}
    assert metrics['parse success rate']['delta'] == pytest.approx(1 - 2 / 3)
    assert metrics['parse success rate']['better'] is True
    assert metrics['errors']['delta'] == -1 and metrics['errors']['better'] is True
    text = render_comparison(comparison)
    assert '| bag:item1 | multiple_choice | right | wrong | broken |' in text
    assert '| model | m | m2 |' in text


def test_report_content_drops_measured_times_only():
    report = _report([_record(1, 'caption', correct=None)])
    content = report_content(report)
    assert 'created' not in content and 'wall_time' not in content['run']
    assert 'timing' not in content['items'][0] and 'latency' not in content['summary']
    assert content['items'][0]['answer'] == report['items'][0]['answer']


@pytest.mark.parametrize('successes, trials, low, high', [
    (0, 3, 0.0, 0.5615),     # nothing right out of three still allows up to 56%
    (3, 3, 0.4385, 1.0),
    (8, 10, 0.4902, 0.9433),
    (50, 100, 0.4038, 0.5962),
])
def test_every_rate_carries_a_95_percent_wilson_interval(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)
    counted = rate(successes, trials)
    assert (counted['k'], counted['n']) == (successes, trials)
    assert counted['interval'] == pytest.approx([low, high], abs=1e-4)


def test_a_rate_of_nothing_has_no_interval():
    assert wilson_interval(0, 0) is None
    assert rate(0, 0) == {'k': 0, 'n': 0, 'rate': None, 'interval': None}


def _lifted(*points, status=LiftStatus.OK, message=''):
    valid = tuple(not np.isnan(point[2]) for point in points)
    return Lifted(status, message, (Trajectory3D('path', tuple(points), valid),))


NAN = float('nan')
PATH_3D = ((0.0, 0.0, 1.5), (0.3, 0.0, 1.5), (0.3, 0.4, 1.2))


def _item_3d(**expected):
    item = _item(Mode.TRAJECTORY, trajectory_3d=PATH_3D, **expected)
    return dataclasses.replace(item, depth_topic='/depth', camera_info_topic='/info')


def test_a_trajectory_in_3d_is_right_within_its_tolerance_in_metres():
    answer = _answer(trajectories=(Trajectory('path', ((0, 0), (10, 0), (10, 10))),))
    exact = score_answer(_item_3d(), answer, (640, 480), lifted=_lifted(*PATH_3D))
    assert (exact.kind, exact.correct, exact.correct_3d) == ('trajectory_3d', True, True)
    assert exact.trajectory_3d.mean_m == pytest.approx(0.0, abs=1e-12)
    assert exact.lift_status == 'ok'
    shifted = [(x, y, z + 0.06) for x, y, z in PATH_3D]
    off = score_answer(_item_3d(), answer, (640, 480), lifted=_lifted(*shifted))
    assert (off.correct, off.correct_3d) == (False, False)
    assert off.trajectory_3d.mean_m == pytest.approx(0.06)
    assert off.trajectory_3d.final_m == pytest.approx(0.06)


def test_right_in_pixels_but_wrong_in_3d_is_wrong_and_says_which():
    item = _item_3d(trajectory=((0, 0), (10, 0), (10, 10)))
    answer = _answer(trajectories=(Trajectory('path', ((0, 0), (10, 0), (10, 10))),))
    far = [(x, y, z + 0.5) for x, y, z in PATH_3D]
    score = score_answer(item, answer, (640, 480), lifted=_lifted(*far))
    assert score.kind == 'trajectory' and score.trajectory.mean_px == 0.0
    assert (score.correct, score.correct_3d) == (False, False)


def test_points_without_depth_are_left_out_and_named_never_invented():
    answer = _answer(trajectories=(Trajectory('path', ((0, 0), (5, 5), (10, 10))),))
    lifted = _lifted(PATH_3D[0], (NAN, NAN, NAN), PATH_3D[2])
    score = score_answer(_item_3d(), answer, (640, 480), lifted=lifted)
    assert score.trajectory_3d.points == 3 and score.trajectory_3d.without_depth == 1
    assert '1 of 3 points had no valid depth and were left out' in score.detail
    none = score_answer(_item_3d(), answer, (640, 480), lifted=_lifted(*[(NAN, NAN, NAN)] * 3))
    assert none.correct is False and none.trajectory_3d is None
    assert 'none of the 3 points of the answer had valid depth' in none.detail


@pytest.mark.parametrize('lifted, detail', [
    (None, 'the run read no depth for this item'),
    (Lifted(LiftStatus.NO_DEPTH, 'no depth frame within depth.tolerance'),
     'not lifted into 3D (no_depth): no depth frame within depth.tolerance'),
    (Lifted(LiftStatus.OK, '', ()), 'no trajectory in the answer to lift'),
])
def test_an_answer_that_was_not_lifted_is_wrong_in_3d_with_the_reason(lifted, detail):
    answer = _answer(trajectories=(Trajectory('path', ((0, 0), (10, 0))),))
    score = score_answer(_item_3d(), answer, (640, 480), lifted=lifted)
    assert (score.correct, score.correct_3d) == (False, False)
    assert detail in score.detail


def test_the_summary_counts_3d_accuracy_errors_and_lifting_outcomes():
    def lifted_record(index, correct, mean, status='ok'):
        record = _record(index, 'trajectory', correct=correct)
        record['expected'] = {'kind': 'trajectory_3d', 'trajectory_3d': [[0, 0, 1]]}
        record['score'].update(
            correct_3d=correct, lift_status=status,
            trajectory_3d=None if mean is None else {'mean_m': mean, 'final_m': 2 * mean})
        return record

    summary = summarize([lifted_record(1, True, 0.01), lifted_record(2, False, 0.2),
                         lifted_record(3, False, None, status='no_depth'),
                         _record(4, 'caption', correct=None)])
    accuracy = summary['accuracy_3d']
    assert (accuracy['k'], accuracy['n']) == (1, 3)
    assert summary['trajectory_error_3d']['mean_m']['count'] == 2
    assert summary['trajectory_error_3d']['final_m']['max'] == pytest.approx(0.4)
    assert summary['lifting'] == {'no_depth': 1, 'ok': 2}


def test_comparison_shows_3d_accuracy_with_counts_and_the_error_in_metres():
    def report(correct, mean):
        record = _record(1, 'trajectory', correct=correct)
        record['expected'] = {'kind': 'trajectory_3d', 'trajectory_3d': [[0, 0, 1]]}
        record['score'].update(correct_3d=correct, lift_status='ok',
                               trajectory_3d={'mean_m': mean, 'final_m': mean})
        return _report([record])

    comparison = compare_reports(report(False, 0.2), report(True, 0.01))
    metrics = {entry['metric']: entry for entry in comparison['metrics']}
    accuracy = metrics['accuracy in 3D']
    assert (accuracy['a'], accuracy['b'], accuracy['better']) == (0.0, 1.0, True)
    assert (accuracy['count_a'], accuracy['count_b']) == ([0, 1], [1, 1])
    error = metrics['trajectory error in 3D mean p50 (m)']
    assert error['delta'] == pytest.approx(-0.19) and error['better'] is True
    without = compare_reports(_report([_record(1, 'caption')]), _report([_record(1, 'caption')]))
    assert not any('3D' in entry['metric'] for entry in without['metrics'])


def test_box_centres_in_3d_are_matched_to_the_nearest_lifted_centre():
    item = dataclasses.replace(
        _item(Mode.GROUNDING, boxes=(Box('cup', 0, 0, 10, 10),),
              centres_3d=((0.0, 0.0, 1.0), (1.0, 0.0, 1.0))),
        depth_topic='/depth', camera_info_topic='/info')
    answer = _answer(boxes=(Box('cup', 0, 0, 10, 10),))

    def lifted(*boxes):
        return Lifted(LiftStatus.OK, '', (), tuple(
            Box3D('cup', centre, (0.1, 0.1, 0.0), valid, 50 if valid else 3)
            for centre, valid in boxes))

    score = score_answer(item, answer, (640, 480), lifted=lifted(
        ((1.0, 0.0, 1.02), True), ((0.0, 0.0, 1.0), True), ((NAN,) * 3, False)))
    assert (score.kind, score.correct, score.correct_3d) == ('boxes', True, True)
    assert score.centres_3d.mean_m == pytest.approx(0.01)
    assert (score.centres_3d.boxes, score.centres_3d.without_depth) == (3, 1)
    assert '1 of 3 boxes had too few valid depths' in score.detail
    far = score_answer(item, answer, (640, 480), lifted=lifted(((0.0, 0.0, 1.2), True)))
    assert far.correct is False and far.centres_3d.mean_m == pytest.approx((0.2 + 1.02) / 2,
                                                                            abs=1e-3)
    none = score_answer(item, answer, (640, 480), lifted=lifted(((NAN,) * 3, False)))
    assert none.correct_3d is False and 'none of the 1 boxes' in none.detail
