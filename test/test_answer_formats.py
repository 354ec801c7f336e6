"""Answer formats and the parser cannot drift apart: answers drawn at random from each compiled
grammar (what a constrained model can write) all parse, with the mode's typed result.
"""

import random
import re

import pytest
import torch
import xgrammar as xgr

from cosmos_reason_ros.core.answers.formats import answer_format
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.backends.grammar import GrammarCompiler
from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.demo.tiny_model import build_edge_tokenizer, build_tokenizer

STRUCTURED = (Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL, Mode.MULTIPLE_CHOICE)
MODEL_INPUT = (320, 224)
SOURCE = (640, 448)
_REVERSED = r'skipped event \d+: event ends \([\d.]+ s\) before it starts \([\d.]+ s\)'
REVERSED_ONLY = re.compile(rf'{_REVERSED}(?:; {_REVERSED})*(?:; and \d+ more)?(?:; expected .*)?')


@pytest.fixture(scope='module')
def tokenizers():
    return {'qwen': build_tokenizer(), 'edge': build_edge_tokenizer()}


def _draw(tokenizer, compiled, rng: random.Random, limit: int = 4000) -> str:
    """A random answer the grammar accepts: each token uniformly among the allowed ones."""
    matcher = xgr.GrammarMatcher(compiled)
    vocab = compiled.tokenizer_info.vocab_size
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    tokens = []
    for _ in range(limit):
        matcher.fill_next_token_bitmask(bitmask)
        logits = torch.zeros(1, vocab)
        xgr.apply_token_bitmask_inplace(logits, bitmask)
        allowed = torch.nonzero(logits[0] > float('-inf')).flatten().tolist()
        stops = [t for t in allowed if t in compiled.tokenizer_info.stop_token_ids]
        # Stop as soon as the grammar allows it, so that answers stay short.
        token = stops[0] if stops else rng.choice(allowed)
        assert matcher.accept_token(token)
        if matcher.is_terminated():
            return tokenizer.decode(tokens, skip_special_tokens=False)
        tokens.append(token)
    raise AssertionError('the grammar did not end within the limit')


@pytest.mark.parametrize('family', list(ModelFamily))
@pytest.mark.parametrize('mode', STRUCTURED)
def test_answers_drawn_from_the_grammar_always_parse(tokenizers, family, mode):
    tokenizer = tokenizers['edge' if family is ModelFamily.COSMOS3_EDGE else 'qwen']
    stop = tokenizer.convert_tokens_to_ids('<|im_end|>')
    compiler = GrammarCompiler(tokenizer, vocab_size=len(tokenizer), stop_token_ids=[stop])
    answer = answer_format(mode, family=family, num_choices=4, model_input_size=MODEL_INPUT)
    compiled = compiler._compiled(answer, prefix='', suffix='')  # noqa: SLF001
    rng = random.Random(f'{family.value}-{mode.value}')
    for _ in range(10):
        text = _draw(tokenizer, compiled, rng)
        parsed = parse_answer(text, mode, family=family, source_size=SOURCE,
                              model_input_size=MODEL_INPUT, num_choices=4)
        if mode is Mode.TEMPORAL and parsed.error:
            # A schema cannot order two fields: an event that ends before it starts is the one
            # thing the grammar lets through, and the parser skips it, naming it.
            assert REVERSED_ONLY.fullmatch(parsed.error), (text, parsed.error)
            continue
        assert parsed.status is ParseStatus.OK, (text, parsed.error)
        assert parsed.error == '', (text, parsed.error)
        if mode is Mode.TRAJECTORY:
            assert len(parsed.trajectories) >= 1
            assert sum(len(t.points) for t in parsed.trajectories) >= 2
            assert all(0 <= x <= SOURCE[0] and 0 <= y <= SOURCE[1]
                       for t in parsed.trajectories for x, y in t.points)
        elif mode is Mode.GROUNDING:
            assert parsed.boxes
        elif mode is Mode.TEMPORAL:
            assert parsed.events
        else:
            assert parsed.choice in ('A', 'B', 'C', 'D')  # one of the 4 letters, never ''


@pytest.mark.parametrize('mode', [Mode.QUESTION, Mode.CAPTION, Mode.NEXT_ACTION])
def test_free_text_modes_have_no_format(mode):
    assert answer_format(mode, family=ModelFamily.QWEN3_VL) is None


@pytest.mark.parametrize('kwargs, message', [
    ({'mode': Mode.MULTIPLE_CHOICE, 'family': ModelFamily.QWEN3_VL, 'num_choices': 0},
     'no answer format for 0 choices'),
    ({'mode': Mode.TRAJECTORY, 'family': ModelFamily.QWEN2_5_VL},
     'without the model input size'),
])
def test_formats_that_cannot_be_built_say_why(kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        answer_format(**kwargs)


def test_string_bounds_stay_within_what_vllms_grammar_engine_compiles():
    from cosmos_reason_ros.core.answers import formats as answer_formats

    assert answer_formats.MAX_LABEL_CHARS <= answer_formats.MAX_REPEAT
    assert answer_formats.MAX_CAPTION_CHARS <= answer_formats.MAX_REPEAT


def test_coordinates_follow_the_family_range():
    normalized = answer_format(Mode.GROUNDING, family=ModelFamily.COSMOS3_EDGE)
    box = normalized.json_schema['items']['properties']['bbox_2d']['prefixItems']
    assert [axis['maximum'] for axis in box] == [1000] * 4
    pixels = answer_format(Mode.GROUNDING, family=ModelFamily.QWEN2_5_VL,
                           model_input_size=(320, 224))
    box = pixels.json_schema['items']['properties']['bbox_2d']['prefixItems']
    assert [axis['maximum'] for axis in box] == [319, 223, 319, 223]
