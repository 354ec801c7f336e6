"""The benchmark scripts still run end to end (at toy sizes), each printing its figures, and
at least one figure of each is sane (a number in a plausible range).

Most run the node in a child process, which the tests' imports cannot show: those are marked ros
here (test/conftest.py marks the rest of what a test needs).
"""

import json
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, timeout: float = 300.0) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get('PYTHONPATH', '')])))
    done = subprocess.run([sys.executable, '-m', *args], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def figure(pattern: str, output: str) -> float:
    """The number that `pattern`'s group captures in the bench's output."""
    found = re.search(pattern, output, re.MULTILINE)
    assert found, (pattern, output)
    return float(found.group(1))


def test_gpu_bench_dry_run_measures_every_configuration(tmp_path):
    out = tmp_path / 'gpu_bench.json'
    run_bench('bench.gpu_bench', '--dry-run', '--json', str(out))
    figures = json.loads(out.read_text())
    labels = json.dumps(figures)
    for configuration in ('(a)', '(b)', '(c)'):
        assert configuration in labels
    rows = [row for size in figures['sizes'].values() for row in size['rows']]
    assert rows, figures
    for row in rows:
        assert row['prompt_tokens'] > 0 and 0 < row['ttft_ms'] < 60_000, row
        assert 0 < row['decode_tokens_per_s'] < 100_000, row


@pytest.mark.ros
@pytest.mark.parametrize('where', [[], ['--in-process']], ids=['own process', 'in process'])
def test_overhead_bench_reports_the_overhead(where):
    output = run_bench('bench.overhead_bench', '--model', 'tiny', '--repeats', '1', '--frames',
                       '4', '--size', '320x180', '--max-new-tokens', '4', *where)
    assert 'overhead vs processor + generate()' in output
    assert 'generated: [4]' in output  # both sides generated the same tokens
    round_trip = figure(r'through the action \(client -> result\): +([\d.]+) ms', output)
    assert 0 < round_trip < 10_000, output  # 4 tokens of the tiny model


def test_lift_bench_reports_the_cost_per_answer():
    output = run_bench('bench.lift_bench', '--repeats', '2')
    assert '1280x720 trajectory + box:' in output and 'of the 2 ms target' in output
    lift = figure(r'^1280x720 trajectory \+ box: ([\d.]+) ms median per answer', output)
    assert 0 < lift < 100, output  # the target is 2 ms; a busy machine may miss it, not by 50x


@pytest.mark.ros
def test_ingest_bench_compares_depth_off_on_and_as_before():
    output = run_bench('bench.ingest_bench', '--depth', '--sizes', '160x120', '--seconds', '1',
                       '--depth-as-before')
    assert 'RGB-D 160x120 at 30 fps' in output
    assert 'depth on: adds' in output and 'depth before: adds' in output
    # The depth-off row: the camera sends about 30 frames/s, the window keeps 4 of them.
    sent = figure(r'^ +off +([\d.]+) ', output)
    kept = figure(r'^ +off +[\d.]+ +[\d.]+ +([\d.]+) ', output)
    assert 0 < kept <= 5 and kept < sent <= 45, output


@pytest.mark.ros
def test_lifecycle_bench_walks_configure_and_cleanup():
    output = run_bench('bench.lifecycle_bench', '--model', 'tiny', '--cycles', '1')
    assert 'cleaned up 1' in output and 'cleanup gave back' in output
    configured = figure(r'^ +configured 1 +(\d+) ', output)
    assert 100 < configured < 20_000, output  # MiB: the node with the tiny model loaded


def test_structured_bench_counts_checked_answers_and_times_the_check():
    output = run_bench('bench.structured_bench', '--goals', '2', '--repeats', '1',
                       '--variants', 'on', 'on+reasoning')
    rows = [line.split() for line in output.splitlines()
            if line.strip().startswith(('trajectory', 'grounding', 'temporal_localization',
                                        'multiple_choice'))]
    assert len(rows) == 16, output  # 4 modes x 2 variants x 2 families
    for row in rows:
        assert row[2] == '2/2' and row[3] == '2/2' and row[4] == '0', row  # parsed, checked, cut
    check = re.search(r'final check per answer .*: median ([\d.]+) ms', output)
    assert check and 0 < float(check.group(1)) < 50, output


@pytest.mark.ros
def test_demo_bench_sends_the_demos_goals():
    output = run_bench('bench.demo_bench', '--goals', '2')
    assert re.search(r'parsed\s+2/2', output) and re.search(r'constrained\s+2/2', output), output
    seconds = re.search(r'seconds per goal: median ([\d.]+)', output)
    assert seconds and 0 < float(seconds.group(1)) < 120, output


@pytest.mark.ros
def test_a_short_soak_leaves_nothing_behind():
    # 300 goals: the node exits 0, no Fast DDS segment stays in /dev/shm, and neither the
    # action client's records nor either process's threads and files grow after the warm-up.
    output = run_bench('bench.soak', '--check', timeout=600.0)
    assert 'nothing left behind' in output, output
    seconds = figure(r'^soak: 300 goals in (\d+) s, failures 0$', output)
    assert 0 < seconds < 600, output


@pytest.mark.ros
def test_monitor_bench_check_measures_goal_latency_and_loses_no_tick():
    # 3 goals on an idle node and 3 beside three monitors, then a 10 s soak of the monitors:
    # every tick that ended reached the subscriber (threads and files are reported).
    output = run_bench('bench.monitor_bench', '--check', timeout=600.0)
    assert 'after the warm-up' in output, output
    idle = figure(r'^goal time to first token, idle node: p50 (\d+) ms', output)
    beside = figure(r'^goal time to first token, 3 monitors every 0.5 s: p50 (\d+) ms', output)
    assert 0 < idle < 30_000 and 0 < beside < 30_000, output
    tick = figure(r'^one tick \(8 tokens\): (\d+) ms', output)
    assert 0 < tick < 30_000, output
    assert figure(r'^results lost other than counted skips and stops: (\d+)$', output) == 0
    received = [int(count) for count in re.findall(r'results received (\d+),', output)]
    assert len(received) == 3 and all(count > 0 for count in received), output
