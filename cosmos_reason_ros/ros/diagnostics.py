"""The node's /diagnostics: its level and message, and the key/values an operator reads.

The node hands over a NodeSnapshot, read once per message; nothing here reads the node's own
state, so the status follows from the snapshot alone. With named cameras each camera's window
is reported under `camera.<name>.*`; the top-level frame counters are then the sums.
"""

import dataclasses
import math
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import Header

from cosmos_reason_ros.core.backends.base import ServerStatus
from cosmos_reason_ros.core.camera.frames import WindowStats
from cosmos_reason_ros.core.camera.rates import StreamRate
from cosmos_reason_ros.core.monitors import MonitorStats
from cosmos_reason_ros.ros.publishing import PublishGuard


@dataclasses.dataclass(frozen=True)
class CameraSnapshot:
    """One named camera's input and window, as /diagnostics reports it."""

    name: str
    topic: str
    """The camera's image topic (resolved once subscribed)."""
    window: WindowStats | None
    """None while unconfigured."""
    frames_received: int
    frames_unreadable: int
    stream_rate: StreamRate | None
    """None with use_sim_time."""
    newest_age: float | None
    """Seconds from the newest frame held to now (camera clock); None with no frame."""


@dataclasses.dataclass(frozen=True)
class NodeSnapshot:
    """What /diagnostics reports of the node at one moment."""

    lifecycle_state: str
    shutting_down: bool
    model: str
    model_state: str
    """'unloaded', 'loading', 'ready' or 'failed'."""
    model_error: str
    retry_in: int | None
    """Whole seconds until a configure that found the model server down is tried again;
    None: no retry is planned."""
    backend: str
    """The `backend` parameter."""
    serving_server: ServerStatus | None
    """The loaded backend's model server; None in process or with no model loaded."""
    server: ServerStatus | None
    """The model server's state, also when the load failed on it; None: no server."""
    window: WindowStats | None
    """None while unconfigured."""
    topic: str
    """The camera topic subscribed ('image' while none is)."""
    frame_filter: str
    frame_filter_reason: str
    frames_received: int
    frames_unreadable: int
    goals_running: int
    goals_queued: int
    goals_served: int
    last_latency: float
    publish_errors: int
    stream_rate: StreamRate | None
    """None with use_sim_time (received and stamp rates do not compare)."""
    sim_time_waiting: bool
    """use_sim_time is on and no /clock message has arrived yet."""
    depth: dict[str, str] | None
    """The depth input's counters; None with depth off."""
    structured_output: str
    """The `structured_output` parameter."""
    can_constrain: bool | None
    """Whether the backend can constrain answers; None while no model is ready."""
    unheld_format: str
    """Why constrained answers did not match their format, once seen; empty: not seen."""
    monitors: tuple[MonitorStats, ...] = ()
    """Each monitor's counters (docs/monitors.md)."""
    cameras: tuple[CameraSnapshot, ...] = ()
    """Each named camera, in configuration order; empty for the one unnamed camera (whose
    window is `window`)."""


def status_of(snapshot: NodeSnapshot) -> tuple[int, str]:
    """The level and message before the stream and sim-time checks."""
    if snapshot.shutting_down:
        return DiagnosticStatus.WARN, 'shutting down'
    if snapshot.model_state == 'failed':
        retry = (f' - retrying in {snapshot.retry_in} s' if snapshot.retry_in is not None
                 else '')
        return DiagnosticStatus.ERROR, snapshot.model_error + retry
    if snapshot.model_state == 'loading':
        return DiagnosticStatus.WARN, 'model loading'
    state = snapshot.lifecycle_state
    if state != 'active':
        return DiagnosticStatus.WARN, f'{state}: not serving goals'
    server = snapshot.serving_server
    if server is not None and not server.serves_model:
        if server.fallback is not None and server.fallback.ready:
            # remote.fallback_local: goals are still answered, by the local model.
            return DiagnosticStatus.WARN, f'serving with the local model: {server.message}'
        return DiagnosticStatus.ERROR, server.message
    for camera in snapshot.cameras:
        if camera.window is None or camera.window.fill == 0:
            return DiagnosticStatus.WARN, f"no frames on '{camera.topic}' (camera {camera.name})"
    if snapshot.window is None or snapshot.window.fill == 0:
        return DiagnosticStatus.WARN, f"no frames on '{snapshot.topic}'"
    failing = [each.url for each in server.endpoints
               if each.state != 'closed'] if server is not None else []
    if failing:
        return DiagnosticStatus.WARN, (f'ready; {len(failing)} of {len(server.endpoints)} '
                                       f"server endpoints failing: {', '.join(failing)}")
    return DiagnosticStatus.OK, 'ready'


def diagnostic_status(snapshot: NodeSnapshot, *, name: str,
                      input_rate: float) -> DiagnosticStatus:
    """The node's status: level, message and key/values.

    Args:
        snapshot: the node's state.
        name: the status name (the node's name and what it does).
        input_rate: images received per second since the previous status.
    """
    level, message = status_of(snapshot)
    values = {
        'lifecycle_state': snapshot.lifecycle_state,
        'model': snapshot.model, 'model_state': snapshot.model_state,
        # With the middleware's stamp filter only the frames the window keeps arrive.
        'frame_filter': snapshot.frame_filter,
        'frame_filter_reason': snapshot.frame_filter_reason,
        'input_rate_hz': f'{input_rate:.1f}', 'frames_received': str(snapshot.frames_received),
        'frames_invalid': str(snapshot.frames_unreadable),
        'goals_running': str(snapshot.goals_running),
        'goals_queued': str(snapshot.goals_queued),
        'goals_served': str(snapshot.goals_served),
        'last_latency_s': f'{snapshot.last_latency:.3f}',
        'publish_errors': str(snapshot.publish_errors),
        'backend': snapshot.backend,
    }
    stats = snapshot.window
    if stats is not None:
        values.update({
            'frames_kept': str(stats.kept),
            'frames_invalid': str(stats.invalid + snapshot.frames_unreadable),
            'window_fill': str(stats.fill), 'window_span_s': f'{stats.span:.2f}'})
    rate = snapshot.stream_rate
    if rate is not None and rate.stamps_hz is not None:
        values['stamps_rate_hz'] = f'{rate.stamps_hz:.1f}'
        if rate.losing_frames and level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, (
                f'receiving {rate.received_hz:.1f} frames/s of the {rate.stamps_hz:.1f} '
                'the stamps show: frames are lost in transport (raw frames over 512 KiB '
                'need config/fastdds_large_frames.xml on both sides, or use JPEG)')
    if snapshot.sim_time_waiting:
        values['sim_time'] = 'waiting for /clock'
        level = max(level, DiagnosticStatus.WARN)
        message = ('use_sim_time is true but no /clock has arrived: the staleness check '
                   'cannot work; ' + message)
    for camera in snapshot.cameras:
        values.update(camera_values(camera))
        rate = camera.stream_rate
        if rate is not None and rate.losing_frames and level == DiagnosticStatus.OK:
            level, message = DiagnosticStatus.WARN, (
                f"camera {camera.name}: receiving {rate.received_hz:.1f} frames/s on "
                f"'{camera.topic}' of the {rate.stamps_hz:.1f} the stamps show: frames are "
                'lost in transport')
    if snapshot.depth is not None:
        values.update(snapshot.depth)
    if snapshot.can_constrain is not None:
        policy = snapshot.structured_output
        values['structured_output'] = (
            f'{policy}, not held: {snapshot.unheld_format}' if snapshot.unheld_format
            else policy if policy == 'off' or snapshot.can_constrain
            else f'{policy}, not available (see goal messages)')
    for monitor in snapshot.monitors:
        values.update(monitor_values(monitor))
    server = snapshot.server
    if server is not None:
        values['server'] = server.url
        values['server_status'] = server.message
        for index, endpoint in enumerate(server.endpoints):
            state = endpoint.state
            if endpoint.retry_in > 0:
                state += f', retry in {math.ceil(endpoint.retry_in)} s'
            if endpoint.last_error:
                state += f': {endpoint.last_error}'
            values[f'endpoint[{index}]'] = f'{endpoint.url} {state}'
        fallback = server.fallback
        if fallback is not None:
            values['fallback'] = (f'local model ready: {fallback.model}' if fallback.ready
                                  else f'local model not loaded: {fallback.model}')
            values['answered_locally'] = str(fallback.answered)
    return DiagnosticStatus(
        level=level, name=name, message=message, hardware_id=snapshot.model,
        values=[KeyValue(key=key, value=value) for key, value in values.items()])


def camera_values(camera: CameraSnapshot) -> dict[str, str]:
    """A named camera's key/values: its topic, rates, window fill and span, frames kept,
    skipped and invalid, and the age of its newest frame ('none' without one).
    """
    key = f'camera.{camera.name}'
    values = {f'{key}.topic': camera.topic,
              f'{key}.frames_received': str(camera.frames_received)}
    rate = camera.stream_rate
    if rate is not None:
        values[f'{key}.input_rate_hz'] = f'{rate.received_hz:.1f}'
        if rate.stamps_hz is not None:
            values[f'{key}.stamps_rate_hz'] = f'{rate.stamps_hz:.1f}'
    stats = camera.window
    if stats is not None:
        values.update({
            f'{key}.window_fill': str(stats.fill), f'{key}.window_span_s': f'{stats.span:.2f}',
            f'{key}.frames_kept': str(stats.kept), f'{key}.frames_skipped': str(stats.skipped),
            f'{key}.frames_invalid': str(stats.invalid + camera.frames_unreadable)})
    values[f'{key}.newest_age_s'] = ('none' if camera.newest_age is None
                                     else f'{camera.newest_age:.2f}')
    return values


def combined_stats(stats: list[WindowStats]) -> WindowStats | None:
    """The counters of several windows summed (span: the longest); None when none is given."""
    if not stats:
        return None
    return WindowStats(
        offered=sum(s.offered for s in stats), kept=sum(s.kept for s in stats),
        skipped=sum(s.skipped for s in stats), invalid=sum(s.invalid for s in stats),
        rewinds=sum(s.rewinds for s in stats), fill=sum(s.fill for s in stats),
        span=max(s.span for s in stats), resizes=sum(s.resizes for s in stats))


def monitor_values(monitor: MonitorStats) -> dict[str, str]:
    """A monitor's key/values: ticks run, due ticks skipped (model busy), ticks stopped before
    their result, the last tick's latency and the age of its last answer ('never' before one).
    """
    key = f'monitor.{monitor.name}'
    return {
        f'{key}.ticks': str(monitor.ticks), f'{key}.skipped': str(monitor.skipped),
        f'{key}.stopped': str(monitor.stopped),
        f'{key}.last_latency_s': ('never' if monitor.last_latency is None
                                  else f'{monitor.last_latency:.3f}'),
        f'{key}.last_answer_age_s': ('never' if monitor.last_answer_age is None
                                     else f'{monitor.last_answer_age:.1f}'),
    }


class DiagnosticsPublisher:
    """Publishes the node's status on /diagnostics, with the input rate since the last one."""

    def __init__(self, node: Node, guard: PublishGuard):
        """Create the /diagnostics publisher.

        Args:
            node: the reasoning node (its name names the status, its clock stamps it).
            guard: counts (and logs) publishes the middleware failed.
        """
        self._node = node
        self._guard = guard
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._frames_at_last_status = (0, time.monotonic())

    def publish(self, snapshot: NodeSnapshot) -> None:
        """Publish the status of `snapshot`."""
        seen, since = self._frames_at_last_status
        now = time.monotonic()
        input_rate = (snapshot.frames_received - seen) / max(now - since, 1e-6)
        self._frames_at_last_status = (snapshot.frames_received, now)
        status = diagnostic_status(snapshot, name=f'{self._node.get_name()}: reasoning',
                                   input_rate=input_rate)
        self._guard.publish(self._publisher, DiagnosticArray(
            header=Header(stamp=self._node.get_clock().now().to_msg()), status=[status]))


__all__ = ['camera_values', 'CameraSnapshot', 'combined_stats', 'diagnostic_status',
           'DiagnosticsPublisher', 'monitor_values', 'NodeSnapshot', 'status_of']
