"""Scoring monitors against their labelled events, and their section of the report.

From a monitor's ticks (time, normalized answer) this derives what the node would publish as
events (changes of the normalized answer) and compares them with the labels:

- an event is **detected** by the first answered tick at or after its time whose answer is the
  labelled one, within `max_latency` (and before the next event); the **latency** is that
  tick's time minus the event's. Not detected in that span: **missed**. An event whose span the
  recording ends in, undetected, is not observable and counted apart (not in the rate).
- a **false event** is a change (after the first answer) to an answer other than the one
  labelled at that time; changes where no answer is labelled (before the first event without an
  `initial`) are not judged.
- **agreement**: the share of answered ticks whose answer is the one labelled at their time.
"""

from collections.abc import Sequence
from typing import Any

from cosmos_reason_ros.core.evaluation.asking import TIME_EPSILON
from cosmos_reason_ros.core.evaluation.monitor_replay import MonitorRun
from cosmos_reason_ros.core.evaluation.scoring import percentiles, rate

OFFLINE_NOTE = (
    "Replayed offline through the node's tick schedule (ticks from the first frame, every "
    'period). Not modelled: ticks the node skips because a goal or a long tick holds the model; '
    'offline there are no goals and a tick takes no stream time.')
LIVE_NOTE = (
    'Evaluated live: the monitors were added to the running node and each result it published '
    'on ~/monitors/<name> is a tick at the bag time of the frame its header stamp names (the '
    'newest frame the answer saw). The node ticks on its own clock while the bag plays, so ticks '
    'it skipped because a goal or a long tick held the model show up as extra detection latency '
    'or as misses; failed ticks are placed at the /clock time they arrived.')


def score_monitor(run: MonitorRun) -> dict[str, Any]:
    """A monitor's record in report.json: its labels, ticks, changes and rates."""
    monitor = run.monitor
    answered = [tick for tick in run.ticks if tick.answer is not None]
    changes = []
    for before, tick in zip(answered, answered[1:]):
        if tick.answer == before.answer:
            continue
        truth = monitor.truth(tick.offset)
        changes.append({'at': tick.offset, 'previous': before.answer, 'answer': tick.answer,
                        'labelled': truth or None,
                        'false': None if not truth else tick.answer != truth})
    events = []
    last_tick = run.ticks[-1].offset if run.ticks else None
    for index, event in enumerate(monitor.events):
        end = event.offset + monitor.max_latency
        if index + 1 < len(monitor.events):
            end = min(end, monitor.events[index + 1].offset)
        detection = next((tick for tick in answered
                          if event.offset - TIME_EPSILON <= tick.offset <= end + TIME_EPSILON
                          and tick.answer == event.answer), None)
        observable = detection is not None or (last_tick is not None
                                               and last_tick >= end - TIME_EPSILON)
        events.append({
            'answer': event.answer, 'from': event.offset, 'until': end,
            'detected': None if not observable else detection is not None,
            'tick': detection.offset if detection else None,
            'latency': detection.offset - event.offset if detection else None})
    judged_ticks = [tick for tick in answered if monitor.truth(tick.offset)]
    agreeing = sum(tick.answer == monitor.truth(tick.offset) for tick in judged_ticks)
    judged_events = [event for event in events if event['detected'] is not None]
    judged_changes = [change for change in changes if change['false'] is not None]
    errors: dict[str, int] = {}
    for tick in run.ticks:
        if tick.answer is None:
            errors[tick.error_code or 'error'] = errors.get(tick.error_code or 'error', 0) + 1
    return {
        'monitor': monitor.to_dict(),
        'error': run.error,
        'end_offset': run.end_offset,
        'ticks': {'count': len(run.ticks), 'answered': len(answered), 'errors': errors,
                  'first': run.ticks[0].offset if run.ticks else None, 'last': last_tick},
        'first_answer': ({'at': answered[0].offset, 'answer': answered[0].answer,
                          'labelled': monitor.truth(answered[0].offset) or None}
                         if answered else None),
        'events': events,
        'changes': changes,
        'detected': rate(sum(bool(event['detected']) for event in judged_events),
                         len(judged_events)),
        'missed': sum(event['detected'] is False for event in events),
        'unobservable': sum(event['detected'] is None for event in events),
        'false_events': rate(sum(bool(change['false']) for change in judged_changes),
                             len(judged_changes)),
        'unjudged_changes': len(changes) - len(judged_changes),
        'latency': percentiles(event['latency'] for event in events
                               if event['latency'] is not None),
        'agreement': rate(agreeing, len(judged_ticks)),
        'tick_log': [{'at': tick.offset, 'status': tick.status, 'answer': tick.answer,
                      'raw_text': tick.raw_text, 'error_code': tick.error_code,
                      'error': tick.error, 'frame_age': tick.frame_age,
                      'latency': tick.total_time}
                     for tick in run.ticks],
    }


def monitors_report(runs: Sequence[MonitorRun], *, replayed: bool = True,
                    note: str = '') -> dict[str, Any]:
    """The `monitors` block of report.json: per monitor its record, and the rates pooled.

    Args:
        runs: the replayed monitors.
        replayed: False when the run did not replay the set's monitors (a shard).
        note: why not, or what the replay did not model.
    """
    records = [score_monitor(run) for run in runs]

    def pooled(key: str) -> dict[str, Any]:
        return rate(sum(record[key]['k'] for record in records),
                    sum(record[key]['n'] for record in records))

    return {
        'replayed': replayed,
        'note': note or OFFLINE_NOTE,
        'summary': {
            'monitors': len(records),
            'events': sum(len(record['events']) for record in records),
            'detected': pooled('detected'),
            'missed': sum(record['missed'] for record in records),
            'unobservable': sum(record['unobservable'] for record in records),
            'false_events': pooled('false_events'),
            'latency': percentiles(event['latency'] for record in records
                                   for event in record['events']
                                   if event['latency'] is not None),
            'agreement': pooled('agreement'),
            'ticks': sum(record['ticks']['count'] for record in records),
            'tick_errors': sum(sum(record['ticks']['errors'].values()) for record in records),
        },
        'monitors': records,
    }


def monitors_markdown(block: dict[str, Any]) -> list[str]:
    """The report.md section of the monitors block."""
    lines = ['', '## Monitors', '', block['note'], '']
    if not block['replayed']:
        return lines
    summary = block['summary']
    lines += ['| metric | value |', '| --- | --- |']
    lines += [f'| {name} | {value} |' for name, value in _rate_rows(summary)]
    for record in block['monitors']:
        monitor = record['monitor']
        lines += ['', f"### Monitor `{monitor['name']}`", '',
                  f"{monitor['mode']}: {monitor['task'] or monitor['object_name']} (every "
                  f"{monitor['period']:g} s, max latency {monitor['max_latency']:g} s; "
                  f"{record['ticks']['count']} ticks, {record['ticks']['answered']} answered)"]
        if record['error']:
            lines += ['', f"**Not replayed**: {record['error']}"]
        lines += ['', '| metric | value |', '| --- | --- |']
        lines += [f'| {name} | {value} |' for name, value in _rate_rows(record)]
        lines += ['', '| labelled event | from (s) | detected | latency (s) |',
                  '| --- | --- | --- | --- |']
        for event in record['events']:
            detected = {True: 'yes', False: 'missed', None: 'not observable'}[event['detected']]
            latency = '' if event['latency'] is None else f"{event['latency']:.3f}"
            lines.append(f"| {event['answer']} | {event['from']:.3f} | {detected} | "
                         f'{latency} |')
        if record['changes']:
            lines += ['', '| change at (s) | from | to | labelled then | false |',
                      '| --- | --- | --- | --- | --- |']
            for change in record['changes']:
                false = {True: 'false', False: '', None: 'not judged'}[change['false']]
                lines.append(f"| {change['at']:.3f} | {_cell(change['previous'])} | "
                             f"{_cell(change['answer'])} | {_cell(change['labelled'] or '')} | "
                             f'{false} |')
    return lines


def _rate_rows(block: dict[str, Any]) -> list[tuple[str, str]]:
    latency = block['latency']
    return [
        ('events detected', _rate(block['detected'])),
        ('events missed', str(block['missed'])),
        ('events not observable (the recording ends first)', str(block['unobservable'])),
        ('false events (of judged changes)', _rate(block['false_events'])),
        ('detection latency (mean / max)', (
            f"{latency['mean']:.3f} s / {latency['max']:.3f} s over {latency['count']}"
            if latency['count'] else 'none detected')),
        ('ticks agreeing with the labels', _rate(block['agreement'])),
    ]


def _rate(entry: dict[str, Any]) -> str:
    if not entry['n']:
        return '0 of 0'
    low, high = entry['interval']
    return f"{entry['k']} of {entry['n']} ({entry['rate']:.1%}, 95% CI {low:.1%} to {high:.1%})"


def _cell(text: str, limit: int = 60) -> str:
    text = ' '.join(str(text).split()).replace('|', '\\|')
    return text if len(text) <= limit else text[:limit - 3] + '...'


__all__ = ['LIVE_NOTE', 'OFFLINE_NOTE', 'monitors_markdown', 'monitors_report', 'score_monitor']
