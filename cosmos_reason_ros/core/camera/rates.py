"""Is the camera stream arriving whole? Received frame rate against the rate the stamps show.

Frames lost in transport (e.g. raw frames larger than Fast DDS's shared-memory segments) leave
gaps in the stamps: the frames that do arrive still show the camera's own spacing where two of
them are consecutive. The lower quartile of the gaps between received stamps therefore
estimates the camera period even when most frames are lost, and is robust to a few bunched
stamps from a jittery publisher.
"""

import collections
import dataclasses
import threading

import numpy as np

LOSS_RATIO = 0.5
"""Received below this fraction of the stamps' rate counts as frames lost."""
MIN_FRAMES = 8
"""Fewer frames in the horizon say nothing."""
PERCENTILE = 10


@dataclasses.dataclass(frozen=True)
class StreamRate:
    """Frames per second received (wall clock) and shown by the stamps, over the horizon."""

    received_hz: float
    stamps_hz: float | None
    """None while too few frames arrived to tell."""

    @property
    def losing_frames(self) -> bool:
        """Whether far fewer frames arrive than the stamps say were sent."""
        return self.stamps_hz is not None and self.received_hz < LOSS_RATIO * self.stamps_hz


class StreamRateMeter:
    """Remembers (wall time, stamp) of the frames received in the last `horizon` seconds.

    Thread-safe: frames are added from the subscription, the rate read from diagnostics.
    """

    def __init__(self, horizon: float = 10.0):
        self._horizon = horizon
        self._lock = threading.Lock()
        self._frames: collections.deque[tuple[float, float]] = collections.deque()
        self._since: float | None = None

    def add(self, wall_time: float, stamp: float) -> None:
        """Record one received frame: when it arrived and its header stamp (seconds)."""
        with self._lock:
            if self._since is None:
                self._since = wall_time
            self._frames.append((wall_time, stamp))
            self._forget(wall_time)

    def clear(self) -> None:
        """Forget every frame (the subscription stopped)."""
        with self._lock:
            self._frames.clear()
            self._since = None

    def rate(self, now: float) -> StreamRate:
        """The rates over the horizon ending at wall time `now`."""
        with self._lock:
            self._forget(now)
            frames = list(self._frames)
            since = self._since
        if not frames or since is None:
            return StreamRate(0.0, None)
        # Right after the first frame the horizon is not full yet: count over what elapsed.
        elapsed = min(self._horizon, now - since)
        if elapsed < 1.0:
            return StreamRate(len(frames) / max(elapsed, 1e-3), None)
        received = len(frames) / elapsed
        stamps = np.sort(np.array([stamp for _, stamp in frames]))
        gaps = np.diff(stamps)
        gaps = gaps[gaps > 0]
        if len(frames) < MIN_FRAMES or len(gaps) == 0:
            return StreamRate(received, None)
        return StreamRate(received, float(1.0 / np.percentile(gaps, PERCENTILE)))

    def _forget(self, now: float) -> None:
        while self._frames and self._frames[0][0] < now - self._horizon:
            self._frames.popleft()


__all__ = ['LOSS_RATIO', 'StreamRate', 'StreamRateMeter']
