"""`ask --watch NAME`: print one monitor's current state, its change events and (optionally) every
tick's result as JSON lines on stdout, until Ctrl-C (exit 0).

The node's topics are found from `--action` (`/cosmos_reason/reason` -> `/cosmos_reason/...`).
"""

import argparse
from collections.abc import Callable
import json
import sys
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from cosmos_reason_ros.core.camera.images import stamp_seconds
from cosmos_reason_ros.core.errors import Failure, SUCCEEDED
from cosmos_reason_ros.core.monitors import InvalidMonitorError, MonitorBounds, read_monitor_file
from cosmos_reason_ros.msg import MonitorEvent, ReasoningResult
from cosmos_reason_ros.ros.monitors import monitor_message
from cosmos_reason_ros.srv import AddMonitor, ListMonitors

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""As the node publishes ~/monitors/<name>: the last result arrives at once."""
LOOSE_BOUNDS = MonitorBounds(max_count=1024, min_period=0.05)
"""--add-file checks the file's shape with the widest bounds the node's parameters allow; the
node applies its own (monitors.min_period, monitors.max_count) and says what it refuses."""


def node_namespace(action: str) -> str:
    """The node's name as a topic prefix, from its action's name ('/a/b/reason' -> '/a/b')."""
    return action.rstrip('/').rsplit('/', 1)[0] or '/'


def event_line(event: MonitorEvent) -> dict[str, Any]:
    """A change event as printed: monitor, stamp of the answer's frame, previous and new
    normalized answer.
    """
    return {'type': 'event', 'monitor': event.monitor,
            'stamp': stamp_seconds(event.header.stamp), 'previous': event.previous_answer,
            'answer': event.answer}


def result_line(kind: str, monitor: str, result: ReasoningResult) -> dict[str, Any]:
    """A tick's result as printed (kind 'state' for the first one received, else 'result'):
    how it ended (the action's status words), the answer and what it means, the tick's seconds.
    """
    failure = Failure.from_result_code(result.error_code)
    return {'type': kind, 'monitor': monitor, 'stamp': stamp_seconds(result.header.stamp),
            'status': SUCCEEDED if failure is None else failure.value,
            'answer': result.answer, 'verdict': result.verdict, 'choice': result.choice,
            'parse_error': result.parse_error, 'total_time': round(result.total_time, 3)}


class MonitorWatcher:
    """The subscriptions of one watched monitor; each message it prints is one JSON line."""

    def __init__(self, node: Node, namespace: str, name: str, *, results: bool,
                 emit: Callable[[dict[str, Any]], None]):
        """Subscribe to the monitor's latched results and to the node's events about it.

        Args:
            node: the watcher's node.
            namespace: the reasoning node's name as a topic prefix ('/cosmos_reason').
            name: the monitor's name.
            results: print every tick's result, not only the first (the current state).
            emit: receives each line's data.
        """
        self.name = name
        self.events = 0
        self._results = results
        self._emit = emit
        self._seen_state = False
        prefix = namespace.rstrip('/')
        node.create_subscription(ReasoningResult, f'{prefix}/monitors/{name}', self._on_result,
                                 LATCHED)
        node.create_subscription(MonitorEvent, f'{prefix}/monitor_events', self._on_event, 10)

    def _on_result(self, result: ReasoningResult) -> None:
        if not self._seen_state:
            self._seen_state = True
            self._emit(result_line('state', self.name, result))
        elif self._results:
            self._emit(result_line('result', self.name, result))

    def _on_event(self, event: MonitorEvent) -> None:
        if event.monitor == self.name:
            self.events += 1
            self._emit(event_line(event))


def _print_line(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def _error(message: str) -> None:
    print(json.dumps({'error': message}), file=sys.stderr, flush=True)


def _call(node: Node, executor: SingleThreadedExecutor, kind: Any, service: str, request: Any,
          timeout: float) -> Any | None:
    """The service's response, or None when no such service answered within timeout."""
    client = node.create_client(kind, service)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        return future.result() if future.done() else None
    finally:
        node.destroy_client(client)


def _add_file(node: Node, executor: SingleThreadedExecutor, namespace: str, path: str,
              timeout: float) -> bool:
    """Add the file's monitors through ~/add_monitor; False when the node cannot be reached.

    Refusals (a name already taken when the watcher runs again, a period below the node's
    monitors.min_period) are printed to stderr; the watch goes on.
    """
    try:
        specs, errors = read_monitor_file(path, LOOSE_BOUNDS)
    except InvalidMonitorError as error:
        raise SystemExit(f'ask: --add-file: {error}') from None
    for error in errors:
        _error(f'--add-file: {error}')
    for spec in specs:
        response = _call(node, executor, AddMonitor, f'{namespace}/add_monitor',
                         AddMonitor.Request(monitor=monitor_message(spec)), timeout)
        if response is None:
            return False
        if not response.success:
            _error(f'--add-file: {spec.name}: {response.message}')
    return True


def watch(args: argparse.Namespace, ros_args: list[str] | None) -> int:
    """Watch args.watch until Ctrl-C (exit 0) or args.count events; 2 when the node or the
    monitor is not there.
    """
    namespace = node_namespace(args.action)
    rclpy.init(args=ros_args)
    node = Node('cosmos_reason_watch')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    timeout = min(args.timeout, 30.0)
    try:
        if args.add_file and not _add_file(node, executor, namespace, args.add_file, timeout):
            _error(f"no service at '{namespace}/add_monitor': is the node running and "
                   'configured? (check the namespace and --action)')
            return 2
        listed = _call(node, executor, ListMonitors, f'{namespace}/list_monitors',
                       ListMonitors.Request(), timeout)
        if listed is None:
            _error(f"no service at '{namespace}/list_monitors': is the node running? (check "
                   'the namespace and --action)')
            return 2
        names = [monitor.name for monitor in listed.monitors]
        if args.watch not in names:
            _error(f"the node has no monitor called {args.watch!r}; it has: "
                   f"{', '.join(names) or 'none'} (add one with --add-file or ~/add_monitor)")
            return 2
        watcher = MonitorWatcher(node, namespace, args.watch, results=args.results,
                                 emit=_print_line)
        while rclpy.ok() and not (args.count and watcher.events >= args.count):
            executor.spin_once(timeout_sec=0.2)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0  # Ctrl-C ends a watch; it is not a failure
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


__all__ = ['event_line', 'MonitorWatcher', 'node_namespace', 'result_line', 'watch']
