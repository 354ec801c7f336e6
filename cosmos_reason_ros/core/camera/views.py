"""Several cameras on one clock: a frame window per camera, and views synchronised by stamp.

Each camera keeps its own FrameWindow (same decide-by-stamp ingest, own size). A goal over
several cameras samples every view at the same instants: the reference view's frames set the
slot times, and every other view takes, per slot, its frame nearest that time within the sync
tolerance. A view without a frame near a slot is not shifted to another frame: the slot is
reported missing for that camera.
"""

import bisect
from collections.abc import Mapping, Sequence
import dataclasses
import re

from cosmos_reason_ros.core.camera.frames import Frame, FrameWindow
from cosmos_reason_ros.core.errors import InvalidRequestError, NoFramesError, StaleFramesError

DEFAULT_CAMERA = ''
"""The name of the one unnamed camera of a node configured without `cameras`."""

DEFAULT_SYNC_TOLERANCE = 0.1
"""Seconds a view's frame may lie from a slot time and still stand for it (less than half the
250 ms slot at 4 fps, more than one frame period of a 15 fps camera)."""

_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_MAX_NAME_CHARS = 64


@dataclasses.dataclass(frozen=True)
class View:
    """One camera's frames for a goal."""

    name: str
    """The camera's name ('' for the one unnamed camera)."""
    frames: tuple[Frame, ...]
    """Oldest first; never empty."""
    missing: tuple[float, ...] = ()
    """Slot times (header stamps, seconds) at which this camera had no frame within the sync
    tolerance; those slots are left out of this view."""

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of this camera's image, which its coordinates refer to."""
        return self.frames[-1].source_size

    @property
    def label(self) -> str:
        """The name for messages: 'camera NAME', or 'the camera' for the unnamed one."""
        return f"camera '{self.name}'" if self.name else 'the camera'


def check_camera_names(names: Sequence[str]) -> tuple[str, ...]:
    """The configured camera names, checked; no names (or one empty name) is the one unnamed
    camera.

    Raises:
        ValueError: a name that is not a ROS name token (a letter, then letters, digits or
            underscores; at most 64 characters), or a name given twice.
    """
    names = tuple(names)
    if not names or names == (DEFAULT_CAMERA,):
        return (DEFAULT_CAMERA,)
    for index, name in enumerate(names):
        if not (isinstance(name, str) and _NAME.fullmatch(name)
                and len(name) <= _MAX_NAME_CHARS):
            raise ValueError(
                f'cameras[{index}] {name!r} is not a camera name: use a letter followed by '
                f'letters, digits or underscores (at most {_MAX_NAME_CHARS} characters), as '
                'it becomes a topic namespace')
        if name in names[:index]:
            raise ValueError(f"cameras[{index}] '{name}' repeats cameras[{names.index(name)}]")
    return names


class CameraWindows:
    """The frame windows of a node's cameras, in configuration order, and their synchronised
    selection. Thread-safe as the windows are.
    """

    def __init__(self, windows: Mapping[str, FrameWindow], *,
                 sync_tolerance: float = DEFAULT_SYNC_TOLERANCE):
        """Hold the windows.

        Args:
            windows: camera name -> its window, in configuration order; a single window under
                DEFAULT_CAMERA is the unnamed camera.
            sync_tolerance: seconds a view's frame may lie from a slot time (> 0).

        Raises:
            ValueError: no window, bad names, or a tolerance that is not positive.
        """
        if not windows:
            raise ValueError('CameraWindows needs at least one window')
        check_camera_names(list(windows))
        if not sync_tolerance > 0:
            raise ValueError(f'sync_tolerance must be > 0 seconds, got {sync_tolerance}')
        self._windows = dict(windows)
        self._sync_tolerance = float(sync_tolerance)

    @classmethod
    def single(cls, window: FrameWindow) -> 'CameraWindows':
        """The one unnamed camera."""
        return cls({DEFAULT_CAMERA: window})

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names in configuration order."""
        return tuple(self._windows)

    @property
    def sync_tolerance(self) -> float:
        """Seconds a view's frame may lie from a slot time."""
        return self._sync_tolerance

    def window(self, name: str = DEFAULT_CAMERA) -> FrameWindow:
        """The window of one camera (KeyError for an unknown name)."""
        return self._windows[name]

    def resolve(self, requested: Sequence[str], max_cameras: int) -> tuple[str, ...]:
        """The cameras a goal asks about, in the goal's order (empty: all, in configuration
        order).

        Raises:
            InvalidRequestError: an unknown or repeated name, or more views than max_cameras;
                the message lists the known cameras or the limit.
        """
        names = tuple(requested) or self.names
        known = ', '.join(f"'{name}'" for name in self.names if name) or 'one unnamed camera'
        for name in names:
            if name not in self._windows:
                raise InvalidRequestError(
                    f"unknown camera '{name}': this node has {known}; leave cameras empty for "
                    'all of them')
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InvalidRequestError(
                f"the goal names camera '{repeated[0]}' more than once: name each once")
        if len(names) > max_cameras:
            raise InvalidRequestError(
                f'the goal asks about {len(names)} cameras, more than goal.max_cameras '
                f'({max_cameras}): name fewer in the goal, or raise goal.max_cameras')
        return names

    def ready(self, names: Sequence[str], end: float | None) -> bool:
        """Whether every named camera holds a frame (at or after `end`, when given)."""
        for name in names:
            newest = self._windows[name].newest_stamp
            if newest is None or (end is not None and newest < end):
                return False
        return True

    def check_fresh(self, names: Sequence[str], now: float, max_age: float) -> None:
        """Fail if any named camera's newest frame is older than max_age at `now`.

        Raises:
            NoFramesError, StaleFramesError: naming the camera (with several).
        """
        for name in names:
            try:
                self._windows[name].check_fresh(now, max_age)
            except (NoFramesError, StaleFramesError) as error:
                raise type(error)(self._about(name, str(error))) from None

    def select(self, names: Sequence[str], *, end: float | None, duration: float,
               max_frames: int, even: bool) -> tuple[View, ...]:
        """The views a goal sends, in the order of `names`, sampled at the same instants.

        One camera: its window's selection, exactly as FrameWindow.select. Several: the window
        ends at `end` (None: the oldest of the cameras' newest frames, plus the tolerance, so
        every camera can have a frame at the last slot); the reference is the camera with the
        most frames in the window (the first named on a tie), whose selection sets the slot
        times; every other camera takes its nearest frame to each slot, within sync_tolerance,
        and each frame at most once. A slot a camera has no frame for is left out of that view
        and listed in View.missing; with `even`, a view left with an odd count > 1 also drops
        its oldest frame (Qwen3-VL pairs frames).

        Raises:
            InvalidRequestError: duration, max_frames or end out of range.
            NoFramesError: a camera has no frame (at or before `end`, or near any slot); the
                message names it.
        """
        if len(names) == 1:
            name = names[0]
            try:
                frames = self._windows[name].select(end=end, duration=duration,
                                                    max_frames=max_frames, even=even)
            except NoFramesError as error:
                raise NoFramesError(self._about(name, str(error))) from None
            return (View(name, tuple(frames)),)
        held = {name: self._windows[name].frames() for name in names}
        for name, frames in held.items():
            if not frames:
                self._windows[name].select(end=end, duration=duration, max_frames=max_frames,
                                           even=even)  # raises the window's own NoFramesError
        if end is None:
            end = min(frames[-1].stamp for frames in held.values()) + self._sync_tolerance

        def in_window(frames: list[Frame]) -> int:
            stamps = [frame.stamp for frame in frames]
            last = bisect.bisect_right(stamps, end)
            return last - bisect.bisect_right(stamps, end - duration - self._sync_tolerance)

        counts = [in_window(held[name]) for name in names]
        reference = names[counts.index(max(counts))]
        try:
            slots = self._windows[reference].select(end=end, duration=duration,
                                                    max_frames=max_frames, even=even)
        except NoFramesError as error:
            raise NoFramesError(self._about(reference, str(error))) from None
        views = []
        for name in names:
            if name == reference:
                views.append(View(name, tuple(slots)))
                continue
            view = self._match(name, held[name], slots, even)
            if not view.frames:
                raise NoFramesError(self._about(
                    name, f'no frame within {self._sync_tolerance:g} s of any of the '
                    f'{len(slots)} slot times (t={slots[0].stamp:.3f} to '
                    f'{slots[-1].stamp:.3f}) of the window: is the camera publishing, and do '
                    'its header stamps use the same clock? Raise cameras.sync_tolerance if it '
                    'lags'))
            views.append(view)
        return tuple(views)

    def snapshot(self) -> 'CameraWindows':
        """Windows holding the frames held now (see FrameWindow.snapshot)."""
        return CameraWindows({name: window.snapshot() for name, window in self._windows.items()},
                             sync_tolerance=self._sync_tolerance)

    def clear(self) -> None:
        """Drop every camera's frames."""
        for window in self._windows.values():
            window.clear()

    def _match(self, name: str, frames: list[Frame], slots: Sequence[Frame],
               even: bool) -> View:
        """The frames of `name` nearest each slot, within the tolerance, each used once."""
        stamps = [frame.stamp for frame in frames]
        chosen: list[Frame] = []
        missing: list[float] = []
        floor = -1  # index of the frame used last: later slots take later frames
        for slot in slots:
            at = bisect.bisect_left(stamps, slot.stamp)
            candidates = [i for i in (at - 1, at) if floor < i < len(frames)]
            best = min(candidates, key=lambda i: abs(stamps[i] - slot.stamp), default=None)
            if best is None or abs(stamps[best] - slot.stamp) > self._sync_tolerance:
                missing.append(slot.stamp)
                continue
            chosen.append(frames[best])
            floor = best
        if even and len(chosen) > 1 and len(chosen) % 2:
            chosen = chosen[1:]
        return View(name, tuple(chosen), tuple(missing))

    def _about(self, name: str, message: str) -> str:
        """A window's message, prefixed with its camera's name when the node has several."""
        return f"camera '{name}': {message}" if name else message


__all__ = [
    'DEFAULT_CAMERA', 'DEFAULT_SYNC_TOLERANCE', 'CameraWindows', 'View', 'check_camera_names',
]
