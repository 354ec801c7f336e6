"""The evaluation report: report.json (stable schema, versioned) and report.md with pictures.

report.md shows a summary table, a latency histogram (SVG) and, per item, the last frame the model
saw with the expected (blue) and predicted (green) trajectory or boxes drawn on it (points
without depth crossed out), and the answer in metres when it was lifted into 3D; an item over
named cameras shows every view's last frame side by side.
"""

from collections.abc import Iterable, Sequence
import dataclasses
import datetime
import hashlib
import json
import math
import pathlib
import re
from typing import Any

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.overlay import draw_overlay, draw_views
from cosmos_reason_ros.core.answers.parsing import ParsedAnswer, ParseStatus, Trajectory
from cosmos_reason_ros.core.depth.geometry import Lifted, points_without_depth
from cosmos_reason_ros.core.evaluation.monitor_scoring import (
    LIVE_NOTE,
    monitors_markdown,
    monitors_report,
)
from cosmos_reason_ros.core.evaluation.questions import (
    EXPECTED_3D,
    expected_to_dict,
    item_settings,
)
from cosmos_reason_ros.core.evaluation.results import ANSWERED, ItemResult, RunResult
from cosmos_reason_ros.core.evaluation.scoring import in_truth_view, summarize, wilson_interval
from cosmos_reason_ros.core.evaluation.shards import question_set_digest

SCHEMA = 'cosmos_reason_ros.eval_report'
SCHEMA_VERSION = 3
"""Raised when a field changes meaning or disappears; new fields may appear in any version.
2: error codes are the core's Failure names ('stale_frames', not 'gap'); benchmark ids are unique
per run."""
TIMING_KEYS = frozenset({
    'created', 'wall_time', 'timing', 'latency', 'tokens_per_second',
    'decode_tokens_per_second', 'send_delay'})
"""Keys whose values are measured times: report_content() drops them."""
MIN_PICTURE_WIDTH = 480
MOSAIC_TILE_HEIGHT = 360
"""Pixel height of each view in the picture of an item over named cameras."""


class ReportError(ValueError):
    """A file that is not a report.json this version can read."""


def build_report(run: RunResult, *, images: dict[int, str] | None = None) -> dict[str, Any]:
    """report.json's content for a run.

    Args:
        run: the finished (or interrupted) run.
        images: per item index, the picture's path relative to the report folder.
    """
    images = images or {}
    warning = run.settings.get('frame_age_warning')
    items = [item_record(result, image=images.get(result.index), frame_age_warning=warning)
             for result in run.results]
    report = {
        'schema': SCHEMA,
        'schema_version': SCHEMA_VERSION,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'complete': not run.interrupted,
        'run': {
            'kind': 'live' if run.live else 'offline',
            'question_set': {'name': run.question_set.name, 'path': run.question_set.path,
                             'format': run.question_set.format,
                             'items': len(run.question_set.items),
                             'digest': question_set_digest(run.question_set)},
            'shard': run.shard.to_dict() if run.shard else None,
            'sources': [source.to_dict() for source in run.sources],
            'model': run.model,
            'prompt_digest': prompt_digest(items),
            'settings': run.settings,
            'wall_time': run.wall_time,
        },
        'summary': summarize(items),
        'items': items,
    }
    if run.question_set.monitors:
        # Only sets with monitors have the block: the reports of other sets stay as they were.
        report['monitors'] = monitors_report(
            run.monitors, replayed=not run.monitors_skipped,
            note=run.monitors_skipped or (LIVE_NOTE if run.live else ''))
    return report


def prompt_digest(items: Sequence[dict[str, Any]]) -> str:
    """A hash of the prompts the report's items sent (their 'prompt' records, in order)."""
    prompts = [[item['prompt']['system'], item['prompt']['user']] for item in items
               if item['prompt'] is not None]
    return hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16]


def item_record(result: ItemResult, *, image: str | None = None,
                frame_age_warning: float | None = None) -> dict[str, Any]:
    """One item of report.json.

    Args:
        result: the item's result.
        image: its picture's path relative to the report folder.
        frame_age_warning: flag (`stale_flag`) an answer whose newest frame is older than this.
    """
    item = result.item
    answered = result.status == ANSWERED
    record: dict[str, Any] = {
        'index': result.index,
        'id': item.id,
        'source': item.source,
        'topic': item.topic,
        'question': dict(item_settings(item)),
        'asked_at': {'time': item.time.describe(), 'offset': _rounded(result.offset),
                     'bag_time': result.bag_time, 'window_end': result.window_end,
                     'send_delay': result.send_delay},
        'status': result.status,
        'error_code': result.error_code,
        'error': result.error,
        'expected': expected_to_dict(item.expected),
        'answer': _answer_record(result) if answered else None,
        'protocol_answer': result.protocol_answer,
        'attempts': result.attempts,
        'score': _score_record(result) if answered else None,
        'lifted': _lifted_record(result.lifted, result.depth_stamp) if answered else None,
        'frame_age': _rounded(result.frame_age),
        'stale_flag': bool(answered and frame_age_warning is not None
                           and result.frame_age is not None
                           and result.frame_age > frame_age_warning),
        'window': result.window,
        'frames': {
            'count': len(result.frame_stamps), 'stamps': list(result.frame_stamps),
            'window_offset': _rounded(result.window_offset),
            'image_size': list(result.source_size) if result.source_size else None,
            'model_input_size': (list(result.model_input_size) if result.model_input_size
                                 else None)},
        'prompt': ({'system': result.prompt.system, 'user': result.prompt.user}
                   if result.prompt else None),
        'model_id': result.model_id,
        'tokens': {'prompt': result.prompt_tokens, 'completion': result.completion_tokens,
                   'finish_reason': result.finish_reason},
        'timing': _timing_record(result),
        'image': image,
    }
    if item.camera_topics:
        record['cameras'] = {camera.name: camera.to_dict() for camera in item.camera_topics}
        record['views'] = [view.to_dict() for view in result.views]
        record['picture_camera'] = result.picture_camera
    return record


def _answer_record(result: ItemResult) -> dict[str, Any]:
    """The answer in the words of the action's result (and of `cosmos-reason run`)."""
    parsed = result.parsed
    assert parsed is not None
    return {
        'raw_text': result.raw_text,
        'reasoning': parsed.reasoning,
        'answer': parsed.answer,
        'parse_status': parsed.status.name.lower(),
        'parse_error': parsed.error,
        'constrained': result.constrained,
        'reasoning_cut': result.reasoning_cut,
        'answer_cut': result.finish_reason == 'length',
        'choice': parsed.choice,
        'verdict': parsed.verdict,
        'next_action': parsed.next_action,
        'trajectories': [{'label': t.label, 'points': [list(p) for p in t.points]}
                         for t in parsed.trajectories],
        'boxes': [{'label': b.label, 'bbox': [b.x_min, b.y_min, b.x_max, b.y_max]}
                  for b in parsed.boxes],
        'events': [{'start': e.start, 'end': e.end, 'caption': e.caption}
                   for e in parsed.events],
    }


def _lifted_record(lifted: Lifted | None, depth_stamp: float | None) -> dict[str, Any] | None:
    """The answer in 3D (metres, colour optical frame; NaN for points without depth)."""
    if lifted is None:
        return None
    return {
        'status': lifted.status.name.lower(), 'message': lifted.message,
        'depth_stamp': depth_stamp,
        'trajectories': [{'label': t.label, 'points': [list(p) for p in t.points],
                          'valid': list(t.valid)} for t in lifted.trajectories],
        'boxes': [{'label': b.label, 'centre': list(b.centre), 'size': list(b.size),
                   'valid': b.valid, 'depth_pixels': b.depth_pixels} for b in lifted.boxes],
    }


def _score_record(result: ItemResult) -> dict[str, Any] | None:
    score = result.score
    if score is None:
        return None
    trajectory = score.trajectory
    trajectory_3d = score.trajectory_3d
    return {
        'kind': score.kind,
        'correct': score.correct,
        'trajectory': None if trajectory is None else {
            'mean_px': trajectory.mean_px, 'final_px': trajectory.final_px,
            'mean_fraction': trajectory.mean_fraction,
            'final_fraction': trajectory.final_fraction},
        'iou': score.iou,
        'keyword_recall': score.keyword_recall,
        'detail': score.detail,
        'trajectory_3d': None if trajectory_3d is None else {
            'mean_m': trajectory_3d.mean_m, 'final_m': trajectory_3d.final_m,
            'points': trajectory_3d.points, 'without_depth': trajectory_3d.without_depth},
        'centres_3d': None if score.centres_3d is None else dataclasses.asdict(score.centres_3d),
        'correct_3d': score.correct_3d,
        'lift_status': score.lift_status,
    }


def _timing_record(result: ItemResult) -> dict[str, float | None]:
    total, preprocess, generation = (result.total_time, result.preprocess_time,
                                     result.generation_time)
    overhead = None
    if total is not None and preprocess is not None and generation is not None:
        overhead = total - preprocess - generation
    return {
        'preprocess': result.preprocess_time,
        'time_to_first_token': result.time_to_first_token,
        'generation': result.generation_time,
        'total': result.total_time,
        'overhead': overhead,
        'feed': result.feed_time,
        'round_trip': result.round_trip,
        'decode_tokens_per_second': result.decode_tokens_per_second,
    }


def write_report(run: RunResult, out_dir: str | pathlib.Path, *,
                 pictures: bool = True) -> pathlib.Path:
    """Write report.json, report.md, latency.svg and items/*.png into out_dir.

    Args:
        run: the run to report.
        out_dir: created if missing; files of an earlier report there are replaced.
        pictures: draw the per-item pictures (off: faster, smaller).

    Returns:
        The path of report.json.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[int, str] = {}
    if pictures:
        (out / 'items').mkdir(exist_ok=True)
        for result in run.results:
            picture = item_picture(result)
            if picture is None:
                continue
            name = f'items/{result.index:03d}-{_safe_name(result.item.id)}.png'
            cv2.imwrite(str(out / name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            images[result.index] = name
    return write_report_files(build_report(run, images=images), out)


def write_report_files(report: dict[str, Any], out: pathlib.Path) -> pathlib.Path:
    """Write report.json, latency.svg and report.md of a built report into out; report.json's
    path.
    """
    path = out / 'report.json'
    path.write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + '\n',
                    encoding='utf-8')
    latencies = [item['timing']['total'] for item in report['items']
                 if item['timing']['total'] is not None]
    (out / 'latency.svg').write_text(latency_histogram_svg(latencies), encoding='utf-8')
    (out / 'report.md').write_text(render_markdown(report, histogram='latency.svg'),
                                   encoding='utf-8')
    return path


def item_picture(result: ItemResult) -> np.ndarray | None:
    """The last frame the model saw with expected (blue) and predicted (green) answers drawn;
    of an item over named cameras, the mosaic of every view (views_picture).
    """
    if result.view_pictures:
        return views_picture(result)
    if result.views or result.image is None or result.source_size is None:
        # Views without their frames (not decoded): nothing to draw the mosaic with.
        return None
    image = np.asarray(result.image)
    if image.shape[1] < MIN_PICTURE_WIDTH:
        # Frames are stored at the model's pixel budget; enlarge small ones so lines and text
        # stay legible.
        scale = MIN_PICTURE_WIDTH / image.shape[1]
        image = cv2.resize(image, (MIN_PICTURE_WIDTH, round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_LINEAR)
    parsed = result.parsed
    expected = result.item.expected
    source_size = result.source_size
    return draw_overlay(
        image, source_size,
        trajectories=parsed.trajectories if parsed else (),
        boxes=parsed.boxes if parsed else (), text=_picture_text(parsed),
        expected_trajectories=_expected_trajectories(result),
        expected_boxes=expected.boxes,
        no_depth=points_without_depth(parsed.trajectories, result.lifted) if parsed else ())


def views_picture(result: ItemResult, *, tile_height: int = MOSAIC_TILE_HEIGHT) -> np.ndarray:
    """The mosaic of an item over named cameras: each view's newest frame side by side in
    prompt order (overlay.draw_views), the answer's points and boxes on the view they name and
    the expected answer (blue) on the view the truth is in.

    A point or box that names no camera is drawn on the item's first view, as scoring counts
    it there (scoring.in_truth_view); points of the truth's view without depth are crossed out.
    """
    parsed = result.parsed or ParsedAnswer('', '', ParseStatus.NOT_RUN)
    first = result.view_pictures[0].name
    parsed = dataclasses.replace(
        parsed,
        trajectories=tuple(t if t.camera else dataclasses.replace(t, camera=first)
                           for t in parsed.trajectories),
        boxes=tuple(b if b.camera else dataclasses.replace(b, camera=first)
                    for b in parsed.boxes))
    truth = result.item.truth_camera
    tiles = []
    for view in result.view_pictures:
        frame = view.frames[-1]
        image = np.asarray(frame.image)
        height, width = image.shape[:2]
        # Drawn at the tile's size, so that the expected answer's lines are as crisp as the
        # predicted ones draw_views adds.
        size = (max(1, round(width * tile_height / max(height, 1))), tile_height)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if height > tile_height
                           else cv2.INTER_LINEAR)
        if view.name == truth:
            image = draw_overlay(image, view.source_size,
                                 expected_trajectories=_expected_trajectories(result),
                                 expected_boxes=result.item.expected.boxes)
        tiles.append(dataclasses.replace(view, frames=(dataclasses.replace(frame,
                                                                           image=image),)))
    in_view, _ = in_truth_view(result.item, parsed)
    return draw_views(tiles, parsed, tile_height=tile_height, text=_picture_text(result.parsed),
                      no_depth={truth: points_without_depth(in_view.trajectories,
                                                            result.lifted)})


def _picture_text(parsed: ParsedAnswer | None) -> str:
    return (parsed.answer or parsed.error or parsed.reasoning) if parsed is not None else ''


def _expected_trajectories(result: ItemResult) -> tuple[Trajectory, ...]:
    expected = result.item.expected
    return (Trajectory('expected', expected.trajectory),) if expected.trajectory else ()


def load_report(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a report.json and check that this version understands it.

    Raises:
        ReportError: unreadable, not a report, or a newer schema version.
    """
    try:
        report = json.loads(pathlib.Path(path).read_text(encoding='utf-8'))
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read report '{path}': {error}") from None
    if not isinstance(report, dict) or report.get('schema') != SCHEMA:
        raise ReportError(f"'{path}' is not an evaluation report (schema {SCHEMA!r})")
    if report.get('schema_version') != SCHEMA_VERSION:
        raise ReportError(
            f"'{path}' has schema version {report.get('schema_version')}; this version reads "
            f'{SCHEMA_VERSION}')
    return report


def report_content(report: dict[str, Any]) -> dict[str, Any]:
    """The report without measured times (TIMING_KEYS), to compare two runs for determinism."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items() if key not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value
    return strip(report)


# --- Markdown ------------------------------------------------------------------------------------

def render_markdown(report: dict[str, Any], *, histogram: str | None = None) -> str:
    """The human report: run facts, summary table, latency histogram, one section per item."""
    run, summary = report['run'], report['summary']
    lines = [f"# Evaluation: {run['question_set']['name']}", '']
    if not report['complete']:
        done = summary['answered'] + summary['errors']
        lines += [f"**Partial report**: the run was interrupted after {done} of "
                  f"{summary['items']} items.", '']
    lines += _table(['', ''], _run_rows(report))
    lines += ['', '## Summary', '']
    lines += _table(['metric', 'value'], _summary_rows(summary, run))
    if histogram:
        lines += ['', f'![latency histogram]({histogram})']
    if report.get('monitors'):
        lines += monitors_markdown(report['monitors'])
    lines += ['', '## Items', '']
    for item in report['items']:
        lines += _item_section(item)
    return '\n'.join(lines) + '\n'


def _run_rows(report: dict[str, Any]) -> list[list[str]]:
    run = report['run']
    model = run['model']
    settings = run['settings']
    rows = [['question set', f"{run['question_set']['path']} ({run['question_set']['format']}, "
                             f"{run['question_set']['items']} items)"]]
    for source in run['sources']:
        parts = [source.get('kind', ''), source.get('storage', ''), source.get('topic', '')]
        window = source.get('window') or {}
        facts = ', '.join(part for part in parts if part)
        facts += f", {source.get('frames', 0)} frames, {window.get('kept', 0)} kept"
        if window.get('rewinds'):
            facts += f", {window['rewinds']} stamp jump(s) back"
        if source.get('decode_errors'):
            facts += f", {source['decode_errors']} undecodable ({source['first_decode_error']})"
        if source.get('error'):
            facts = source['error']
        rows.append(['source', f"{source.get('path', '')} ({facts})"])
        if source.get('note'):
            rows.append(['note', source['note']])
    rows.append(['model', f"{model.get('id', '')} ({model.get('family', '')}, "
                          f"{model.get('device', '')}, {model.get('dtype', '')})"])
    rows.append(['run', f"{run['kind']}, {report['created']}"])
    shard = run.get('shard')
    if shard:
        rows.append(['shard', f"{shard['index']} of {shard['count']}: the items at positions "
                              f"{shard['index']}, {shard['index'] + shard['count']}, ..."])
    if run.get('merged_from'):
        rows.append(['merged from', ', '.join(
            f"shard {part['shard']['index']}/{part['shard']['count']}: {part['report']}"
            for part in run['merged_from'])])
    window = settings.get('window', {})
    goals = settings.get('goals', {})
    decoding = 'greedy' if settings.get('greedy') else f"sampling, seed {settings.get('seed')}"
    bound = settings.get('window_bound') or {}
    protocol = settings.get('protocol')
    if protocol:
        decoding = (f"protocol {protocol['name']} ({protocol['answer_type']}, seed "
                    f"{protocol['seed']}, up to {protocol['max_retries']} retries of empty "
                    'answers)')
    rows.append(['settings', (
        f"{decoding}; window {window.get('target_fps')} fps, {window.get('max_pixels')} px per "
        f"frame, up to {bound.get('frames', window.get('capacity'))} frames held; items that "
        f"set none: {goals.get('window_duration')} s, up to {goals.get('max_frames')} frames, "
        f"{goals.get('max_new_tokens')} new tokens; max_frame_age "
        f"{goals.get('max_frame_age')} s (answers with older frames flagged above "
        f"{settings.get('frame_age_warning')} s)")])
    rows.append(['prompt digest', f"`{run['prompt_digest']}`"])
    return rows


def _summary_rows(summary: dict[str, Any], run: dict[str, Any]) -> list[list[str]]:
    rows = [['items', (f"{summary['items']} (answered {summary['answered']}, errors "
                       f"{summary['errors']}, not run {summary['not_run']})")],
            ['accuracy (all items pooled)', _count_ratio(summary['correct'], summary['scored'])]]
    for mode, entry in summary['accuracy_by_mode'].items():
        rows.append([f'accuracy: {mode}', _count_ratio(entry['correct'], entry['scored'])])
    for group, entry in summary.get('accuracy_by_group', {}).items():
        rows.append([f'accuracy: dataset {group}',
                     _count_ratio(entry['correct'], entry['scored'])])
    flags = summary.get('flags', {})
    for key, label in (('truncated_window', 'items with a truncated window'),
                       ('stale_frames', 'items answered on stale frames')):
        if flags.get(key):
            rows.append([label, f"{len(flags[key])}: {', '.join(flags[key])}"])
    parse = summary['parse']
    rows.append(['parse success', (
        f"{_count_ratio(parse['ok'], summary['answered'])} (failed {parse['failed']}, "
        f"reasoning never closed {parse['unterminated_reasoning']})")])
    cut = summary['cut_by_token_limit']
    rows.append(['answers cut by the token limit (max_new_tokens)', (
        f"{cut['count']} of {summary['answered']} answered"
        + (f": {', '.join(cut['items'])}" if cut['items'] else ''))])
    trajectory = summary['trajectory_error']
    if trajectory['mean_px']['count']:
        for name, label in (('mean', 'trajectory error, mean'),
                            ('final', 'trajectory error, final point')):
            px, fraction = trajectory[f'{name}_px'], trajectory[f'{name}_fraction']
            rows.append([f'{label} (p50 / p90)', (
                f"{px['p50']:.1f} / {px['p90']:.1f} px ({fraction['p50']:.3f} / "
                f"{fraction['p90']:.3f} of the diagonal)")])
    lifted = summary.get('trajectory_error_3d')
    if lifted and summary['accuracy_3d']['n']:
        accuracy = summary['accuracy_3d']
        rows.append(['accuracy: trajectory in 3D', _count_ratio(accuracy['k'], accuracy['n'])])
        for name, label in (('mean', 'trajectory error in 3D, mean'),
                            ('final', 'trajectory error in 3D, final point')):
            metres = lifted[f'{name}_m']
            if metres['count']:
                rows.append([f'{label} (p50 / p90)',
                             f"{1000 * metres['p50']:.1f} / {1000 * metres['p90']:.1f} mm"])
    centres = summary.get('centre_error_3d')
    if centres and centres['count']:
        rows.append(['box centre error in 3D (p50 / p90)',
                     f"{1000 * centres['p50']:.1f} / {1000 * centres['p90']:.1f} mm"])
    if summary.get('lifting'):
        rows.append(['lifting into 3D', ', '.join(
            f'{status} {count}' for status, count in summary['lifting'].items())])
    for key, label in (('box_iou', 'box IoU'), ('event_iou', 'event IoU (time)')):
        if summary[key]['count']:
            rows.append([f'{label} (mean / p50)',
                         f"{summary[key]['mean']:.3f} / {summary[key]['p50']:.3f}"])
    latency = summary['latency']
    for key, label in (('total', 'latency, total'), ('time_to_first_token', 'time to first token'),
                       ('overhead', 'overhead outside the model'),
                       ('round_trip', 'round trip (client)')):
        if latency[key]['count']:
            rows.append([f'{label} (p50 / p95)', (
                f"{_seconds(latency[key]['p50'])} / {_seconds(latency[key]['p95'])}")])
    tokens = summary['tokens']
    speed = tokens['tokens_per_second']
    rows.append(['tokens', (f"{tokens['prompt']} prompt, {tokens['completion']} generated, "
                            f"{speed:.1f} tokens/s" if speed else
                            f"{tokens['prompt']} prompt, {tokens['completion']} generated")])
    rows.append(['wall time', _seconds(run['wall_time'])])
    return rows


def _item_section(item: dict[str, Any]) -> list[str]:
    question = item['question']
    verdict = _verdict(item)
    heading = (f"### {item['index']}. {item['id']}: {question['mode']} at "
               f"{item['asked_at']['time']}, {verdict}")
    rows = []
    if question['task']:
        rows.append(['task', question['task']])
    if question['object_name']:
        rows.append(['object', question['object_name']])
    if question['choices']:
        rows.append(['choices', '; '.join(f'({chr(65 + i)}) {choice}'
                                          for i, choice in enumerate(question['choices']))])
    rows.append(['expected', _describe_expected(item['expected'])])
    if item['status'] != ANSWERED:
        rows.append(['error', f"{item['error_code']}: {item['error']}"])
    else:
        answer, score = item['answer'], item['score'] or {}
        rows.append(['answer', answer['answer'] or '(empty)'])
        if item.get('protocol_answer') is not None:
            rows.append(['protocol answer', f"{item['protocol_answer'] or '(none)'} after "
                                            f"{item['attempts']} attempt(s)"])
        if answer['reasoning']:
            rows.append(['reasoning', answer['reasoning']])
        status = answer['parse_status']
        rows.append(['parse', status + (f": {answer['parse_error']}"
                                        if answer['parse_error'] else '')])
        rows.append(['score', _describe_score(score)])
        # 'none': the answer held nothing to lift (a caption, a choice); the row would be noise.
        if item.get('lifted') and item['lifted']['status'] != 'none':
            rows.append(['in 3D', _describe_lifted(item['lifted'])])
        timing, tokens = item['timing'], item['tokens']
        rows.append(['timing', (
            f"total {_seconds(timing['total'])}, first token "
            f"{_seconds(timing['time_to_first_token'])}, {tokens['completion']} tokens "
            f"({tokens['finish_reason']}), {item['frames']['count']} frames")])
        rows += _window_rows(item)
    lines = [heading, '']
    lines += _table(['', ''], rows)
    if item['image']:
        lines += ['', f"![item {item['index']}]({item['image']})"]
    return lines + ['']


def _window_rows(item: dict[str, Any]) -> list[list[str]]:
    rows = []
    window = item.get('window')
    if window:
        duration = window['duration']
        asked = 'all of it' if duration == 'all' else f'{duration:g} s'
        text = (f"asked for {asked}: {window['frames_in_range']} frames at the window's rate, "
                f"{window['frames_held']} held, {window['frames_seen']} sent (at most "
                f"{window['max_frames']})")
        rows.append(['window', text + (f"; **{window['note']}**" if window['truncated'] else '')])
    if item.get('frame_age') is not None:
        flag = ' **stale**' if item.get('stale_flag') else ''
        rows.append(['newest frame', f"{item['frame_age']:.3f} s before the asking time{flag}"])
    return rows


def _verdict(item: dict[str, Any]) -> str:
    if item['status'] != ANSWERED:
        return 'not run' if item['status'] == 'not_run' else 'error'
    correct = (item['score'] or {}).get('correct')
    return {True: 'correct', False: 'wrong', None: 'not scored'}[correct]


def _describe_expected(expected: dict[str, Any]) -> str:
    kind = expected.get('kind')
    if not kind:
        return '(none: not scored)'
    text = '' if kind in EXPECTED_3D else _describe_expected_2d(kind, expected[kind])
    for name, label in (('trajectory_3d', 'in 3D'), ('centres_3d', 'centres in 3D')):
        if expected.get(name):
            text += ('; ' if text else '') + f'{label} ' + _describe_points_3d(expected[name])
    return text


def _describe_points_3d(points: Sequence[Sequence[float | None]]) -> str:
    return ' '.join('(no depth)' if any(v is None or not math.isfinite(v) for v in point)
                    else '(' + ', '.join(f'{v:.3f}' for v in point) + ')' for point in points)


def _describe_lifted(lifted: dict[str, Any]) -> str:
    if lifted['status'] != 'ok':
        return f"not lifted ({lifted['status']}): {lifted['message']}"
    parts = [f"{t['label'] or 'path'} " + _describe_points_3d(t['points']) + ' m'
             for t in lifted['trajectories']]
    parts += [f"{b['label'] or 'box'} centre " + _describe_points_3d([b['centre']]) + ' size '
              + _describe_points_3d([b['size']]) + ' m' for b in lifted['boxes']]
    if lifted['message']:
        parts.append(lifted['message'])
    return '; '.join(parts)


def _describe_expected_2d(kind: str, value: Any) -> str:
    if kind == 'trajectory':
        return 'path ' + ' '.join(f'({x:.0f}, {y:.0f})' for x, y in value)
    if kind == 'boxes':
        return '; '.join(f"{box['label'] or 'box'} "
                         f"[{', '.join(f'{v:.0f}' for v in box['bbox'])}]" for box in value)
    if kind == 'events':
        return '; '.join(f"{e['start']:.2f}-{e['end']:.2f} s {e['caption']}" for e in value)
    if kind == 'keywords':
        return ', '.join('/'.join(options) for options in value)
    return str(value)


def _describe_score(score: dict[str, Any]) -> str:
    parts = [{True: 'correct', False: 'wrong', None: 'not scored'}[score.get('correct')]]
    trajectory = score.get('trajectory')
    if trajectory:
        parts.append(f"mean error {trajectory['mean_px']:.1f} px "
                     f"({trajectory['mean_fraction']:.3f} diag), final "
                     f"{trajectory['final_px']:.1f} px")
    if score.get('iou') is not None:
        parts.append(f"IoU {score['iou']:.3f}")
    if score.get('keyword_recall') is not None:
        parts.append(f"keywords {score['keyword_recall']:.0%}")
    verdict_3d = 'in 3D ' + ('correct' if score.get('correct_3d') else 'wrong')
    lifted = score.get('trajectory_3d')
    if lifted:
        parts.append(f"{verdict_3d}: mean error {1000 * lifted['mean_m']:.1f} mm, final "
                     f"{1000 * lifted['final_m']:.1f} mm")
    centres = score.get('centres_3d')
    if centres:
        parts.append(f"{verdict_3d}: centres {1000 * centres['mean_m']:.1f} mm from the "
                     'expected')
    if score.get('detail'):
        parts.append(score['detail'])
    return ', '.join(parts)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_cell(cell) for cell in row) + ' |' for row in rows]
    return lines


def _cell(text: Any, limit: int = 400) -> str:
    flat = ' '.join(str(text).split()).replace('|', '\\|')
    return flat if len(flat) <= limit else flat[:limit - 3] + '...'


def _count_ratio(count: int, total: int) -> str:
    if not total:
        return 'n/a (nothing scored)'
    low, high = wilson_interval(count, total)
    return f'{count}/{total} ({count / total:.1%}; 95% CI {low:.0%}-{high:.0%})'


def _seconds(value: float | None) -> str:
    if value is None:
        return 'n/a'
    return f'{value * 1000:.0f} ms' if value < 1 else f'{value:.2f} s'


def _rounded(seconds: float | None) -> float | None:
    # Offsets are differences of ~1.7e9 s bag times: keep the microseconds, drop float noise.
    return None if seconds is None else round(seconds, 6)


def _safe_name(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', text)[:60] or 'item'


def _finite(value: Any) -> Any:
    """JSON-safe copy: NumPy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- latency histogram ---------------------------------------------------------------------------

def latency_histogram_svg(latencies: Sequence[float], *, bins: int = 12, width: int = 560,
                          height: int = 220) -> str:
    """A bar chart of per-item total latency as a standalone SVG document."""
    left, bottom, top, right = 48, 36, 36, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="15">Total latency per item (s), {len(latencies)} items'
             '</text>']
    if latencies:
        low, high = min(latencies), max(latencies)
        if high - low < 1e-9:
            low, high = low * 0.9, high * 1.1 + 1e-3
        counts, edges = np.histogram(latencies, bins=bins, range=(low, high))
        peak = max(int(counts.max()), 1)
        bar_w = plot_w / bins
        for index, count in enumerate(counts):
            bar_h = plot_h * count / peak
            x = left + index * bar_w
            parts.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" '
                         f'width="{bar_w - 2:.1f}" height="{bar_h:.1f}" fill="#3c8cff"/>')
            if count:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - bar_h - 3:.1f}" '
                             f'text-anchor="middle">{int(count)}</text>')
        for index in range(0, bins + 1, max(1, bins // 4)):
            x = left + index * bar_w
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                         f'{edges[index]:.3g}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
                 f'y2="{top + plot_h}" stroke="black"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>')
    parts.append(f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">items</text>')
    parts.append('</svg>')
    return '\n'.join(parts) + '\n'


__all__ = [
    'ReportError', 'SCHEMA', 'SCHEMA_VERSION', 'TIMING_KEYS', 'build_report', 'item_picture',
    'item_record', 'latency_histogram_svg', 'load_report', 'MOSAIC_TILE_HEIGHT', 'prompt_digest',
    'render_markdown', 'report_content', 'views_picture', 'write_report', 'write_report_files',
]
