"""TransformersBackend on the tiny checkpoints: real frame times, streaming, cancel, load errors.

Every family (Reason2, Reason1, Cosmos3-Edge, Cosmos3-Omni) loads from disk through the same path
as the real checkpoints.
"""

import json
import shutil
import threading
import time

from generate_spy import GenerateSpy
import numpy as np
import pytest

from cosmos_reason_ros.core.answers.families import model_input_size, visual_tokens
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import (
    TransformersBackend,
    video_metadata,
)
from cosmos_reason_ros.core.backends.transformers_streaming import Decoder, TextStreamer
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    ModelLoadError,
)
from cosmos_reason_ros.demo.tiny_model import (
    build_tiny_checkpoint,
    build_tokenizer,
    checkpoint_summary,
    main,
)

STAMPS = (0.0, 0.25, 0.6, 0.75)
"""Non-uniform real stamps: at Qwen3-VL's 24 fps fallback the markers would be 0.0 and 0.1 s."""


def _frames(count, height=96, width=128, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _request(family, *, frames=4, stamps=STAMPS, max_new_tokens=6, greedy=True, seed=None,
             mode=Mode.CAPTION, reasoning=True):
    return GenerationRequest(
        prompt=build_prompt(mode, family=family, reasoning=reasoning),
        frames=_frames(frames), timestamps=stamps[:frames],
        sampling=Sampling(max_new_tokens=max_new_tokens, greedy=greedy, seed=seed))


def _load(path):
    backend = TransformersBackend(ModelConfig(model=str(path), device='cpu', dtype='auto'))
    backend.load()
    return backend


def _prompt_of(backend, call):
    """The prompt text the model received, special tokens included."""
    return backend._processor.tokenizer.decode(call['input_ids'][0])


def _markers(prompt):
    """The `<t seconds>` markers of a prompt, in order."""
    return [f'<{part.split(">")[0]}>' for part in prompt.split('<')[1:] if 'seconds>' in part]


def test_family_device_and_dtype_come_from_the_checkpoint(qwen3, qwen25, edge, omni):
    assert qwen3.family is ModelFamily.QWEN3_VL
    assert qwen25.family is ModelFamily.QWEN2_5_VL
    assert edge.family is ModelFamily.COSMOS3_EDGE
    assert omni.family is ModelFamily.COSMOS3_OMNI
    assert type(edge._model).__name__ == 'Cosmos3EdgeForConditionalGeneration'
    assert type(omni._model).__name__ == 'Cosmos3OmniForConditionalGeneration'
    assert qwen3.device == 'cpu' and qwen3.dtype == 'float32'
    assert 'qwen3_vl' in qwen3.describe()


@pytest.mark.parametrize('name', ['qwen3', 'omni'])
def test_pair_families_get_one_real_time_per_pair_of_frames(name, request, monkeypatch):
    backend = request.getfixturevalue(name)
    spy = GenerateSpy(monkeypatch, backend)
    result = backend.generate(_request(backend.family))
    prompt = _prompt_of(backend, spy.calls[0])
    # One marker per temporal patch (two frames), at the mean of the patch's stamps.
    expected = [f'<{(STAMPS[i] + STAMPS[i + 1]) / 2:.1f} seconds>' for i in (0, 2)]
    assert expected == ['<0.1 seconds>', '<0.7 seconds>']
    assert _markers(prompt) == expected
    assert prompt.index('<0.7 seconds>') < prompt.index('Caption the video in detail.')
    assert result.prompt_tokens == spy.calls[0]['input_ids'].shape[-1]


def test_edge_gets_one_real_time_per_frame_and_no_even_rule(edge, monkeypatch):
    spy = GenerateSpy(monkeypatch, edge)
    edge.generate(_request(ModelFamily.COSMOS3_EDGE, frames=3))
    prompt = _prompt_of(edge, spy.calls[0])
    # temporal_patch_size 1: every frame its own span, stamped with its own time; 0.25 s is
    # written by the processor's '.1f' as 0.2.
    assert _markers(prompt) == ['<0.0 seconds>', '<0.2 seconds>', '<0.6 seconds>']
    spans = prompt.count('<|vision_start|>')
    assert spans == 3 and prompt.count('<|vision_end|>') == 3
    assert int(spy.calls[0]['video_grid_thw'][0][0]) == 3


@pytest.mark.parametrize('reasoning, tail', [
    (True, 'Write your final answer immediately after the </think> tag.<|im_end|>\n'
           '<|im_start|>assistant\n<think>\n'),
    (False, 'Caption the video in detail.<|im_end|>\n<|im_start|>assistant\n<think></think>'),
])
def test_edge_thinking_switch_is_set_explicitly_both_ways(edge, monkeypatch, reasoning, tail):
    spy = GenerateSpy(monkeypatch, edge)
    edge.generate(_request(ModelFamily.COSMOS3_EDGE, reasoning=reasoning))
    prompt = _prompt_of(edge, spy.calls[0])
    assert prompt.startswith('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                             '<|im_start|>user\n<0.0 seconds><|vision_start|>')
    assert prompt.endswith(tail)


@pytest.mark.parametrize('name', ['qwen3', 'omni'])
@pytest.mark.parametrize('reasoning', [True, False])
def test_pair_families_end_the_prompt_with_the_plain_generation_prompt(name, reasoning, request,
                                                                       monkeypatch):
    backend = request.getfixturevalue(name)
    spy = GenerateSpy(monkeypatch, backend)
    backend.generate(_request(backend.family, reasoning=reasoning))
    prompt = _prompt_of(backend, spy.calls[0])
    question = ('Write your final answer immediately after the </think> tag.' if reasoning
                else 'Caption the video in detail.')
    assert prompt.endswith(f'{question}<|im_end|>\n<|im_start|>assistant\n')


def test_qwen3_metadata_is_a_1000_fps_video_of_the_stamps():
    meta = video_metadata([0.0, 0.25, 0.6, 0.75], ModelFamily.QWEN3_VL, width=128, height=96)
    assert meta['fps'] == 1000.0
    assert meta['frames_indices'] == [0, 250, 600, 750]
    assert meta['total_num_frames'] == 751
    assert meta['duration'] == pytest.approx(0.751)


def test_qwen25_gets_the_frame_rate_of_the_stamps(qwen25, monkeypatch):
    spy = GenerateSpy(monkeypatch, qwen25)
    qwen25.generate(_request(ModelFamily.QWEN2_5_VL))
    received = spy.calls[0]
    # 4 frames over 0.75 s are 4 fps: a temporal patch of two frames spans 0.5 s.
    assert float(received['second_per_grid_ts'][0]) == pytest.approx(0.5)
    assert 'seconds>' not in qwen25._processor.tokenizer.decode(received['input_ids'][0])


def test_one_frame_is_sent_as_an_image(backend, monkeypatch):
    spy = GenerateSpy(monkeypatch, backend)
    result = backend.generate(_request(backend.family, frames=1))
    received = spy.calls[0]
    assert 'image_grid_thw' in received and 'video_grid_thw' not in received
    prompt = backend._processor.tokenizer.decode(received['input_ids'][0])
    assert '<|image_pad|>' in prompt and '<|video_pad|>' not in prompt
    assert result.text and result.completion_tokens == 6


@pytest.mark.parametrize('frames', [1, 4])
def test_model_input_size_is_the_frame_rounded_to_whole_tokens(backend, frames):
    result = backend.generate(_request(backend.family, frames=frames, max_new_tokens=1))
    # 128x96 frames: Qwen3-VL and Cosmos 3 round to 32 px per token, Qwen2.5-VL to 28 px.
    expected = (140, 84) if backend.family is ModelFamily.QWEN2_5_VL else (128, 96)
    assert result.model_input_size == expected
    assert result.model_input_size == model_input_size(128, 96, backend.family)


def test_visual_token_counts_match_what_the_processor_expands(backend, monkeypatch):
    spy = GenerateSpy(monkeypatch, backend)
    backend.generate(_request(backend.family, frames=4, max_new_tokens=1))
    pad = backend._processor.tokenizer.convert_tokens_to_ids('<|video_pad|>')
    counted = int((spy.calls[0]['input_ids'][0] == pad).sum())
    assert counted == visual_tokens(128, 96, 4, backend.family)


def test_large_frames_are_bounded_by_max_frame_pixels(tiny_qwen3_checkpoint):
    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu'),
                                  max_frame_pixels=64 * 64)
    backend.load()
    request = GenerationRequest(
        prompt=Prompt(system='', user='What is this?'), frames=[np.zeros((256, 256, 3), np.uint8)],
        timestamps=[0.0], sampling=Sampling(max_new_tokens=1, greedy=True))
    assert backend.generate(request).model_input_size == (64, 64)


def test_streamed_text_adds_up_to_the_result(backend):
    pieces = []
    result = backend.generate(_request(backend.family, max_new_tokens=24),
                              on_text=lambda text, tokens: pieces.append((text, tokens)))
    assert pieces, 'on_text was never called'
    assert ''.join(text for text, _ in pieces) == result.text
    counts = [tokens for _, tokens in pieces]
    assert counts == sorted(counts) and counts[-1] <= result.completion_tokens


def test_cancel_from_the_first_callback_stops_within_one_step(backend):
    cancel = threading.Event()
    calls = []

    def on_text(text, tokens):
        calls.append(tokens)
        cancel.set()

    started = time.perf_counter()
    with pytest.raises(GenerationCancelled):
        backend.generate(_request(backend.family, max_new_tokens=500), on_text=on_text,
                         cancel=cancel)
    assert time.perf_counter() - started < 5.0
    assert max(calls) <= calls[0] + 1
    # The backend serves the next request normally.
    result = backend.generate(_request(backend.family))
    assert result.completion_tokens == 6 and result.finish_reason == 'length'


def test_cancel_set_before_the_call_generates_nothing(backend):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        backend.generate(_request(backend.family), on_text=pytest.fail, cancel=cancel)


def test_timings_and_token_counts(backend):
    result = backend.generate(_request(backend.family, max_new_tokens=8))
    assert result.preprocess_time > 0
    assert 0 <= result.time_to_first_token <= result.generation_time
    assert result.completion_tokens == 8
    assert result.finish_reason == 'length'
    assert result.prompt_tokens > 20
    assert result.reasoning is None


def test_greedy_decoding_repeats_itself(backend):
    first = backend.generate(_request(backend.family, max_new_tokens=12))
    second = backend.generate(_request(backend.family, max_new_tokens=12))
    assert first.text == second.text


def test_seeded_sampling_repeats_itself(backend):
    request = _request(backend.family, max_new_tokens=12, greedy=False, seed=42)
    assert backend.generate(request).text == backend.generate(request).text


def test_concurrent_calls_are_serialized(qwen3, monkeypatch):
    request = _request(ModelFamily.QWEN3_VL, max_new_tokens=8)
    expected = qwen3.generate(request).text
    original = qwen3._model.generate
    inside = []
    overlap = []
    entered = threading.Semaphore(0)

    def generate(**kwargs):
        inside.append(1)
        overlap.append(len(inside))
        entered.release()
        time.sleep(0.05)  # widen the window in which an unserialized call would overlap
        try:
            return original(**kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(qwen3._model, 'generate', generate)
    results = []
    threads = [threading.Thread(target=lambda: results.append(qwen3.generate(request).text))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(overlap) == 3, 'not every call reached the model'
    assert max(overlap) == 1, f'{max(overlap)} calls were inside generate() at once'
    assert results == [expected] * 3


@pytest.mark.parametrize('name, answer', [
    ('qwen3', '<think>\nthe cup</think>\n\nyes'),
    # Cosmos3-Edge with thinking on: the prompt opened <think>, the answer only closes it.
    ('edge', 'the cup</think>\n\nyes'),
])
def test_think_tags_survive_decoding_and_eos_means_stop(name, answer, request, monkeypatch):
    backend = request.getfixturevalue(name)
    tokenizer = backend._processor.tokenizer
    answer_ids = tokenizer(answer, add_special_tokens=False)[
        'input_ids'] + [tokenizer.convert_tokens_to_ids('<|im_end|>')]

    def generate(*, input_ids, streamer, **kwargs):
        import torch

        streamer.put(input_ids)
        for token in answer_ids:
            streamer.put(torch.tensor([token]))
        streamer.end()
        return torch.cat([input_ids, torch.tensor([answer_ids])], dim=-1)

    monkeypatch.setattr(backend._model, 'generate', generate)
    pieces = []
    result = backend.generate(_request(backend.family, max_new_tokens=64),
                              on_text=lambda text, tokens: pieces.append(text))
    assert result.text == answer
    assert ''.join(pieces) == result.text
    assert result.finish_reason == 'stop'
    assert result.completion_tokens == len(answer_ids)


@pytest.mark.parametrize('change, message', [
    ({'frames': []}, 'no frames'),
    ({'timestamps': [0.0, 0.1]}, '2 timestamps for 4 frames'),
    ({'timestamps': [0.0, 0.5, 0.5, 0.7]}, 'increase'),
    ({'frames': _frames(1) + _frames(1, height=64)}, 'mixed sizes'),
    ({'frames': [np.zeros((8, 8), np.uint8)]}, 'RGB uint8'),
])
def test_bad_requests_raise_invalid_request(qwen3, change, message):
    fields = {'prompt': Prompt(system='', user='hi'), 'frames': _frames(4),
              'timestamps': STAMPS, 'sampling': Sampling(max_new_tokens=1)}
    fields.update(change)
    if 'frames' in change and 'timestamps' not in change:
        fields['timestamps'] = [0.1 * i for i in range(len(change['frames']))]
    with pytest.raises(InvalidRequestError, match=message):
        qwen3.generate(GenerationRequest(**fields))


def test_generate_needs_load_and_close_unloads(tiny_qwen3_checkpoint):
    backend = TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu'))
    with pytest.raises(GenerationError, match='not loaded'):
        backend.generate(_request(ModelFamily.QWEN3_VL))
    backend.load()
    backend.load()  # a second load is a no-op
    assert backend.loaded
    backend.close()
    assert not backend.loaded
    with pytest.raises(GenerationError, match='call load'):
        backend.generate(_request(ModelFamily.QWEN3_VL))


@pytest.mark.parametrize('settings, message', [
    ({'model': '/nonexistent/cosmos'}, "model path '/nonexistent/cosmos' does not exist"),
    ({'model': './missing-checkpoint'}, 'does not exist: set model to a hub id'),
    ({'quantization': '4bit'}, 'needs a CUDA GPU'),
    ({'quantization': '3bit'}, "unknown quantization '3bit'"),
    ({'dtype': 'int4'}, "unknown dtype 'int4'"),
    ({'device': 'tpu'}, "unknown device 'tpu'"),
])
def test_bad_settings_raise_model_load_error(tiny_qwen3_checkpoint, settings, message):
    fields = {'model': str(tiny_qwen3_checkpoint), 'device': 'cpu'}
    fields.update(settings)
    with pytest.raises(ModelLoadError, match=message):
        TransformersBackend(ModelConfig(**fields)).load()


def test_cuda_device_without_cuda_is_a_load_error(tiny_qwen3_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(ModelLoadError, match='CUDA is not available'):
        TransformersBackend(ModelConfig(model=str(tiny_qwen3_checkpoint), device='cuda')).load()


@pytest.mark.parametrize('config, found', [
    ({'model_type': 'llama', 'vocab_size': 32, 'hidden_size': 16, 'num_hidden_layers': 1,
      'num_attention_heads': 2, 'intermediate_size': 32}, "a 'llama' model"),
    ({'model_type': 'qwen3', 'vocab_size': 32, 'hidden_size': 16, 'num_hidden_layers': 1,
      'num_attention_heads': 2, 'num_key_value_heads': 2, 'intermediate_size': 32},
     "a 'qwen3' model"),
    ({'model_type': 'not_a_model'}, 'not_a_model'),
])
def test_a_checkpoint_that_is_not_a_reasoner_is_refused_naming_what_is_supported(
        tmp_path, config, found):
    (tmp_path / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as error:
        TransformersBackend(ModelConfig(model=str(tmp_path), device='cpu')).load()
    assert found in str(error.value)
    for model_type in ('qwen3_vl', 'qwen2_5_vl', 'cosmos3_edge', 'cosmos3_omni'):
        assert model_type in str(error.value)


def test_a_generator_pipeline_is_refused_as_not_a_reasoner(tmp_path):
    (tmp_path / 'model_index.json').write_text(json.dumps({'_class_name': 'Cosmos3Pipeline'}))
    with pytest.raises(ModelLoadError, match='diffusers pipeline.*not a reasoner.*cosmos3_edge'):
        TransformersBackend(ModelConfig(model=str(tmp_path), device='cpu')).load()


def test_directory_without_config_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match='holds no config.json'):
        TransformersBackend(ModelConfig(model=str(tmp_path), device='cpu')).load()


def test_uncached_hub_id_offline_is_a_load_error():
    config = ModelConfig(model='nvidia/no-such-model', local_files_only=True, device='cpu')
    expected = "could not load 'nvidia/no-such-model'.*Fix: local_files_only"
    with pytest.raises(ModelLoadError, match=expected):
        TransformersBackend(config).load()


# Tiny checkpoint builder -----------------------------------------------------------------


def test_tiny_checkpoints_are_small_and_keep_the_real_vision_geometry(
        tiny_qwen3_checkpoint, tiny_qwen25_checkpoint, tiny_omni_checkpoint):
    for path, patch in ((tiny_qwen3_checkpoint, 16), (tiny_qwen25_checkpoint, 14),
                        (tiny_omni_checkpoint, 16)):
        config = json.loads((path / 'config.json').read_text())
        assert config['vision_config']['patch_size'] == patch
        assert config['vision_config']['spatial_merge_size'] == 2
        assert config['vision_config']['temporal_patch_size'] == 2
        assert checkpoint_summary(path)[1] < 1_000_000


def test_tiny_edge_keeps_the_real_token_ids_and_one_frame_per_patch(tiny_edge_checkpoint):
    from transformers import AutoProcessor

    config = json.loads((tiny_edge_checkpoint / 'config.json').read_text())
    assert config['model_type'] == 'cosmos3_edge'
    assert config['vision_config']['patch_size'] == 16
    assert config['vision_config']['spatial_merge_size'] == 2
    ids = {key: config[key] for key in ('image_token_id', 'video_token_id',
                                        'vision_start_token_id', 'vision_end_token_id')}
    assert ids == {'image_token_id': 19, 'video_token_id': 18, 'vision_start_token_id': 20,
                   'vision_end_token_id': 21}
    processor = AutoProcessor.from_pretrained(tiny_edge_checkpoint)
    tokenizer = processor.tokenizer
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id) == (0, 1)
    assert tokenizer.convert_tokens_to_ids('<|im_end|>') == 11
    for token in ('<think>', '</think>'):
        assert len(tokenizer(token, add_special_tokens=False)['input_ids']) == 1
    assert processor.video_processor.temporal_patch_size == 1
    generation = json.loads((tiny_edge_checkpoint / 'generation_config.json').read_text())
    assert generation['eos_token_id'] == [11]
    # vLLM reads Edge from the unified layout (test_vllm_cosmos3.py serves it).
    assert config['projector_config']['merger_intermediate_size'] == config[
        'projector_hidden_size']
    assert (tiny_edge_checkpoint / 'transformer' / 'model.safetensors').is_file()
    assert checkpoint_summary(tiny_edge_checkpoint)[1] < 1_000_000


def test_building_again_with_the_same_arguments_reuses_the_checkpoint(tiny_qwen3_checkpoint):
    weights = tiny_qwen3_checkpoint / 'model.safetensors'
    before = weights.stat().st_mtime_ns
    assert build_tiny_checkpoint(tiny_qwen3_checkpoint) == tiny_qwen3_checkpoint
    assert weights.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match='overwrite=True'):
        build_tiny_checkpoint(tiny_qwen3_checkpoint, seed=1)


def test_builder_never_deletes_foreign_directories(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='exists and holds no tiny checkpoint'):
        build_tiny_checkpoint(tmp_path, overwrite=True)
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_cli_builds_a_checkpoint_with_a_wider_head(tmp_path, capsys):
    out = tmp_path / 'reason1'
    assert main([str(out), '--family', 'qwen2_5_vl', '--head-dim', '32']) == 0
    assert capsys.readouterr().out.strip() == str(out)
    config = json.loads((out / 'config.json').read_text())
    assert config['model_type'] == 'qwen2_5_vl'
    assert config['text_config']['hidden_size'] // config['text_config'][
        'num_attention_heads'] == 32
    backend = _load(out)
    result = backend.generate(_request(ModelFamily.QWEN2_5_VL, max_new_tokens=3))
    assert result.completion_tokens == 3


# Decoding and streaming details ----------------------------------------------------------


def test_think_tags_are_kept_even_when_a_tokenizer_marks_them_special():
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({'additional_special_tokens': ['<think>', '</think>']})
    ids = tokenizer('<think>\nok</think>\n\nyes<|im_end|>', add_special_tokens=False)['input_ids']
    assert '<think>' not in tokenizer.decode(ids, skip_special_tokens=True)
    assert Decoder(tokenizer).decode(ids) == '<think>\nok</think>\n\nyes'


def test_streamer_holds_back_split_characters():
    import torch

    tokenizer = build_tokenizer()
    ids = tokenizer('a€b ünd', add_special_tokens=False)['input_ids']
    assert len(ids) > len('a€b ünd') - 2, 'the euro sign should take several byte tokens'
    pieces = []
    streamer = TextStreamer(Decoder(tokenizer), lambda text, tokens: pieces.append(text))
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: skipped
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert ''.join(pieces) == 'a€b ünd'
    assert not any('\ufffd' in piece for piece in pieces)


def test_a_prompt_beyond_the_context_is_refused_before_generating(qwen3, monkeypatch):
    spy = GenerateSpy(monkeypatch, qwen3)
    with pytest.raises(InvalidRequestError) as raised:
        qwen3.generate(_request(ModelFamily.QWEN3_VL, max_new_tokens=32768))
    message = str(raised.value)
    assert "model's context of 32768 tokens" in message and '32768 new tokens' in message
    assert 'lower max_new_tokens' in message
    assert spy.calls == []


def test_a_checkpoint_without_tokenizer_json_fails_the_load_not_every_goal(tiny_qwen3_checkpoint,
                                                                           tmp_path):
    broken = tmp_path / 'no-tokenizer'
    shutil.copytree(tiny_qwen3_checkpoint, broken)
    (broken / 'tokenizer.json').unlink()
    backend = TransformersBackend(ModelConfig(model=str(broken), device='cpu', dtype='fp32'))
    with pytest.raises(ModelLoadError, match='failed a dry run') as raised:
        backend.load()
    assert 'tokenizer.json' in str(raised.value) and not backend.loaded


@pytest.mark.parametrize('local_files_only', [True, False])
def test_a_corrupt_local_checkpoint_is_named_as_such(tiny_qwen3_checkpoint, tmp_path,
                                                     local_files_only):
    broken = tmp_path / 'corrupt'
    shutil.copytree(tiny_qwen3_checkpoint, broken)
    (broken / 'model.safetensors').write_bytes(b'\x00' * 100)
    backend = TransformersBackend(ModelConfig(model=str(broken), device='cpu', dtype='fp32',
                                              local_files_only=local_files_only))
    with pytest.raises(ModelLoadError) as raised:
        backend.load()
    message = str(raised.value)
    assert f"checkpoint in '{broken}'" in message and 'incomplete or corrupt' in message
    assert f'hf download {broken}' not in message and 'huggingface.co' not in message
