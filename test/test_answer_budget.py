"""A constrained answer's share of max_new_tokens is reserved: the reasoning may only use what
leaves room for the longest answer the (possibly shrunk) format allows, a budget too small for
the shortest answer is refused before generation, and a temporal answer never has an event that
ends before it starts.

The walks below play the model as an adversary: reasoning that never ends by itself, then the
longest answer the grammar lets through, one byte a token where it can.
"""

import random

import pytest
import torch

from cosmos_reason_ros.core.answers.check import format_mismatch
from cosmos_reason_ros.core.answers.formats import (
    answer_format,
    AnswerBudgetError,
    fit_answer_format,
    framing_tokens,
    MAX_LABEL_CHARS,
    MAX_WAYPOINTS,
    MIN_WAYPOINTS,
    plan_answer,
    smallest_answer_format,
    StructuredAnswer,
)
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.backends.grammar import GrammarCompiler
from cosmos_reason_ros.demo.tiny_model import build_edge_tokenizer, build_tokenizer

STRUCTURED = (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE)
MODEL_INPUT = (320, 224)
SOURCE = (640, 448)
SHAPES = {
    'no reasoning': {'reasoning': False, 'opens_reasoning': False, 'answer_tags': False},
    'reasoning (Reason2)': {'reasoning': True, 'opens_reasoning': True, 'answer_tags': False},
    'reasoning opened by the prompt (Edge)': {'reasoning': True, 'opens_reasoning': False,
                                              'answer_tags': False},
    'reasoning with <answer> tags (Reason1)': {'reasoning': True, 'opens_reasoning': True,
                                               'answer_tags': True},
}
FAMILY_OF_SHAPE = {'no reasoning': ModelFamily.QWEN3_VL,
                   'reasoning (Reason2)': ModelFamily.QWEN3_VL,
                   'reasoning opened by the prompt (Edge)': ModelFamily.COSMOS3_EDGE,
                   'reasoning with <answer> tags (Reason1)': ModelFamily.QWEN2_5_VL}


@pytest.fixture(scope='module')
def compilers():
    built = {}
    for name, tokenizer in (('qwen', build_tokenizer()), ('edge', build_edge_tokenizer())):
        stop = tokenizer.convert_tokens_to_ids('<|im_end|>')
        built[name] = (tokenizer, stop, GrammarCompiler(tokenizer, vocab_size=len(tokenizer),
                                                        stop_token_ids=[stop]))
    return built


def _plan(mode, family, budget, shape, cap=0):
    return plan_answer(StructuredAnswer(mode, num_choices=4, max_reasoning_tokens=cap),
                       max_new_tokens=budget, reasoning=shape['reasoning'],
                       framing=framing_tokens(**shape), family=family,
                       model_input_size=MODEL_INPUT)


def _minimum(mode, family, shape):
    smallest = smallest_answer_format(mode, family=family, num_choices=4,
                                      model_input_size=MODEL_INPUT)
    return smallest.max_tokens + framing_tokens(**shape)


class _Adversary:
    """Picks the next token as a model that wastes the most tokens would."""

    def __init__(self, tokenizer, stop: int, rng: random.Random):
        self.tokenizer = tokenizer
        self.stop = stop
        self.rng = rng
        self.text = {token: tokenizer.decode([token]) for token in range(len(tokenizer))}
        special = set(tokenizer.all_special_ids) | {stop}
        # Reasoning that never closes itself: plain letters only.
        self.babble = [token for token, text in self.text.items()
                       if token not in special and text.isalpha() and text.isascii()]

    def pick(self, allowed, free: bool) -> int:
        if free:
            return self.rng.choice(self.babble)
        if allowed == [self.stop]:
            return self.stop
        # Never close a string, list or object while something else is allowed, and spell
        # everything a byte at a time: the longest answer the grammar lets through.
        candidates = [t for t in allowed if t != self.stop and
                      not any(c in self.text[t] for c in '"]}')] or \
                     [t for t in allowed if t != self.stop] or [self.stop]
        shortest = min(len(self.text[t].encode()) for t in candidates)
        return self.rng.choice([t for t in candidates if len(self.text[t].encode()) == shortest])


def _walk(compiler, adversary, plan, shape, budget):
    """Generate under the constraint as generate() would; (token ids, ended by the stop)."""
    constraint = compiler.constraint(plan, **shape)
    vocab = len(adversary.tokenizer)
    prompt = [adversary.stop]
    generated = []
    while len(generated) < budget:
        scores = constraint(torch.tensor([prompt + generated]), torch.zeros(1, vocab))
        allowed = torch.nonzero(scores[0] > float('-inf')).flatten().tolist()
        token = adversary.pick(allowed, free=len(allowed) == vocab)
        assert token in allowed
        if token == adversary.stop:
            return generated, True
        generated.append(token)
    return generated, False


@pytest.mark.parametrize('shape_name', list(SHAPES))
@pytest.mark.parametrize('mode', STRUCTURED, ids=[mode.value for mode in STRUCTURED])
def test_random_budgets_never_cut_the_answer(compilers, shape_name, mode):
    shape = SHAPES[shape_name]
    family = FAMILY_OF_SHAPE[shape_name]
    tokenizer, stop, compiler = compilers['edge' if family is ModelFamily.COSMOS3_EDGE
                                          else 'qwen']
    rng = random.Random(f'{shape_name}-{mode.value}')
    adversary = _Adversary(tokenizer, stop, rng)
    minimum = _minimum(mode, family, shape)
    full = answer_format(mode, family=family, num_choices=4, model_input_size=MODEL_INPUT)
    budgets = [minimum, minimum + 1] + [rng.randint(minimum, 2 * (full.max_tokens + 40))
                                        for _ in range(6)]
    for budget in budgets:
        cap = rng.choice([0, budget // 2, budget])  # the last one would eat the answer's share
        plan = _plan(mode, family, budget, shape, cap)
        tokens, ended = _walk(compiler, adversary, plan, shape, budget)
        text = tokenizer.decode(tokens)
        assert ended, f'cut at {budget} tokens: {text!r}'
        parsed = parse_answer(text, mode, family=family, source_size=SOURCE,
                              model_input_size=MODEL_INPUT, num_choices=4,
                              starts_in_reasoning=not shape['opens_reasoning'] and
                              shape['reasoning'])
        assert parsed.status is ParseStatus.OK, (budget, text, parsed.error)
        assert format_mismatch(plan.format, parsed.answer) == '', (budget, text)
        assert parsed.error == '', (budget, text, parsed.error)


@pytest.mark.parametrize('family', [ModelFamily.QWEN3_VL, ModelFamily.COSMOS3_EDGE])
def test_temporal_random_walks_never_end_an_event_before_it_starts(compilers, family):
    tokenizer, stop, compiler = compilers['edge' if family is ModelFamily.COSMOS3_EDGE
                                          else 'qwen']
    shape = SHAPES['no reasoning']
    plan = _plan(Mode.TEMPORAL, family, 4000, shape)
    rng = random.Random(family.value)
    events = 0
    for _ in range(30):
        # A random model: any allowed token, stopping as soon as the grammar allows.
        constraint = compiler.constraint(plan, **shape)
        generated = []
        while True:
            scores = constraint(torch.tensor([[stop] + generated]), torch.zeros(1, len(tokenizer)))
            allowed = torch.nonzero(scores[0] > float('-inf')).flatten().tolist()
            token = stop if stop in allowed else rng.choice(allowed)
            if token == stop:
                break
            generated.append(token)
        text = tokenizer.decode(generated)
        assert format_mismatch(plan.format, text) == '', text
        parsed = parse_answer(text, Mode.TEMPORAL, family=family, source_size=SOURCE)
        assert parsed.status is ParseStatus.OK and parsed.error == '', (text, parsed.error)
        assert all(event.end >= event.start for event in parsed.events)
        events += len(parsed.events)
    assert events >= 30


@pytest.mark.parametrize('mode', STRUCTURED, ids=[mode.value for mode in STRUCTURED])
@pytest.mark.parametrize('shape_name', list(SHAPES))
def test_a_budget_one_below_the_minimum_is_refused_with_the_minimum(mode, shape_name):
    shape = SHAPES[shape_name]
    family = FAMILY_OF_SHAPE[shape_name]
    minimum = _minimum(mode, family, shape)
    plan = _plan(mode, family, minimum, shape, cap=minimum)
    assert plan.max_reasoning_tokens == 0, 'at the minimum the reasoning gets nothing'
    assert plan.reserved_tokens == minimum
    with pytest.raises(AnswerBudgetError, match=f'needs at least {minimum} tokens'):
        _plan(mode, family, minimum - 1, shape)


def test_the_reasoning_gives_way_where_it_would_eat_the_answers_share():
    shape = SHAPES['reasoning (Reason2)']
    plan = _plan(Mode.TRAJECTORY, ModelFamily.QWEN3_VL, 400, shape, cap=390)
    assert plan.max_reasoning_tokens + plan.reserved_tokens == 400
    assert plan.max_reasoning_tokens < 390
    # With room to spare, the cap asked for stands and the full format is kept.
    roomy = _plan(Mode.TRAJECTORY, ModelFamily.QWEN3_VL, 4096, shape)
    assert roomy.max_reasoning_tokens == 2048
    assert roomy.format == answer_format(Mode.TRAJECTORY, family=ModelFamily.QWEN3_VL)


def test_a_small_share_shrinks_labels_before_points():
    full = answer_format(Mode.TRAJECTORY, family=ModelFamily.QWEN3_VL)
    assert full.json_schema['maxItems'] == MAX_WAYPOINTS
    assert f'{{1,{MAX_LABEL_CHARS}}}' in full.json_schema['items']['properties']['label'][
        'pattern']
    fitted = fit_answer_format(Mode.TRAJECTORY, full.max_tokens - 1,
                               family=ModelFamily.QWEN3_VL)
    assert fitted.json_schema['maxItems'] == MAX_WAYPOINTS, 'labels shrink first'
    assert fitted.max_tokens <= full.max_tokens - 1
    tiny = fit_answer_format(Mode.TRAJECTORY, 0, family=ModelFamily.QWEN3_VL)
    assert tiny is None
    smallest = smallest_answer_format(Mode.TRAJECTORY, family=ModelFamily.QWEN3_VL)
    assert smallest.json_schema['maxItems'] == MIN_WAYPOINTS


@pytest.mark.parametrize('mode', STRUCTURED, ids=[mode.value for mode in STRUCTURED])
def test_the_longest_answer_is_what_the_grammar_accepts_and_no_more(mode):
    fmt = answer_format(mode, family=ModelFamily.QWEN2_5_VL, num_choices=4,
                        model_input_size=MODEL_INPUT)
    assert format_mismatch(fmt, fmt.longest) == ''
    if mode is Mode.MULTIPLE_CHOICE:
        assert format_mismatch(fmt, 'AB')
        return
    # One more character in the last text field, or one more item: refused.
    longer = fmt.longest.replace('x"}]', 'xx"}]')
    assert longer != fmt.longest and format_mismatch(fmt, longer)
    item = fmt.longest[1:fmt.longest.index('}') + 1]
    assert format_mismatch(fmt, fmt.longest[:-1] + ', ' + item + ']')


@pytest.mark.parametrize('answer, words', [
    ('', 'empty'),
    ('[{"start": "00:01.00", "end": "00:00.50", "caption": "a door opens"}]',
     'event 0 ends (00:00.50) before it starts (00:01.00)'),
    ('[{"start": "00:01.00", "end": "00:02.00", "caption": "a door opens"}', 'incomplete'),
    ('The door opens at one second.', 'is not of the temporal_localization format'),
])
def test_the_final_check_says_why_an_answer_does_not_match(answer, words):
    fmt = answer_format(Mode.TEMPORAL, family=ModelFamily.QWEN3_VL)
    assert words in format_mismatch(fmt, answer)
    assert format_mismatch(
        fmt, '[{"start": "00:01.00", "end": "00:01.00", "caption": "a door opens"}]') == ''
