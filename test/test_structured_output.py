"""Constrained decoding on the local backend: even the random tiny models answer structured modes
in a form that parses, the reasoning before the answer stays free (up to its cap), and every way
the constraint can be unavailable ends in an unconstrained answer with a warning.
"""

import numpy as np
import pytest

from cosmos_reason_ros.core.answers.families import family_spec
from cosmos_reason_ros.core.answers.formats import StructuredAnswer
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends import grammar
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.config import GoalDefaults, ModelConfig
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonRequest

FAMILIES = ['qwen3', 'qwen25', 'edge', 'omni']
CASES = [
    (Mode.TRAJECTORY, {'task': 'Move the tape into the basket'}),
    (Mode.GROUNDING, {'object_name': 'the basket'}),
    (Mode.MULTIPLE_CHOICE, {'task': 'What happens next?', 'choices': ('stop', 'go', 'wait')}),
]


@pytest.fixture(scope='module')
def backends(tiny_qwen3_checkpoint, tiny_qwen25_checkpoint, tiny_edge_checkpoint,
             tiny_omni_checkpoint):
    paths = {'qwen3': tiny_qwen3_checkpoint, 'qwen25': tiny_qwen25_checkpoint,
             'edge': tiny_edge_checkpoint, 'omni': tiny_omni_checkpoint}
    loaded = {}
    for name, path in paths.items():
        loaded[name] = TransformersBackend(ModelConfig(model=str(path), device='cpu'))
        loaded[name].load()
    yield loaded
    for backend in loaded.values():
        backend.close()


def _frames(count=2):
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(count)]


def _generate(backend, mode, kwargs, *, reasoning=False, max_new_tokens=600, cap=0,
              structured=True, seed=0):
    prompt = build_prompt(mode, family=backend.family, reasoning=reasoning, **kwargs)
    request = GenerationRequest(
        prompt=prompt, frames=_frames(), timestamps=[0.0, 0.25],
        sampling=Sampling(max_new_tokens=max_new_tokens, seed=seed),
        structured=(StructuredAnswer(mode, num_choices=len(kwargs.get('choices', ())),
                                     max_reasoning_tokens=cap) if structured else None))
    result = backend.generate(request)
    parsed = parse_answer(
        result.text, mode, family=backend.family, source_size=(128, 96),
        model_input_size=result.model_input_size, num_choices=len(kwargs.get('choices', ())),
        starts_in_reasoning=reasoning and family_spec(backend.family).thinking_opens_answer)
    return result, parsed


@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('mode, kwargs', CASES, ids=[mode.value for mode, _ in CASES])
def test_random_models_answer_in_form_when_constrained(backends, name, mode, kwargs):
    backend = backends[name]
    for seed in range(3):
        result, parsed = _generate(backend, mode, kwargs, seed=seed)
        assert result.constrained and not result.warnings
        assert result.finish_reason == 'stop', 'the grammar ends the answer with end of turn'
        assert parsed.status is ParseStatus.OK, (result.text, parsed.error)


@pytest.mark.parametrize('name', ['qwen3', 'edge'])
def test_unconstrained_random_models_do_not_parse(backends, name):
    # The control: the same goals without the grammar (what the constraint is for).
    mode, kwargs = CASES[0]
    result, parsed = _generate(backends[name], mode, kwargs, max_new_tokens=60,
                               structured=False)
    assert not result.constrained and parsed.status is not ParseStatus.OK


@pytest.mark.parametrize('name', FAMILIES)
def test_reasoning_runs_free_then_is_closed_at_its_cap_and_the_answer_is_in_form(backends,
                                                                                name):
    backend = backends[name]
    mode, kwargs = CASES[0]
    result, parsed = _generate(backend, mode, kwargs, reasoning=True, cap=12)
    assert result.constrained and result.reasoning_cut
    assert parsed.status is ParseStatus.OK, (result.text, parsed.error)
    assert parsed.reasoning, 'the free reasoning is kept'
    assert result.text.count('</think>') == 1
    if family_spec(backend.family).thinking_opens_answer:
        assert '<think>' not in result.text   # the Edge template opened it
    else:
        assert result.text.startswith('<think>')  # the model had to open it first
    if name == 'qwen25':
        assert '<answer>' in result.text and result.text.rstrip().endswith('</answer>')


def test_the_grammar_is_compiled_once_per_format(backends, monkeypatch):
    backend = backends['qwen3']
    compiled = []
    original = grammar.GrammarCompiler._compile

    def counting(self, *args, **kwargs):
        compiled.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(grammar.GrammarCompiler, '_compile', counting)
    mode, kwargs = (Mode.GROUNDING, {'object_name': 'the red box'})
    before = len(compiled)
    for seed in range(3):
        _generate(backend, mode, {**kwargs}, seed=seed, max_new_tokens=300)
    assert len(compiled) - before <= 1


@pytest.mark.parametrize('breakage, words', [
    ('library', 'the grammar library is missing'),
    ('tokenizer', 'cannot read this tokenizer'),
    ('choices', 'no answer format for 1 choices'),
])
def test_a_constraint_that_cannot_be_had_leaves_the_answer_free_with_a_warning(
        tiny_qwen3_checkpoint, monkeypatch, breakage, words):
    # A fresh backend: the compiler caches what it compiled.
    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu'))
    backend.load()
    mode, kwargs = CASES[0]
    if breakage == 'library':
        def missing():
            raise grammar.ConstraintError('the grammar library is missing (No module named '
                                          "'xgrammar'): pip install xgrammar")
        monkeypatch.setattr(grammar, '_xgrammar', missing)
    elif breakage == 'tokenizer':
        import xgrammar

        def unreadable(*args, **kwargs):
            raise ValueError('unknown vocabulary type')
        monkeypatch.setattr(xgrammar.TokenizerInfo, 'from_huggingface', unreadable)
    prompt = build_prompt(mode, family=backend.family, **kwargs)
    request = GenerationRequest(
        prompt=prompt, frames=_frames(), timestamps=[0.0, 0.25],
        sampling=Sampling(max_new_tokens=8, greedy=True),
        structured=StructuredAnswer(Mode.MULTIPLE_CHOICE if breakage == 'choices' else mode,
                                    num_choices=1))
    result = backend.generate(request)
    assert not result.constrained and result.completion_tokens == 8
    assert len(result.warnings) == 1 and words in result.warnings[0]
    backend.close()


class _Backend:
    """Records the requests a Reasoner sends (policy tests need no model)."""

    def __init__(self, real, can_constrain):
        self._real = real
        self.model_id = real.model_id
        self.family = real.family
        self.can_constrain = can_constrain
        self.requests = []

    def generate(self, request, **kwargs):
        self.requests.append(request)
        return self._real.generate(request, **kwargs)


@pytest.mark.parametrize('policy, can, mode, unconstrained, asked', [
    ('auto', True, Mode.TRAJECTORY, False, True),
    ('auto', False, Mode.TRAJECTORY, False, False),
    ('on', False, Mode.TRAJECTORY, False, True),
    ('off', True, Mode.TRAJECTORY, False, False),
    ('auto', True, Mode.TRAJECTORY, True, False),
    ('on', True, Mode.CAPTION, False, False),
])
def test_the_reasoner_asks_for_a_constraint_per_policy_and_goal(backends, policy, can, mode,
                                                                unconstrained, asked):
    backend = _Backend(backends['qwen3'], can)
    reasoner = Reasoner(backend, None, GoalDefaults(structured_output=policy,
                                                    max_new_tokens=200))
    frame = Frame(stamp=0.0, image=_frames(1)[0], source_size=(128, 96))
    reasoner.run(ReasonRequest(mode=mode, task='Move the tape', frames=(frame,),
                               unconstrained=unconstrained, max_new_tokens=200))
    structured = backend.requests[-1].structured
    assert (structured is not None) is asked
    if asked:
        assert structured.mode is mode and structured.max_reasoning_tokens == 100
