"""Live evaluation: a question set against a running reasoning node while its bag plays.

Waits on /clock for each item's bag time (`ros2 bag play --clock BAG`), sends the item as a Reason
goal whose window ends at the frame the offline replay would use, and writes the same report. The
set's monitors are added to the node for the run (live_monitors.py) and scored on its results.

A set over named cameras needs a node configured with them (`cameras: [head, side]`, each
camera's `N/image`, and with depth `N/depth` and `N/camera_info`, remapped to the set's topics);
each goal names the item's cameras, and the result's views are recorded as offline.
"""

import argparse
from collections.abc import Callable
import dataclasses
import sys
import threading
import time
from typing import Any

from builtin_interfaces.msg import Time
import rclpy
from rclpy.action.client import ClientGoalHandle
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rosgraph_msgs.msg import Clock

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.parsing import ParsedAnswer
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.camera.images import stamp_seconds
from cosmos_reason_ros.core.camera.views import DEFAULT_CAMERA, View
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.depth.geometry import Lifted, LiftStatus
from cosmos_reason_ros.core.errors import Failure, ReasonError
from cosmos_reason_ros.core.evaluation.asking import (
    check_ask_time,
    ReplaySettings,
    stale_frame_message,
    window_facts,
)
from cosmos_reason_ros.core.evaluation.progress import ProgressBar, ProgressCallback
from cosmos_reason_ros.core.evaluation.question_file import load_questions
from cosmos_reason_ros.core.evaluation.questions import QuestionItem, QuestionSet
from cosmos_reason_ros.core.evaluation.report import write_report
from cosmos_reason_ros.core.evaluation.results import (
    ANSWERED,
    ERROR,
    ItemResult,
    NOT_RUN,
    RunResult,
    SourceSummary,
    ViewRecord,
)
from cosmos_reason_ros.core.evaluation.scoring import score_answer
from cosmos_reason_ros.core.evaluation.sources import (
    BagSource,
    load_frames,
    ns_to_seconds,
    SourceError,
    Timeline,
)
from cosmos_reason_ros.eval_options import (
    add_decoding_options,
    add_frame_options,
    add_progress_option,
    add_question_set_options,
    add_report_option,
    add_topic_options,
    topic_overrides,
)
from cosmos_reason_ros.ros.client import DEFAULT_ACTION, make_goal, ReasonClient
from cosmos_reason_ros.ros.depth_output import lifted_from_msg
from cosmos_reason_ros.ros.live_monitors import LiveMonitors, open_played_bag, parsed_from_msg
from cosmos_reason_ros.ros.spinning import spinning


class ClockStalledError(ReasonError):
    """/clock did not reach an item's time: the bag is not playing (or stopped)."""

    kind = Failure.SOURCE


class BagClock:
    """The latest time on /clock, and a way to wait for a given time."""

    def __init__(self, node: Node):
        self._node = node
        self._condition = threading.Condition()
        self._now: float | None = None
        self._updated = time.monotonic()
        # ros2 bag play publishes /clock best effort, keep last 1 (rclcpp::ClockQoS).
        self._sub = node.create_subscription(
            Clock, '/clock', self._on_clock,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))

    def destroy(self) -> None:
        """Stop listening to /clock."""
        self._node.destroy_subscription(self._sub)

    @property
    def now(self) -> float | None:
        """The last /clock time in seconds, None before the first message."""
        with self._condition:
            return self._now

    def wait_until(self, bag_time: float, *, start_timeout: float, stall_timeout: float,
                   cancel: threading.Event) -> float:
        """Block until /clock reaches bag_time.

        Args:
            bag_time: the time to wait for (seconds).
            start_timeout: seconds to wait for the first /clock message.
            stall_timeout: seconds /clock may stand still before giving up.
            cancel: set it to stop waiting.

        Returns:
            The /clock time reached.

        Raises:
            ClockStalledError: no /clock message in time, or /clock stopped before bag_time.
        """
        started = time.monotonic()
        with self._condition:
            while not cancel.is_set():
                if self._now is not None and self._now >= bag_time - 1e-6:
                    return self._now
                waited = time.monotonic() - (started if self._now is None else self._updated)
                limit = start_timeout if self._now is None else stall_timeout
                if waited > limit:
                    raise ClockStalledError(self._stall_message(bag_time, limit))
                self._condition.wait(min(0.1, limit - waited + 1e-3))
            raise ClockStalledError('cancelled while waiting for /clock')

    def _stall_message(self, bag_time: float, limit: float) -> str:
        if self._now is None:
            return (f'no message on /clock within {limit:g} s: play the bag with '
                    '`ros2 bag play --clock BAG`')
        return (f'/clock stopped at {self._now:.3f} for {limit:g} s before reaching '
                f'{bag_time:.3f}: the bag finished or was paused')

    def _on_clock(self, msg: Clock) -> None:
        with self._condition:
            self._now = stamp_seconds(msg.clock)
            self._updated = time.monotonic()
            self._condition.notify_all()


MONITOR_GRACE = 0.5
"""Seconds beyond a monitor's period to wait for its last result once the recording ended."""


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    """How the live client waits and what it asks for."""

    replay: ReplaySettings = ReplaySettings()
    """Decoding (greedy, seed), the end tolerance and gap rules, and the node's window
    settings: target_fps and rewind_threshold tell which frames the node keeps, max_pixels
    sizes the pictures. The goal defaults are the node's own."""
    start_timeout: float = 60.0
    """Seconds to wait for the first /clock message."""
    stall_timeout: float = 10.0
    """Seconds /clock may stand still before the remaining items are given up."""
    result_timeout: float = 600.0
    """Seconds to wait for one goal's result."""


@dataclasses.dataclass(frozen=True)
class _Track:
    """One camera's image topic in the played bag, as the node's window of that camera sees it."""

    source: BagSource
    timeline: Timeline
    kept: tuple[int | None, ...]
    """Per message, the stamp (ns) of the newest frame the node's window holds then."""


class LiveEvaluation:
    """Sends each item of a question set as a goal at its bag time and collects the results."""

    def __init__(self, node: Node, questions: QuestionSet, *, action: str = DEFAULT_ACTION,
                 settings: LiveSettings = LiveSettings(), target: str = '',
                 on_result: ProgressCallback | None = None):
        """Subscribe to /clock and create the action client on `node`.

        The node must be spinning in an executor (another thread) while run() waits.

        Args:
            node: the client's node.
            questions: the items to ask; their sources must be bags (to know their timelines).
            action: the node's Reason action.
            settings: timeouts, decoding and the picture size.
            target: the reasoning node's name (its monitor services and topics); '' takes the
                action's namespace (/cosmos_reason for /cosmos_reason/reason).
            on_result: progress callback, called after every item.
        """
        self._node = node
        self._questions = questions
        self._settings = settings
        self._on_result = on_result or (lambda result, done, total: None)
        self._clock = BagClock(node)
        self._client = ReasonClient(node, action)
        self._action = action
        self._cancel = threading.Event()
        self._results: dict[int, ItemResult] = {}
        self._in_flight: ClientGoalHandle | None = None
        self._monitors = LiveMonitors(
            node, questions.monitors, target=target or action.rsplit('/', 1)[0],
            clock_now=lambda: self._clock.now) if questions.monitors else None

    def wait_for_server(self, timeout: float) -> bool:
        """True once the node's action server is discovered."""
        return self._client.wait_for_server(timeout)

    def destroy(self) -> None:
        """Release the action client, the monitors' clients and the /clock subscription."""
        if self._monitors is not None:
            self._monitors.destroy()
        self._client.destroy()
        self._clock.destroy()

    def cancel(self) -> None:
        """Stop waiting and cancel the goal in flight (from another thread)."""
        self._cancel.set()

    def run(self) -> RunResult:
        """Ask every item in bag-time order while the set's monitors run on the node until the
        end of their recordings; Ctrl-C (or cancel()) keeps what was done.
        """
        started = time.perf_counter()
        indexed = list(enumerate(self._questions.items, start=1))
        sources: list[SourceSummary] = []
        interrupted = False
        try:
            if self._monitors is not None:
                self._monitors.start()
            for path, topic in self._questions.sources():
                group = [(i, item) for i, item in indexed
                         if (item.source, item.topic) == (path, topic)]
                sources.append(self._run_source(path, topic, group))
            if self._monitors is not None:
                self._watch_monitors_to_the_end()
        except KeyboardInterrupt:
            self._cancel.set()
            interrupted = True
            if self._in_flight is not None:
                self._in_flight.cancel_goal_async()
        # Removed from the node also after Ctrl-C: the ticks so far are kept and scored.
        monitor_runs = self._monitors.stop() if self._monitors is not None else []
        interrupted = interrupted or self._cancel.is_set()
        for index, item in indexed:
            self._results.setdefault(index, ItemResult(
                index=index, item=item, status=NOT_RUN, error_code=Failure.INTERRUPTED,
                error='the run was interrupted before this item was asked'))
        model_id = next((r.model_id for r in self._results.values() if r.model_id), '')
        settings = self._settings.replay.to_dict()
        settings['action'] = self._action
        return RunResult(
            question_set=self._questions,
            results=[self._results[index] for index, _ in indexed], sources=sources,
            model={'id': model_id, 'family': '', 'device': '', 'dtype': ''},
            settings=settings, interrupted=interrupted, live=True, monitors=monitor_runs,
            wall_time=time.perf_counter() - started)

    def _watch_monitors_to_the_end(self) -> None:
        """Wait until /clock reaches the end of every monitor's recording (or stops), then one
        longest period more, so that the node's tick on the last frames arrives.
        """
        settings = self._settings
        for last in self._monitors.last_bag_times:
            try:
                self._clock.wait_until(last, start_timeout=settings.start_timeout,
                                       stall_timeout=settings.stall_timeout,
                                       cancel=self._cancel)
            except ClockStalledError:
                break
        deadline = time.monotonic() + self._monitors.longest_period + MONITOR_GRACE
        while not self._cancel.is_set() and time.monotonic() < deadline:
            self._cancel.wait(0.1)

    def _run_source(self, path: str, topic: str,
                    group: list[tuple[int, QuestionItem]]) -> SourceSummary:
        cameras = group[0][1].camera_topics
        topics = [(camera.name, camera.image) for camera in cameras] or [(DEFAULT_CAMERA, topic)]
        try:
            tracks = {name: self._track(path, name, image) for name, image in topics}
        except ReasonError as error:
            for index, item in group:
                self._record(ItemResult(index=index, item=item, status=ERROR,
                                        error_code=Failure.SOURCE, error=str(error)))
            return SourceSummary(description={'path': path, 'topic': topic}, error=str(error))
        first = next(iter(tracks.values()))
        start = first.timeline.start
        description = first.source.describe()
        if cameras:  # as CameraBagSource describes it offline
            description['cameras'] = {
                name: {'topic': track.source.topic, 'message_type': track.source.message_type,
                       'messages': track.source.message_count}
                for name, track in tracks.items()}
        logged = [track.timeline.bag_times for track in tracks.values()
                  if track.timeline.bag_times]
        summary = SourceSummary(description=description,
                                frames=sum(len(times) for times in logged))
        if logged:
            summary.first_offset = min(times[0] for times in logged) - start
            summary.last_offset = max(times[-1] for times in logged) - start
        last = max((times[-1] for times in logged), default=start)
        planned = sorted((item.time.resolve(start, last), index, item) for index, item in group)
        answered: list[ItemResult] = []
        for bag_time, index, item in planned:
            if self._cancel.is_set():
                break
            result = self._ask(index, item, bag_time, tracks)
            self._record(result)
            if result.status == ANSWERED:
                answered.append(result)
        self._attach_pictures(tracks, answered)
        return summary

    def _track(self, path: str, camera: str, topic: str) -> _Track:
        """One camera's topic of the bag, with the frames the node's window keeps of it."""
        try:
            source, timeline = open_played_bag(path, topic)
        except ReasonError as error:
            if not camera:
                raise
            raise SourceError(_about(camera, str(error))) from None
        return _Track(source, timeline,
                      timeline.kept_stamps(self._settings.replay.window))

    def _ask(self, index: int, item: QuestionItem, bag_time: float,
             tracks: dict[str, _Track]) -> ItemResult:
        settings = self._settings
        start = next(iter(tracks.values())).timeline.start
        base = ItemResult(index=index, item=item, status=ERROR, bag_time=bag_time,
                          offset=bag_time - start)
        cameras = item.cameras or (DEFAULT_CAMERA,)
        ends: list[tuple[int, str]] = []
        for camera in cameras:
            # Every camera the item asks about must have frames then, each judged on its own.
            timeline = tracks[camera].timeline
            newest = timeline.newest_at(bag_time)
            code, message = check_ask_time(
                bag_time, first=timeline.bag_times[0] if timeline.bag_times else None,
                newest=None if newest is None else timeline.bag_times[newest],
                ended=newest == len(timeline.bag_times) - 1, settings=settings.replay,
                topic=tracks[camera].source.topic, start=start)
            if code or newest is None:
                return dataclasses.replace(base, error_code=code, error=_about(camera, message))
            # The newest frame the node's window holds by then, as in the offline replay.
            stamp_ns = tracks[camera].kept[newest]
            if stamp_ns is None:
                return dataclasses.replace(base, error_code=Failure.NO_FRAMES, error=_about(
                    camera, 'the window holds no frame by this time'))
            ends.append((stamp_ns, camera))
        # Several views end at the oldest of their newest frames, as offline: each view has its
        # frame near the last slot (the node matches the views within cameras.sync_tolerance).
        end_ns = min(ends)[0]
        window_end = ns_to_seconds(end_ns)
        ages = []
        for stamp_ns, camera in ends:
            frame_bag_time = tracks[camera].timeline.bag_time_of(ns_to_seconds(stamp_ns))
            ages.append((bag_time - (bag_time if frame_bag_time is None else frame_bag_time),
                         stamp_ns, camera))
        frame_age, stale_ns, stale_camera = max(ages)
        base = dataclasses.replace(base, window_end=window_end, frame_age=frame_age)
        max_age = settings.replay.goals.max_frame_age
        if frame_age > max_age:
            return dataclasses.replace(
                base, error_code=Failure.STALE_FRAMES, error=_about(stale_camera,
                    stale_frame_message(bag_time, frame_age, ns_to_seconds(stale_ns),
                                        start=start, max_age=max_age)))
        try:
            reached = self._clock.wait_until(
                bag_time, start_timeout=settings.start_timeout,
                stall_timeout=settings.stall_timeout, cancel=self._cancel)
        except ClockStalledError as error:
            return dataclasses.replace(base, error_code=error.kind, error=str(error))
        goal = _goal_for(item, settings.replay, end_ns)
        sent = time.perf_counter()
        response = self._send_and_wait(goal)
        round_trip = time.perf_counter() - sent
        base = dataclasses.replace(base, send_delay=max(reached - bag_time, 0.0),
                                   round_trip=round_trip)
        if isinstance(response, str):
            return dataclasses.replace(base, error_code=Failure.NO_ANSWER, error=response)
        result = _result_to_item(base, item, response,
                                 {camera: tracks[camera].timeline for camera in cameras})
        if result.status != ANSWERED:
            return result
        # The node's window (as --capacity and --max-duration describe it) bounds the history;
        # the facts are the first camera's, as offline.
        first = tracks[cameras[0]]
        newest = first.timeline.newest_at(bag_time)
        goals = settings.replay.goals
        return dataclasses.replace(result, window=window_facts(
            first.timeline.kept_history(first.kept, newest), window_end,
            item.window_duration or goals.window_duration, window=settings.replay.window,
            max_frames=item.max_frames or goals.max_frames, seen=len(result.frame_stamps),
            offset_of=lambda stamp: (first.timeline.bag_time_of(stamp) or stamp) - start,
            hint="raise the node's window.capacity and window.max_duration"))

    def _send_and_wait(self, goal: Reason.Goal) -> Any:
        """The Reason.Result, or a string saying why there is none."""
        timeout = self._settings.result_timeout
        # A goal sent before the client has discovered the server's goal service is lost in the
        # middleware, and its future never completes: wait for the server first.
        if not self._client.wait_for_server(self._settings.start_timeout):
            return self._no_answer(
                f'no action server {self._action!r} within {self._settings.start_timeout:g} s')
        handle: ClientGoalHandle | None = _wait(
            self._client.send(goal), timeout, self._cancel, self._server_alive)
        if handle is None:
            return self._no_answer(f'no answer to the goal request within {timeout:g} s')
        if not handle.accepted:
            return 'the node rejected the goal'
        self._in_flight = handle
        response = _wait(handle.get_result_async(), timeout, self._cancel, self._server_alive)
        self._in_flight = None
        if response is None:
            handle.cancel_goal_async()
            return self._no_answer(f'no result within {timeout:g} s; the goal was cancelled')
        return response.result

    def _no_answer(self, timed_out: str) -> str:
        if self._cancel.is_set():
            return 'cancelled'
        if not self._server_alive():
            return f"the action server '{self._action}' is gone: did the node stop?"
        return timed_out

    def _server_alive(self) -> bool:
        return self._client.wait_for_server(0.0)

    def _attach_pictures(self, tracks: dict[str, _Track], answered: list[ItemResult]) -> None:
        """Decode the last frame of each answer from the bag, as the window stored it; of an
        answer over named cameras, the last frame of every view (the report's mosaic).
        """
        max_pixels = self._settings.replay.window.max_pixels
        wanted: dict[str, list[float]] = {name: [] for name in tracks}
        for result in answered:
            for name, stamp in _last_stamps(result):
                wanted[name].append(stamp)
        images = {name: load_frames(tracks[name].source, stamps, max_pixels=max_pixels)
                  for name, stamps in wanted.items() if stamps}
        for result in answered:
            found = {name: images.get(name, {}).get(stamp)
                     for name, stamp in _last_stamps(result)}
            if not found or any(image is None for image in found.values()):
                continue
            if not result.views:
                image = found[DEFAULT_CAMERA]
                self._results[result.index] = dataclasses.replace(result, image=image)
                continue
            pictures = tuple(
                View(view.name, (Frame(view.stamps[-1], found[view.name], view.source_size),),
                     view.missing) for view in result.views)
            self._results[result.index] = dataclasses.replace(
                result, image=found.get(result.picture_camera), view_pictures=pictures)

    def _record(self, result: ItemResult) -> None:
        self._results[result.index] = result
        self._on_result(result, len(self._results), len(self._questions.items))


def _goal_for(item: QuestionItem, settings: ReplaySettings, stamp_ns: int) -> Reason.Goal:
    # The exact integer stamp: the node turns it into the same float as the frame's header.
    return make_goal(
        item.task, item.mode.value, choices=list(item.choices), object_name=item.object_name,
        reasoning=item.reasoning, window_duration=float(item.window_duration),
        max_frames=item.max_frames, max_new_tokens=item.max_new_tokens,
        window_end=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        greedy=settings.greedy, seed=-1 if settings.seed is None else settings.seed,
        cameras=list(item.cameras))


def _result_to_item(base: ItemResult, item: QuestionItem, result: Reason.Result,
                    timelines: dict[str, Timeline]) -> ItemResult:
    """The item's result from the node's: the answer, its views, its score in the truth's view.

    Args:
        base: the result so far (where and when it was asked).
        item: the item.
        result: the action's result.
        timelines: the timeline of each camera the item asks about ('' for one unnamed).
    """
    output = result.output
    if result.error_code != Reason.Result.SUCCESS:
        return dataclasses.replace(
            base, error_code=Failure.from_result_code(result.error_code),
            error=result.message, raw_text=output.raw_text, model_id=output.model_id)
    parsed = parsed_from_msg(output)
    stamps = tuple(stamp_seconds(stamp) for stamp in output.frame_stamps)
    size = (int(output.image_width), int(output.image_height))
    views: tuple[ViewRecord, ...] = ()
    truth_size, picture_camera = size, ''
    if item.camera_topics:
        views = tuple(ViewRecord(
            view.name, tuple(stamp_seconds(stamp) for stamp in view.stamps),
            (int(view.image_width), int(view.image_height)),
            tuple(stamp_seconds(stamp) for stamp in view.missing_stamps))
            for view in output.views)
        picture_camera = item.truth_camera
        truth = next((view for view in views if view.name == picture_camera), None)
        if truth is None:
            return dataclasses.replace(
                base, error_code=Failure.NO_ANSWER, raw_text=output.raw_text,
                model_id=output.model_id, error=(
                    f"the node's result has no view of camera '{picture_camera}' (its "
                    f'views: {[view.name for view in views]}): is the node configured with '
                    "the question set's cameras?"))
        truth_size = truth.source_size
        starts = [(view.name, view.stamps[0]) for view in views if view.stamps]
    else:
        starts = [(DEFAULT_CAMERA, stamps[0])] if stamps else []
    window_offset = None
    if starts:
        # Timestamps of all views are on one clock from the earliest frame of any view.
        start = next(iter(timelines.values())).start
        window_offset = min(_bag_time(timelines.get(name), stamp)
                            for name, stamp in starts) - start
    lifted, depth_stamp = _lifted(item, output, parsed)
    return dataclasses.replace(
        base, status=ANSWERED, parsed=parsed, raw_text=output.raw_text,
        constrained=output.constrained, reasoning_cut=output.reasoning_cut,
        model_id=output.model_id, frame_stamps=stamps, window_offset=window_offset,
        source_size=size, prompt_tokens=output.prompt_tokens,
        completion_tokens=output.completion_tokens,
        finish_reason='length' if output.answer_cut else 'stop',
        preprocess_time=output.preprocess_time,
        time_to_first_token=output.time_to_first_token,
        generation_time=output.generation_time, total_time=output.total_time,
        decode_tokens_per_second=output.decode_tokens_per_second,
        score=score_answer(item, parsed, truth_size, window_offset=window_offset or 0.0,
                           lifted=lifted),
        lifted=lifted, depth_stamp=depth_stamp, views=views, picture_camera=picture_camera)


def _lifted(item: QuestionItem, output: Any,
            parsed: ParsedAnswer) -> tuple[Lifted | None, float | None]:
    """The node's 3D answer for scoring: of several views, only what was lifted in the view the
    truth is in (as offline, which lifts only those); None when the item is not lifted.
    """
    depth_topic, camera_info_topic = item.depth_topic, item.camera_info_topic
    camera = item.camera(item.truth_camera)
    if camera is not None:
        depth_topic, camera_info_topic = camera.depth, camera.camera_info
    if not depth_topic:
        return None, None
    lifted, depth_stamp = lifted_from_msg(output)
    if camera is not None:
        first = item.cameras[0]
        lifted = dataclasses.replace(
            lifted,
            trajectories=tuple(lifted_one for lifted_one, msg in zip(
                lifted.trajectories, output.trajectories_3d)
                if (msg.camera or first) == camera.name),
            boxes=tuple(lifted_one for lifted_one, msg in zip(lifted.boxes, output.boxes_3d)
                        if (msg.camera or first) == camera.name))
    if lifted.status is LiftStatus.NONE and (parsed.trajectories or parsed.boxes):
        where = f"camera '{camera.name}': " if camera is not None else ''
        names = (f'{camera.name}/depth and {camera.name}/camera_info' if camera is not None
                 else 'depth and camera_info')
        lifted = dataclasses.replace(lifted, message=(
            f'{where}the node lifted nothing: run it with depth.enabled:=true and remap '
            f"{names} to the bag's '{depth_topic}' and '{camera_info_topic}'"))
    return lifted, depth_stamp


def _bag_time(timeline: Timeline | None, stamp: float) -> float:
    """The bag time of the message with this header stamp (the stamp itself if not found)."""
    found = timeline.bag_time_of(stamp) if timeline is not None else None
    return stamp if found is None else found


def _last_stamps(result: ItemResult) -> list[tuple[str, float]]:
    """(camera, stamp) of the newest frame of each view of an answer ('' for one camera)."""
    if result.views:
        return [(view.name, view.stamps[-1]) for view in result.views if view.stamps]
    return [(DEFAULT_CAMERA, result.frame_stamps[-1])] if result.frame_stamps else []


def _about(camera: str, message: str) -> str:
    """A message about one camera, prefixed with its name (none for the unnamed camera)."""
    return f"camera '{camera}': {message}" if camera else message


def _wait(future: Future, timeout: float, cancel: threading.Event,
          alive: Callable[[], bool]) -> Any:
    """The future's result once done (completed by the executor thread); None on timeout,
    cancel, or when alive() says the server is gone.
    """
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    deadline = time.monotonic() + timeout
    # Short waits so Ctrl-C, cancel() and a vanished node are noticed while a long goal runs.
    while not done.wait(min(0.2, max(deadline - time.monotonic(), 0.0))):
        if cancel.is_set() or time.monotonic() >= deadline or not alive():
            return None
    return future.result()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of `live_eval`."""
    parser = argparse.ArgumentParser(prog='live_eval', description=__doc__.split('\n')[0])
    add_question_set_options(
        parser, source_name='bag',
        source_help="the bag being played (default: the question set's source)",
        questions_help='question set (YAML)', questions_required=True)
    add_topic_options(
        parser, topic_help='image topic in the bag',
        depth_topic_help="depth topic in the bag (the node's `depth`, with depth.enabled); "
                         'with --camera-info-topic, trajectory_3d expectations are scored on '
                         "the node's 3D answers (default: the question set's)",
        camera_info_topic_help="CameraInfo topic in the bag (the node's `camera_info`)")
    parser.add_argument('--action', default=DEFAULT_ACTION, help='Reason action of the node')
    parser.add_argument('--node', default='',
                        help="the node's name, for the set's monitors (its ~/add_monitor, "
                             "~/monitors/<name>; default: the action's namespace)")
    add_report_option(parser, default='live_eval_report', help_text='report folder')
    add_decoding_options(parser, seed_help=None)
    add_frame_options(
        parser, fps_help="the node's window.target_fps (to know which frames it keeps)",
        max_pixels_help="pixel budget of the pictures (the node's window.max_pixels)")
    parser.add_argument('--capacity', type=int, default=WindowConfig.capacity,
                        help="the node's window.capacity (to tell truncated histories)")
    parser.add_argument('--max-duration', type=float, default=WindowConfig.max_duration,
                        help="the node's window.max_duration (to tell truncated histories)")
    parser.add_argument('--start-timeout', type=float, default=LiveSettings.start_timeout,
                        help='seconds to wait for the bag to start playing')
    parser.add_argument('--stall-timeout', type=float, default=LiveSettings.stall_timeout,
                        help='seconds /clock may stand still before the rest is given up')
    parser.add_argument('--result-timeout', type=float, default=LiveSettings.result_timeout)
    add_progress_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """`ros2 run cosmos_reason_ros live_eval`: 0 when complete, 130 after Ctrl-C, 2 on errors."""
    argv = list(sys.argv if argv is None else argv)
    args = parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    try:
        questions = load_questions(args.questions, source=args.bag, **topic_overrides(args))
    except ReasonError as error:
        print(f'live_eval: {error}', file=sys.stderr)
        return 2
    settings = LiveSettings(
        replay=ReplaySettings(window=WindowConfig(target_fps=args.fps,
                                                  max_pixels=args.max_pixels,
                                                  capacity=args.capacity,
                                                  max_duration=args.max_duration),
                              greedy=not args.sample, seed=args.seed),
        start_timeout=args.start_timeout, stall_timeout=args.stall_timeout,
        result_timeout=args.result_timeout)
    rclpy.init(args=argv)
    node = Node('cosmos_reason_live_eval')
    evaluation = LiveEvaluation(node, questions, action=args.action, settings=settings,
                                target=args.node,
                                on_result=None if args.quiet else ProgressBar(sys.stderr))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    with spinning(executor, timeout=10.0, destroy=(evaluation.destroy, node.destroy_node),
                  context=node.context):
        if not evaluation.wait_for_server(timeout=args.start_timeout):
            print(f"live_eval: no action server '{args.action}' within {args.start_timeout:g} "
                  's: is the reasoning node running?', file=sys.stderr)
            return 2
        print(f'live_eval: waiting for /clock (ros2 bag play --clock); '
              f'{len(questions.items)} items, {len(questions.monitors)} monitors',
              file=sys.stderr)
        run = evaluation.run()
    path = write_report(run, args.out)
    print(f'live_eval: wrote {path} and {path.with_name("report.md")}', file=sys.stderr)
    return 130 if run.interrupted else 0


__all__ = ['BagClock', 'ClockStalledError', 'LiveEvaluation', 'LiveSettings', 'main',
           'parsed_from_msg']
