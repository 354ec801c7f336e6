"""The family table: every family's conventions, told apart by model_type, and shared timing."""

import pathlib

import numpy as np
import pytest
import yaml

from cosmos_reason_ros.core.answers.families import (
    Coordinates,
    family_for_model_type,
    family_for_served_name,
    family_spec,
    FAMILY_SPECS,
    model_input_size,
    ReasoningPrompt,
    video_timing,
    visual_tokens,
)
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.backends.remote_config import FAMILIES
from cosmos_reason_ros.core.camera.images import downscale

EDGE = ModelFamily.COSMOS3_EDGE
OMNI = ModelFamily.COSMOS3_OMNI
REASON2 = ModelFamily.QWEN3_VL
REASON1 = ModelFamily.QWEN2_5_VL


def test_every_family_has_exactly_one_entry_and_a_remote_setting():
    assert set(FAMILY_SPECS) == set(ModelFamily)
    assert set(FAMILIES) == {'auto', *(family.value for family in ModelFamily)}
    model_types = [t for spec in FAMILY_SPECS.values() for t in spec.model_types]
    assert len(model_types) == len(set(model_types))


@pytest.mark.parametrize('model_type, family', [
    ('qwen3_vl', REASON2), ('qwen3_vl_moe', REASON2), ('qwen2_5_vl', REASON1),
    ('cosmos3_edge', EDGE), ('cosmos3_omni', OMNI),
])
def test_family_comes_from_the_model_type(model_type, family):
    assert family_for_model_type(model_type) is family


@pytest.mark.parametrize('model_type', ['llama', 'qwen3', 'cosmos3_edge_text', 'nemotron_h'])
def test_other_model_types_are_refused_with_what_is_supported(model_type):
    with pytest.raises(ValueError) as error:
        family_for_model_type(model_type)
    message = str(error.value)
    assert f"a '{model_type}' model, which is not a supported reasoner" in message
    for spec in FAMILY_SPECS.values():
        assert spec.title in message


@pytest.mark.parametrize('family, coordinates, placement, switch, opens, patch', [
    (REASON2, Coordinates.NORMALIZED_1000, ReasoningPrompt.USER_SUFFIX, False, False, 2),
    (REASON1, Coordinates.MODEL_INPUT_PIXELS, ReasoningPrompt.SYSTEM_SUFFIX, False, False, 2),
    (EDGE, Coordinates.NORMALIZED_1000, ReasoningPrompt.USER_SUFFIX, True, True, 1),
    (OMNI, Coordinates.NORMALIZED_1000, ReasoningPrompt.USER_SUFFIX, False, False, 2),
])
def test_conventions_per_family(family, coordinates, placement, switch, opens, patch):
    spec = family_spec(family)
    assert spec.coordinates is coordinates
    assert spec.reasoning_prompt is placement
    assert spec.thinking_switch is switch
    assert spec.thinking_opens_answer is opens
    assert spec.temporal_patch_size == patch


def test_only_pair_families_with_text_timestamps_want_an_even_frame_count():
    assert family_spec(REASON2).even_frames
    assert family_spec(OMNI).even_frames
    assert not family_spec(EDGE).even_frames      # one frame per temporal patch
    assert not family_spec(REASON1).even_frames    # no text timestamps to shift


@pytest.mark.parametrize('names, family', [
    (('nvidia/Cosmos3-Edge',), EDGE),
    (('cosmos3',), EDGE),                            # NIM's cosmos3 serves the Edge reasoner
    (('nvidia/Cosmos3-Nano',), OMNI),
    (('my-robot-model', '/models/Cosmos3-Super'), OMNI),
    (('nvidia/Cosmos-Reason1-7B',), REASON1),
    (('Qwen/Qwen2.5-VL-7B-Instruct',), REASON1),
    (('qwen2_5_vl_tiny',), REASON1),
    (('nvidia/Cosmos-Reason2-2B',), REASON2),
])
def test_served_names_point_to_their_family(names, family):
    assert family_for_served_name(*names) is family


def test_a_name_that_says_nothing_gives_none():
    assert family_for_served_name('tiny-cosmos-reason', 'robot-brain') is None


def test_text_timestamp_families_get_a_1000_fps_video_of_the_stamps():
    for family in (REASON2, EDGE, OMNI):
        timing = video_timing([10.0, 10.25, 10.6, 10.75], family)
        assert timing.fps == 1000.0
        assert timing.frames_indices == [0, 250, 600, 750]
        assert timing.total_num_frames == 751
        assert timing.duration == pytest.approx(0.751)


def test_reason1_gets_the_mean_rate_of_the_stamps():
    timing = video_timing([10.0, 10.5, 11.0, 12.0], REASON1)
    assert timing.fps == pytest.approx(1.5)
    assert timing.frames_indices == [0, 1, 2, 3]


@pytest.mark.parametrize('family, size, tokens', [
    (REASON2, (128, 96), 2 * 4 * 3),    # 4 frames: 2 temporal patches of 4x3 tokens
    (OMNI, (128, 96), 2 * 4 * 3),
    (EDGE, (128, 96), 4 * 4 * 3),       # one patch per frame: twice the tokens
    (REASON1, (140, 84), 2 * 5 * 3),
])
def test_visual_tokens_per_family(family, size, tokens):
    assert model_input_size(128, 96, family) == size
    assert visual_tokens(128, 96, 4, family) == tokens


@pytest.mark.parametrize('preset, family, tokens', [
    ('desktop_gpu', REASON2, 1760),
    ('cosmos3_edge_desktop', EDGE, 1792),
    ('cosmos3_edge_thor', EDGE, 672),
    ('cosmos3_server', EDGE, 1792),
])
def test_the_visual_tokens_a_preset_states_follow_from_its_frames_and_family(preset, family,
                                                                          tokens):
    path = pathlib.Path(__file__).resolve().parents[1] / 'config' / f'{preset}.yaml'
    text = path.read_text()
    parameters = yaml.safe_load(text)['/**']['ros__parameters']
    # A 16:9 camera, stored by the window at its pixel budget.
    height, width = downscale(np.zeros((1080, 1920), np.uint8),
                              parameters['window']['max_pixels']).shape
    assert visual_tokens(width, height, parameters['goal']['max_frames'], family) == tokens
    assert f'{tokens:,}' in text
