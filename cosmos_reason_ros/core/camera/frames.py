"""The frame window: camera frames sampled by header stamp, bounded, shared between threads.

The image callback offers every frame and only those kept are converted and downscaled; a goal
then selects the frames that end at a stamp.
"""

import bisect
import collections
from collections.abc import Callable, Sequence
import dataclasses
import enum
import math
import threading

import numpy as np

from cosmos_reason_ros.core.camera.images import DecodedImage, downscale
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.errors import InvalidRequestError, NoFramesError, StaleFramesError


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """One stored camera frame.

    Frames compare by identity (comparing pixel arrays is neither cheap nor well defined).
    Frames stored by FrameWindow hold a read-only image: copy it before drawing on it.
    """

    stamp: float
    """Header stamp in seconds (since the epoch, or sim time)."""
    image: np.ndarray
    """HxWx3 uint8 RGB, already downscaled to the window's pixel budget."""
    source_size: tuple[int, int]
    """(width, height) of the camera image as sent, before any downscaling."""
    frame_id: str = ''
    """Header frame_id of the camera message."""


STAMP_MARGIN = 1e-3
"""Seconds by which FrameWindow.wanted_stamps() widens its bounds (a float stamp near 1.7e9 s
is exact only to about 2e-7 s)."""


class Offer(enum.Enum):
    """What FrameWindow.offer() did with a frame."""

    KEPT = 'kept'
    """Stored."""
    SKIPPED = 'skipped'
    """Not needed at the target rate, or older than the newest frame (out of order)."""
    REWOUND = 'rewound'
    """The stamps jumped back by more than rewind_threshold, confirmed by a second frame: the
    window was cleared, this frame kept."""
    PENDING = 'pending'
    """The stamp jumped (back, or ahead by more than jump_threshold): nothing was converted
    and the window is unchanged until the next frame confirms the jump (counted as skipped)."""
    RESIZED = 'resized'
    """The camera image changed size: the window was cleared (frames of one size only), frame
    kept."""
    INVALID = 'invalid'
    """The stamp is not a finite number; nothing was converted."""


@dataclasses.dataclass(frozen=True)
class WindowStats:
    """Counters since the window was created, and what it holds now."""

    offered: int
    """Frames offered; always kept + skipped + invalid."""
    kept: int
    """Frames stored, REWOUND ones included."""
    skipped: int
    """Frames not stored: decimated, out of order, or overtaken while converting."""
    invalid: int
    """Frames with a non-finite stamp or whose conversion raised."""
    rewinds: int
    """Backwards jumps that cleared the window."""
    fill: int
    """Frames held now."""
    span: float
    """Seconds from the oldest to the newest frame held (0.0 with fewer than two)."""
    resizes: int = 0
    """Changes of the camera image size that cleared the window."""


@dataclasses.dataclass(frozen=True)
class StampBounds:
    """The stamps the window can still use: at_least and later, or earlier than below.

    A frame between the two is skipped whatever its content, so a middleware can filter it out
    before it reaches the process (see FrameWindow.wanted_stamps).
    """

    at_least: float
    """The next slot's first usable stamp (seconds)."""
    below: float
    """Stamps this far back are a rewind (bag loop, reset) and are kept (seconds)."""


@dataclasses.dataclass(frozen=True)
class Rewind:
    """A backwards jump of the header stamps (bag loop, simulation reset)."""

    previous: float
    """Newest stamp before the jump."""
    stamp: float
    """Stamp of the frame that jumped back and now starts the window."""


@dataclasses.dataclass(frozen=True)
class Resize:
    """A change of the camera image size (the window holds frames of one size only)."""

    previous: tuple[int, int]
    """(width, height) of the frames before."""
    size: tuple[int, int]
    """(width, height) of the frame that now starts the window."""


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A stamp that jumped, waiting for a second frame to confirm its new timeline."""

    stamp: float
    backwards: bool


class FrameWindow:
    """A ring buffer of camera frames kept at target_fps by header stamp.

    Sampling is slot-based: header-stamp time is cut into 1/target_fps slots and the first frame
    in each slot is kept, provided it comes at least half a period after the previously kept
    frame. The kept rate thus equals target_fps for any faster camera, whatever its jitter or
    exact rate, and a slower camera has all its frames kept.

    Jumps: a stamp more than rewind_threshold back, or more than jump_threshold ahead, is held
    as a candidate (Offer.PENDING, nothing converted); only when the next discontinuous frame
    follows it (later, within jump_threshold) is the jump real. A rewind then clears the window
    and offer() returns Offer.REWOUND exactly once per jump, so the image callback can log it
    once; `last_rewind` gives the stamps for the log line and `stats.rewinds` counts jumps. A
    frame that continues the window drops the candidate: one stray stamp (0, or a minute
    ahead) neither clears the window nor takes it over.

    Size changes: a frame whose source size differs from the newest frame's clears the window
    (Offer.RESIZED, `last_resize`), since a goal's frames must be of one size.

    All methods are thread-safe. The lock is never held while a frame is converted or
    downscaled, so a slow conversion does not block goals selecting frames.
    """

    def __init__(self, config: WindowConfig):
        """Create an empty window.

        Args:
            config: rate, bounds, pixel budget and source name.

        Raises:
            ValueError: a setting is out of range.
        """
        problems = [
            f'{name} must be {rule}, got {value}' for name, value, ok, rule in (
                ('target_fps', config.target_fps, config.target_fps > 0, '> 0'),
                ('capacity', config.capacity, config.capacity >= 1, '>= 1'),
                ('max_duration', config.max_duration, config.max_duration > 0, '> 0'),
                ('max_pixels', config.max_pixels, config.max_pixels >= 1, '>= 1'),
                ('rewind_threshold', config.rewind_threshold, config.rewind_threshold >= 0,
                 '>= 0'),
                ('jump_threshold', config.jump_threshold, config.jump_threshold > 0, '> 0'),
            ) if not ok]
        if problems:
            raise ValueError('invalid window settings: ' + '; '.join(problems))
        self._config = config
        self._min_spacing = 0.5 / config.target_fps
        self._lock = threading.Lock()
        self._frames: collections.deque[Frame] = collections.deque()
        self._offered = 0
        self._kept = 0
        self._skipped = 0
        self._invalid = 0
        self._rewinds = 0
        self._resizes = 0
        self._last_rewind: Rewind | None = None
        self._last_resize: Resize | None = None
        self._candidate: _Candidate | None = None

    @property
    def config(self) -> WindowConfig:
        """The settings the window was created with."""
        return self._config

    @property
    def newest_stamp(self) -> float | None:
        """Stamp of the newest frame held, or None when the window is empty."""
        with self._lock:
            return self._frames[-1].stamp if self._frames else None

    @property
    def last_rewind(self) -> Rewind | None:
        """The most recent backwards jump, or None if there was none."""
        with self._lock:
            return self._last_rewind

    @property
    def last_resize(self) -> Resize | None:
        """The most recent change of the camera image size, or None if there was none."""
        with self._lock:
            return self._last_resize

    @property
    def stats(self) -> WindowStats:
        """A consistent snapshot of the counters and the fill."""
        with self._lock:
            span = self._frames[-1].stamp - self._frames[0].stamp if self._frames else 0.0
            return WindowStats(
                offered=self._offered, kept=self._kept, skipped=self._skipped,
                invalid=self._invalid, rewinds=self._rewinds, fill=len(self._frames), span=span,
                resizes=self._resizes)

    def wants(self, stamp: float) -> bool:
        """Tell whether offer() would keep a frame with this stamp now (no side effects).

        Args:
            stamp: header stamp in seconds.

        Returns:
            True for a frame offer() would convert and store (KEPT or REWOUND).
        """
        with self._lock:
            return self._decide(stamp) in (Offer.KEPT, Offer.REWOUND)

    def wanted_stamps(self) -> StampBounds | None:
        """The stamps a frame needs for offer() to keep it now, widened by STAMP_MARGIN.

        Every stamp wants() accepts is at or after `at_least` or before `below`; the margin
        covers the rounding of stamps to seconds. A frame outside both is skipped. Frames that
        confirm a jump are inside the bounds too (a rewound one below, a forward one after).

        Returns:
            The bounds, or None while the window is empty (any frame is kept).
        """
        with self._lock:
            if not self._frames:
                return None
            newest = self._frames[-1].stamp
        fps = self._config.target_fps
        next_slot = (math.floor(newest * fps) + 1) / fps
        return StampBounds(
            at_least=max(next_slot, newest + self._min_spacing) - STAMP_MARGIN,
            below=newest - self._config.rewind_threshold + STAMP_MARGIN)

    def offer(self, stamp: float, convert: Callable[[], 'np.ndarray | DecodedImage'],
              frame_id: str = '') -> Offer:
        """Offer a camera frame; it is converted and stored only if the window keeps it.

        A conversion that raises does not use up the frame's slot: the next frame in the same
        slot is tried, so one corrupt frame costs no gap in the window.

        Args:
            stamp: header stamp in seconds.
            convert: returns the HxWx3 uint8 RGB image, at full size or as a DecodedImage that
                a decoder already reduced (its source_size is then the camera size); called only
                for kept frames, without the window's lock held.
            frame_id: header frame_id, stored with the frame.

        Returns:
            KEPT, REWOUND or RESIZED (window cleared first), SKIPPED, PENDING (a jump not yet
            confirmed), or INVALID (non-finite stamp).

        Raises:
            Exception: whatever convert() raised, or ValueError if it returned something other
                than an HxWx3 uint8 array; the frame is counted as invalid.
        """
        with self._lock:
            self._offered += 1
            decision = self._decide(stamp)
            if decision is Offer.PENDING:
                newest = self._frames[-1].stamp
                self._candidate = _Candidate(stamp, backwards=stamp < newest)
                self._skipped += 1
                return decision
            if decision is Offer.SKIPPED:
                self._skipped += 1
                return decision
            if decision is Offer.INVALID:
                self._invalid += 1
                return decision
        try:
            converted = convert()
            decoded = converted if isinstance(converted, DecodedImage) else None
            image = converted.image if decoded is not None else converted
            _check_rgb(image)
            source_size = (decoded.source_size if decoded is not None
                           else (image.shape[1], image.shape[0]))
            frame = Frame(stamp=stamp, image=_read_only(downscale(image, self._config.max_pixels)),
                          source_size=(int(source_size[0]), int(source_size[1])),
                          frame_id=frame_id)
        except Exception:
            with self._lock:
                self._invalid += 1
            raise
        with self._lock:
            # Another offer or clear() may have run while converting: decide again.
            decision = self._decide(stamp)
            if decision not in (Offer.KEPT, Offer.REWOUND):
                self._skipped += 1
                return Offer.SKIPPED
            self._candidate = None
            if decision is Offer.REWOUND:
                self._last_rewind = Rewind(previous=self._frames[-1].stamp, stamp=stamp)
                self._rewinds += 1
                self._frames.clear()
            elif self._frames and self._frames[-1].source_size != frame.source_size:
                self._last_resize = Resize(previous=self._frames[-1].source_size,
                                           size=frame.source_size)
                self._resizes += 1
                self._frames.clear()
                decision = Offer.RESIZED
            self._frames.append(frame)
            self._kept += 1
            self._evict()
            return decision

    def select(self, *, end: float | None, duration: float, max_frames: int,
               even: bool) -> list[Frame]:
        """Pick the frames a goal sends to the model.

        The frames are those in (end_frame.stamp - duration, end_frame.stamp], where end_frame
        is the newest frame at or before `end`. When there are more than max_frames, they are
        subsampled at an even stride counted back from the newest, which is always kept.

        Args:
            end: stamp (seconds) the selection ends at; None for the newest frame.
            duration: seconds of history, > 0.
            max_frames: most frames returned, >= 1.
            even: return an even count when more than one frame is returned (Qwen3-VL pairs
                frames into temporal patches); an odd count drops its oldest frame.

        Returns:
            Frames oldest first; never empty.

        Raises:
            InvalidRequestError: duration, max_frames or end out of range.
            NoFramesError: the window is empty, or holds no frame at or before `end`.
        """
        if not duration > 0 or max_frames < 1:
            raise InvalidRequestError(
                f'duration ({duration}) and max_frames ({max_frames}) must be positive')
        if end is not None and not math.isfinite(end):
            raise InvalidRequestError(f'window end must be a finite stamp, got {end}')
        with self._lock:
            frames = list(self._frames)
        if not frames:
            raise NoFramesError(self._no_frames_message())
        stamps = [frame.stamp for frame in frames]
        last = len(frames) - 1 if end is None else bisect.bisect_right(stamps, end) - 1
        if last < 0:
            raise NoFramesError(
                f"no frame on '{self._config.source}' at or before t={end:.3f}: the window "
                f'starts at t={stamps[0]:.3f} (it holds {self._config.max_duration:g} s)')
        first = bisect.bisect_right(stamps, stamps[last] - duration)
        chosen = frames[first:last + 1]
        chosen = spread(chosen, max_frames)
        if even and len(chosen) > 1 and len(chosen) % 2:
            chosen = chosen[1:]
        return chosen

    def frames(self) -> list[Frame]:
        """The frames held now, oldest first (a copy of the list; frames are shared)."""
        with self._lock:
            return list(self._frames)

    def snapshot(self) -> 'FrameWindow':
        """A window with these settings holding the frames held now (not the counters).

        The evaluation answers an item from a snapshot while the replay goes on offering later
        frames to this window; frames are shared (they are read-only), not copied.
        """
        copy = FrameWindow(self._config)
        with self._lock:
            copy._frames = collections.deque(self._frames)
        return copy

    def check_fresh(self, now: float, max_age: float) -> None:
        """Fail if the newest frame is older than max_age at time `now`.

        Args:
            now: current time on the clock the header stamps use (seconds).
            max_age: largest acceptable age of the newest frame (seconds).

        Raises:
            NoFramesError: the window is empty.
            StaleFramesError: the newest frame is too old.
        """
        newest = self.newest_stamp
        if newest is None:
            raise NoFramesError(self._no_frames_message())
        age = now - newest
        if age > max_age:
            raise StaleFramesError(
                f"the newest frame on '{self._config.source}' is {age:.2f} s old, more than "
                f'max_frame_age ({max_age:g} s): is the camera still publishing? If it is slow, '
                'raise max_frame_age; if the clocks differ, check use_sim_time')

    def clear(self) -> None:
        """Drop every frame held; the counters keep counting."""
        with self._lock:
            self._frames.clear()
            self._candidate = None

    def _decide(self, stamp: float) -> Offer:
        """Decide on a stamp; the lock is held."""
        if not math.isfinite(stamp):
            return Offer.INVALID
        if not self._frames:
            return Offer.KEPT
        newest = self._frames[-1].stamp
        backwards = newest - stamp > self._config.rewind_threshold
        if backwards or stamp - newest > self._config.jump_threshold:
            candidate = self._candidate
            if (candidate is not None and candidate.backwards == backwards
                    and 0 < stamp - candidate.stamp <= self._config.jump_threshold):
                return Offer.REWOUND if backwards else Offer.KEPT
            return Offer.PENDING
        if stamp <= newest:
            return Offer.SKIPPED
        fps = self._config.target_fps
        if math.floor(stamp * fps) <= math.floor(newest * fps):
            return Offer.SKIPPED
        if stamp - newest < self._min_spacing:
            return Offer.SKIPPED
        return Offer.KEPT

    def _evict(self) -> None:
        """Drop frames beyond capacity or max_duration before the newest; the lock is held."""
        while len(self._frames) > self._config.capacity:
            self._frames.popleft()
        oldest_allowed = self._frames[-1].stamp - self._config.max_duration
        while self._frames[0].stamp < oldest_allowed:
            self._frames.popleft()

    def _no_frames_message(self) -> str:
        return (f"no frame on '{self._config.source}' yet: is the camera publishing? "
                'check the remapping')


def spread(frames: Sequence[Frame], max_frames: int) -> list[Frame]:
    """At most max_frames of the frames (oldest first), at an even stride counted back from
    the newest, which is always kept.
    """
    if len(frames) <= max_frames:
        return list(frames)
    stride = len(frames) / max_frames
    newest = len(frames) - 1
    return [frames[newest - int(i * stride + 0.5)] for i in reversed(range(max_frames))]


def _check_rgb(image: object) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.size > 0):
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ValueError(
            f'convert() must return a non-empty HxWx3 uint8 RGB array, got {dtype} {shape}')


def _read_only(image: np.ndarray) -> np.ndarray:
    """Return a read-only view, so goals sharing a stored frame cannot change it."""
    view = image.view()
    view.flags.writeable = False
    return view


__all__ = [
    'STAMP_MARGIN', 'Frame', 'FrameWindow', 'Offer', 'Resize', 'Rewind', 'StampBounds',
    'WindowStats', 'spread',
]
