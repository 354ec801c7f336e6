"""The Cosmos-Reason1 benchmark layout read as a question set: multiple-choice items about whole
clips, one group per dataset.

This reads NVIDIA's files; protocols.Reason1Benchmark reproduces NVIDIA's procedure for asking
and scoring these items (prompt, sampling, answer extraction). Items read here follow the
node's own prompts unless the run names that protocol.
"""

import json
import math
import pathlib
from typing import Any

from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.prompts import MAX_CHOICES
from cosmos_reason_ros.core.evaluation.questions import (
    AskTime,
    Expected,
    QuestionItem,
    QuestionSet,
    QuestionSetError,
)

BENCHMARK_SUFFIX = '_benchmark_qa_pairs'
"""Reason1 benchmark files are named `<dataset>_benchmark_qa_pairs.json`."""
BENCHMARK_FORMAT = 'cosmos_reason1_benchmark'
"""QuestionSet.format of the question sets read here."""


def load_benchmark(path: str | pathlib.Path, *, media_root: str | pathlib.Path | None = None,
                   text: str | None = None) -> QuestionSet:
    """Load the Cosmos-Reason1 benchmark layout as multiple-choice items about whole clips.

    The file is a JSON list (or JSON lines) of entries `{"video": "clips/x.mp4", "qa_pairs":
    {"question": ..., "index2ans": {"A": ..., "B": ...}, "answer": "A"}}`; `qa_pairs` may also
    be a list of such objects, and `correct_answer` may stand for `answer`. Each question is
    asked at the end of its clip about all of it.

    Args:
        path: the benchmark file, e.g. `robovqa_benchmark_qa_pairs.json`.
        media_root: folder the `video` paths are relative to (default: the file's folder).
        text: the file's content when already read.

    Raises:
        QuestionSetError: unreadable JSON or entries that do not validate (all are listed).
    """
    path = pathlib.Path(path)
    if text is None:
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as error:
            raise QuestionSetError(f"cannot read benchmark file '{path}': {error}") from None
    entries = _benchmark_entries(path, text)
    root = pathlib.Path(media_root) if media_root is not None else path.parent
    group = benchmark_dataset(path)
    problems: list[str] = []
    items: list[QuestionItem] = []
    used: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        label = f'entry {number}'
        if not isinstance(entry, dict) or not isinstance(entry.get('video'), str):
            problems.append(f"{label}: needs a 'video' path and 'qa_pairs'")
            continue
        video = entry['video']
        pairs = entry.get('qa_pairs')
        pairs = pairs if isinstance(pairs, list) else [pairs]
        for pair_index, pair in enumerate(pairs):
            item_id = f'{pathlib.PurePosixPath(video).stem}#{pair_index}'
            # Two entries for one video would share ids and collapse in `compare`.
            used[item_id] = used.get(item_id, 0) + 1
            if used[item_id] > 1:
                item_id = f'{item_id}-{used[item_id]}'
            item, problem = _benchmark_item(pair, item_id, str((root / video).resolve()), group)
            if problem:
                problems.append(f'{label} ({video}), question {pair_index}: {problem}')
            elif item is not None:
                items.append(item)
    if not items and not problems:
        problems.append('holds no questions')
    if problems:
        raise QuestionSetError.listing(path, problems)
    return QuestionSet(name=path.stem, path=str(path), items=tuple(items),
                       format=BENCHMARK_FORMAT)


def _benchmark_entries(path: pathlib.Path, text: str) -> list:
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise QuestionSetError(
                f"'{path}' is neither JSON nor JSON lines: {error}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise QuestionSetError(f"'{path}' must hold a list of benchmark entries")
    return data


def benchmark_dataset(path: str | pathlib.Path) -> str:
    """The dataset a benchmark file is about: 'av' for 'av_benchmark_qa_pairs.json'."""
    stem = pathlib.Path(path).stem
    return stem[:-len(BENCHMARK_SUFFIX)] if stem.endswith(BENCHMARK_SUFFIX) else stem


def find_benchmark_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """The `<dataset>/<dataset>_benchmark_qa_pairs.json` files of a Reason1 benchmark folder
    (sorted by dataset; the folder itself may be one dataset's folder).
    """
    folder = pathlib.Path(folder)
    found = [folder / f'{folder.name}{BENCHMARK_SUFFIX}.json']
    found += [child / f'{child.name}{BENCHMARK_SUFFIX}.json'
              for child in sorted(folder.iterdir()) if child.is_dir()] if folder.is_dir() else []
    return [path for path in found if path.is_file()]


def load_benchmark_folder(folder: str | pathlib.Path) -> QuestionSet:
    """Every dataset of a Reason1 benchmark folder (`DATA/<dataset>/<dataset>_benchmark_qa_
    pairs.json`, clips beside each file) as one question set, each item in its dataset's group.

    Raises:
        QuestionSetError: no benchmark file in the folder, or files that do not validate.
    """
    folder = pathlib.Path(folder).expanduser().resolve()
    files = find_benchmark_files(folder)
    if not files:
        raise QuestionSetError(
            f"'{folder}' holds no Reason1 benchmark: expected "
            f'<dataset>/<dataset>{BENCHMARK_SUFFIX}.json files (e.g. av/av{BENCHMARK_SUFFIX}'
            ".json) with their clips/ folders, as NVIDIA's download unpacks them")
    items: list[QuestionItem] = []
    for path in files:
        items += load_benchmark(path).items
    return QuestionSet(name=folder.name, path=str(folder), items=tuple(items),
                       format=BENCHMARK_FORMAT)


def _benchmark_item(pair: Any, item_id: str, video: str,
                    group: str = '') -> tuple[QuestionItem | None, str]:
    if not isinstance(pair, dict):
        return None, "qa_pairs must be an object with 'question', 'index2ans' and 'answer'"
    question = str(pair.get('question') or '').strip()
    options = pair.get('index2ans')
    answer = str(pair.get('answer', pair.get('correct_answer')) or '').strip()
    if not question or not isinstance(options, dict) or not 2 <= len(options) <= MAX_CHOICES:
        return None, f"needs 'question' and 'index2ans' with 2 to {MAX_CHOICES} options"
    keys = [str(key) for key in options]
    # NVIDIA's evaluator compares answers with the key ignoring case.
    matching = [index for index, key in enumerate(keys) if key.lower() == answer.lower()]
    if len(matching) != 1:
        return None, f'answer {answer!r} is not one of the index2ans keys {keys}'
    letter = chr(ord('A') + matching[0])
    item = QuestionItem(
        id=item_id, source=video, topic='', time=AskTime(at_end=True),
        mode=Mode.MULTIPLE_CHOICE, task=question,
        choices=tuple(str(text) for text in options.values()), window_duration=math.inf,
        expected=Expected(choice=letter), group=group, choice_labels=tuple(keys))
    return item, ''


__all__ = ['BENCHMARK_FORMAT', 'BENCHMARK_SUFFIX', 'benchmark_dataset', 'find_benchmark_files',
           'load_benchmark', 'load_benchmark_folder']
