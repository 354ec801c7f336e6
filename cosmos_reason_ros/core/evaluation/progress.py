"""Progress of an evaluation run: a callback per finished item, and a bar with an ETA."""

from collections.abc import Callable
import sys
import time
from typing import TextIO

from cosmos_reason_ros.core.evaluation.results import ANSWERED, ItemResult

ProgressCallback = Callable[[ItemResult, int, int], None]
"""Called after each item with (result, items done, items in total)."""


class ProgressBar:
    """A one-line progress bar with an ETA on a terminal (one line per item otherwise)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 24):
        """Write to `stream` (default: sys.stderr)."""
        self._stream = stream or sys.stderr
        self._width = width
        self._started = time.monotonic()
        self._tty = bool(getattr(self._stream, 'isatty', lambda: False)())

    def __call__(self, result: ItemResult, done: int, total: int) -> None:
        """Report one finished item; usable as a ProgressCallback."""
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (total - done) if done else 0.0
        filled = round(self._width * done / total) if total else self._width
        bar = '#' * filled + '.' * (self._width - filled)
        line = (f'[{bar}] {done}/{total} items, {_clock(elapsed)} elapsed, eta {_clock(eta)}: '
                f'{result.item.id} {_outcome(result)}')
        if self._tty:
            end = '\n' if done >= total else ''
            self._stream.write('\r' + line[:200].ljust(100) + end)
        else:
            self._stream.write(line + '\n')
        self._stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds + 0.5), 60)
    return f'{minutes}:{seconds:02d}'


def _outcome(result: ItemResult) -> str:
    if result.status != ANSWERED:
        return result.error_code or result.status
    correct = result.score.correct if result.score else None
    verdict = {True: 'right', False: 'wrong', None: 'answered'}[correct]
    status = result.parsed.status.name.lower() if result.parsed else ''
    return f'{verdict} (parse {status})'


__all__ = ['ProgressBar', 'ProgressCallback']
