"""Slices of a question set for runs spread over machines, and the set's identity to check them.

Shard i of n (1-based) holds the items at 1-based positions p with (p - 1) mod n == i - 1: a rule
of the positions alone, so every machine cuts the same question set the same way.
"""

import dataclasses
import hashlib
import json
import pathlib
from typing import Any

from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.core.evaluation.questions import (
    expected_to_dict,
    item_settings,
    QuestionSet,
)


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, 1-based (as `--shard 1/3` .. `3/3`)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise InvalidRequestError(
                f'shard {self.index}/{self.count} does not exist: give i/n with 1 <= i <= n '
                '(shards count from 1, e.g. --shard 1/4 .. 4/4)')

    def holds(self, position: int) -> bool:
        """Whether the item at this 1-based position of the question set is in this shard."""
        return (position - 1) % self.count == self.index - 1

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form for the report."""
        return {'index': self.index, 'count': self.count}

    def __str__(self) -> str:
        return f'{self.index}/{self.count}'


def parse_shard(text: str) -> Shard:
    """`i/n` as a Shard.

    Raises:
        InvalidRequestError: not two whole numbers with 1 <= i <= n.
    """
    parts = text.split('/')
    try:
        index, count = (int(part) for part in parts)
    except ValueError:
        raise InvalidRequestError(
            f'--shard {text!r} is not i/n: give two whole numbers, e.g. --shard 2/4') from None
    return Shard(index, count)


def question_set_digest(questions: QuestionSet) -> str:
    """A hash of what the question set asks (ids, recordings by file name, topics, times,
    questions, expected answers), not of its path or formatting: the same set copied to
    another machine, or to another folder, has the same digest.
    """
    entries: list[Any] = [
        [item.id, pathlib.PurePath(item.source).name, item.topic, item.time.describe(),
         dict(item_settings(item)), expected_to_dict(item.expected)]
        for item in questions.items]
    text = json.dumps(entries, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = ['Shard', 'parse_shard', 'question_set_digest']
