"""Scores of one answer against its expected answer, and the summary of a run.

Pure functions: geometry in source pixels (or metres, for answers lifted into 3D), times in
seconds, no model and no files.
"""

from collections.abc import Callable, Iterable, Sequence
import dataclasses
import math
import re
from typing import Any

import numpy as np

from cosmos_reason_ros.core.answers.parsing import Box, Event, ParsedAnswer, Trajectory
from cosmos_reason_ros.core.depth.geometry import Lifted, LiftStatus
from cosmos_reason_ros.core.evaluation.questions import Expected, EXPECTED_3D, QuestionItem

Point = tuple[float, float]
Z_95 = 1.959963984540054
"""Standard normal quantile of a two-sided 95% interval."""
TRAJECTORY_SAMPLES = 20
"""Both paths are resampled to this many points, evenly spaced along their length, before the
mean distance is taken, so paths with different numbers of waypoints compare fairly."""


@dataclasses.dataclass(frozen=True)
class TrajectoryError:
    """How far a predicted path is from the expected one."""

    mean_px: float
    """Mean distance between the two paths resampled by arc length (pixels)."""
    final_px: float
    """Distance between the last points (pixels)."""
    mean_fraction: float
    """mean_px as a fraction of the image diagonal."""
    final_fraction: float
    """final_px as a fraction of the image diagonal."""


@dataclasses.dataclass(frozen=True)
class TrajectoryError3D:
    """How far a trajectory lifted into 3D is from the expected one, in metres."""

    mean_m: float
    """Mean distance between the two paths resampled by arc length (metres)."""
    final_m: float
    """Distance between the last points (metres)."""
    points: int
    """Points of the answer's path."""
    without_depth: int
    """Of them, points without a valid depth, left out of the path."""


@dataclasses.dataclass(frozen=True)
class CentreError3D:
    """How far the lifted boxes' centres are from the expected centres, in metres."""

    mean_m: float
    """For each expected centre the distance to the nearest lifted centre, averaged."""
    boxes: int
    """Boxes of the answer."""
    without_depth: int
    """Of them, boxes with too few valid depths to have a centre, left out."""


@dataclasses.dataclass(frozen=True)
class Score:
    """The verdict on one answer."""

    kind: str
    """What was compared: choice, verdict, trajectory, boxes, events, keywords."""
    correct: bool | None
    """None when the item has no expected answer."""
    trajectory: TrajectoryError | None = None
    iou: float | None = None
    """Boxes: mean over expected boxes of the best IoU with a predicted box; events: the same
    in time."""
    keyword_recall: float | None = None
    """Fraction of expected keywords found in the answer."""
    detail: str = ''
    """Why the answer is wrong, when that is not plain from the fields."""
    trajectory_3d: TrajectoryError3D | None = None
    centres_3d: CentreError3D | None = None
    correct_3d: bool | None = None
    """The answer in 3D alone (None when the item expects none); `correct` needs it too."""
    lift_status: str = ''
    """What became of lifting the answer (a LiftStatus name, lower case; '' when not lifted)."""


def image_diagonal(size: tuple[int, int]) -> float:
    """Length of the diagonal of a (width, height) image in pixels."""
    return math.hypot(size[0], size[1])


def resample_path(points: Sequence[Sequence[float]],
                  count: int = TRAJECTORY_SAMPLES) -> np.ndarray:
    """Points evenly spaced along a polyline, first and last included.

    Args:
        points: the polyline, at least one point, in 2D (pixels) or 3D (metres).
        count: number of points to return, >= 2.

    Returns:
        A (count, dimensions) float array; a single point (or a path of zero length) repeats
        it.

    Raises:
        ValueError: no points.
    """
    path = np.asarray(points, dtype=np.float64)
    if path.size == 0:
        raise ValueError('a path needs at least one point')
    path = path.reshape(len(path), -1)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] == 0:
        return np.repeat(path[:1], count, axis=0)
    targets = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(targets, along, path[:, axis])
                     for axis in range(path.shape[1])], axis=1)


def trajectory_error(predicted: Sequence[Point], expected: Sequence[Point],
                     image_size: tuple[int, int]) -> TrajectoryError:
    """Mean and final point distance between two paths, in pixels and per image diagonal.

    Args:
        predicted: the model's waypoints in source pixels.
        expected: the labelled waypoints in source pixels.
        image_size: (width, height) of the source image.

    Raises:
        ValueError: a path without points, or an image size that is not positive.
    """
    diagonal = image_diagonal(image_size)
    if not diagonal > 0:
        raise ValueError(f'image size must be positive, got {image_size}')
    ours, theirs = resample_path(predicted), resample_path(expected)
    mean_px = float(np.mean(np.hypot(*(ours - theirs).T)))
    final_px = float(math.dist(predicted[-1], expected[-1]))
    return TrajectoryError(mean_px=mean_px, final_px=final_px, mean_fraction=mean_px / diagonal,
                           final_fraction=final_px / diagonal)


def trajectory_error_3d(predicted: Sequence[Sequence[float]],
                        expected: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Mean (resampled by arc length, as in 2D) and final point distance in metres between
    two 3D paths.

    Raises:
        ValueError: a path without points.
    """
    mean = float(np.mean(np.linalg.norm(resample_path(predicted) - resample_path(expected),
                                        axis=1)))
    final = float(np.linalg.norm(np.subtract(predicted[-1], expected[-1])))
    return mean, final


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either has no area)."""
    width = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    height = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    intersection = max(width, 0.0) * max(height, 0.0)
    union = _area(a) + _area(b) - intersection
    return intersection / union if union > 0 else 0.0


def mean_best_box_iou(predicted: Sequence[Box], expected: Sequence[Box]) -> float:
    """For each expected box the best IoU with any predicted box, averaged (0 for no boxes)."""
    if not expected:
        raise ValueError('no expected boxes')
    return float(np.mean([max((box_iou(p, e) for p in predicted), default=0.0)
                          for e in expected]))


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time intervals; two equal instants score 1."""
    intersection = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union <= 0:
        return 1.0 if a == b else 0.0
    return intersection / union


def mean_best_event_iou(predicted: Sequence[Event], expected: Sequence[Event]) -> float:
    """For each expected event the best time IoU with any predicted event, averaged."""
    if not expected:
        raise ValueError('no expected events')
    return float(np.mean([max((interval_iou((p.start, p.end), (e.start, e.end))
                               for p in predicted), default=0.0) for e in expected]))


def keyword_recall(text: str, keywords: Sequence[Sequence[str]]) -> float:
    """Fraction of keywords found in text as whole words, ignoring case.

    Args:
        text: the answer.
        keywords: each entry lists alternative spellings; one match is enough.
    """
    if not keywords:
        raise ValueError('no keywords')
    found = sum(any(_has_word(text, word) for word in options) for options in keywords)
    return found / len(keywords)


def score_answer(item: QuestionItem, parsed: ParsedAnswer, image_size: tuple[int, int], *,
                 window_offset: float = 0.0, lifted: Lifted | None = None) -> Score:
    """Compare a parsed answer with the item's expected answer.

    Rules: a choice or verdict must match exactly; a trajectory is right when the mean error of
    its first path is at most `item.tolerance` of the image diagonal; boxes and events when
    their mean best IoU reaches `item.iou_threshold`; free text when every keyword occurs.
    An item that also expects an answer in metres is right only when the answer lifted with
    the recording's depth is within `item.tolerance_3d` metres on average as well: the
    trajectory's path, or the boxes' centres (each expected centre to its nearest one).

    With several views, only the answer's points and boxes in the view the truth names count
    (in_truth_view): an answer in another camera's view is a miss, with a note saying so.

    Args:
        item: the question, with its expected answer and thresholds.
        parsed: the model's parsed answer.
        image_size: (width, height) of the source image (of the truth's view).
        window_offset: seconds from the start of the source to the first frame the model saw;
            predicted events (relative to that frame) are shifted by it.
        lifted: the answer lifted into 3D (None: it was not lifted).
    """
    parsed, elsewhere = in_truth_view(item, parsed)
    score = _score_in_image(item, parsed, image_size, window_offset)
    if elsewhere and score.correct is False:
        score = dataclasses.replace(score, detail='; '.join(
            part for part in (score.detail, elsewhere) if part))
    lift_status = lifted.status.name.lower() if lifted is not None else ''
    kind_3d = item.expected.in_3d
    if not kind_3d:
        return dataclasses.replace(score, lift_status=lift_status)
    lifted_score = _score_in_3d(item, parsed, lifted)
    correct = lifted_score.correct_3d if score.correct is None else \
        bool(score.correct and lifted_score.correct_3d)
    detail = '; '.join(part for part in (score.detail, lifted_score.detail) if part)
    return dataclasses.replace(
        score, kind=score.kind or kind_3d, correct=correct, detail=detail,
        trajectory_3d=lifted_score.trajectory_3d, centres_3d=lifted_score.centres_3d,
        correct_3d=lifted_score.correct_3d, lift_status=lift_status)


def in_truth_view(item: QuestionItem, parsed: ParsedAnswer) -> tuple[ParsedAnswer, str]:
    """The answer's trajectories and boxes in the view the item's truth is in, and a note
    naming the views of those left out ('' when none were, or the item has one view).

    A point or box names its camera; one that names none is in the item's first view.
    """
    if not item.camera_topics:
        return parsed, ''
    truth, first = item.truth_camera, item.cameras[0]

    def camera_of(element: Trajectory | Box) -> str:
        return element.camera or first

    trajectories = tuple(t for t in parsed.trajectories if camera_of(t) == truth)
    boxes = tuple(b for b in parsed.boxes if camera_of(b) == truth)
    others = sorted({camera_of(e) for e in (*parsed.trajectories, *parsed.boxes)} - {truth})
    note = ''
    if others:
        listed = ', '.join(f"'{name}'" for name in others)
        note = (f"the answer has points or boxes in camera {listed}; the truth is in camera "
                f"'{truth}', and only those count")
    return dataclasses.replace(parsed, trajectories=trajectories, boxes=boxes), note


def _score_in_image(item: QuestionItem, parsed: ParsedAnswer, image_size: tuple[int, int],
                    window_offset: float) -> Score:
    expected: Expected = item.expected
    kind = expected.kind
    if not kind:
        return Score(kind='', correct=None)
    if kind == 'choice':
        return Score(kind, parsed.choice == expected.choice,
                     detail='' if parsed.choice else 'no option letter in the answer')
    if kind == 'verdict':
        return Score(kind, parsed.verdict == expected.verdict,
                     detail='' if parsed.verdict else 'the answer starts with neither yes nor no')
    if kind == 'trajectory':
        return _score_trajectory(item, parsed.trajectories, image_size)
    if kind == 'boxes':
        if not parsed.boxes:
            return Score(kind, False, iou=0.0, detail='no box in the answer')
        iou = mean_best_box_iou(parsed.boxes, expected.boxes)
        return Score(kind, iou >= item.iou_threshold, iou=iou)
    if kind == 'events':
        if not parsed.events:
            return Score(kind, False, iou=0.0, detail='no event in the answer')
        shifted = [Event(e.start + window_offset, e.end + window_offset, e.caption)
                   for e in parsed.events]
        iou = mean_best_event_iou(shifted, expected.events)
        return Score(kind, iou >= item.iou_threshold, iou=iou)
    recall = keyword_recall(parsed.answer, expected.keywords)
    return Score(kind, recall == 1.0, keyword_recall=recall)


def _score_trajectory(item: QuestionItem, trajectories: Sequence[Trajectory],
                      image_size: tuple[int, int]) -> Score:
    path = next((t.points for t in trajectories if t.points), ())
    if not path:
        return Score('trajectory', False, detail='no trajectory in the answer')
    error = trajectory_error(path, item.expected.trajectory, image_size)
    # The first path counts: it is the one a robot would follow.
    return Score('trajectory', error.mean_fraction <= item.tolerance, trajectory=error)


def _score_in_3d(item: QuestionItem, parsed: ParsedAnswer, lifted: Lifted | None) -> Score:
    """The 3D half of a score: the lifted trajectory or box centres against the expected."""
    kind = item.expected.in_3d
    if lifted is None:
        return _wrong_3d(kind, 'not lifted into 3D: the run read no depth for this item')
    if lifted.status is not LiftStatus.OK:
        return _wrong_3d(kind, f'not lifted into 3D ({lifted.status.name.lower()}): '
                               f'{lifted.message}')
    if kind == 'centres_3d':
        return _score_centres_3d(item, lifted)
    return _score_trajectory_3d(item, parsed, lifted)


def _wrong_3d(kind: str, detail: str) -> Score:
    return Score(kind, False, correct_3d=False, detail=detail)


def _score_trajectory_3d(item: QuestionItem, parsed: ParsedAnswer, lifted: Lifted) -> Score:
    """The first path, as in 2D, with its points that had valid depth (a point without depth
    is never invented, so it cannot be scored).
    """
    def wrong(detail: str) -> Score:
        return _wrong_3d('trajectory_3d', detail)

    index = next((i for i, t in enumerate(parsed.trajectories) if t.points), None)
    if index is None or index >= len(lifted.trajectories):
        return wrong('no trajectory in the answer to lift')
    path = lifted.trajectories[index]
    points = [point for point, valid in zip(path.points, path.valid) if valid]
    missing = len(path.points) - len(points)
    if not points:
        return wrong(f'none of the {len(path.points)} points of the answer had valid depth')
    mean, final = trajectory_error_3d(points, item.expected.trajectory_3d)
    error = TrajectoryError3D(mean_m=mean, final_m=final, points=len(path.points),
                              without_depth=missing)
    correct = mean <= item.tolerance_3d
    detail = (f'{missing} of {len(path.points)} points had no valid depth and were left out'
              if missing else '')
    return Score('trajectory_3d', correct, trajectory_3d=error, correct_3d=correct,
                 detail=detail)


def _score_centres_3d(item: QuestionItem, lifted: Lifted) -> Score:
    """Each expected centre against the nearest centre of a box with valid depth."""
    centres = [box.centre for box in lifted.boxes if box.valid]
    missing = len(lifted.boxes) - len(centres)
    if not lifted.boxes:
        return _wrong_3d('centres_3d', 'no box in the answer to lift')
    if not centres:
        return _wrong_3d('centres_3d', f'none of the {len(lifted.boxes)} boxes of the answer '
                                       'had enough valid depth')
    found = np.asarray(centres, np.float64)
    mean = float(np.mean([np.min(np.linalg.norm(found - np.asarray(expected), axis=1))
                          for expected in item.expected.centres_3d]))
    correct = mean <= item.tolerance_3d
    detail = (f'{missing} of {len(lifted.boxes)} boxes had too few valid depths and were left '
              'out' if missing else '')
    return Score('centres_3d', correct, correct_3d=correct, detail=detail,
                 centres_3d=CentreError3D(mean_m=mean, boxes=len(lifted.boxes),
                                          without_depth=missing))


def _area(box: Box) -> float:
    return max(box.x_max - box.x_min, 0.0) * max(box.y_max - box.y_min, 0.0)


def _has_word(text: str, word: str) -> bool:
    return re.search(r'(?<!\w)' + re.escape(word) + r'(?!\w)', text, re.IGNORECASE) is not None


# --- summary -------------------------------------------------------------------------------------

def percentiles(values: Iterable[float], points: Sequence[int] = (50, 90, 95)
                ) -> dict[str, float | int | None]:
    """count, mean, max and the given percentiles (linear interpolation) of the values.

    Returns:
        {'count': n, 'mean': ..., 'p50': ..., ..., 'max': ...}; None for each statistic when
        there are no values.
    """
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    result: dict[str, float | int | None] = {'count': int(data.size)}
    if data.size == 0:
        result.update({'mean': None, **{f'p{p}': None for p in points}, 'max': None})
        return result
    result['mean'] = float(data.mean())
    result.update({f'p{p}': float(np.percentile(data, p)) for p in points})
    result['max'] = float(data.max())
    return result


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial rate (95% by default); None without trials.

    It stays inside [0, 1] and is honest for small samples: 0 of 3 gives (0, 0.56), not 0.
    """
    if trials <= 0:
        return None
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, trials: int) -> dict[str, Any]:
    """A rate with its counts and 95% interval: {'k', 'n', 'rate', 'interval'}."""
    interval = wilson_interval(successes, trials)
    return {'k': successes, 'n': trials, 'rate': _ratio(successes, trials),
            'interval': list(interval) if interval else None}


def _tally(items: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str]
           ) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for item in items:
        entry = table.setdefault(key(item), {'items': 0, 'answered': 0, 'scored': 0,
                                             'correct': 0})
        entry['items'] += 1
        entry['answered'] += item['status'] == 'answered'
        correct = ((item.get('score') or {}).get('correct')
                   if item['status'] == 'answered' else None)
        entry['scored'] += correct is not None
        entry['correct'] += bool(correct)
    for entry in table.values():
        entry['accuracy'] = _ratio(entry['correct'], entry['scored'])
        entry['accuracy_interval'] = (list(wilson_interval(entry['correct'], entry['scored']))
                                      if entry['scored'] else None)
    return dict(sorted(table.items()))


PARSE_COUNT_NAMES = {'truncated': 'unterminated_reasoning'}
"""Item parse statuses that the summary counts under a name of their own: the parser's
TRUNCATED is an answer that never got past its reasoning, not one cut by the token limit."""


def summarize(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary block of report.json, computed from its item records.

    Accuracy counts answered items that have an expected answer; items that could not be asked
    (errors) are counted apart, since they say more about the labels than about the model.
    Every rate comes with its counts and a 95% Wilson interval; accuracy pools all items (as
    NVIDIA's benchmark evaluator does), with a table per mode and per group (dataset).
    """
    answered = [item for item in items if item['status'] == 'answered']
    scored = [item for item in answered if (item.get('score') or {}).get('correct') is not None]
    modes = _tally(items, lambda item: item['question']['mode'])
    groups = _tally((item for item in items if item['question'].get('group')),
                    lambda item: item['question']['group'])
    # The parser's TRUNCATED means the answer never left <think>: counted under that name, apart
    # from answers cut by the token limit (which may still parse).
    parse_counts = {status: 0 for status in ('ok', 'unterminated_reasoning', 'failed',
                                             'not_run')}
    for item in answered:
        status = PARSE_COUNT_NAMES.get(item['answer']['parse_status'],
                                       item['answer']['parse_status'])
        parse_counts[status] = parse_counts.get(status, 0) + 1
    cut = sorted(item['id'] for item in answered
                 if item['tokens'].get('finish_reason') == 'length')
    trajectories = [item['score']['trajectory'] for item in scored
                    if item['score'].get('trajectory')]
    lifted = [item for item in answered if any((item.get('expected') or {}).get(name)
                                               for name in EXPECTED_3D)]
    trajectories_3d = [item['score']['trajectory_3d'] for item in lifted
                       if (item.get('score') or {}).get('trajectory_3d')]
    centres_3d = [item['score']['centres_3d'] for item in lifted
                  if (item.get('score') or {}).get('centres_3d')]
    lift_counts: dict[str, int] = {}
    for item in answered:
        status = (item.get('score') or {}).get('lift_status')
        if status and status != 'none':  # 'none': the answer held nothing to lift
            lift_counts[status] = lift_counts.get(status, 0) + 1
    timings = [item['timing'] for item in answered]
    tokens = [item['tokens'] for item in answered]
    generation_time = sum(t['generation'] for t in timings)
    completion = sum(t['completion'] for t in tokens)
    correct_count = sum(bool(item['score']['correct']) for item in scored)
    interval = wilson_interval(correct_count, len(scored))
    return {
        'items': len(items),
        'answered': len(answered),
        'errors': sum(item['status'] == 'error' for item in items),
        'not_run': sum(item['status'] == 'not_run' for item in items),
        'scored': len(scored),
        'correct': correct_count,
        'accuracy': _ratio(correct_count, len(scored)),
        'accuracy_interval': list(interval) if interval else None,
        'accuracy_by_mode': modes,
        'accuracy_by_group': groups,
        'parse': {**parse_counts, 'success_rate': _ratio(parse_counts['ok'], len(answered)),
                  'success': rate(parse_counts['ok'], len(answered))},
        'cut_by_token_limit': {'count': len(cut), 'items': cut},
        'flags': {
            'truncated_window': sorted(item['id'] for item in answered
                                       if (item.get('window') or {}).get('truncated')),
            'stale_frames': sorted(item['id'] for item in answered
                                   if item.get('stale_flag')),
        },
        'trajectory_error': {
            name: percentiles((t[name] for t in trajectories), (50, 90))
            for name in ('mean_px', 'final_px', 'mean_fraction', 'final_fraction')},
        'trajectory_error_3d': {
            name: percentiles((t[name] for t in trajectories_3d), (50, 90))
            for name in ('mean_m', 'final_m')},
        'centre_error_3d': percentiles((c['mean_m'] for c in centres_3d), (50, 90)),
        'accuracy_3d': rate(sum(bool(item['score']['correct_3d']) for item in lifted),
                            len(lifted)),
        'lifting': dict(sorted(lift_counts.items())),
        'box_iou': percentiles((item['score']['iou'] for item in scored
                                if item['score']['kind'] == 'boxes'), (50,)),
        'event_iou': percentiles((item['score']['iou'] for item in scored
                                  if item['score']['kind'] == 'events'), (50,)),
        'latency': {
            name: percentiles((t[name] for t in timings if t.get(name) is not None), (50, 95))
            for name in ('total', 'time_to_first_token', 'preprocess', 'generation', 'overhead',
                         'round_trip')},
        'tokens': {
            'prompt': sum(t['prompt'] for t in tokens),
            'completion': completion,
            'tokens_per_second': completion / generation_time if generation_time > 0 else None,
        },
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


__all__ = [
    'CentreError3D', 'PARSE_COUNT_NAMES', 'Score', 'TRAJECTORY_SAMPLES', 'TrajectoryError',
    'TrajectoryError3D', 'box_iou', 'image_diagonal', 'in_truth_view', 'interval_iou',
    'keyword_recall', 'mean_best_box_iou', 'mean_best_event_iou', 'percentiles', 'rate',
    'resample_path', 'score_answer', 'summarize', 'trajectory_error', 'trajectory_error_3d',
    'wilson_interval',
]
