"""An evaluation that never misleads: whole-clip windows, paths, stamps that do not advance, stale
frames, letter phrasings, repeated ids, counts, and what an interrupted run says.

The scripted test double answers, so these tests need no model and check exact figures.
"""

import copy
import json
import math
import time

import cv2
import numpy as np
import pytest
from recordings import H, steady, W, write_bag
from scripted_backend import ScriptedBackend, write_clip
import yaml

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer
from cosmos_reason_ros.core.config import GoalDefaults, WindowConfig
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings, window_facts
from cosmos_reason_ros.core.evaluation.compare import compare_reports, render_comparison
from cosmos_reason_ros.core.evaluation.question_file import load_questions, parse_question_set
from cosmos_reason_ros.core.evaluation.questions import AskTime, Expected, QuestionItem
from cosmos_reason_ros.core.evaluation.reason1_benchmark import load_benchmark
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import build_report, ReportError, write_report
from cosmos_reason_ros.core.evaluation.scoring import score_answer
from cosmos_reason_ros.core.evaluation.sources import Timeline
from cosmos_reason_ros.demo.sample_data import START

CLIP_SIZE = (32, 24)


def near(value: float, tolerance: float = 1e-5):
    """Approx with an absolute tolerance: a relative one is ~1700 s at bag stamps."""
    return pytest.approx(value, abs=tolerance, rel=0)


def _set(source, items, topic: str = '', path=None):
    data = {'version': 1, 'source': str(source), 'items': items}
    if topic:
        data['topic'] = topic
    return parse_question_set(data, path or source.parent / 'questions.yaml')


@pytest.fixture(scope='module')
def long_clip(tmp_path_factory):
    """40 s at 29.97 fps, as a phone or a dashcam writes it."""
    return write_clip(tmp_path_factory.mktemp('clips') / 'drive.mp4', 40.0, size=CLIP_SIZE)


# 1. Whole-clip questions see the whole clip ----------------------------------------------------

def test_a_whole_clip_question_sees_the_whole_clip_not_the_nodes_last_30_s(long_clip):
    questions = _set(long_clip, [{'id': 'all', 'at': 'end', 'mode': 'caption',
                                  'window_duration': 'all', 'max_frames': 1000}])
    backend = ScriptedBackend({}, default='A road.')
    settings = ReplaySettings(window=WindowConfig(max_pixels=CLIP_SIZE[0] * CLIP_SIZE[1]))
    (result,) = Replay(backend, settings).run(questions).results
    assert result.status == 'answered', result.error
    (request,) = backend.requests
    assert len(request.frames) == 160, '40 s at 4 fps'
    assert result.window_offset == near(0.0, 0.04), 'from the first frame, not from 10 s'
    assert request.timestamps[-1] == near(39.75, 0.04)
    assert result.window['truncated'] is False
    assert (result.window['frames_in_range'], result.window['frames_held']) == (160, 160)


def test_a_history_beyond_the_memory_bound_is_marked_truncated_per_item(long_clip, tmp_path):
    pixels = CLIP_SIZE[0] * CLIP_SIZE[1]
    settings = ReplaySettings(
        window=WindowConfig(max_pixels=pixels, capacity=16, max_duration=4.0),
        window_memory_mib=100 * pixels * 3 / 2**20)
    assert settings.frame_bound == 100
    questions = _set(long_clip, [
        {'id': 'all', 'at': 'end', 'mode': 'caption', 'window_duration': 'all',
         'max_frames': 1000},
        {'id': 'short', 'at': 'end', 'mode': 'caption', 'window_duration': 2.0}])
    run = Replay(ScriptedBackend({}, default='A road.'), settings).run(questions)
    whole, short = run.results
    assert whole.window['truncated'] and whole.window['frames_held'] == 100
    assert ('held 100 of the 160 frames this item asks for (bound 100 frames'
            in whole.window['note'])
    # 29.97 fps: the first frame of the 15 s slot is the one at 15.015 s.
    assert 'saw from 15.015 s, not from 0.000 s' in whole.window['note']
    assert not short.window['truncated']
    report = json.loads(write_report(run, tmp_path, pictures=False).read_text())
    assert report['items'][0]['window']['truncated'] is True
    assert report['summary']['flags']['truncated_window'] == ['all']
    markdown = (tmp_path / 'report.md').read_text()
    assert '| items with a truncated window | 1: all |' in markdown
    assert 'truncated: the window held 100 of the 160 frames' in markdown


# 2. Paths: the command line's from the current directory, the file's from the file ------------

def test_a_relative_source_on_the_command_line_is_taken_from_the_current_directory(
        tmp_path, monkeypatch):
    here = write_clip(tmp_path / 'clip.mp4', 0.5, size=CLIP_SIZE)
    beside = write_clip(tmp_path / 'set' / 'clip.mp4', 1.0, size=CLIP_SIZE)
    path = tmp_path / 'set' / 'q.yaml'
    path.write_text(yaml.safe_dump({'version': 1, 'source': 'clip.mp4',
                                    'items': [{'at': 0.0, 'mode': 'caption'}]}))
    monkeypatch.chdir(tmp_path)
    assert load_questions('set/q.yaml').items[0].source == str(beside), 'in the file: beside it'
    assert load_questions('set/q.yaml', source='clip.mp4').items[0].source == str(here)
    bench = tmp_path / 'set' / 'x_benchmark_qa_pairs.json'
    bench.write_text(json.dumps([{'video': 'clip.mp4', 'qa_pairs': {
        'question': 'Q?', 'index2ans': {'A': 'a', 'B': 'b'}, 'answer': 'A'}}]))
    assert load_questions(bench, source='.').items[0].source == str(here)
    assert load_benchmark(bench).items[0].source == str(beside)


def test_the_report_fingerprints_its_data_and_compare_refuses_different_data(tmp_path):
    first = write_clip(tmp_path / 'a' / 'clip.mp4', 1.0, size=CLIP_SIZE)
    other = write_clip(tmp_path / 'b' / 'clip.mp4', 1.5, size=CLIP_SIZE)
    reports = []
    for clip in (first, first, other):
        run = Replay(ScriptedBackend({}, default='x')).run(
            _set(clip, [{'id': 'q', 'at': 'end', 'mode': 'caption'}]))
        reports.append(build_report(run))
    source = reports[0]['run']['sources'][0]
    assert source['path'] == str(first) and source['fingerprint']['bytes'] == first.stat().st_size
    assert compare_reports(reports[0], reports[1])['matched'] == 1
    with pytest.raises(ReportError, match="different data under the name 'clip.mp4'"):
        compare_reports(reports[0], reports[2])


# 3. Header stamps that do not advance ---------------------------------------------------------

def test_a_bag_whose_stamps_are_all_zero_falls_back_to_log_time_and_says_so(tmp_path):
    # Every header stamp is 0 s (a driver that never stamps); the log times advance.
    bag = write_bag(tmp_path / 'bag', [(i / 30, -START) for i in range(90)])
    questions = _set(bag, [{'id': 'one', 'at': 1.0, 'mode': 'caption'},
                           {'id': 'two', 'at': 2.0, 'mode': 'caption'}],
                     topic='/camera/image')
    settings = ReplaySettings(window=WindowConfig(max_pixels=W * H),
                              goals=GoalDefaults(window_duration=0.5))
    run = Replay(ScriptedBackend({}, default='x'), settings).run(questions)
    one, two = run.results
    assert one.status == two.status == 'answered'
    assert one.window_end == near(START + 1.0, 0.04) and two.window_end == near(START + 2.0, 0.04)
    assert two.window_offset == near(1.75, 0.04), 'the window ends at the asking time'
    (source,) = run.sources
    assert source.stamps == 'log'
    assert "header stamps on '/camera/image' do not advance (90 messages, 1 distinct" in \
        source.note
    write_report(run, tmp_path / 'report', pictures=False)
    assert 'do not advance' in (tmp_path / 'report' / 'report.md').read_text()


def test_a_bag_with_advancing_stamps_keeps_them(tmp_path):
    bag = write_bag(tmp_path / 'bag', steady(1.0))
    run = Replay(ScriptedBackend({}, default='x'), ReplaySettings(
        window=WindowConfig(max_pixels=W * H))).run(
        _set(bag, [{'at': 0.5, 'mode': 'caption'}], topic='/camera/image'))
    assert run.sources[0].stamps == 'header' and run.sources[0].note == ''


# 4. Stale frames: measured from the frame the model gets, flagged, quoted ----------------------

def test_an_answer_inside_a_short_gap_carries_its_frame_age_and_a_flag(tmp_path):
    frames = steady(1.0) + [(t + 2.5, s + 2.5) for t, s in steady(1.0)]
    bag = write_bag(tmp_path / 'bag', frames)
    settings = ReplaySettings(window=WindowConfig(max_pixels=W * H))
    run = Replay(ScriptedBackend({}, default='x'), settings).run(_set(bag, [
        {'id': 'fresh', 'at': 0.9, 'mode': 'caption'},
        {'id': 'in-gap', 'at': 2.3, 'mode': 'caption'}], topic='/camera/image'))
    fresh, in_gap = run.results
    assert in_gap.status == 'answered'
    # The newest frame kept by then is the first of the 0.75 s slot: 23/30 s, logged 4 ms on.
    assert in_gap.frame_age == near(2.3 - (23 / 30 + 0.004), 1e-3)
    assert fresh.frame_age < settings.frame_age_warning
    report = json.loads(write_report(run, tmp_path / 'r', pictures=False).read_text())
    assert [item['stale_flag'] for item in report['items']] == [False, True]
    assert report['summary']['flags']['stale_frames'] == ['in-gap']
    assert '**stale**' in (tmp_path / 'r' / 'report.md').read_text()


def test_staleness_counts_from_the_newest_frame_the_model_gets_and_quotes_it(tmp_path):
    # Messages keep coming after 1 s, but none of them decodes: the model would get the frame
    # of 23/30 s (logged at 0.771 s), the last one its 4 fps window kept.
    bag = write_bag(tmp_path / 'bag', steady(3.5), corrupt=range(30, 105))
    (result,) = Replay(ScriptedBackend({}, default='x'), ReplaySettings(
        window=WindowConfig(max_pixels=W * H))).run(
        _set(bag, [{'id': 'late', 'at': 3.4, 'mode': 'caption'}], topic='/camera/image')).results
    assert result.error_code == 'stale_frames'
    assert 'the newest frame the model would get is from 0.771 s' in result.error
    assert f'(stamp {START + 23 / 30:.3f})' in result.error


# 5. Letter phrasings ----------------------------------------------------------------------------

@pytest.mark.parametrize('answer, letter', [
    ('B', 'B'), ('(C)', 'C'), ('b.', 'B'), ('**D**', 'D'),
    ('The answer is b', 'B'),
    ('Answer: (b)', 'B'),
    ('I think it is B.', 'B'),
    ('Option B', 'B'),
    ('The best option is C, since the lane is free.', 'C'),
    ('The answer would be D.', 'D'),
    ('I would choose c', 'C'),
    ('(A) The car stops.', 'A'),
    ('The correct answer is (D) turn left', 'D'),
    ('go straight (B)', 'B'),
    ('A car is turning left.', ''),
    ('The answer is a car.', ''),
    ('It is a bit risky.', ''),
])
def test_common_letter_phrasings_are_scored(answer, letter):
    item = QuestionItem(id='q', source='clip.mp4', topic='', time=AskTime(at_end=True),
                        mode=Mode.MULTIPLE_CHOICE, task='Which?', choices=('w', 'x', 'y', 'z'),
                        expected=Expected(choice=letter or 'A'))
    parsed = parse_answer(answer, Mode.MULTIPLE_CHOICE, family=ModelFamily.QWEN3_VL,
                          source_size=(W, H), num_choices=4)
    assert parsed.choice == letter
    assert score_answer(item, parsed, (W, H)).correct is bool(letter)


def test_a_benchmark_answer_key_is_matched_ignoring_case(tmp_path):
    path = tmp_path / 'av_benchmark_qa_pairs.json'
    path.write_text(json.dumps([{'video': 'clips/x.mp4', 'qa_pairs': {
        'question': 'Q?', 'index2ans': {'A': 'go', 'B': 'stop'}, 'answer': 'b'}}]))
    assert load_benchmark(path).items[0].expected.choice == 'B'


# 6 and 7. Repeated ids and counts in compare --------------------------------------------------

def _report(correct: list, tmp_path, name: str) -> dict:
    clip = tmp_path / 'clip.mp4'
    if not clip.exists():
        write_clip(clip, 0.5, size=CLIP_SIZE)
    items = [{'id': f'q{i}', 'at': 'end', 'mode': 'multiple_choice', 'task': f'Q{i}?',
              'choices': ['x', 'y'], 'expected': {'choice': 'A'}} for i in range(len(correct))]
    script = {f'Q{i}?': 'A' if right else 'B' for i, right in enumerate(correct)}
    run = Replay(ScriptedBackend(script)).run(_set(clip, items, path=tmp_path / f'{name}.yaml'))
    return build_report(run)


def test_compare_shows_counts_and_says_when_a_change_is_within_noise(tmp_path):
    before, after = _report([False], tmp_path, 'a'), _report([True], tmp_path, 'b')
    comparison = compare_reports(before, after)
    accuracy = next(m for m in comparison['metrics'] if m['metric'] == 'accuracy')
    assert (accuracy['count_a'], accuracy['count_b']) == ([0, 1], [1, 1])
    assert accuracy['note'].startswith('within noise: 95% intervals 0%-79% and 21%-100%')
    text = render_comparison(comparison)
    assert '| accuracy | 0/1 = 0 | 1/1 = 1 | +1 (better); within noise' in text
    large_a = _report([False] * 20 + [True] * 20, tmp_path, 'c')
    large_b = _report([True] * 40, tmp_path, 'd')
    accuracy = next(m for m in compare_reports(large_a, large_b)['metrics']
                    if m['metric'] == 'accuracy')
    assert (accuracy['count_a'], accuracy['count_b']) == ([20, 40], [40, 40])
    assert accuracy['note'] == '', 'a change this large over 40 items is not noise'


def test_compare_refuses_reports_whose_ids_repeat(tmp_path):
    report = _report([True, False], tmp_path, 'a')
    old = copy.deepcopy(report)
    old['items'][1]['id'] = old['items'][0]['id']  # as older versions wrote benchmark ids
    with pytest.raises(ReportError, match='report A repeats item id\\(s\\) clip.mp4:q0'):
        compare_reports(old, report)


# 10. Inputs checked before the model loads, the settings row, Ctrl-C mid-answer ---------------

def test_run_on_a_folder_of_mixed_sizes_fails_before_loading_the_model(
        tmp_path, monkeypatch, capsys):
    folder = tmp_path / 'frames'
    folder.mkdir()
    cv2.imwrite(str(folder / '1.png'), np.zeros((24, 32, 3), np.uint8))
    cv2.imwrite(str(folder / '2.png'), np.zeros((48, 64, 3), np.uint8))
    monkeypatch.setattr(cli, '_load_backend', lambda args: pytest.fail('the model was loaded'))
    assert cli.main(['run', str(folder), '--task', 'What is this?']) == 2
    assert 'different sizes (32x24 and 64x48)' in capsys.readouterr().err


def test_the_settings_row_names_max_frame_age(tmp_path):
    clip = write_clip(tmp_path / 'clip.mp4', 0.5, size=CLIP_SIZE)
    settings = ReplaySettings(goals=GoalDefaults(max_frame_age=1.5))
    run = Replay(ScriptedBackend({}, default='x'), settings).run(
        _set(clip, [{'at': 'end', 'mode': 'caption'}]))
    write_report(run, tmp_path / 'r', pictures=False)
    assert 'max_frame_age 1.5 s' in (tmp_path / 'r' / 'report.md').read_text()


def test_ctrl_c_while_an_item_is_answered_says_so(tmp_path):
    clip = write_clip(tmp_path / 'clip.mp4', 1.0, size=CLIP_SIZE)
    backend = ScriptedBackend({}, default='x', interrupt_on='Second?')
    run = Replay(backend).run(_set(clip, [
        {'id': 'first', 'at': 0.2, 'mode': 'question', 'task': 'First?'},
        {'id': 'second', 'at': 0.5, 'mode': 'question', 'task': 'Second?'},
        {'id': 'third', 'at': 0.9, 'mode': 'question', 'task': 'Third?'}]))
    assert run.interrupted
    first, second, third = run.results
    assert first.status == 'answered'
    assert second.error_code == third.error_code == 'interrupted'
    assert 'while this item was being answered' in second.error
    assert 'before this item was asked' in third.error


def test_window_facts_are_absent_for_items_that_were_not_asked(tmp_path):
    clip = write_clip(tmp_path / 'clip.mp4', 0.5, size=CLIP_SIZE)
    questions = _set(clip, [{'at': 9.0, 'mode': 'caption'}])
    started = time.perf_counter()
    run = Replay(ScriptedBackend({}, default='x')).run(questions)
    measured = time.perf_counter() - started
    assert run.results[0].error_code == 'after_end' and run.results[0].window is None
    assert 0 < run.wall_time <= measured  # the run's own clock, within the time it took


def test_the_live_client_knows_what_the_nodes_window_held_for_an_item():
    # 2 s at 30 fps, then the stamps jump back to 0 (a bag loop) and run 1 s more.
    stamps = [round(i / 30 * 1e9) for i in range(60)] + [round(i / 30 * 1e9) for i in range(30)]
    timeline = Timeline(start=0.0, bag_times=tuple(i / 30 for i in range(90)),
                        stamps_ns=tuple(stamps))
    window = WindowConfig(capacity=5, max_duration=30.0)
    kept = timeline.kept_stamps(window)
    before_loop = timeline.kept_history(kept, 59)
    assert before_loop == pytest.approx([i / 4 for i in range(8)], abs=0.02)
    after_loop = timeline.kept_history(kept, 89)
    assert len(after_loop) == 4 and after_loop[0] < 0.1, 'the loop cleared the window'
    facts = window_facts(before_loop, before_loop[-1], math.inf, window=window, max_frames=16,
                         seen=5, offset_of=lambda stamp: stamp, hint='raise window.capacity')
    assert (facts['frames_in_range'], facts['frames_held']) == (8, 5) and facts['truncated']
    assert '(bound 5 frames, 30 s; raise window.capacity)' in facts['note']
