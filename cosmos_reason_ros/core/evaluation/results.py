"""What an evaluation run produced: one result per item, what was read per recording, the run.

Written by the offline replay and the live run alike, and read by the report.
"""

from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np

from cosmos_reason_ros.core.answers.parsing import ParsedAnswer
from cosmos_reason_ros.core.backends.base import Prompt
from cosmos_reason_ros.core.camera.views import View
from cosmos_reason_ros.core.depth.geometry import Lifted
from cosmos_reason_ros.core.evaluation.questions import QuestionItem, QuestionSet
from cosmos_reason_ros.core.evaluation.scoring import Score

ANSWERED = 'answered'
ERROR = 'error'
NOT_RUN = 'not_run'


@dataclasses.dataclass(frozen=True)
class ViewRecord:
    """One camera view an item's answer came from."""

    name: str
    stamps: tuple[float, ...]
    """Header stamps of the frames the model saw of this camera, oldest first."""
    source_size: tuple[int, int]
    """(width, height) of this camera's image."""
    missing: tuple[float, ...] = ()
    """Slot times at which this camera had no frame within the sync tolerance."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {'name': self.name, 'stamps': list(self.stamps),
                'image_size': list(self.source_size), 'missing_stamps': list(self.missing)}


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """What happened to one item: where it was asked, the answer, its score, its timings."""

    index: int
    """1-based position in the question set."""
    item: QuestionItem
    status: str
    """ANSWERED, ERROR (could not be asked or failed) or NOT_RUN (run interrupted first)."""
    error: str = ''
    error_code: str = ''
    """A Failure value (the same names offline and live, and as the action's codes); '' when
    answered."""
    bag_time: float | None = None
    """Bag time (seconds) the item was asked at."""
    offset: float | None = None
    """bag_time minus the start of the source."""
    window_end: float | None = None
    """Header stamp the window ended at: the newest frame the window kept among those logged
    at or before bag_time."""
    parsed: ParsedAnswer | None = None
    raw_text: str = ''
    constrained: bool = False
    """The answer was decoded under its format and matched it (as the action result says)."""
    reasoning_cut: bool = False
    """The reasoning reached its cap and was closed for the answer."""
    model_id: str = ''
    frame_stamps: tuple[float, ...] = ()
    window_offset: float | None = None
    """Seconds from the start of the source to the first frame the model saw (bag time)."""
    source_size: tuple[int, int] | None = None
    model_input_size: tuple[int, int] | None = None
    prompt: Prompt | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ''
    preprocess_time: float | None = None
    time_to_first_token: float | None = None
    generation_time: float | None = None
    total_time: float | None = None
    feed_time: float | None = None
    """Offline: seconds spent reading, decoding and offering frames since the previous item."""
    round_trip: float | None = None
    """Live: seconds from sending the goal to its result, as the client saw it."""
    send_delay: float | None = None
    """Live: bag seconds between the item's time and sending its goal (late when the goal
    before it was still running)."""
    decode_tokens_per_second: float | None = None
    frame_age: float | None = None
    """Seconds from the log time of the newest frame the model saw to the asking time."""
    window: dict[str, Any] | None = None
    """What history the item asked for and got: duration, frames in that range, frames the
    window held, frames the model saw, and whether the window's bound truncated it."""
    attempts: int = 1
    """Generations run for the item (a protocol retries empty answers)."""
    protocol_answer: str | None = None
    """The answer letter the protocol extracted (None without a protocol)."""
    score: Score | None = None
    lifted: Lifted | None = None
    """The answer in 3D (items with a depth topic), or why it could not be lifted."""
    depth_stamp: float | None = None
    """Header stamp of the depth frame the answer was lifted with."""
    image: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    """The last frame the model saw (as stored by the window), for the report's picture; of
    several views, the last frame of the view the expected answer is in."""
    views: tuple[ViewRecord, ...] = ()
    """Items over named cameras: every view the model saw, in prompt order (frame_stamps and
    source_size stay the first view's)."""
    picture_camera: str = ''
    """Of several views, the camera `image` shows."""
    view_pictures: tuple[View, ...] = dataclasses.field(default=(), repr=False, compare=False)
    """Items over named cameras: each view the model saw, in prompt order, holding only its
    newest frame (as the window stored it), for the report's mosaic; () otherwise."""

    def view(self, name: str) -> ViewRecord | None:
        """The record of one view (None: not one the model saw)."""
        return next((view for view in self.views if view.name == name), None)


def newest_frames(views: Sequence[View]) -> tuple[View, ...]:
    """The views with only their newest frame each (what the report's mosaic draws), so that
    a result does not hold every frame of its window.
    """
    return tuple(dataclasses.replace(view, frames=view.frames[-1:]) for view in views)


@dataclasses.dataclass
class SourceSummary:
    """What a run read from one recording."""

    description: dict[str, Any]
    frames: int = 0
    first_offset: float | None = None
    last_offset: float | None = None
    image_sizes: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    window: dict[str, int] = dataclasses.field(default_factory=dict)
    decode_errors: int = 0
    first_decode_error: str = ''
    error: str = ''
    stamps: str = 'header'
    """Which time the window sorted frames by: 'header' stamps, or 'log' time when the header
    stamps did not advance."""
    note: str = ''
    """Said once per source: why the stamps were replaced."""
    depth: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The depth and CameraInfo topics read for lifting answers, with their message counts."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {**self.description, 'frames': self.frames, 'first_offset': self.first_offset,
                'last_offset': self.last_offset,
                'image_sizes': [list(size) for size in sorted(self.image_sizes)],
                'window': self.window, 'decode_errors': self.decode_errors,
                'first_decode_error': self.first_decode_error, 'error': self.error,
                'stamps': self.stamps, 'note': self.note,
                **({'depth': self.depth} if self.depth else {})}


@dataclasses.dataclass
class RunResult:
    """Everything a report needs from a run."""

    question_set: QuestionSet
    results: list[ItemResult]
    """One per item, in question-set order."""
    sources: list[SourceSummary]
    model: dict[str, Any]
    settings: dict[str, Any]
    interrupted: bool = False
    live: bool = False
    wall_time: float = 0.0
    shard: Any = None
    """The Shard (evaluation/shards.py) the run asked, None for the whole question set."""
    monitors: list[Any] = dataclasses.field(default_factory=list)
    """The replayed monitors of the set (MonitorRun, evaluation/monitor_replay.py)."""
    monitors_skipped: str = ''
    """Why the set's monitors were not replayed ('' when they were, or there are none)."""


__all__ = ['ANSWERED', 'ERROR', 'ItemResult', 'newest_frames', 'NOT_RUN', 'RunResult',
           'SourceSummary', 'ViewRecord']
