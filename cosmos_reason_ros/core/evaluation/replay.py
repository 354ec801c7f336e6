"""Offline replay: feed a recording to the node's frame window in bag order, ask each item at its
time through the node's Reasoner, and score the answer.

Each item is asked with the window ending at the newest frame it kept among those logged up to the
item's bag time, as the node would see it then; decoding is greedy, so reruns answer the same.
With a concurrency above one, frames are still read in order on the calling thread; each item is
asked from a snapshot of the window on one of that many worker threads, and its answer is scored
on the calling thread when it comes back.
"""

from collections.abc import Callable, Iterator, Sequence
import concurrent.futures
import dataclasses
import math
import threading
import time
from typing import Any

import numpy as np

from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import Backend, Prompt
from cosmos_reason_ros.core.camera.frames import FrameWindow, Offer
from cosmos_reason_ros.core.camera.views import CameraWindows, DEFAULT_CAMERA
from cosmos_reason_ros.core.config import GoalLimits
from cosmos_reason_ros.core.errors import (
    Failure,
    failure_of,
    InvalidRequestError,
    ReasonError,
    TimeLimitError,
)
from cosmos_reason_ros.core.evaluation.asking import (
    check_ask_time,
    ReplaySettings,
    stale_frame_message,
    TIME_EPSILON,
    window_facts,
)
from cosmos_reason_ros.core.evaluation.depth_track import check_depth_topics, DepthTrack
from cosmos_reason_ros.core.evaluation.progress import ProgressCallback
from cosmos_reason_ros.core.evaluation.protocols import full_output, Reason1Benchmark
from cosmos_reason_ros.core.evaluation.questions import QuestionItem, QuestionSet
from cosmos_reason_ros.core.evaluation.results import (
    ANSWERED,
    ERROR,
    ItemResult,
    newest_frames,
    NOT_RUN,
    RunResult,
    SourceSummary,
    ViewRecord,
)
from cosmos_reason_ros.core.evaluation.scoring import in_truth_view, Score, score_answer
from cosmos_reason_ros.core.evaluation.shards import Shard
from cosmos_reason_ros.core.evaluation.sources import (
    check_stamps,
    FrameSource,
    open_source,
    SourceFrame,
)
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonOutcome, ReasonRequest


def item_request(item: QuestionItem, settings: ReplaySettings,
                 window_end: float | None) -> ReasonRequest:
    """The ReasonRequest an item sends (the same fields the live client puts into a goal)."""
    return ReasonRequest(
        mode=item.mode, task=item.task, choices=item.choices, object_name=item.object_name,
        reasoning=item.reasoning, window_duration=item.window_duration,
        max_frames=item.max_frames, window_end=window_end, max_new_tokens=item.max_new_tokens,
        greedy=settings.greedy, seed=settings.seed, cameras=item.cameras)


def protocol_request(item: QuestionItem, protocol: Reason1Benchmark, window_end: float,
                     max_frames: int, attempt: int) -> ReasonRequest:
    """The request of one attempt under a protocol: its prompt and decoding, every frame."""
    return ReasonRequest(
        mode=item.mode, task=item.task, choices=item.choices,
        window_duration=item.window_duration, max_frames=max_frames, window_end=window_end,
        prompt=protocol.prompt(item), sampling=protocol.sampling(attempt))


def item_prompt(item: QuestionItem, backend: Backend,
                protocol: Reason1Benchmark | None = None) -> Prompt | None:
    """The prompt the item sends to this backend's family (None if the item is invalid)."""
    if protocol is not None:
        return protocol.prompt(item)
    try:
        return build_prompt(item.mode, family=backend.family, task=item.task,
                            reasoning=item.reasoning, choices=item.choices,
                            object_name=item.object_name,
                            cameras=item.cameras if len(item.cameras) > 1 else ())
    except InvalidRequestError:
        return None


def describe_backend(backend: Backend) -> dict[str, Any]:
    """Model facts for the report: id, family, device, dtype."""
    return {'id': backend.model_id, 'family': backend.family.value if backend.family else None,
            'device': str(backend.device), 'dtype': str(backend.dtype)}


class Replay:
    """Runs a question set offline against a loaded backend."""

    def __init__(self, backend: Backend, settings: ReplaySettings = ReplaySettings(), *,
                 on_result: ProgressCallback | None = None, concurrency: int = 1):
        """Prepare a run.

        Args:
            backend: a loaded backend (the same one the node would use).
            settings: window, goal defaults, decoding and the per-item deadline.
            on_result: progress callback, called after every item (on the calling thread).
            concurrency: items in flight at once; above 1 the backend must serve that many
                requests at once (its `max_concurrent`, as a remote server's).

        Raises:
            InvalidRequestError: concurrency below 1, or above what the backend serves.
        """
        serves = getattr(backend, 'max_concurrent', 1)
        if concurrency < 1:
            raise InvalidRequestError(f'--concurrency must be at least 1, got {concurrency}')
        if concurrency > serves:
            raise InvalidRequestError(
                f'--concurrency {concurrency} needs a backend that answers {concurrency} '
                f'requests at once; {backend.describe()} answers {serves} at a time: use '
                '--backend openai with a server (vLLM, NIM), or --concurrency 1')
        self._backend = backend
        self._settings = settings
        self._on_result = on_result or (lambda result, done, total: None)
        self._concurrency = concurrency
        self._cancel = threading.Event()
        self._done = 0
        self._total = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._in_flight: dict[concurrent.futures.Future, _Asked] = {}
        self._asking: int | None = None

    def run(self, questions: QuestionSet, *, shard: Shard | None = None) -> RunResult:
        """Ask every item (of the shard); errors are recorded per item and the run goes on.

        Ctrl-C (KeyboardInterrupt) stops the run: the items done so far are kept, those in
        flight are cancelled, the rest are NOT_RUN, and the result says it was interrupted.

        Args:
            questions: the question set.
            shard: ask only this slice of it (the report keeps the items' positions).
        """
        started = time.perf_counter()
        indexed = [(index, item) for index, item in enumerate(questions.items, start=1)
                   if shard is None or shard.holds(index)]
        self._done, self._total = 0, len(indexed)
        results: dict[int, ItemResult] = {}
        sources: list[SourceSummary] = []
        interrupted = False
        if self._concurrency > 1:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._concurrency, thread_name_prefix='eval-item')
        try:
            for path, topic in questions.sources():
                group = [(i, item) for i, item in indexed
                         if (item.source, item.topic) == (path, topic)]
                if group:
                    sources.append(self._run_source(path, topic, group, results))
            self._collect(results, until=0)
        except KeyboardInterrupt:
            self._cancel.set()
            interrupted = True
        finally:
            self._stop_workers(results)
        for index, item in indexed:
            if index not in results:
                when = ('while this item was being answered; its partial answer was discarded'
                        if index == self._asking or any(
                            asked.index == index for asked in self._in_flight.values())
                        else 'before this item was asked')
                results[index] = ItemResult(
                    index=index, item=item, status=NOT_RUN, error_code=Failure.INTERRUPTED,
                    error=f'the run was interrupted (Ctrl-C) {when}')
        return RunResult(
            question_set=questions, results=[results[i] for i, _ in indexed], sources=sources,
            model=describe_backend(self._backend), settings=self._settings.to_dict(),
            interrupted=interrupted, live=False, wall_time=time.perf_counter() - started,
            shard=shard)

    # One recording --------------------------------------------------------------------------

    def _run_source(self, path: str, topic: str, group: Sequence[tuple[int, QuestionItem]],
                    results: dict[int, ItemResult]) -> SourceSummary:
        cameras = [(camera.name, camera.image) for camera in group[0][1].camera_topics]
        try:
            source = open_source(path, topic, cameras=cameras)
        except ReasonError as error:
            for index, item in group:
                self._record(results, ItemResult(index=index, item=item, status=ERROR,
                                                 error_code=Failure.SOURCE, error=str(error)))
            return SourceSummary(description={'path': path, 'topic': topic}, error=str(error))
        run = SourceRun(source, self._settings, self._backend, self._cancel,
                         [item for _, item in group])
        timed = sorted((item.time.resolve(source.start, math.inf), index, item)
                       for index, item in group if not item.time.at_end)
        at_end = [(index, item) for index, item in group if item.time.at_end]
        frames = iter(run.frames())
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as error:  # noqa: BLE001 - a corrupt recording ends its items
                return self._unreadable(run, timed, at_end, error, results)
            while timed and timed[0][0] < frame.bag_time - TIME_EPSILON:
                bag_time, index, item = timed.pop(0)
                self._ask(results, run, index, item, bag_time, upcoming=frame)
            run.offer(frame)
        for bag_time, index, item in timed:
            self._ask(results, run, index, item, bag_time, upcoming=None)
        for index, item in at_end:
            bag_time = run.newest.bag_time if run.newest else source.start
            self._ask(results, run, index, item, bag_time, upcoming=None)
        return run.summary()

    def _ask(self, results: dict[int, ItemResult], run: 'SourceRun', index: int,
             item: QuestionItem, bag_time: float, *, upcoming: SourceFrame | None) -> None:
        asked = run.prepare(index, item, bag_time, upcoming=upcoming)
        if isinstance(asked, ItemResult):
            self._record(results, asked)
            return
        if self._pool is None:
            self._asking = index
            answer = asked.answer()
            self._asking = None
            self._record(results, asked.finish(answer))
            return
        # At most `concurrency` items (and their window snapshots) are held at once: wait for
        # a free worker before handing over the next one.
        self._collect(results, until=self._concurrency - 1)
        self._in_flight[self._pool.submit(asked.answer)] = asked

    def _collect(self, results: dict[int, ItemResult], *, until: int) -> None:
        """Record finished items, waiting until at most `until` are still in flight."""
        while self._in_flight:
            done, _ = concurrent.futures.wait(
                self._in_flight, return_when=concurrent.futures.FIRST_COMPLETED,
                timeout=None if len(self._in_flight) > until else 0)
            for future in sorted(done, key=lambda f: self._in_flight[f].index):
                # A KeyboardInterrupt raised in a worker (as by a test double) stops the run.
                answer = future.result()
                asked = self._in_flight.pop(future)
                self._record(results, asked.finish(answer))
            if len(self._in_flight) <= until:
                return

    def _stop_workers(self, results: dict[int, ItemResult]) -> None:
        """After the run or Ctrl-C: wait for the workers (a cancel stops each within one step of
        generation), and keep the answers that had come back complete.
        """
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)
        self._pool = None
        for future, asked in list(self._in_flight.items()):
            # Answers that came back whole are kept; what the cancel cut short is not run.
            if future.exception() is None and not isinstance(future.result(), ItemResult):
                self._record(results, asked.finish(future.result()))
                del self._in_flight[future]

    def _unreadable(self, run: 'SourceRun', timed: list, at_end: list, error: Exception,
                    results: dict[int, ItemResult]) -> SourceSummary:
        """Fail the items not asked yet when a recording breaks off while being read."""
        newest = run.newest.bag_time - run.source.start if run.newest else 0.0
        message = (f"reading '{run.source.path}' failed after {run.summary_data.frames} frames "
                   f'({newest:.3f} s): {error}')
        pending = [(index, item) for _, index, item in timed] + list(at_end)
        for index, item in pending:
            self._record(results, ItemResult(index=index, item=item, status=ERROR,
                                             error_code=Failure.SOURCE, error=message))
        summary = run.summary()
        summary.error = message
        return summary

    def _record(self, results: dict[int, ItemResult], result: ItemResult) -> None:
        results[result.index] = result
        self._done += 1
        self._on_result(result, self._done, self._total)


class SourceRun:
    """The state of one recording's replay: its window, reasoner and what was seen so far."""

    def __init__(self, source: FrameSource, settings: ReplaySettings, backend: Backend,
                 cancel: threading.Event, items: Sequence[QuestionItem]):
        self.source = source
        self.settings = settings
        self.backend = backend
        self.cancel = cancel
        self.name = source.topic or source.path
        sized = settings.sized_window(items)
        topics = {camera.name: camera.image for camera in items[0].camera_topics} if items \
            else {}
        # One window per camera, by header stamp, as the node keeps them ('' for one unnamed).
        self.windows = {name: FrameWindow(dataclasses.replace(sized, source=topic))
                        for name, topic in topics.items()} or {
                            DEFAULT_CAMERA: FrameWindow(dataclasses.replace(sized,
                                                                            source=self.name))}
        self.window = next(iter(self.windows.values()))
        """The first camera's window (the only one's, with one camera)."""
        self.first: SourceFrame | None = None
        self.newest: SourceFrame | None = None
        self.summary_data = SourceSummary(description=source.describe())
        self._first_of: dict[str, SourceFrame] = {}
        self._newest_of: dict[str, SourceFrame] = {}
        self._bag_time_of: dict[str, dict[float, float]] = {name: {} for name in self.windows}
        self._kept: dict[str, list[float]] = {name: [] for name in self.windows}
        """Per camera, stamps of every frame kept since the last stamp jump back: what an
        unbounded window would hold, to tell when the real one truncated an item's history."""
        self._depth: dict[tuple[str, str], DepthTrack | ReasonError] = {}
        self._feed_mark = time.perf_counter()

    def frames(self) -> Iterator[SourceFrame]:
        """The source's frames; on log time when its header stamps do not advance."""
        note = check_stamps(self.source)
        if not note:
            return self.source.frames()
        self.summary_data.stamps = 'log'
        self.summary_data.note = note
        return (dataclasses.replace(frame, stamp=frame.bag_time,
                                    stamp_ns=round(frame.bag_time * 1e9))
                for frame in self.source.frames())

    def offer(self, frame: SourceFrame) -> None:
        """Offer one frame to the window, as the node's image callback does."""
        summary = self.summary_data
        self.first = self.first or frame
        self.newest = frame
        self._first_of.setdefault(frame.camera, frame)
        self._newest_of[frame.camera] = frame
        summary.frames += 1
        self._bag_time_of[frame.camera][frame.stamp] = frame.bag_time
        kept = self._kept[frame.camera]

        def convert(load: Callable[[], np.ndarray] = frame.load) -> np.ndarray:
            image = load()
            summary.image_sizes.add((int(image.shape[1]), int(image.shape[0])))
            return image

        try:
            offer = self.windows[frame.camera].offer(frame.stamp, convert, frame.frame_id)
        except Exception as error:  # noqa: BLE001 - a corrupt frame is counted, as by the node
            summary.decode_errors += 1
            summary.first_decode_error = summary.first_decode_error or (
                f'frame at {frame.bag_time - self.source.start:.3f} s: {error}')
            return
        if offer in (Offer.REWOUND, Offer.RESIZED):
            kept[:] = [frame.stamp]
        elif offer is Offer.KEPT:
            kept.append(frame.stamp)

    def prepare(self, index: int, item: QuestionItem, bag_time: float, *,
                upcoming: SourceFrame | None) -> 'ItemResult | _Asked':
        """Check one item against the frames so far and freeze what asking it needs.

        Args:
            index: the item's position in the question set.
            item: the item.
            bag_time: when it asks.
            upcoming: the frame that follows (None: the recording has ended).

        Returns:
            The item's error result when it cannot be asked (too early, too late, stale frames,
            no depth), else the item ready to be answered from a snapshot of the window.
        """
        feed_time = time.perf_counter() - self._feed_mark
        start = self.source.start
        protocol = self.settings.protocol
        base = ItemResult(index=index, item=item, status=ERROR, bag_time=bag_time,
                          offset=bag_time - start, feed_time=feed_time,
                          prompt=item_prompt(item, self.backend, protocol))
        cameras = item.cameras or (DEFAULT_CAMERA,)
        ends = []
        for camera in cameras:
            # Every camera the item asks about must have frames then, each judged on its own.
            first = self._first_of.get(camera) or upcoming
            newest = self._newest_of.get(camera)
            topic = self.windows[camera].config.source if camera else self.source.topic
            code, message = check_ask_time(
                bag_time, first=first.bag_time if first else None,
                newest=newest.bag_time if newest else None, ended=upcoming is None,
                settings=self.settings, topic=topic, start=start)
            if code:
                return self._finish(dataclasses.replace(
                    base, error_code=code, error=_about(camera, message)))
            # The newest frame the window kept: the node has it when the goal arrives, so the
            # live run asks the same without waiting for a later frame.
            end = self.windows[camera].newest_stamp
            if end is None:
                name = repr(topic) if camera else repr(self.name)
                return self._finish(dataclasses.replace(
                    base, error_code=Failure.NO_FRAMES,
                    error=_about(camera, f'no frame on {name} could be decoded up to this time')))
            ends.append((end, camera))
        # Several views end at the oldest of their newest frames: each view has its frame near
        # the last slot (CameraWindows.select matches within the sync tolerance).
        window_end = min(ends)[0]
        # The staleness the node would check, measured from the frame the model gets.
        ages = [(bag_time - self._bag_time_of[camera].get(end, bag_time), end, camera)
                for end, camera in ends]
        frame_age, stale_end, stale_camera = max(ages)
        base = dataclasses.replace(base, window_end=window_end, frame_age=frame_age)
        max_age = self.settings.goals.max_frame_age
        if frame_age > max_age:
            return self._finish(dataclasses.replace(
                base, error_code=Failure.STALE_FRAMES, error=_about(
                    stale_camera, stale_frame_message(bag_time, frame_age, stale_end,
                                                      start=start, max_age=max_age))))
        depth = self._depth_track(item)
        if isinstance(depth, ReasonError):
            return self._finish(dataclasses.replace(
                base, error_code=failure_of(depth), error=_about(item.truth_camera,
                                                                 str(depth))))
        window: FrameWindow | CameraWindows
        if item.camera_topics:
            window = CameraWindows({name: self.windows[name].snapshot() for name in cameras},
                                   sync_tolerance=self.settings.sync_tolerance)
        else:
            window = self.window.snapshot()
        limits = dataclasses.replace(GoalLimits(), time_limit=self.settings.item_timeout)
        # The history facts are the first camera's (the only one's, with one camera).
        kept = tuple(self._kept[cameras[0]])
        bag_times = {name: dict(self._bag_time_of[name]) for name in cameras}
        return _Asked(run=self, base=base, window_end=window_end, depth=depth, window=window,
                      reasoner=Reasoner(self.backend, window, self.settings.goals,
                                        limits=limits),
                      kept=kept, bag_time_of={stamp: bag_times[cameras[0]].get(stamp, stamp)
                                              for stamp in kept},
                      view_bag_times=bag_times)

    def _depth_track(self, item: QuestionItem) -> DepthTrack | ReasonError | None:
        """The depth of the item's bag (opened once per pair of topics), the error that
        prevents reading it, or None when the item is not lifted.
        """
        key = (item.depth_topic, item.camera_info_topic)
        camera = item.camera(item.truth_camera)
        if camera is not None:
            # Several cameras: the answer is lifted in the camera the truth is in.
            key = (camera.depth, camera.camera_info)
        if not key[0]:
            return None
        if key not in self._depth:
            try:
                check_depth_topics(self.source, *key)
                self._depth[key] = DepthTrack(self.source.path, *key,
                                              use_log_time=self.summary_data.stamps == 'log')
            except ReasonError as error:
                self._depth[key] = error
        return self._depth[key]

    def _finish(self, result: ItemResult) -> ItemResult:
        self._feed_mark = time.perf_counter()
        return result

    def summary(self) -> SourceSummary:
        """What was read, with the window's counters."""
        summary = self.summary_data
        if self.first is not None and self.newest is not None:
            summary.first_offset = self.first.bag_time - self.source.start
            summary.last_offset = self.newest.bag_time - self.source.start
        stats = self.window.stats
        summary.window = {'offered': stats.offered, 'kept': stats.kept, 'skipped': stats.skipped,
                          'invalid': stats.invalid, 'rewinds': stats.rewinds}
        summary.depth = [track.describe() for track in self._depth.values()
                         if isinstance(track, DepthTrack)]
        return summary


_Answer = tuple[ReasonOutcome, str | None, int]
"""What a generation gave: the outcome, the protocol's letter, the attempts it took."""


@dataclasses.dataclass(frozen=True)
class _Asked:
    """An item ready to be answered: the window as it was at its time, and what scoring it
    needs from then, so that the replay may read on while a worker thread answers it.
    """

    run: SourceRun
    base: ItemResult
    window_end: float
    depth: DepthTrack | None
    window: FrameWindow | CameraWindows
    """A snapshot of the window (of the item's cameras' windows) at the item's time."""
    reasoner: Reasoner
    kept: tuple[float, ...]
    bag_time_of: dict[float, float]
    """Bag time of each stamp in `kept`."""
    view_bag_times: dict[str, dict[float, float]] = dataclasses.field(default_factory=dict)
    """Per camera of the item, the bag time of each stamp it had."""

    @property
    def first_window(self) -> FrameWindow:
        """The window of the item's first camera (the only one's, with one camera)."""
        if isinstance(self.window, CameraWindows):
            return self.window.window(self.window.names[0])
        return self.window

    @property
    def index(self) -> int:
        """The item's position in the question set."""
        return self.base.index

    def answer(self) -> '_Answer | ItemResult':
        """Generate (on any thread): the answer, or the item's error result."""
        base, run = self.base, self.run
        try:
            return self._generate()
        except TimeLimitError:
            return run._finish(dataclasses.replace(
                base, error_code=Failure.GENERATION_FAILED,
                error=f'the item ran longer than the item timeout '
                      f'({run.settings.item_timeout:g} s, --item-timeout) and was stopped; '
                      'the run went on'))
        except ReasonError as error:
            return run._finish(dataclasses.replace(
                base, error_code=failure_of(error), error=str(error)))
        except Exception as error:  # noqa: BLE001 - as in the node: one item fails, not the run
            return run._finish(dataclasses.replace(
                base, error_code=failure_of(error), error=f'internal error: {error!r}'))

    def finish(self, answer: '_Answer | ItemResult') -> ItemResult:
        """Score an answer (on the replay's thread: lifting reads the bag)."""
        if isinstance(answer, ItemResult):
            return answer
        outcome, letter, attempts = answer
        item, protocol = self.base.item, self.run.settings.protocol
        answered = self._answered(outcome)
        answered = dataclasses.replace(
            answered, window=self._window_facts(len(outcome.frames)), attempts=attempts)
        if protocol is not None:
            answered = dataclasses.replace(
                answered, protocol_answer=letter, score=Score(
                    'choice', protocol.is_correct(letter, item),
                    detail='' if letter else (
                        f'no answer letter after {attempts} attempt(s) '
                        f'({protocol.answer_type} procedure)')))
        return self.run._finish(answered)

    def _generate(self) -> _Answer:
        """Ask the item; under a protocol, again while its extracted answer is empty."""
        item, run = self.base.item, self.run
        protocol = run.settings.protocol
        if protocol is None:
            request = item_request(item, run.settings, self.window_end)
            return self.reasoner.run(request, cancel=run.cancel), None, 1
        attempt = 0
        while True:
            request = protocol_request(item, protocol, self.window_end,
                                       self.first_window.config.capacity, attempt)
            outcome = self.reasoner.run(request, cancel=run.cancel)
            generation = outcome.generation
            letter = protocol.extract(full_output(generation.text, generation.reasoning))
            if letter or attempt >= protocol.max_retries:
                return outcome, letter, attempt + 1
            attempt += 1

    def _window_facts(self, seen: int) -> dict[str, Any]:
        """What history the item asked for and what the window could give it."""
        item, settings = self.base.item, self.run.settings
        config = self.first_window.config
        start = self.run.source.start
        return window_facts(
            self.kept, self.window_end,
            item.window_duration or settings.goals.window_duration, window=config, seen=seen,
            max_frames=(config.capacity if settings.protocol
                        else item.max_frames or settings.goals.max_frames),
            offset_of=lambda stamp: self.bag_time_of.get(stamp, stamp) - start,
            hint='raise --window-memory')

    def _answered(self, outcome: ReasonOutcome) -> ItemResult:
        base, item, run = self.base, self.base.item, self.run
        if item.camera_topics:
            return self._answered_views(outcome)
        first_bag_time = self.bag_time_of.get(outcome.frames[0].stamp, outcome.frames[0].stamp)
        window_offset = first_bag_time - run.source.start
        lifted, depth_stamp = (None, None) if self.depth is None else self.depth.lift(
            outcome.parsed, outcome.source_size, outcome.frames[-1].stamp,
            base.bag_time if base.bag_time is not None else first_bag_time,
            run.settings.depth)
        return self._result(outcome, window_offset=window_offset, lifted=lifted,
                            depth_stamp=depth_stamp, truth_size=outcome.source_size,
                            image=outcome.frames[-1].image)

    def _answered_views(self, outcome: ReasonOutcome) -> ItemResult:
        """An answer over named cameras: the views recorded, the answer scored (and lifted)
        in the view the truth is in.
        """
        base, item, run = self.base, self.base.item, self.run
        truth = outcome.view(item.truth_camera)
        # Timestamps of all views are on one clock from the earliest frame of any view.
        first_bag_time = min(
            self.view_bag_times[view.name].get(view.frames[0].stamp, view.frames[0].stamp)
            for view in outcome.views)
        window_offset = first_bag_time - run.source.start
        in_view, _ = in_truth_view(item, outcome.parsed)
        lifted, depth_stamp = (None, None) if self.depth is None else self.depth.lift(
            in_view, truth.source_size, truth.frames[-1].stamp,
            base.bag_time if base.bag_time is not None else first_bag_time,
            run.settings.depth)
        views = tuple(ViewRecord(view.name, tuple(frame.stamp for frame in view.frames),
                                 view.source_size, view.missing) for view in outcome.views)
        return self._result(outcome, window_offset=window_offset, lifted=lifted,
                            depth_stamp=depth_stamp, truth_size=truth.source_size,
                            image=truth.frames[-1].image, views=views,
                            picture_camera=truth.name,
                            view_pictures=newest_frames(outcome.views))

    def _result(self, outcome: ReasonOutcome, *, window_offset: float, lifted: Any,
                depth_stamp: float | None, truth_size: tuple[int, int], image: Any,
                **views: Any) -> ItemResult:
        """The answered item: the outcome's figures, scored in pixels of `truth_size` (the
        view the truth is in); `views` are the multi-view fields of ItemResult.
        """
        generation = outcome.generation
        return dataclasses.replace(
            self.base, status=ANSWERED, parsed=outcome.parsed, raw_text=generation.text,
            constrained=generation.constrained, reasoning_cut=generation.reasoning_cut,
            model_id=outcome.model_id,
            frame_stamps=tuple(frame.stamp for frame in outcome.frames),
            window_offset=window_offset, source_size=outcome.source_size,
            model_input_size=generation.model_input_size,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            finish_reason=generation.finish_reason,
            preprocess_time=generation.preprocess_time,
            time_to_first_token=generation.time_to_first_token,
            generation_time=generation.generation_time, total_time=outcome.total_time,
            decode_tokens_per_second=generation.decode_tokens_per_second,
            score=score_answer(self.base.item, outcome.parsed, truth_size,
                               window_offset=window_offset, lifted=lifted),
            lifted=lifted, depth_stamp=depth_stamp, image=image, **views)


def _about(camera: str, message: str) -> str:
    """A message about one camera, prefixed with its name (none for the unnamed camera)."""
    return f"camera '{camera}': {message}" if camera else message


def run_replay(questions: QuestionSet, backend: Backend,
               settings: ReplaySettings = ReplaySettings(), *,
               on_result: ProgressCallback | None = None) -> RunResult:
    """Replay a question set offline; see Replay.run()."""
    return Replay(backend, settings, on_result=on_result).run(questions)


__all__ = ['Replay', 'SourceRun', 'describe_backend', 'item_prompt', 'item_request',
           'protocol_request', 'run_replay']
