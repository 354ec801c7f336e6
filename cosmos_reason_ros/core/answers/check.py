"""The check behind `constrained`: a finished answer is matched against the format it was
constrained to, so that a backend or server that did not hold it is never reported as constrained.

The grammar engine that constrains local answers (xgrammar) matches the text in full; temporal
answers are also checked for events that end before they start, which no schema can express.
"""

from collections import OrderedDict
import dataclasses
import json
import threading
from typing import Any

from cosmos_reason_ros.core.answers.formats import AnswerFormat
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.backends.base import GenerationResult

_COMPILE_LOCK = threading.Lock()


def format_mismatch(answer_format: AnswerFormat, answer: str) -> str:
    """Why an answer does not match its format in full, or '' when it does.

    Args:
        answer_format: The format the answer was constrained to.
        answer: The answer text (reasoning and tags removed; surrounding whitespace is ignored).
    """
    text = answer.strip()
    if not text:
        return 'the answer is empty'
    try:
        matcher = _matcher(answer_format)
    except ImportError as error:
        return f'it could not be checked: the grammar library is missing ({error})'
    if not matcher.accept_string(text):
        return f'{_excerpt(text)} is not of the {answer_format.mode.value} format'
    if not matcher.is_terminated():
        return f'{_excerpt(text)} is incomplete'
    if answer_format.mode is Mode.TEMPORAL:
        for index, event in enumerate(json.loads(text)):
            if event['end'] < event['start']:
                return (f"event {index} ends ({event['end']}) before it starts "
                        f"({event['start']})")
    return ''


def check_constrained(generation: GenerationResult, answer: str) -> GenerationResult:
    """The generation with `constrained` kept only if its answer matches its format.

    A mismatch clears `constrained`, says why in `unmatched_format` and adds a warning; a
    generation cut by max_new_tokens says so, since that is the one way a held format can still
    end unfinished.
    """
    if not generation.constrained or generation.answer_format is None:
        return generation
    why = format_mismatch(generation.answer_format, answer)
    if not why:
        return generation
    if generation.finish_reason == 'length':
        why += ' (generation stopped at max_new_tokens)'
    return dataclasses.replace(
        generation, constrained=False, unmatched_format=why,
        warnings=(*generation.warnings,
                  f'not constrained: the answer does not match its format: {why}'))


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + '...')


def _matcher(answer_format: AnswerFormat) -> Any:
    import xgrammar

    return xgrammar.GrammarMatcher(_compiled(answer_format), terminate_without_stop_token=True)


_CACHE_SIZE = 64
"""Compiled formats kept (a format differs by mode, bounds and, for Reason1, input size)."""
_cache: 'OrderedDict[str, Any]' = OrderedDict()


def _compiled(answer_format: AnswerFormat) -> Any:
    """The format compiled for matching text (no vocabulary: no token masks are needed)."""
    import xgrammar

    key = answer_format.key
    with _COMPILE_LOCK:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        compiler = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]))
        if answer_format.regex is not None:
            compiled = compiler.compile_regex(answer_format.regex)
        else:
            # Not the key's text: its sorted keys would reorder the properties.
            compiled = compiler.compile_json_schema(json.dumps(answer_format.json_schema),
                                                    any_whitespace=False)
        _cache[key] = compiled
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return compiled


__all__ = ['check_constrained', 'format_mismatch']
