"""Evaluation at a server's throughput: --concurrency, the per-item deadline, --shard and merge.

A loopback OpenAI-compatible server answers each item by its prompt (PromptedServer), so a
concurrent run that put an answer on the wrong item, or lost its order, shows in the report.
"""

import json
import re
import socket
import time

from prompted_server import PromptedServer
import pytest
from scripted_backend import ScriptedBackend, write_clip
import yaml

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.merge import merge_reports, MergeError
from cosmos_reason_ros.core.evaluation.question_file import load_questions
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import build_report, report_content
from cosmos_reason_ros.core.evaluation.shards import parse_shard, Shard

CLIP_SIZE = (32, 24)
ITEMS = 12
SETTINGS = ReplaySettings(window=WindowConfig(max_pixels=CLIP_SIZE[0] * CLIP_SIZE[1]))


def _answer(text: str) -> str:
    """Item k answers A when k is even, B when odd: wrong for every third item."""
    number = int(re.search(r'Question (\d+)\?', text).group(1))
    return 'A' if number % 2 == 0 else 'B'


def _wrong(k: int) -> str:
    return 'B' if _answer(f'Question {k}?') == 'A' else 'A'


@pytest.fixture(scope='module')
def question_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp('fleet')
    clip = write_clip(folder / 'clip.mp4', 6.0, size=CLIP_SIZE)
    items = [{'id': f'q{k}', 'at': 0.4 * k + 0.3, 'mode': 'multiple_choice',
              'task': f'Question {k}?', 'choices': ['left', 'right'],
              'expected': {'choice': _wrong(k) if k % 3 == 0 else _answer(f'Question {k}?')}}
             for k in range(ITEMS)]
    path = folder / 'questions.yaml'
    path.write_text(yaml.safe_dump({'version': 1, 'source': str(clip), 'items': items}))
    return path


@pytest.fixture
def server():
    served = PromptedServer(_answer, latency=0.15)
    yield served
    served.close()


def _backend(url: str, concurrency: int = 4) -> OpenAIBackend:
    backend = OpenAIBackend(RemoteConfig(base_url=url, served_model='cosmos',
                                         max_concurrent=concurrency))
    backend.load()
    return backend


def _content(report: dict) -> dict:
    content = report_content(report)
    content['run'].pop('merged_from', None)
    return content


# --concurrency ----------------------------------------------------------------------------------

def test_four_in_flight_give_the_report_of_one_at_a_time(question_file, server):
    questions = load_questions(question_file)
    one = Replay(_backend(server.url, 1), SETTINGS).run(questions)
    assert server.peak_in_flight == 1
    progress = []
    four = Replay(_backend(server.url), SETTINGS, concurrency=4,
                  on_result=lambda result, done, total: progress.append((done, total))
                  ).run(questions)
    assert server.peak_in_flight == 4, 'the items really ran side by side'
    assert progress == [(done, ITEMS) for done in range(1, ITEMS + 1)]
    report_one, report_four = build_report(one), build_report(four)
    assert report_one['summary']['answered'] == ITEMS
    assert report_one['summary']['correct'] == 8, 'every third item is wrong by design'
    assert [item['id'] for item in report_four['items']] == [f'q{k}' for k in range(ITEMS)]
    assert _content(report_four) == _content(report_one)


def test_a_local_backend_refuses_concurrency_with_the_fix(question_file):
    with pytest.raises(InvalidRequestError, match='answers 1 at a time.*--concurrency 1'):
        Replay(ScriptedBackend({}), SETTINGS, concurrency=2)
    code = cli.main(['eval', '--questions', str(question_file), '--concurrency', '2',
                     '--out', '/nonexistent/never-written'])
    assert code == 2


def test_ctrl_c_half_way_cancels_what_is_in_flight_and_keeps_what_finished(question_file):
    # Item 7 hangs on the server; Ctrl-C comes (on the calling thread) after 5 items finished.
    served = PromptedServer(_answer, latency=0.05, hang_on='Question 7?')
    try:
        def interrupt(result, done, total):
            if done == 5:
                raise KeyboardInterrupt

        started = time.monotonic()
        run = Replay(_backend(served.url), SETTINGS, concurrency=4,
                     on_result=interrupt).run(load_questions(question_file))
        assert time.monotonic() - started < 10.0, 'the hanging request was cancelled'
    finally:
        served.close()
    report = build_report(run)
    assert run.interrupted and report['complete'] is False
    statuses = {item['id']: item['status'] for item in report['items']}
    assert list(statuses.values()).count('answered') >= 5
    assert statuses['q7'] == 'not_run'
    q7 = next(item for item in report['items'] if item['id'] == 'q7')
    assert 'while this item was being answered' in q7['error']
    assert statuses['q11'] == 'not_run'


def test_an_interrupt_inside_a_worker_stops_the_run_too(question_file):
    backend = ScriptedBackend({'Question': _answer_of_prompt}, interrupt_on='Question 6?')
    backend.max_concurrent = 4
    run = Replay(backend, SETTINGS, concurrency=4).run(load_questions(question_file))
    assert run.interrupted
    statuses = [result.status for result in run.results]
    assert statuses[:6] == ['answered'] * 6 and statuses[6] == 'not_run'


def _answer_of_prompt(request) -> str:
    return _answer(request.prompt.user)


def test_an_item_past_its_deadline_fails_alone_and_the_run_goes_on(question_file):
    served = PromptedServer(_answer, hang_on='Question 3?')
    try:
        settings = ReplaySettings(window=SETTINGS.window, item_timeout=1.0)
        run = Replay(_backend(served.url), settings, concurrency=4).run(
            load_questions(question_file))
    finally:
        served.close()
    failed = [result for result in run.results if result.status != 'answered']
    assert [result.item.id for result in failed] == ['q3']
    assert failed[0].error_code == 'generation_failed'
    assert '--item-timeout' in failed[0].error and '1 s' in failed[0].error
    assert build_report(run)['run']['settings']['item_timeout'] == 1.0


# --shard and merge ------------------------------------------------------------------------------

def _eval(question_file, server, out, *extra) -> int:
    return cli.main(['eval', '--questions', str(question_file), '--backend', 'openai',
                     '--base-url', server.url, '--served-model', 'cosmos', '--quiet',
                     '--out', str(out), *extra])


def test_three_shards_merged_equal_the_unsharded_run(question_file, server, tmp_path, capsys):
    assert _eval(question_file, server, tmp_path / 'whole', '--concurrency', '4') == 0
    for index in (1, 2, 3):
        assert _eval(question_file, server, tmp_path / f'shard{index}',
                     '--shard', f'{index}/3', '--concurrency', '2') == 0
    shard2 = json.loads((tmp_path / 'shard2' / 'report.json').read_text())
    assert shard2['run']['shard'] == {'index': 2, 'count': 3}
    assert [item['index'] for item in shard2['items']] == [2, 5, 8, 11]
    capsys.readouterr()
    # In any order; folders stand for their report.json.
    assert cli.main(['merge', str(tmp_path / 'merged'), str(tmp_path / 'shard3'),
                     str(tmp_path / 'shard1'), str(tmp_path / 'shard2' / 'report.json')]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed['items'], printed['shards']) == (ITEMS, 3)
    whole = json.loads((tmp_path / 'whole' / 'report.json').read_text())
    merged = json.loads((tmp_path / 'merged' / 'report.json').read_text())
    assert _content(merged) == _content(whole)
    assert [part['shard']['index'] for part in merged['run']['merged_from']] == [1, 2, 3]
    for item in merged['items']:
        assert (tmp_path / 'merged' / item['image']).is_file()
    assert 'merged from' in (tmp_path / 'merged' / 'report.md').read_text()


@pytest.mark.parametrize('text, words', [
    ('3/2', 'shard 3/2 does not exist'), ('0/0', 'shard 0/0 does not exist'),
    ('a/b', "'a/b' is not i/n"), ('1', "'1' is not i/n")])
def test_a_bad_shard_is_a_clear_error(text, words, question_file, tmp_path, capsys):
    with pytest.raises(InvalidRequestError, match=re.escape(words)):
        parse_shard(text)
    code = cli.main(['eval', '--questions', str(question_file), '--shard', text,
                     '--out', str(tmp_path / 'never')])
    assert code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / 'never').exists()


def test_shards_cover_every_item_once():
    held = [[p for p in range(1, 11) if Shard(i, 3).holds(p)] for i in (1, 2, 3)]
    assert held == [[1, 4, 7, 10], [2, 5, 8], [3, 6, 9]]


@pytest.fixture
def shard_reports(question_file, server, tmp_path):
    for index in (1, 2):
        assert _eval(question_file, server, tmp_path / f's{index}', '--shard', f'{index}/2',
                     '--no-pictures') == 0
    return tmp_path / 's1' / 'report.json', tmp_path / 's2' / 'report.json'


def test_merge_refuses_shards_that_are_not_one_run(shard_reports, question_file, server,
                                                   tmp_path):
    first, second = shard_reports
    with pytest.raises(MergeError, match=r'shard\(s\) 2/2 missing'):
        merge_reports([first])
    with pytest.raises(MergeError, match=f"'{first}' and '{first}' are both shard 1/2"):
        merge_reports([first, first])
    other = tmp_path / 'other.yaml'
    data = yaml.safe_load(question_file.read_text())
    data['items'][0]['task'] = 'Question 0? (edited)'
    other.write_text(yaml.safe_dump(data))
    assert _eval(other, server, tmp_path / 'o2', '--shard', '2/2', '--no-pictures') == 0
    with pytest.raises(MergeError, match='different question sets'):
        merge_reports([first, tmp_path / 'o2' / 'report.json'])
    assert _eval(question_file, server, tmp_path / 'm2', '--shard', '2/2', '--no-pictures',
                 '--max-new-tokens', '64') == 0
    with pytest.raises(MergeError, match=r'different settings \(goals\)'):
        merge_reports([first, tmp_path / 'm2' / 'report.json'])
    # The same items claimed by two shards (an edited report).
    report = json.loads(second.read_text())
    report['items'].append(json.loads(first.read_text())['items'][0])
    overlapping = tmp_path / 'overlap.json'
    overlapping.write_text(json.dumps(report))
    with pytest.raises(MergeError, match=f"item 1 \\(q0\\) is in both '{first}'"):
        merge_reports([first, overlapping])
    whole = tmp_path / 'whole'
    assert _eval(question_file, server, whole, '--no-pictures') == 0
    with pytest.raises(MergeError, match='ran without --shard'):
        merge_reports([whole / 'report.json', second])


def test_eval_over_several_endpoints_moves_past_a_dead_one(question_file, server, tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        dead = f'http://127.0.0.1:{sock.getsockname()[1]}/v1'  # nothing listens once closed
    code = cli.main(['eval', '--questions', str(question_file), '--backend', 'openai',
                     '--base-urls', dead, server.url, '--session-key', 'bench-7',
                     '--served-model', 'cosmos', '--quiet', '--out', str(tmp_path / 'out')])

    assert code == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert len(report['items']) == ITEMS
    assert {item['status'] for item in report['items']} == {'answered'}
