"""`cosmos-reason merge`: join the reports of a sharded run into the report of the whole run.

The shards must be of one run: the same question set (by content digest), model, settings and
shard count, each shard once, no item twice. The summary is recomputed from the joined items, so
the merged report equals the unsharded run's apart from measured times and `merged_from`.
"""

from collections.abc import Sequence
import datetime
import json
import pathlib
import shutil
from typing import Any

from cosmos_reason_ros.core.evaluation.report import (
    load_report,
    prompt_digest,
    ReportError,
    SCHEMA,
    SCHEMA_VERSION,
    write_report_files,
)
from cosmos_reason_ros.core.evaluation.scoring import summarize

RUN_FIELDS = ('kind', 'settings')
"""Fields of report['run'] every shard must share."""
MODEL_FIELDS = ('id', 'family', 'dtype')
"""Model facts every shard must share (the device may differ from machine to machine)."""


class MergeError(ReportError):
    """Reports that do not make one run; the message names the reports and what differs."""


def merge_reports(paths: Sequence[str | pathlib.Path]) -> dict[str, Any]:
    """The report of the whole run, from the report.json of each of its shards.

    Args:
        paths: one report.json per shard, in any order.

    Returns:
        report.json's content; item pictures keep the paths of their shard's folder.

    Raises:
        ReportError: a file is not a readable report.
        MergeError: a report is not a shard's, the shards are of different runs, a shard is
            given twice or missing, or an item appears in two shards.
    """
    if not paths:
        raise MergeError('give the report.json of every shard')
    reports = [(str(path), load_report(path)) for path in paths]
    for path, report in reports:
        if not report['run'].get('shard'):
            raise MergeError(f"'{path}' is not a shard's report (it ran without --shard): "
                             'merge joins the reports of `cosmos-reason eval --shard i/n`')
    first_path, first = reports[0]
    for path, report in reports[1:]:
        _check_same_run(first_path, first, path, report)
    by_shard: dict[int, str] = {}
    for path, report in reports:
        index = report['run']['shard']['index']
        if index in by_shard:
            raise MergeError(f"'{by_shard[index]}' and '{path}' are both shard {index}/"
                             f"{report['run']['shard']['count']}: give each shard once")
        by_shard[index] = path
    count = first['run']['shard']['count']
    missing = [f'{index}/{count}' for index in range(1, count + 1) if index not in by_shard]
    if missing:
        raise MergeError(f"shard(s) {', '.join(missing)} missing (given: "
                         f"{', '.join(path for path, _ in reports)}): give every shard's report")
    reports.sort(key=lambda entry: entry[1]['run']['shard']['index'])
    items = _joined_items(reports)
    total = first['run']['question_set']['items']
    if len(items) != total:
        raise MergeError(f"the shards hold {len(items)} of the question set's {total} items: "
                         'was a shard run on an edited question set?')
    run = dict(first['run'])
    run.update(
        shard=None, sources=_joined_sources(reports, items), prompt_digest=prompt_digest(items),
        # The shards may have run side by side: the longest is the run's.
        wall_time=max(report['run']['wall_time'] for _, report in reports),
        merged_from=[{'report': path, 'shard': report['run']['shard'],
                      'created': report['created'], 'complete': report['complete'],
                      'wall_time': report['run']['wall_time']} for path, report in reports])
    return {
        'schema': SCHEMA,
        'schema_version': SCHEMA_VERSION,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'complete': all(report['complete'] for _, report in reports),
        'run': run,
        'summary': summarize(items),
        'items': items,
    }


def write_merged(out_dir: str | pathlib.Path,
                 paths: Sequence[str | pathlib.Path]) -> pathlib.Path:
    """Merge the shards' reports and write report.json, report.md, latency.svg and the item
    pictures (copied from the shards' folders) into out_dir; report.json's path.

    Raises:
        ReportError, MergeError: as merge_reports.
    """
    report = merge_reports(paths)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = {str(part['report']): pathlib.Path(part['report']).parent
               for part in report['run']['merged_from']}
    shard_of = {}
    for path in folders:
        for item in load_report(path)['items']:
            shard_of[item['index']] = folders[path]
    for item in report['items']:
        if item['image']:
            source = shard_of[item['index']] / item['image']
            if source.is_file():
                (out / item['image']).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, out / item['image'])
            else:
                item['image'] = None
    return write_report_files(report, out)


def _check_same_run(first_path: str, first: dict[str, Any], path: str,
                    report: dict[str, Any]) -> None:
    a, b = first['run'], report['run']
    digest_a, digest_b = a['question_set'].get('digest'), b['question_set'].get('digest')
    if digest_a != digest_b or a['question_set']['items'] != b['question_set']['items']:
        raise MergeError(
            f"'{first_path}' and '{path}' are of different question sets "
            f"({a['question_set']['path']}, digest {digest_a}; {b['question_set']['path']}, "
            f'digest {digest_b}): merge the shards of one run')
    if a['shard']['count'] != b['shard']['count']:
        raise MergeError(f"'{first_path}' is a shard of {a['shard']['count']} and '{path}' of "
                         f"{b['shard']['count']}: merge the shards of one run")
    for field in MODEL_FIELDS:
        if a['model'].get(field) != b['model'].get(field):
            raise MergeError(
                f"'{first_path}' and '{path}' ran different models ({field} "
                f"{a['model'].get(field)!r} vs {b['model'].get(field)!r}): merge the shards "
                'of one run')
    for field in RUN_FIELDS:
        if a[field] != b[field]:
            differing = _differing_keys(a[field], b[field]) if isinstance(a[field], dict) else []
            raise MergeError(
                f"'{first_path}' and '{path}' ran with different {field}"
                + (f" ({', '.join(differing)})" if differing else
                   f' ({a[field]!r} vs {b[field]!r})') + ': merge the shards of one run')


def _differing_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(a) | set(b)
                  if json.dumps(a.get(key), sort_keys=True)
                  != json.dumps(b.get(key), sort_keys=True))


def _joined_items(reports: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    owner: dict[int, str] = {}
    items: list[dict[str, Any]] = []
    for path, report in reports:
        for item in report['items']:
            if item['index'] in owner:
                raise MergeError(
                    f"item {item['index']} ({item['id']}) is in both '{owner[item['index']]}' "
                    f"and '{path}': the shards overlap; merge the shards of one run")
            owner[item['index']] = path
            items.append(item)
    return sorted(items, key=lambda item: item['index'])


def _joined_sources(reports: list[tuple[str, dict[str, Any]]],
                    items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per recording, in the order the whole run reads them (first item first).

    Each shard reads its recordings whole, so their summaries agree; the depth topics read are
    joined, since each shard opens only those its items need.
    """
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    for _, report in reports:
        # A shard lists one summary per recording of its items, in its items' order.
        keys = list(dict.fromkeys((item['source'], item['topic']) for item in report['items']))
        for key, summary in zip(keys, report['run']['sources']):
            if key not in summaries:
                summaries[key] = dict(summary)
                continue
            depth = summaries[key].get('depth', []) + [
                track for track in summary.get('depth', [])
                if track not in summaries[key].get('depth', [])]
            if depth:
                summaries[key]['depth'] = depth
    order = dict.fromkeys((item['source'], item['topic']) for item in items)
    return [summaries[key] for key in order if key in summaries]


__all__ = ['MergeError', 'merge_reports', 'write_merged']
