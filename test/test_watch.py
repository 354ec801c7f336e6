"""`ask --watch NAME` against a real node: the current state at once, one JSON line per change
event, every result with --results, monitors added from a file, Ctrl-C exits 0, and a missing
monitor or node is said, not waited on.

The node runs in this process behind a scripted backend (as in test_node_monitors.py); the
watcher runs as its own process on the node's DDS domain, as a user runs it.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from ros_graph import Graph, TIMEOUT
from scripted_backend import ScriptedBackend

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.msg import MonitorEvent, ReasoningResult
from cosmos_reason_ros.ros import node as node_module
from cosmos_reason_ros.ros.ask import parse_args
from cosmos_reason_ros.ros.watch import event_line, node_namespace, result_line

MONITORS = '[{name: door, task: "Is the door open?", period: 0.5}]'


class _Watcher:
    """`ask --watch ...` in its own process; its stdout lines parsed as they come."""

    def __init__(self, graph: Graph, *args: str):
        env = dict(os.environ, ROS_DOMAIN_ID=str(graph.context.get_domain_id()))
        self.process = subprocess.Popen(
            [sys.executable, '-c', 'import sys; from cosmos_reason_ros.ros.ask import main; '
             'sys.exit(main())', '--watch', *args], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = TIMEOUT) -> dict:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'no line within {timeout} s; stderr: '
                                 f'{self._stderr_so_far()}') from None

    def _stderr_so_far(self) -> str:
        if self.process.poll() is None:
            return '(still running)'
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> int:
        """Ctrl-C, as a user ends a watch; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20.0)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def _scripted_graph(monkeypatch, tmp_path) -> Graph:
    backend = ScriptedBackend({'Is the door open?': ['Yes.', 'Yes, it is.', 'No.'],
                               'Is the shelf full?': ['No.']},
                              default='A quiet room.', family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(node_module, 'create_backend', lambda settings, environ: backend)
    path = tmp_path / 'monitors.yaml'
    path.write_text(MONITORS)
    return Graph('scripted', autostart=False, monitors_file=str(path))


def _wait_subscribed(graph: Graph, count: int = 1) -> None:
    events = graph.node._monitors._events
    deadline = time.monotonic() + TIMEOUT
    while events.get_subscription_count() < count:
        assert time.monotonic() < deadline, 'the watcher never subscribed to ~/monitor_events'
        time.sleep(0.05)


def test_node_namespace_is_the_action_name_without_its_last_part():
    assert node_namespace('/cosmos_reason/reason') == '/cosmos_reason'
    assert node_namespace('/robot1/cosmos_reason/reason') == '/robot1/cosmos_reason'


def test_watch_takes_no_task_and_its_options_need_it(capsys):
    with pytest.raises(SystemExit):
        parse_args(['Is it safe?', '--watch', 'door'])
    assert 'leave out the task' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(['Is it safe?', '--results'])
    assert 'go with --watch' in capsys.readouterr().err
    args = parse_args(['--watch', 'door', '--results', '--count', '2'])
    assert (args.watch, args.results, args.count) == ('door', True, 2)


def test_lines_carry_the_monitor_stamp_and_answers():
    result = ReasoningResult(answer='No.', verdict='no', error_code=ReasoningResult.SUCCESS,
                             total_time=0.25)
    result.header.stamp.sec, result.header.stamp.nanosec = 12, 500_000_000
    event = MonitorEvent(header=result.header, monitor='door', previous_answer='yes',
                         answer='no', result=result)
    assert event_line(event) == {'type': 'event', 'monitor': 'door', 'stamp': 12.5,
                                 'previous': 'yes', 'answer': 'no'}
    line = result_line('state', 'door', result)
    assert (line['status'], line['verdict'], line['stamp']) == ('succeeded', 'no', 12.5)
    stale = ReasoningResult(error_code=ReasoningResult.STALE_FRAMES,
                            parse_error='STALE_FRAMES: old')
    assert result_line('result', 'door', stale)['status'] == 'stale_frames'


def test_watch_prints_the_state_then_each_change_and_ctrl_c_exits_0(monkeypatch, tmp_path):
    graph = _scripted_graph(monkeypatch, tmp_path)
    watcher = late = None
    try:
        assert graph.transition('configure')
        watcher = _Watcher(graph, 'door')
        _wait_subscribed(graph)
        assert graph.transition('activate')
        first = watcher.next()
        assert first['type'] == 'state' and first['monitor'] == 'door', first
        assert first['status'] == 'succeeded' and first['answer'] == 'Yes.', first
        lines = [watcher.next(), watcher.next()]
        assert [(line['type'], line['previous'], line['answer']) for line in lines] == \
            [('event', '', 'yes'), ('event', 'yes', 'no')], lines
        assert all(line['stamp'] > 0 for line in lines)
        # Without --results, unchanged answers print nothing more.
        with pytest.raises(AssertionError, match='no line'):
            watcher.next(timeout=1.5)
        assert watcher.stop() == 0, 'Ctrl-C ends a watch without an error'

        # A watcher that comes late gets the current (latched) state at once, then every
        # tick's result with --results; --count ends it by itself.
        late = _Watcher(graph, 'door', '--results')
        state = late.next()
        assert (state['type'], state['answer'], state['verdict']) == ('state', 'No.', 'no')
        following = late.next()
        assert (following['type'], following['answer']) == ('result', 'No.'), following
    finally:
        for each in (watcher, late):
            if each is not None:
                each.stop()
        graph.close()


def test_watch_adds_a_monitor_file_and_refuses_an_unknown_monitor(monkeypatch, tmp_path):
    graph = _scripted_graph(monkeypatch, tmp_path)
    watcher = None
    try:
        assert graph.transition('configure')
        env = dict(os.environ, ROS_DOMAIN_ID=str(graph.context.get_domain_id()))
        command = [sys.executable, '-c', 'import sys; from cosmos_reason_ros.ros.ask import '
                   'main; sys.exit(main())']
        missing = subprocess.run([*command, '--watch', 'gate'], env=env, capture_output=True,
                                 text=True, timeout=120.0)
        assert missing.returncode == 2, missing.stderr
        assert "no monitor called 'gate'; it has: door" in missing.stderr

        shelf = tmp_path / 'shelf.yaml'
        shelf.write_text('monitors:\n  - {name: shelf, task: "Is the shelf full?", '
                         'period: 0.5}\n  - {name: door, task: x, period: 0.5}\n')
        watcher = _Watcher(graph, 'shelf', '--add-file', str(shelf), '--count', '1')
        _wait_subscribed(graph)
        assert graph.transition('activate')
        assert watcher.next()['type'] == 'state'
        event = watcher.next()
        assert (event['type'], event['monitor'], event['previous'], event['answer']) == \
            ('event', 'shelf', '', 'no'), event
        assert watcher.process.wait(timeout=20.0) == 0, '--count 1: done after one event'
        assert watcher.process.stderr is not None
        refusals = watcher.process.stderr.read()
        assert '--add-file: door:' in refusals and 'taken' in refusals, refusals
        names = [spec.name for spec in graph.node._monitors._schedule.specs]
        assert names == ['door', 'shelf']
    finally:
        if watcher is not None:
            watcher.stop()
        graph.close()

