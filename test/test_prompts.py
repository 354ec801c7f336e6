"""Prompt templates per mode and family, reasoning placement, sampling presets and overrides."""

from pathlib import Path
import subprocess
import sys

import pytest

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt, SYSTEM_PROMPT
from cosmos_reason_ros.core.answers.sampling import resolve_sampling, sampling_preset
from cosmos_reason_ros.core.backends.base import Prompt, Sampling
from cosmos_reason_ros.core.errors import InvalidRequestError

REASON2 = ModelFamily.QWEN3_VL
REASON1 = ModelFamily.QWEN2_5_VL
EDGE = ModelFamily.COSMOS3_EDGE
OMNI = ModelFamily.COSMOS3_OMNI

TEMPORAL = (
    'Describe the notable events in the provided video. Provide the result in json format with '
    "'mm:ss.ff' format for time depiction for each event. Use keywords 'start', 'end' and "
    "'caption' in the json output.")
TRAJECTORY = (
    'You are given the task "pick up the cup". Specify the 2D trajectory your end effector '
    'should follow in pixel space. Return the trajectory coordinates in JSON format like this: '
    '{"point_2d": [x, y], "label": "gripper trajectory"}.')
REASON2_SUFFIX = (
    'Answer the question using the following format:\n\n<think>\nYour reasoning.\n</think>\n\n'
    'Write your final answer immediately after the </think> tag.')
REASON1_SUFFIX = (
    'Answer the question in the following format: <think>\nyour reasoning\n</think>\n\n'
    '<answer>\nyour answer\n</answer>.')


@pytest.mark.parametrize('mode, kwargs, user', [
    (Mode.CAPTION, {}, 'Caption the video in detail.'),
    (Mode.CAPTION, {'task': 'Focus on the forklift'},
     'Focus on the forklift. Caption the video in detail.'),
    (Mode.TEMPORAL, {}, TEMPORAL),
    (Mode.TEMPORAL, {'task': 'Only the pedestrians?'}, f'Only the pedestrians? {TEMPORAL}'),
    (Mode.GROUNDING, {'object_name': 'the red cup'},
     'Locate the bounding box of the red cup. Return a json.'),
    (Mode.NEXT_ACTION, {}, 'What can be the next immediate action?'),
    (Mode.NEXT_ACTION, {'task': 'put the tape into the basket'},
     "The robot's task is: put the tape into the basket. What can be the next immediate action?"),
    (Mode.TRAJECTORY, {'task': ' pick up the cup '}, TRAJECTORY),
    (Mode.QUESTION, {'task': 'Is it safe to turn right?'}, 'Is it safe to turn right?'),
    (Mode.MULTIPLE_CHOICE, {'task': 'What happens next?', 'choices': ['the door opens', ' no ']},
     "What happens next?\n(A) the door opens\n(B) no\n"
     "Answer with the option's letter from the given choices directly."),
])
@pytest.mark.parametrize('family', list(ModelFamily))
def test_templates_without_reasoning(mode, kwargs, user, family):
    assert build_prompt(mode, family=family, **kwargs) == Prompt(system=SYSTEM_PROMPT, user=user)


@pytest.mark.parametrize('family', [REASON2, EDGE, OMNI])
def test_reason2_and_cosmos3_append_reasoning_to_the_user_text_after_a_blank_line(family):
    prompt = build_prompt(Mode.QUESTION, family=family, task='Is it safe?', reasoning=True)
    assert prompt.system == 'You are a helpful assistant.'
    assert prompt.user == f'Is it safe?\n\n{REASON2_SUFFIX}'
    assert prompt.reasoning


def test_reason1_appends_reasoning_to_the_system_prompt():
    prompt = build_prompt(Mode.QUESTION, family=REASON1, task='Is it safe?', reasoning=True)
    assert prompt.system == f'You are a helpful assistant. {REASON1_SUFFIX}'
    assert prompt.user == 'Is it safe?'
    assert prompt.reasoning


@pytest.mark.parametrize('family', list(ModelFamily))
def test_the_prompt_says_whether_it_asks_for_reasoning(family):
    assert not build_prompt(Mode.CAPTION, family=family).reasoning
    assert build_prompt(Mode.CAPTION, family=family, reasoning=True).reasoning


def test_reasoning_follows_the_multiple_choice_instruction():
    prompt = build_prompt(Mode.MULTIPLE_CHOICE, family=REASON2, task='Q?', choices=['a', 'b'],
                          reasoning=True)
    assert prompt.user.endswith(
        f"Answer with the option's letter from the given choices directly.\n\n{REASON2_SUFFIX}")


def test_choices_are_lettered_up_to_z():
    choices = [f'option {i}' for i in range(26)]
    lines = build_prompt(Mode.MULTIPLE_CHOICE, family=REASON2, task='Which?',
                         choices=choices).user.splitlines()
    assert lines[1] == '(A) option 0'
    assert lines[26] == '(Z) option 25'
    assert len(lines) == 28


@pytest.mark.parametrize('mode, kwargs, message', [
    (Mode.QUESTION, {}, 'task'),
    (Mode.QUESTION, {'task': '   '}, 'task'),
    (Mode.TRAJECTORY, {}, 'task instruction'),
    (Mode.MULTIPLE_CHOICE, {'choices': ['a', 'b']}, 'question'),
    (Mode.GROUNDING, {'task': 'find it'}, 'object_name'),
    (Mode.MULTIPLE_CHOICE, {'task': 'Q?', 'choices': ['only one']}, '2 to 26 choices, got 1'),
    (Mode.MULTIPLE_CHOICE, {'task': 'Q?', 'choices': [str(i) for i in range(27)]},
     'got 27'),
    (Mode.MULTIPLE_CHOICE, {'task': 'Q?', 'choices': ['a', ' ']}, 'empty choice'),
])
def test_missing_fields_raise_with_what_to_fill(mode, kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        build_prompt(mode, family=REASON2, **kwargs)


def test_presets_match_nvidia_recommendations():
    assert sampling_preset(reasoning=True, max_new_tokens=4096) == Sampling(
        max_new_tokens=4096, temperature=0.6, top_p=0.95, top_k=20)
    assert sampling_preset(reasoning=False, max_new_tokens=512) == Sampling(
        max_new_tokens=512, temperature=0.7, top_p=0.8, top_k=20, presence_penalty=1.5)


def test_overrides_replace_only_what_is_given():
    preset = sampling_preset(reasoning=True, max_new_tokens=4096)
    assert resolve_sampling(preset) == preset
    resolved = resolve_sampling(preset, top_k=5, seed=7, max_new_tokens=64)
    assert resolved == Sampling(max_new_tokens=64, temperature=0.6, top_p=0.95, top_k=5, seed=7)


@pytest.mark.parametrize('kwargs', [{'greedy': True}, {'temperature': 0.0}])
def test_greedy_and_zero_temperature_decode_greedily(kwargs):
    preset = sampling_preset(reasoning=False, max_new_tokens=8)
    assert resolve_sampling(preset, **kwargs).greedy


@pytest.mark.parametrize('kwargs, name', [
    ({'temperature': -0.1}, 'temperature'),
    ({'top_p': 0.0}, 'top_p'),
    ({'top_p': 1.5}, 'top_p'),
    ({'top_k': -1}, 'top_k'),
    ({'max_new_tokens': 0}, 'max_new_tokens'),
])
def test_out_of_range_overrides_raise(kwargs, name):
    with pytest.raises(InvalidRequestError, match=name):
        resolve_sampling(sampling_preset(reasoning=False, max_new_tokens=8), **kwargs)


def test_prompts_module_does_not_need_torch():
    code = ('import sys, cosmos_reason_ros.core.answers.prompts; '
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, '-c', code], cwd=repo).returncode == 0
