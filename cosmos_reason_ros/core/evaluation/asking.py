"""How an item is asked, the same offline and live: the run's settings, whether its time can be
asked, why its newest frame is too old, and what history its window held.
"""

from collections.abc import Callable, Sequence
import dataclasses
import math
from typing import Any

from cosmos_reason_ros.core.camera.views import DEFAULT_SYNC_TOLERANCE
from cosmos_reason_ros.core.config import GoalDefaults, GoalLimits, WindowConfig
from cosmos_reason_ros.core.errors import Failure
from cosmos_reason_ros.core.evaluation.depth_track import DepthSettings
from cosmos_reason_ros.core.evaluation.protocols import Reason1Benchmark
from cosmos_reason_ros.core.evaluation.questions import QuestionItem

TIME_EPSILON = 1e-6
"""Seconds within which two bag times count as equal: stamps near 1.7e9 s carry float error."""
BYTES_PER_PIXEL = 3


@dataclasses.dataclass(frozen=True)
class ReplaySettings:
    """How a run feeds and asks: the node's window and goal defaults, and the decoding."""

    window: WindowConfig = WindowConfig()
    goals: GoalDefaults = GoalDefaults()
    greedy: bool = True
    """Greedy decoding: the same recording and questions give the same answers."""
    seed: int | None = None
    """Sampler seed when greedy is off."""
    window_memory_mib: float = 1024.0
    """Offline, the window grows to hold what the items ask for (a whole clip for `all`), up to
    this much memory for its stored frames; an item asking for more is marked truncated."""
    frame_age_warning: float = 0.5
    """Answered items whose newest frame is older than this (seconds before the asking time)
    are flagged in the report; beyond max_frame_age they are not asked at all."""
    protocol: Reason1Benchmark | None = None
    """A published procedure to follow instead of the node's prompts (benchmark items)."""
    depth: DepthSettings = DepthSettings()
    """How items with a depth topic are lifted into 3D (the node's depth.* parameters)."""
    item_timeout: float = GoalLimits.time_limit
    """Seconds an item's generation may take before it is stopped and recorded as failed (the
    run goes on); 0 or less: no deadline."""
    sync_tolerance: float = DEFAULT_SYNC_TOLERANCE
    """Items over several cameras: seconds a view's frame may lie from a slot time (the node's
    cameras.sync_tolerance)."""

    @property
    def end_tolerance(self) -> float:
        """An item this many seconds after the last frame still counts as asked at the end."""
        return 1.0 / self.window.target_fps

    @property
    def frame_bound(self) -> int:
        """Most frames the offline window may hold: window_memory_mib of stored frames."""
        frame_bytes = self.window.max_pixels * BYTES_PER_PIXEL
        return max(1, int(self.window_memory_mib * 2**20 // frame_bytes))

    def sized_window(self, items: Sequence[QuestionItem]) -> WindowConfig:
        """The node's window, stretched to hold the longest history the items ask for, up to
        frame_bound frames; never smaller than the node's own.
        """
        window = self.window
        longest = max((item.window_duration or self.goals.window_duration for item in items),
                      default=0.0)
        wanted = (self.frame_bound if math.isinf(longest)
                  else math.ceil(longest * window.target_fps) + 1)
        return dataclasses.replace(
            window, capacity=max(window.capacity, min(wanted, self.frame_bound)),
            max_duration=max(window.max_duration, longest))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings for the report."""
        window = dataclasses.asdict(self.window)
        window.pop('source')
        return {'window': window, 'goals': dataclasses.asdict(self.goals),
                'greedy': self.greedy, 'seed': self.seed,
                'window_bound': {'memory_mib': self.window_memory_mib,
                                 'frames': self.frame_bound},
                'frame_age_warning': self.frame_age_warning,
                'protocol': self.protocol.to_dict() if self.protocol else None,
                'depth': self.depth.to_dict(), 'item_timeout': self.item_timeout,
                'sync_tolerance': self.sync_tolerance}


def check_ask_time(bag_time: float, *, first: float | None, newest: float | None, ended: bool,
                   settings: ReplaySettings, topic: str, start: float
                   ) -> tuple[Failure | None, str]:
    """Whether an item can be asked at bag_time; shared by the offline and live runs.

    Args:
        bag_time: when the item asks (bag clock, seconds).
        first: bag time of the first frame of the source (None: no frame at all).
        newest: bag time of the newest frame at or before bag_time (None: none yet).
        ended: no frame follows `newest` (the item is at or past the end of the source).
        settings: the end tolerance and the largest gap (the node's max_frame_age).
        topic: name of the frame source, for the message.
        start: start of the source, for offsets in the message.

    Returns:
        (None, '') when the item can be asked, else (the failure, its message).
    """
    name = f"'{topic}'" if topic else 'the clip'
    if first is None:
        return Failure.NO_FRAMES, f'{name} holds no frames'
    if newest is None or bag_time < first - TIME_EPSILON:
        return Failure.BEFORE_START, (
            f'asks at {bag_time - start:.3f} s, before the first frame on {name} at '
            f'{first - start:.3f} s: move it later')
    if ended and bag_time - newest > settings.end_tolerance:
        return Failure.AFTER_END, (
            f'asks at {bag_time - start:.3f} s, after the end of the recording: the last frame '
            f'on {name} is at {newest - start:.3f} s')
    if bag_time - newest > settings.goals.max_frame_age:
        return Failure.STALE_FRAMES, (
            f'asks at {bag_time - start:.3f} s, but the newest frame on {name} is from '
            f'{newest - start:.3f} s, more than max_frame_age ({settings.goals.max_frame_age:g} '
            's) earlier: the recording has a gap there')
    return None, ''


def stale_frame_message(bag_time: float, frame_age: float, stamp: float, *, start: float,
                        max_age: float) -> str:
    """Why an item was not asked: the newest frame the model would get is too old; quotes it."""
    return (f'asks at {bag_time - start:.3f} s, but the newest frame the model would get is '
            f'from {bag_time - frame_age - start:.3f} s (stamp {stamp:.3f}), {frame_age:.2f} s '
            f'earlier: more than max_frame_age ({max_age:g} s); the frames after it were '
            'skipped or undecodable')


def window_facts(kept: Sequence[float], window_end: float, duration: float, *,
                 window: WindowConfig, max_frames: int, seen: int,
                 offset_of: Callable[[float], float], hint: str) -> dict[str, Any]:
    """What history an item asked for and what a window with these bounds could give it.

    Args:
        kept: stamps a window at this rate kept since it was last cleared, oldest first, up to
            and including window_end (as if it had no bounds).
        window_end: the stamp the item's window ends at (the newest kept frame).
        duration: the seconds of history the item asks for (inf: all of it).
        window: the bounds (capacity, max_duration) of the window that served it.
        max_frames: the most frames the item sends; more are subsampled evenly.
        seen: the frames the model got.
        offset_of: a stamp's time in seconds from the start of the source, for the note.
        hint: what to raise to hold more, for the note.

    Returns:
        duration, max_frames, frames_in_range (what an unbounded window would hold),
        frames_held, frames_seen, the bound, and `truncated` with a note saying what was seen.
    """
    upto = [stamp for stamp in kept if stamp <= window_end + TIME_EPSILON]
    in_range = [stamp for stamp in upto if stamp > window_end - duration]
    # The window drops frames beyond its capacity and older than max_duration before its newest.
    held = [stamp for stamp in upto[-window.capacity:]
            if stamp >= window_end - window.max_duration and stamp > window_end - duration]
    facts: dict[str, Any] = {
        'duration': 'all' if math.isinf(duration) else duration, 'max_frames': max_frames,
        'frames_in_range': len(in_range), 'frames_held': len(held), 'frames_seen': seen,
        'bound': {'frames': window.capacity,
                  'seconds': None if math.isinf(window.max_duration) else window.max_duration},
        'truncated': len(held) < len(in_range), 'note': ''}
    if facts['truncated'] and held:
        facts['note'] = (
            f'truncated: the window held {len(held)} of the {len(in_range)} frames this item '
            f'asks for (bound {window.capacity} frames'
            f"{'' if math.isinf(window.max_duration) else f', {window.max_duration:g} s'}; "
            f'{hint}), so '
            f'the model saw from {offset_of(held[0]):.3f} s, not from '
            f'{offset_of(in_range[0]):.3f} s')
    return facts


__all__ = ['ReplaySettings', 'TIME_EPSILON', 'check_ask_time', 'stale_frame_message',
           'window_facts']
