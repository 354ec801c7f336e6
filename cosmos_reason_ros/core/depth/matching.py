"""Depth frames matched to kept colour frames by header stamp, decided before any conversion.

The nearest depth stamp within a tolerance of a colour frame's stamp is its match, as
message_filters' approximate-time policy pairs two streams. A depth frame is stored (still
unconverted) only when it can match a colour frame the window kept, or one it may still keep;
every other frame costs a stamp comparison, and DepthMatcher.wanted_stamps() gives the same
rule to a middleware filter so that such frames are not delivered at all.
"""

import bisect
import collections
import dataclasses
import enum
import math
import threading
from typing import Any

from cosmos_reason_ros.core.camera.frames import StampBounds

LEAD_FLOOR = 1e-4
"""Seconds a depth frame may be stamped before its colour frame beyond what recent matches
showed, when they all showed the same offset (a driver's rounding of one capture's stamp).
Small on purpose: a camera whose frames fall just after a slot boundary has its previous
depth frame within the lead of every other slot (the colour bound's own 1 ms margin is there
already)."""
OFFSET_HISTORY = 16
"""Matches whose depth-minus-colour offsets set the lead (about 4 s at a 4 fps window); half
as many are needed before the lead is narrower than the tolerance."""


class DepthOffer(enum.Enum):
    """What DepthMatcher.offer_depth() did with a depth frame."""

    MATCHED = 'matched'
    """Stored as the nearest depth of a kept colour frame."""
    PENDING = 'pending'
    """Held: a colour frame the window may still keep could match it."""
    SKIPPED = 'skipped'
    """No kept colour frame, present or future, can match it (or a nearer one already did)."""
    INVALID = 'invalid'
    """The stamp is not a finite number."""


@dataclasses.dataclass(frozen=True)
class DepthMatch:
    """The depth frame matched to a colour frame."""

    stamp: float
    payload: Any


class DepthMatcher:
    """Pairs depth frames with the colour frames a FrameWindow keeps.

    Call colour_kept() for each colour frame the window stores, offer_depth() for each depth
    frame (with the stamps the window can still keep), and match() when an answer
    needs the depth of a frame. A goal hold()s the colour frame it answers about, so that its
    depth outlives the capacity while the model works, and release()s it after lifting.
    Thread-safe.
    """

    def __init__(self, tolerance: float, capacity: int, *, rewind_threshold: float = 0.5,
                 max_pending: int = 8):
        """Create an empty matcher.

        Args:
            tolerance: largest |depth stamp - colour stamp| (s) of a match.
            capacity: colour frames remembered (the window's capacity).
            rewind_threshold: a colour or depth stamp this far (s) behind the newest one is a
                new timeline (bag loop, simulation reset): older matches are forgotten.
            max_pending: depth frames held for colour frames not kept yet.

        Raises:
            ValueError: a setting out of range.
        """
        if not (tolerance >= 0 and math.isfinite(tolerance)) or capacity < 1 or max_pending < 1:
            raise ValueError(f'depth matching needs tolerance >= 0, capacity >= 1 and '
                             f'max_pending >= 1, got {tolerance}, {capacity}, {max_pending}')
        self._tolerance = tolerance
        self._capacity = capacity
        self._rewind = rewind_threshold
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._colour: list[float] = []  # kept colour stamps, ascending
        self._matches: dict[float, DepthMatch] = {}
        self._pending: list[tuple[float, Any]] = []
        self._newest_depth: float | None = None
        self._holds: collections.Counter[float] = collections.Counter()
        self._held: dict[float, DepthMatch] = {}  # matches of held frames past the capacity
        self.skipped = 0
        """Depth frames not stored (counted for diagnostics)."""

    def colour_kept(self, stamp: float) -> None:
        """A colour frame was stored by the window: pair it with a held depth frame."""
        with self._lock:
            if self._colour and stamp < self._colour[-1] - self._rewind:
                # The window rewound: its old frames are gone, but for those a goal holds.
                for colour in self._colour:
                    self._let_go(colour)
                self._colour.clear()
            if self._colour and stamp <= self._colour[-1]:
                return
            self._colour.append(stamp)
            while len(self._colour) > self._capacity:
                self._let_go(self._colour.pop(0))
            best = self._nearest(stamp, (entry[0] for entry in self._pending))
            if best is not None:
                self._matches[stamp] = DepthMatch(*self._pending[best])
                self._changed.notify_all()
            # Held frames too old for any later colour frame will never match.
            self._pending = [entry for entry in self._pending
                             if entry[0] >= stamp - self._tolerance]

    def wanted_stamps(self, colour_wanted: StampBounds | None) -> StampBounds | None:
        """The depth stamps that can still match a kept colour frame: bounds for a stamp filter.

        The next colour frame to be kept has a stamp at or after colour_wanted.at_least, unknown
        until it arrives; its depth can be stamped up to the *lead* before it. The lead is the
        tolerance until OFFSET_HISTORY / 2 matches are seen; then how far before its colour the
        earliest depth of the last OFFSET_HISTORY matches was stamped, plus their spread (at
        least LEAD_FLOOR), never more than the tolerance. With one stamp per capture that lets
        through one depth frame per kept colour frame, not also the one before it whenever that
        is within the tolerance of the slot (at 30 fps and a 20 ms tolerance, 6 slots in 10).
        Stamps below the newest kept colour frame plus the tolerance pass too: its depth
        arriving after it, late frames, a rewind.

        Args:
            colour_wanted: the colour window's wanted_stamps(), None while it keeps any frame.

        Returns:
            The bounds, or None while every stamp is wanted.
        """
        if colour_wanted is None:
            return None
        with self._lock:
            lead = self._lead()
            newest = self._colour[-1] if self._colour else None
        below = colour_wanted.below if newest is None else newest + self._tolerance
        return StampBounds(at_least=colour_wanted.at_least - lead, below=below)

    def _lead(self) -> float:
        """How far (s) before its colour frame a depth frame is stamped; lock held."""
        # The newest colour frame's match may still be improved by depth on its way.
        settled = self._colour[-OFFSET_HISTORY - 1:-1]
        offsets = [self._matches[stamp].stamp - stamp for stamp in settled
                   if stamp in self._matches]
        if len(offsets) < OFFSET_HISTORY // 2:
            return self._tolerance
        earliest, spread = min(offsets), max(offsets) - min(offsets)
        return min(self._tolerance, max(0.0, -earliest) + max(LEAD_FLOOR, spread))

    def offer_depth(self, stamp: float, payload: Any, *,
                    colour_wanted: StampBounds | None) -> DepthOffer:
        """Offer a depth frame; it is stored only if it can match a kept colour frame.

        Args:
            stamp: header stamp (s).
            payload: what match() returns for it (the raw message: nothing is converted).
            colour_wanted: the stamps the colour window can still keep (its
                wanted_stamps()), None while it keeps any.
        """
        if not math.isfinite(stamp):
            return DepthOffer.INVALID
        with self._lock:
            newest = self._newest_depth
            if newest is not None and stamp < newest - self._rewind:
                self._pending.clear()  # a new depth timeline: held frames are from the old
                newest = None
            self._newest_depth = stamp if newest is None else max(newest, stamp)
            outcome = DepthOffer.SKIPPED
            low = bisect.bisect_left(self._colour, stamp - self._tolerance)
            high = bisect.bisect_right(self._colour, stamp + self._tolerance)
            for colour in self._colour[low:high]:
                current = self._matches.get(colour)
                if current is None or abs(stamp - colour) < abs(current.stamp - colour):
                    self._matches[colour] = DepthMatch(stamp, payload)
                    outcome = DepthOffer.MATCHED
            if colour_wanted is None or stamp + self._lead() >= colour_wanted.at_least or \
                    stamp - self._tolerance < colour_wanted.below:
                self._pending.append((stamp, payload))
                del self._pending[:-self._max_pending]
                if outcome is DepthOffer.SKIPPED:
                    outcome = DepthOffer.PENDING
            if outcome is DepthOffer.SKIPPED:
                self.skipped += 1
            else:
                self._changed.notify_all()
            return outcome

    def hold(self, stamp: float) -> None:
        """Keep the depth of the colour frame of this stamp past the capacity until release():
        a goal answers about it and lifts its answer when the model is done, by when newer
        frames may have pushed it out.
        """
        with self._lock:
            self._holds[stamp] += 1

    def release(self, stamp: float) -> None:
        """Undo one hold() of this stamp; its depth goes once no hold remains."""
        with self._lock:
            if self._holds[stamp] <= 1:
                del self._holds[stamp]
                self._held.pop(stamp, None)
            else:
                self._holds[stamp] -= 1

    def forgot(self, stamp: float) -> bool:
        """Whether a colour frame of this stamp is older than the `capacity` newest kept ones,
        whose depth this matcher holds (its depth, if any, was let go), and no goal held it.
        """
        with self._lock:
            return (stamp not in self._held and len(self._colour) >= self._capacity
                    and stamp < self._colour[0])

    def match(self, stamp: float, timeout: float = 0.0) -> DepthMatch | None:
        """The depth frame matched to the colour frame of this stamp, None when none is.

        Args:
            stamp: the colour frame's stamp (a stamp never kept, as a goal image's, gets the
                nearest depth frame held within the tolerance).
            timeout: seconds to wait for a depth frame still on its way (a depth stream is
                often a few milliseconds behind its colour stream).
        """
        with self._changed:
            found = self._find(stamp)
            if found is None and timeout > 0:
                self._changed.wait_for(lambda: self._find(stamp) is not None, timeout)
                found = self._find(stamp)
            return found

    def _find(self, stamp: float) -> DepthMatch | None:
        found = self._matches.get(stamp) or self._held.get(stamp)
        if found is not None:
            return found
        candidates = [*self._matches.values(), *(DepthMatch(*entry) for entry in self._pending)]
        best = self._nearest(stamp, (candidate.stamp for candidate in candidates))
        return None if best is None else candidates[best]

    def clear(self) -> None:
        """Forget everything (the node deactivated)."""
        with self._lock:
            self._colour.clear()
            self._matches.clear()
            self._pending.clear()
            self._newest_depth = None
            self._holds.clear()
            self._held.clear()

    def _let_go(self, colour: float) -> None:
        """Forget a colour frame's match, keeping it aside while a goal holds it; lock held."""
        match = self._matches.pop(colour, None)
        if match is not None and colour in self._holds:
            self._held[colour] = match

    def _nearest(self, stamp: float, stamps) -> int | None:
        best, best_gap = None, self._tolerance
        for index, candidate in enumerate(stamps):
            gap = abs(candidate - stamp)
            if gap <= best_gap:
                best, best_gap = index, gap
        return best


__all__ = ['DepthMatch', 'DepthMatcher', 'DepthOffer', 'LEAD_FLOOR', 'OFFSET_HISTORY']
