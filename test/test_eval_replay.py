"""Offline replay on bags written here (MCAP and sqlite3, several encodings) and on the real clip.

The tiny random model answers gibberish, so these tests pin the pipeline (which frames, which
errors, what the report holds), not the accuracy, which is honestly near zero.
"""

import json
import pathlib

import cv2
import numpy as np
import pytest
from recordings import H, steady, W, write_bag
import yaml

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import GoalDefaults, ModelConfig, WindowConfig
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.compare import compare_files
from cosmos_reason_ros.core.evaluation.question_file import load_questions, parse_question_set
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import (
    build_report,
    load_report,
    report_content,
    SCHEMA_VERSION,
    write_report,
)
from cosmos_reason_ros.core.evaluation.sources import BagSource, open_source, SourceError
from cosmos_reason_ros.demo.sample_data import basket_box, marker_radius, START, write_sample
from cosmos_reason_ros.demo.sample_scene import marker_position, render_scene

DATA = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
CLIP = DATA / 'av_turn_right.mp4'
needs_data = pytest.mark.skipif(not CLIP.exists(), reason=f'{DATA} is not here')
SETTINGS = ReplaySettings(window=WindowConfig(max_pixels=W * H),
                          goals=GoalDefaults(window_duration=2.0, max_frames=8,
                                             max_new_tokens=8))


def near(value: float, tolerance: float = 1e-5):
    """Approx with an absolute tolerance: a relative one is ~1700 s at these stamps."""
    return pytest.approx(value, abs=tolerance, rel=0)


def questions_for(source: pathlib.Path, items: list, topic: str = '/camera/image', **fields):
    data = {'version': 1, 'source': str(source), 'topic': topic, 'items': items, **fields}
    return parse_question_set(data, source.parent / 'questions.yaml')


@pytest.fixture(scope='module')
def backend(tiny_qwen3_checkpoint):
    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu',
                                              dtype='fp32'))
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp('sample'))


@pytest.mark.parametrize('storage, encoding', [
    ('mcap', 'rgb8'), ('sqlite3', 'bgr8'), ('mcap', 'mono8'), ('sqlite3', 'jpeg')])
def test_bags_in_both_storages_and_common_encodings_replay(tmp_path, backend, storage,
                                                          encoding):
    bag = write_bag(tmp_path / 'bag', steady(2.0), storage=storage, encoding=encoding)
    source = open_source(bag, 'camera/image')
    assert source.describe()['storage'] == storage and source.message_count == 60
    frames = list(source.frames())
    assert [f.bag_time for f in frames] == sorted(f.bag_time for f in frames)
    assert frames[30].stamp == near(START + 1.0)
    assert frames[30].bag_time == near(START + 1.004)
    image = frames[30].load()
    truth = render_scene(1.0, W, H)
    if encoding == 'mono8':
        truth = cv2.cvtColor(cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    tolerance = 6.0 if encoding == 'jpeg' else 0.0
    assert image.shape == (H, W, 3)
    assert np.abs(image.astype(int) - truth).mean() <= tolerance

    run = Replay(backend, SETTINGS).run(questions_for(
        bag, [{'id': 'q', 'at': 1.01, 'mode': 'question', 'task': 'Is the marker red?'}]))
    result = run.results[0]
    assert result.status == 'answered', result.error
    # The bag starts with /status at START; the frame stamped 1.0 s is logged 4 ms later.
    assert result.window_end == near(START + 1.0)
    assert result.frame_stamps[-1] == near(START + 1.0)
    assert np.allclose(np.diff(result.frame_stamps), 0.25, atol=0.02), 'kept at 4 fps by stamp'
    assert result.source_size == (W, H) and result.completion_tokens == 8
    assert run.sources[0].window == {'offered': 60, 'kept': 8, 'skipped': 52, 'invalid': 0,
                                     'rewinds': 0}


def test_topic_errors_list_the_image_topics(tmp_path):
    two = write_bag(tmp_path / 'two', steady(0.2), topic='/front/image')
    with pytest.raises(SourceError, match='no topic .*/rear/image.*image topics: /front/image'):
        BagSource(two, '/rear/image')
    with pytest.raises(SourceError, match="'/status' .* is a std_msgs/msg/String, not an image"):
        BagSource(two, '/status')
    assert BagSource(two).topic == '/front/image', 'the only image topic needs no --topic'
    none = write_bag(tmp_path / 'none', [], topic='', extra=('/status', '/odom_text'))
    with pytest.raises(SourceError, match='no sensor_msgs/Image or CompressedImage topic; its '
                                          'topics: /odom_text .*, /status'):
        open_source(none)
    with pytest.raises(SourceError, match='does not exist'):
        open_source(tmp_path / 'missing')


def test_a_bag_with_several_image_topics_needs_a_choice(sample):
    bag = sample.parent / 'sample_bag'
    with pytest.raises(SourceError) as raised:
        BagSource(bag)
    assert ("several image topics; choose one with --topic (or 'topic' in the question set): "
            '/camera/aligned_depth_to_color/image_raw (Image), '
            '/camera/aligned_depth_to_color/image_raw/compressedDepth (CompressedImage), '
            '/camera/image_raw (Image), /camera/image_raw/compressed (CompressedImage)'
            in str(raised.value))


def test_a_bag_without_image_topic_fails_every_item_and_the_report_says_why(tmp_path, backend):
    bag = write_bag(tmp_path / 'bag', [], topic='', extra=('/status',))
    run = Replay(backend, SETTINGS).run(questions_for(bag, [
        {'at': 0.0, 'mode': 'caption'}, {'at': 1.0, 'mode': 'caption'}], topic=''))
    assert [r.error_code for r in run.results] == ['source', 'source']
    assert 'no sensor_msgs/Image' in run.results[0].error
    report = write_report(run, tmp_path / 'out')
    summary = json.loads(report.read_text())['summary']
    assert summary['errors'] == 2 and summary['accuracy'] is None


def test_items_outside_the_recording_fail_alone_and_the_run_goes_on(tmp_path, backend):
    # Frames from 0.5 to 1.5 s and 4.0 to 5.0 s; the bag starts at 0 with a status message.
    frames = [f for f in steady(5.0) if 0.5 <= f[0] <= 1.5 or f[0] >= 4.0]
    bag = write_bag(tmp_path / 'bag', frames)
    run = Replay(backend, SETTINGS).run(questions_for(bag, [
        {'id': 'early', 'at': 0.2, 'mode': 'caption'},
        {'id': 'ok-1', 'at': 1.0, 'mode': 'caption'},
        {'id': 'long-before', 'stamp': START - 50, 'mode': 'caption'},
        {'id': 'in-gap', 'at': 3.8, 'mode': 'caption'},
        {'id': 'late', 'at': 9.0, 'mode': 'caption'},
        {'id': 'ok-2', 'at': 4.5, 'mode': 'caption'},
        {'id': 'end', 'at': 'end', 'mode': 'caption'},
    ]))
    outcome = {r.item.id: (r.status, r.error_code) for r in run.results}
    assert outcome == {
        'early': ('error', 'before_start'), 'ok-1': ('answered', ''),
        'long-before': ('error', 'before_start'), 'in-gap': ('error', 'stale_frames'),
        'late': ('error', 'after_end'), 'ok-2': ('answered', ''), 'end': ('answered', '')}
    errors = {r.item.id: r.error for r in run.results}
    assert errors['early'] == ("asks at 0.200 s, before the first frame on '/camera/image' at "
                               '0.504 s: move it later')
    assert 'after the end of the recording: the last frame' in errors['late']
    assert 'the recording has a gap there' in errors['in-gap']
    assert [r.index for r in run.results] == list(range(1, 8)), 'reported in file order'
    end = next(r for r in run.results if r.item.id == 'end')
    # The last frame of the bag is at 4.967 s; the window's 4 fps slot kept the one at 4.767.
    assert end.window_end == near(START + 4.7667, 1e-3)
    assert end.frame_stamps[-1] == end.window_end


def test_a_corrupt_frame_is_counted_and_the_next_one_takes_its_place(tmp_path, backend):
    bag = write_bag(tmp_path / 'bag', steady(1.5), encoding='bgr8', corrupt=[15])
    run = Replay(backend, SETTINGS).run(questions_for(
        bag, [{'at': 1.2, 'mode': 'caption', 'window_duration': 1.2, 'max_frames': 16}]))
    (result,) = run.results
    summary = run.sources[0]
    assert summary.decode_errors == 1 and summary.window['invalid'] == 1
    assert summary.first_decode_error.startswith('frame at 0.504 s: bgr8 image data holds')
    assert result.status == 'answered'
    assert near(START + 15 / 30) not in result.frame_stamps
    assert near(START + 16 / 30) in result.frame_stamps, 'the next frame in the slot is kept'


def test_a_stamp_jump_back_clears_the_window_as_in_the_node(tmp_path, backend):
    # The header stamps jump back 100 s at 1.5 s of log time (a simulation reset).
    frames = [(log, stamp if log < 1.5 else stamp - 100.0) for log, stamp in steady(3.0)]
    bag = write_bag(tmp_path / 'bag', frames)
    run = Replay(backend, SETTINGS).run(questions_for(bag, [
        {'id': 'before', 'at': 1.2, 'mode': 'caption'},
        {'id': 'after', 'at': 2.6, 'mode': 'caption'}]))
    before, after = run.results
    assert before.status == after.status == 'answered'
    assert all(stamp > START for stamp in before.frame_stamps)
    assert after.frame_stamps and all(stamp < START - 97 for stamp in after.frame_stamps)
    assert after.window_end == near(START - 100 + 2.5)
    assert run.sources[0].window['rewinds'] == 1


def test_the_sample_set_is_deterministic_and_reports_everything(sample, backend, tmp_path):
    questions = load_questions(sample)
    settings = ReplaySettings(window=WindowConfig(max_pixels=W * H))
    first = Replay(backend, settings).run(questions)
    second = Replay(backend, settings).run(questions)
    assert [r.status for r in first.results] == ['answered'] * 9
    assert report_content(build_report(first)) == report_content(build_report(second))
    raw = [r.raw_text for r in first.results]
    assert all(raw) and raw == [r.raw_text for r in second.results]

    path = write_report(first, tmp_path / 'a')
    write_report(second, tmp_path / 'b')
    report = load_report(path)
    assert report['schema_version'] == SCHEMA_VERSION and report['complete']
    assert report['run']['sources'][0]['storage'] == 'mcap'
    assert report['run']['model']['family'] == 'qwen3_vl'
    item = report['items'][0]
    assert item['expected']['kind'] == 'trajectory' and item['frames']['image_size'] == [320,
                                                                                         240]
    assert item['prompt']['user'].startswith('You are given the task "Move the red marker')
    assert item['asked_at']['offset'] == 1.0 and item['asked_at']['window_end'] == START + 1.0
    for name in ('report.md', 'latency.svg', item['image']):
        assert (path.parent / name).is_file()
    markdown = (path.parent / 'report.md').read_text()
    assert '| parse success |' in markdown and '![latency histogram](latency.svg)' in markdown
    # The tiny model stops only at its token limit: the summary counts that, under that name.
    cut = sorted(i['id'] for i in report['items'] if i['tokens']['finish_reason'] == 'length')
    assert cut and report['summary']['cut_by_token_limit'] == {'count': len(cut), 'items': cut}
    assert ('| answers cut by the token limit (max_new_tokens) | '
            f"{len(cut)} of 9 answered: {', '.join(cut)} |") in markdown
    assert 'truncated 0' not in markdown
    assert f"![item 1]({item['image']})" in markdown
    comparison = compare_files(path, tmp_path / 'b' / 'report.json')
    assert comparison['flipped'] == [] and comparison['answers_changed'] == 0
    assert comparison['matched'] == 9 and comparison['setup'] == []


def test_sample_geometry_matches_the_rendered_frames(sample):
    source = BagSource(sample.parent / 'sample_bag', '/camera/image_raw')
    frame = next(f for f in source.frames() if f.stamp == near(START + 3.0))
    image = frame.load()
    x, y = marker_position(3.0, 320, 240)
    assert tuple(image[round(y), round(x)]) == (220, 30, 30)
    assert tuple(image[round(y), round(x + marker_radius(320) + 2)]) != (220, 30, 30)
    x1, y1, x2, y2 = basket_box(320, 240)
    assert tuple(image[(y1 + y2) // 2, (x1 + x2) // 2]) == (110, 110, 115)
    assert tuple(image[y1 - 2, x1 - 2]) != (110, 110, 115)


def test_ctrl_c_keeps_what_was_done_and_writes_a_partial_report(sample, backend, tmp_path):
    def interrupt_after_two(result, done, total):
        if done == 2:
            raise KeyboardInterrupt

    run = Replay(backend, SETTINGS, on_result=interrupt_after_two).run(load_questions(sample))
    assert run.interrupted
    statuses = [r.status for r in run.results]
    assert statuses.count('answered') == 2 and statuses.count('not_run') == 7
    path = write_report(run, tmp_path / 'partial')
    assert not json.loads(path.read_text())['complete']
    assert '**Partial report**: the run was interrupted after 2 of 9 items.' in (
        path.parent / 'report.md').read_text()


def test_cli_eval_then_compare(sample, tiny_qwen3_checkpoint, tmp_path, capsys):
    questions = tmp_path / 'q.yaml'
    data = yaml.safe_load(sample.read_text())
    data['items'] = data['items'][:2]
    questions.write_text(yaml.safe_dump(data))
    common = ['eval', str(sample.parent / 'sample_bag'), '--questions', str(questions),
              '--model', str(tiny_qwen3_checkpoint), '--device', 'cpu', '--dtype', 'fp32',
              '--max-pixels', str(W * H), '--quiet']
    assert cli.main(common + ['--out', str(tmp_path / 'a')]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['items'] == 2 and summary['answered'] == 2 and summary['complete']
    # The answers in the words of the action's result: two trajectories, constrained and
    # checked (the sample set gives them room for it).
    report = json.loads((tmp_path / 'a' / 'report.json').read_text())
    answers = [item['answer'] for item in report['items']]
    assert [answer['constrained'] for answer in answers] == [True, True]
    assert all(answer['parse_status'] == 'ok' and 'reasoning_cut' in answer
               and answer['answer_cut'] is False for answer in answers)
    assert cli.main(common + ['--out', str(tmp_path / 'b'), '--no-pictures']) == 0
    capsys.readouterr()
    assert cli.main(['compare', str(tmp_path / 'a' / 'report.json'),
                     str(tmp_path / 'b' / 'report.json')]) == 0
    out = capsys.readouterr().out
    assert '## Metrics' in out and 'No item flipped between right and wrong.' in out

    assert cli.main(common + ['--topic', '/nope', '--out', str(tmp_path / 'c')]) == 2
    error = capsys.readouterr().err
    assert ("has no topic '/nope'; image topics: /camera/aligned_depth_to_color/image_raw "
            '(Image), /camera/aligned_depth_to_color/image_raw/compressedDepth (CompressedImage), '
            '/camera/image_raw (Image)') in error
    assert cli.main(['compare', str(questions), str(questions)]) == 2
    assert 'cannot read report' in capsys.readouterr().err
    other = tmp_path / 'other.json'
    other.write_text('{"schema": "something else"}')
    assert cli.main(['compare', str(other), str(other)]) == 2
    assert 'is not an evaluation report' in capsys.readouterr().err


@needs_data
def test_the_real_clip_runs_end_to_end_through_the_clip_path(tmp_path, backend):
    questions = parse_question_set({'version': 1, 'source': str(CLIP), 'items': [
        {'id': 'turn', 'at': 'end', 'mode': 'question', 'task': 'Is it safe to turn right?',
         'expected': {'verdict': 'no'}},
        # Room for the shortest constrained temporal answer (90 tokens).
        {'id': 'events', 'at': 2.0, 'mode': 'temporal_localization', 'window_duration': 'all',
         'max_new_tokens': 100,
         'expected': {'events': [{'start': 0.0, 'end': 2.25, 'caption': 'car waits'}]}},
        {'id': 'too-late', 'at': 10.0, 'mode': 'caption'},
    ]}, tmp_path / 'q.yaml')
    run = Replay(backend, SETTINGS).run(questions)
    turn, events, late = run.results
    assert turn.status == events.status == 'answered', (turn.error, events.error)
    assert turn.source_size == (1008, 560)
    assert turn.frame_stamps[-1] == pytest.approx(2.25) and len(turn.frame_stamps) == 8
    assert events.window_offset == 0.0 and len(events.frame_stamps) == 8
    assert late.error_code == 'after_end'
    assert run.sources[0].description['kind'] == 'clip'
    path = write_report(run, tmp_path / 'out')
    assert (path.parent / 'items' / '001-turn.png').is_file()


@needs_data
def test_a_benchmark_file_runs_on_the_real_clip(tmp_path, backend):
    bench = tmp_path / 'av_benchmark_qa_pairs.json'
    bench.write_text(json.dumps([{'video': CLIP.name, 'qa_pairs': {
        'question': 'What should the car do?',
        'index2ans': {'A': 'Wait', 'B': 'Turn right now'}, 'answer': 'A'}}]))
    run = Replay(backend, SETTINGS).run(load_questions(bench, source=DATA))
    (result,) = run.results
    assert result.status == 'answered' and result.score.kind == 'choice'
    assert result.prompt.user.endswith("Answer with the option's letter from the given choices "
                                       'directly.')
