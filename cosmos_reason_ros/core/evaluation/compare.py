"""Two evaluation reports side by side: what changed in the setup, the metrics and the items.

Items are matched by their source file name and id; a flip is an item right in one report and
wrong in the other.
"""

import collections
from collections.abc import Iterable
import pathlib
from typing import Any

from cosmos_reason_ros.core.evaluation.report import load_report, ReportError
from cosmos_reason_ros.core.evaluation.scoring import wilson_interval

_RATES = {
    # metric label -> (successes, trials) paths into summary
    'accuracy': (('correct',), ('scored',)),
    'parse success rate': (('parse', 'ok'), ('answered',)),
    'accuracy in 3D': (('accuracy_3d', 'k'), ('accuracy_3d', 'n')),
}
_METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    # (label, path into summary, higher is better)
    ('accuracy', ('accuracy',), True),
    ('parse success rate', ('parse', 'success_rate'), True),
    ('errors', ('errors',), False),
    ('trajectory error mean p50 (px)', ('trajectory_error', 'mean_px', 'p50'), False),
    ('trajectory error mean p90 (px)', ('trajectory_error', 'mean_px', 'p90'), False),
    ('trajectory error final p50 (px)', ('trajectory_error', 'final_px', 'p50'), False),
    ('accuracy in 3D', ('accuracy_3d', 'rate'), True),
    ('trajectory error in 3D mean p50 (m)', ('trajectory_error_3d', 'mean_m', 'p50'), False),
    ('trajectory error in 3D final p50 (m)', ('trajectory_error_3d', 'final_m', 'p50'), False),
    ('box centre error in 3D p50 (m)', ('centre_error_3d', 'p50'), False),
    ('box IoU mean', ('box_iou', 'mean'), True),
    ('event IoU mean', ('event_iou', 'mean'), True),
    ('latency p50 (s)', ('latency', 'total', 'p50'), False),
    ('latency p95 (s)', ('latency', 'total', 'p95'), False),
    ('time to first token p50 (s)', ('latency', 'time_to_first_token', 'p50'), False),
    ('overhead p50 (s)', ('latency', 'overhead', 'p50'), False),
    ('tokens/s', ('tokens', 'tokens_per_second'), True),
)


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from report a to report b.

    Rates (accuracy, parse success, per mode) carry their counts and 95% Wilson intervals; a
    change whose intervals overlap is marked as within noise.

    Returns:
        {'setup': [{'field', 'a', 'b'}], 'metrics': [{'metric', 'a', 'b', 'delta', 'better',
        'count_a', 'count_b', 'note'}], 'flipped': [{'key', 'mode', 'a', 'b', 'change'}],
        'parse_changed': [...], 'status_changed': [...], 'answers_changed': n,
        'only_a': [...], 'only_b': [...]}

    Raises:
        ReportError: the reports were run on different recordings (their fingerprints differ),
            or one repeats an item id, so items cannot be matched.
    """
    _check_comparable(a, b)
    metrics = []
    modes = sorted(set(a['summary']['accuracy_by_mode']) | set(b['summary']['accuracy_by_mode']))
    groups = sorted(set(a['summary'].get('accuracy_by_group', {}))
                    | set(b['summary'].get('accuracy_by_group', {})))
    paths = list(_METRICS) + [(f'accuracy: {mode}', ('accuracy_by_mode', mode, 'accuracy'), True)
                              for mode in modes]
    paths += [(f'accuracy: dataset {group}', ('accuracy_by_group', group, 'accuracy'), True)
              for group in groups]
    for label, path, higher_better in paths:
        value_a, value_b = _get(a['summary'], path), _get(b['summary'], path)
        if value_a is None and value_b is None:
            continue
        delta = None if value_a is None or value_b is None else value_b - value_a
        better = None
        if delta:
            better = (delta > 0) == higher_better
        counts = [_counts(report['summary'], label) for report in (a, b)]
        metrics.append({'metric': label, 'a': value_a, 'b': value_b, 'delta': delta,
                        'better': better, 'count_a': counts[0], 'count_b': counts[1],
                        'note': _noise_note(delta, *counts)})
    items_a, items_b = _by_key(a['items']), _by_key(b['items'])
    flipped, parse_changed, status_changed = [], [], []
    answers_changed = 0
    for key in items_a.keys() & items_b.keys():
        item_a, item_b = items_a[key], items_b[key]
        mode = item_a['question']['mode']
        if item_a['status'] != item_b['status']:
            status_changed.append({'key': key, 'mode': mode, 'a': item_a['status'],
                                   'b': item_b['status'], 'error': item_b['error']})
            continue
        if item_a['status'] != 'answered':
            continue
        correct_a = (item_a['score'] or {}).get('correct')
        correct_b = (item_b['score'] or {}).get('correct')
        if correct_a is not None and correct_b is not None and correct_a != correct_b:
            flipped.append({'key': key, 'mode': mode, 'a': correct_a, 'b': correct_b,
                            'change': 'fixed' if correct_b else 'broken'})
        status_a = item_a['answer']['parse_status']
        status_b = item_b['answer']['parse_status']
        if status_a != status_b:
            parse_changed.append({'key': key, 'mode': mode, 'a': status_a, 'b': status_b})
        answers_changed += item_a['answer']['raw_text'] != item_b['answer']['raw_text']
    return {
        'a': _identity(a), 'b': _identity(b),
        'setup': _setup_changes(a, b),
        'metrics': metrics,
        'flipped': sorted(flipped, key=lambda entry: entry['key']),
        'parse_changed': sorted(parse_changed, key=lambda entry: entry['key']),
        'status_changed': sorted(status_changed, key=lambda entry: entry['key']),
        'answers_changed': answers_changed,
        'matched': len(items_a.keys() & items_b.keys()),
        'only_a': sorted(items_a.keys() - items_b.keys()),
        'only_b': sorted(items_b.keys() - items_a.keys()),
    }


def _counts(summary: dict[str, Any], label: str) -> list[int] | None:
    """[successes, trials] of a rate metric, None for other metrics."""
    for prefix, table in (('accuracy: dataset ', 'accuracy_by_group'),
                          ('accuracy: ', 'accuracy_by_mode')):
        if label.startswith(prefix):
            entry = summary.get(table, {}).get(label[len(prefix):])
            return [entry['correct'], entry['scored']] if entry else None
    if label not in _RATES:
        return None
    paths = _RATES[label]
    values = [_get(summary, path) for path in paths]
    return None if None in values else [int(value) for value in values]


def _noise_note(delta: float | None, count_a: list[int] | None,
                count_b: list[int] | None) -> str:
    if not delta or not count_a or not count_b:
        return ''
    interval_a, interval_b = wilson_interval(*count_a), wilson_interval(*count_b)
    if interval_a is None or interval_b is None:
        return ''
    if interval_a[0] <= interval_b[1] and interval_b[0] <= interval_a[1]:
        return (f'within noise: 95% intervals {interval_a[0]:.0%}-{interval_a[1]:.0%} and '
                f'{interval_b[0]:.0%}-{interval_b[1]:.0%} overlap (n = {count_a[1]}, '
                f'{count_b[1]})')
    return ''


def _check_comparable(a: dict[str, Any], b: dict[str, Any]) -> None:
    for name, report in (('A', a), ('B', b)):
        repeated = sorted(key for key, count in collections.Counter(
            _key(item) for item in report['items']).items() if count > 1)
        if repeated:
            raise ReportError(
                f"report {name} repeats item id(s) {', '.join(repeated[:5])}: items cannot be "
                'matched; rerun it with this version, which gives every item its own id')
    prints_a, prints_b = _fingerprints(a), _fingerprints(b)
    for name in prints_a.keys() & prints_b.keys():
        if prints_a[name] != prints_b[name]:
            raise ReportError(
                f"the two runs read different data under the name '{name}' (fingerprints "
                f'{prints_a[name]} and {prints_b[name]}): compare runs on the same recordings')


def _fingerprints(report: dict[str, Any]) -> dict[str, Any]:
    return {pathlib.PurePath(source.get('path', '')).name: source['fingerprint']
            for source in report['run']['sources'] if source.get('fingerprint')}


def compare_files(path_a: str | pathlib.Path, path_b: str | pathlib.Path) -> dict[str, Any]:
    """compare_reports() on two report.json files.

    Raises:
        ReportError: a file is not a report this version reads.
    """
    return compare_reports(load_report(path_a), load_report(path_b))


def render_comparison(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown: setup changes, a metric table, flipped items."""
    lines = ['# Comparison', '',
             f"A: {comparison['a']}", '', f"B: {comparison['b']}", '']
    if comparison['setup']:
        lines += ['## Setup changes', '', '| field | A | B |', '|---|---|---|']
        lines += [f"| {c['field']} | {_cell(c['a'])} | {_cell(c['b'])} |"
                  for c in comparison['setup']]
        lines.append('')
    lines += ['## Metrics', '', '| metric | A | B | change |', '|---|---|---|---|']
    for metric in comparison['metrics']:
        mark = {True: ' (better)', False: ' (worse)', None: ''}[metric['better']]
        delta = '' if metric['delta'] is None else f"{metric['delta']:+.4g}{mark}"
        if metric.get('note'):
            delta += f"; {metric['note']}"
        lines.append(f"| {metric['metric']} | {_value(metric['a'], metric.get('count_a'))} | "
                     f"{_value(metric['b'], metric.get('count_b'))} | {delta} |")
    lines += ['', f"## Items ({comparison['matched']} matched, "
                  f"{comparison['answers_changed']} with a different answer text)", '']
    if comparison['flipped']:
        lines += ['| item | mode | A | B | change |', '|---|---|---|---|---|']
        lines += [f"| {f['key']} | {f['mode']} | {_right(f['a'])} | {_right(f['b'])} "
                  f"| {f['change']} |" for f in comparison['flipped']]
    else:
        lines.append('No item flipped between right and wrong.')
    for title, key in (('Parse status changed', 'parse_changed'),
                       ('Status changed', 'status_changed')):
        if comparison[key]:
            lines += ['', f'### {title}', '', '| item | mode | A | B |', '|---|---|---|---|']
            lines += [f"| {c['key']} | {c['mode']} | {c['a']} | {c['b']} |"
                      for c in comparison[key]]
    for title, key in (('Only in A', 'only_a'), ('Only in B', 'only_b')):
        if comparison[key]:
            lines += ['', f"{title}: {', '.join(comparison[key])}"]
    return '\n'.join(lines) + '\n'


def _identity(report: dict[str, Any]) -> str:
    run = report['run']
    partial = '' if report['complete'] else ', partial'
    return (f"{run['question_set']['name']} with {run['model'].get('id', '?')}, "
            f"{run['kind']}, {report['created']}{partial}")


def _setup_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    fields = {
        'model': lambda r: r['run']['model'].get('id'),
        'model family': lambda r: r['run']['model'].get('family'),
        'device': lambda r: r['run']['model'].get('device'),
        'dtype': lambda r: r['run']['model'].get('dtype'),
        'prompt digest': lambda r: r['run']['prompt_digest'],
        'run kind': lambda r: r['run']['kind'],
        'question set': lambda r: r['run']['question_set']['path'],
        'sources': lambda r: ', '.join(s.get('path', '') for s in r['run']['sources']),
    }
    changes = [{'field': name, 'a': read(a), 'b': read(b)} for name, read in fields.items()
               if read(a) != read(b)]
    flat_a, flat_b = _flatten(a['run']['settings']), _flatten(b['run']['settings'])
    changes += [{'field': f'settings.{key}', 'a': flat_a.get(key), 'b': flat_b.get(key)}
                for key in sorted(flat_a.keys() | flat_b.keys())
                if flat_a.get(key) != flat_b.get(key)]
    return changes


def _key(item: dict[str, Any]) -> str:
    return f"{pathlib.PurePath(item['source']).name}:{item['id']}"


def _by_key(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {_key(item): item for item in items}


def _flatten(value: Any, prefix: str = '') -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f'{prefix}.{key}' if prefix else str(key)))
    return flat


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def _number(value: Any) -> str:
    return 'n/a' if value is None else f'{value:.4g}'


def _value(value: Any, counts: list[int] | None) -> str:
    """A metric's value; a rate with its counts ('3/4 = 0.75')."""
    if counts is None:
        return _number(value)
    return f'{counts[0]}/{counts[1]} = {_number(value)}'


def _right(value: bool) -> str:
    return 'right' if value else 'wrong'


def _cell(value: Any) -> str:
    return ' '.join(str(value).split()).replace('|', '\\|')


__all__ = ['compare_files', 'compare_reports', 'render_comparison']
