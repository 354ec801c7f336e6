"""The Cosmos-Reason1 benchmark procedure, end to end through `cosmos-reason eval`, on a small
generated benchmark answered by a scripted test double, so every figure is known exactly.
"""

import json
import math
import pathlib

import pytest
from scripted_backend import ScriptedBackend, write_clip

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.evaluation.compare import compare_files
from cosmos_reason_ros.core.evaluation.protocols import (
    LETTER,
    Reason1Benchmark,
    REASONING_INSTRUCTION,
    SYSTEM_PROMPT,
)
from cosmos_reason_ros.core.evaluation.questions import QuestionItem
from cosmos_reason_ros.core.evaluation.reason1_benchmark import load_benchmark_folder

LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _entry(video: str, question: str, answer: str, options=('yes', 'no', 'maybe')) -> dict:
    keys = ['A', 'B', 'C', 'D'][:len(options)]
    return {'video': video, 'qa_pairs': {'question': question, 'answer': answer,
                                         'index2ans': dict(zip(keys, options))}}


@pytest.fixture(scope='module')
def benchmark(tmp_path_factory) -> pathlib.Path:
    """DATA/av (two clips, one of them with two entries) and DATA/robovqa (two clips, and one
    entry whose clip was never downloaded).
    """
    data = tmp_path_factory.mktemp('bench') / 'DATA'
    for dataset, clip, seconds in (('av', 'a', 3.0), ('av', 'b', 2.0), ('robovqa', 'c', 2.0),
                                   ('robovqa', 'd', 2.0)):
        write_clip(data / dataset / 'clips' / f'{clip}.mp4', seconds)
    (data / 'av' / 'av_benchmark_qa_pairs.json').write_text(json.dumps([
        {'video': 'clips/a.mp4', 'qa_pairs': [
            _entry('', 'Is the car stopping?', 'A')['qa_pairs'],
            _entry('', 'Which lane is free?', 'C')['qa_pairs']]},
        _entry('clips/b.mp4', 'What is ahead?', 'B'),
        # A second entry for the same clip; its key is lower case, as some files have it.
        _entry('clips/b.mp4', 'Second look?', 'a'),
    ]))
    (data / 'robovqa' / 'robovqa_benchmark_qa_pairs.json').write_text(json.dumps([
        _entry('clips/c.mp4', 'Next step?', 'B', options=('grasp', 'lift', 'drop', 'wait')),
        _entry('clips/d.mp4', 'Is the arm moving?', 'A'),
        _entry('clips/e.mp4', 'Is the gripper open?', 'A'),
    ]))
    return data


SCRIPT = {
    'Is the car stopping?': '<think>\nThe brake lights are on.\n</think>\n<answer>A</answer>',
    # The evaluator takes the first capital letter inside the tags: 'T', which is wrong.
    'Which lane is free?': '<think>left</think> <answer>The answer is C</answer>',
    # Empty answers are retried: '' and a reasoning without answer tags, then B.
    'What is ahead?': ['', '<think>a truck</think>', '<think>a truck</think><answer>B</answer>'],
    'Second look?': '<answer>A</answer>',
    'Next step?': '<answer>D</answer>',
    'Is the arm moving?': '',
}


def _run_cli(args, backend, monkeypatch, capsys) -> dict:
    monkeypatch.setattr(cli, '_load_backend', lambda parsed: backend)
    assert cli.main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_the_reason1_procedure_pools_every_item_of_every_dataset(
        benchmark, tmp_path, monkeypatch, capsys):
    backend = ScriptedBackend(SCRIPT)
    out = tmp_path / 'report'
    printed = _run_cli(['eval', str(benchmark), '--protocol', 'reason1-benchmark',
                        '--max-retries', '2', '--out', str(out), '--no-pictures', '--quiet'],
                       backend, monkeypatch, capsys)

    # av: stopping right, lane wrong ('T'), ahead right after two retries, second look right
    # (key 'a' compared ignoring case); robovqa: next step wrong, arm moving empty after all
    # retries (wrong); the clip that is missing is an error, not an item of the accuracy.
    assert (printed['correct'], printed['scored']) == (3, 6)
    assert printed['accuracy'] == 0.5, 'pooled over items, not the mean of 0.75 and 0.0'
    assert printed['accuracy_by_group'] == {
        'av': {'correct': 3, 'scored': 4, 'accuracy': 0.75},
        'robovqa': {'correct': 0, 'scored': 2, 'accuracy': 0.0}}
    assert printed['errors'] == 1

    report = json.loads((out / 'report.json').read_text())
    by_id = {item['id']: item for item in report['items']}
    assert sorted(by_id) == ['a#0', 'a#1', 'b#0', 'b#0-2', 'c#0', 'd#0', 'e#0'], \
        'two entries for one clip keep distinct ids'
    assert by_id['a#1']['protocol_answer'] == 'T'
    assert by_id['b#0']['protocol_answer'] == 'B' and by_id['b#0']['attempts'] == 3
    assert by_id['d#0']['protocol_answer'] == '' and by_id['d#0']['attempts'] == 3
    assert by_id['e#0']['error_code'] == 'source'
    assert report['run']['settings']['protocol']['name'] == 'reason1-benchmark'
    markdown = (out / 'report.md').read_text()
    assert '| accuracy (all items pooled) | 3/6 (50.0%' in markdown
    assert '| accuracy: dataset av | 3/4 (75.0%' in markdown


def test_the_procedure_sends_the_evaluators_prompt_sampling_and_every_frame(
        benchmark, tmp_path, monkeypatch, capsys):
    backend = ScriptedBackend(SCRIPT)
    _run_cli(['eval', str(benchmark / 'av'), '--protocol', 'reason1-benchmark',
              '--max-retries', '2', '--out', str(tmp_path / 'r'), '--no-pictures', '--quiet'],
             backend, monkeypatch, capsys)
    first = backend.requests[0]
    assert first.prompt.system == SYSTEM_PROMPT == 'Answer the questions.'
    assert first.prompt.user == '\n'.join([
        'Is the car stopping?', '(A) yes', '(B) no', '(C) maybe', LETTER_INSTRUCTION,
        REASONING_INSTRUCTION])
    sampling = first.sampling
    assert (sampling.greedy, sampling.temperature, sampling.top_p, sampling.top_k,
            sampling.max_new_tokens, sampling.seed) == (False, 0.6, 0.95, 0, 1024, 1)
    # The whole 3 s clip at 4 fps: 12 frames from 0 to 2.75 s.
    assert len(first.frames) == 12
    assert first.timestamps[-1] == pytest.approx(2.75, abs=0.04)
    retries = [request for request in backend.requests if 'What is ahead?' in request.prompt.user]
    assert [request.sampling.seed for request in retries] == [1, 2, 3]


def test_the_letter_variant_is_greedy_and_reads_the_first_capital(
        benchmark, tmp_path, monkeypatch, capsys):
    backend = ScriptedBackend({'Is the car stopping?': 'A', 'Which lane is free?': 'I think C'},
                              default='B')
    printed = _run_cli(['eval', str(benchmark / 'av'), '--protocol', 'reason1-benchmark',
                        '--answer-type', LETTER, '--out', str(tmp_path / 'r'), '--no-pictures',
                        '--quiet'], backend, monkeypatch, capsys)
    # stopping A (right), lane 'I' (wrong, as the evaluator reads it), ahead B (right),
    # second look B (wrong: the key is a).
    assert (printed['correct'], printed['scored']) == (2, 4)
    assert all(r.sampling.greedy and r.sampling.max_new_tokens == 10 for r in backend.requests)
    assert REASONING_INSTRUCTION not in backend.requests[0].prompt.user


@pytest.mark.parametrize('text, reasoning_letter, letter_letter', [
    ('<think>x</think><answer>B</answer>', 'B', 'B'),
    ('<answer>\nC\n</answer>', 'C', 'C'),
    ('<answer>b</answer>', '', ''),
    ('<answer>The answer is D</answer>', 'T', 'T'),
    ('B', '', 'B'),
    ('<think>A or B?</think>', '', 'A'),
    ('', '', ''),
])
def test_answer_extraction_follows_the_evaluator(text, reasoning_letter, letter_letter):
    assert Reason1Benchmark().extract(text) == reasoning_letter
    assert Reason1Benchmark(answer_type=LETTER).extract(text) == letter_letter


def test_the_benchmark_folder_names_each_items_dataset(benchmark):
    questions = load_benchmark_folder(benchmark)
    groups = {item.id: item.group for item in questions.items}
    assert groups['a#0'] == 'av' and groups['c#0'] == 'robovqa'
    item: QuestionItem = next(i for i in questions.items if i.id == 'b#0-2')
    assert item.expected.choice == 'A' and item.choice_labels == ('A', 'B', 'C')
    assert math.isinf(item.window_duration) and item.time.at_end


def test_the_protocol_refuses_a_yaml_question_set(tmp_path, monkeypatch, capsys):
    questions = tmp_path / 'q.yaml'
    questions.write_text('version: 1\nsource: clip.mp4\nitems: [{at: 0, mode: caption}]\n')
    monkeypatch.setattr(cli, '_load_backend', lambda parsed: pytest.fail('loaded a model'))
    assert cli.main(['eval', '--questions', str(questions), '--protocol',
                     'reason1-benchmark']) == 2
    assert 'scores Cosmos-Reason1 benchmark files' in capsys.readouterr().err


def test_compare_lists_each_datasets_accuracy_with_its_counts(
        benchmark, tmp_path, monkeypatch, capsys):
    paths = []
    for name, script in (('a', SCRIPT), ('b', {**SCRIPT, 'Next step?': '<answer>B</answer>'})):
        _run_cli(['eval', str(benchmark), '--protocol', 'reason1-benchmark', '--max-retries', '0',
                  '--out', str(tmp_path / name), '--no-pictures', '--quiet'],
                 ScriptedBackend(script), monkeypatch, capsys)
        paths.append(tmp_path / name / 'report.json')
    metrics = {m['metric']: m for m in compare_files(*paths)['metrics']}
    robovqa = metrics['accuracy: dataset robovqa']
    assert (robovqa['count_a'], robovqa['count_b']) == ([0, 2], [1, 2])
    assert robovqa['note'].startswith('within noise')
