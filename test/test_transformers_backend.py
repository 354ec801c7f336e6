"""TransformersBackend on the tiny checkpoints: real frame times, streaming, cancel, load errors.

Both families load from disk through the same path as the real Cosmos-Reason checkpoints.
"""

import json
import threading
import time

import numpy as np
import pytest

from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import (
    _Decoder,
    _TextStreamer,
    TransformersBackend,
    video_metadata,
)
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import (
    GenerationCancelled,
    GenerationError,
    InvalidRequestError,
    ModelLoadError,
)
from cosmos_reason_ros.core.modes import Mode, ModelFamily
from cosmos_reason_ros.core.prompts import build_prompt
from cosmos_reason_ros.core.tiny_model import (
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
             mode=Mode.CAPTION):
    return GenerationRequest(
        prompt=build_prompt(mode, family=family, reasoning=True),
        frames=_frames(frames), timestamps=stamps[:frames],
        sampling=Sampling(max_new_tokens=max_new_tokens, greedy=greedy, seed=seed))


def _load(path):
    backend = TransformersBackend(ModelConfig(model=str(path), device='cpu', dtype='auto'))
    backend.load()
    return backend


@pytest.fixture(scope='module')
def qwen3(tiny_qwen3_checkpoint):
    backend = _load(tiny_qwen3_checkpoint)
    yield backend
    backend.close()


@pytest.fixture(scope='module')
def qwen25(tiny_qwen25_checkpoint):
    backend = _load(tiny_qwen25_checkpoint)
    yield backend
    backend.close()


@pytest.fixture(params=[ModelFamily.QWEN3_VL, ModelFamily.QWEN2_5_VL], ids=['qwen3', 'qwen25'])
def backend(request):
    return request.getfixturevalue('qwen3' if request.param is ModelFamily.QWEN3_VL else 'qwen25')


class _GenerateSpy:
    """Wraps model.generate to record the inputs the model received."""

    def __init__(self, monkeypatch, backend):
        self.calls = []
        original = backend._model.generate

        def generate(**kwargs):
            self.calls.append(kwargs)
            return original(**kwargs)

        monkeypatch.setattr(backend._model, 'generate', generate)


def test_family_device_and_dtype_come_from_the_checkpoint(qwen3, qwen25):
    assert qwen3.family is ModelFamily.QWEN3_VL
    assert qwen25.family is ModelFamily.QWEN2_5_VL
    assert qwen3.device == 'cpu' and qwen3.dtype == 'float32'
    assert 'qwen3_vl' in qwen3.describe()


def test_qwen3_prompt_carries_the_real_frame_times(qwen3, monkeypatch):
    spy = _GenerateSpy(monkeypatch, qwen3)
    result = qwen3.generate(_request(ModelFamily.QWEN3_VL))
    prompt = qwen3._processor.tokenizer.decode(spy.calls[0]['input_ids'][0])
    # One marker per temporal patch (two frames), at the mean of the patch's stamps.
    expected = [f'<{(STAMPS[i] + STAMPS[i + 1]) / 2:.1f} seconds>' for i in (0, 2)]
    assert expected == ['<0.1 seconds>', '<0.7 seconds>']
    markers = [part.split('>')[0] for part in prompt.split('<')[1:] if 'seconds>' in part]
    assert [f'<{m}>' for m in markers] == expected
    assert prompt.index('<0.7 seconds>') < prompt.index('Caption the video in detail.')
    assert result.prompt_tokens == spy.calls[0]['input_ids'].shape[-1]


def test_qwen3_metadata_is_a_1000_fps_video_of_the_stamps():
    meta = video_metadata([0.0, 0.25, 0.6, 0.75], ModelFamily.QWEN3_VL, width=128, height=96)
    assert meta['fps'] == 1000.0
    assert meta['frames_indices'] == [0, 250, 600, 750]
    assert meta['total_num_frames'] == 751
    assert meta['duration'] == pytest.approx(0.751)


def test_qwen25_gets_the_frame_rate_of_the_stamps(qwen25, monkeypatch):
    spy = _GenerateSpy(monkeypatch, qwen25)
    qwen25.generate(_request(ModelFamily.QWEN2_5_VL))
    received = spy.calls[0]
    # 4 frames over 0.75 s are 4 fps: a temporal patch of two frames spans 0.5 s.
    assert float(received['second_per_grid_ts'][0]) == pytest.approx(0.5)
    assert 'seconds>' not in qwen25._processor.tokenizer.decode(received['input_ids'][0])


def test_one_frame_is_sent_as_an_image(backend, monkeypatch):
    spy = _GenerateSpy(monkeypatch, backend)
    result = backend.generate(_request(backend.family, frames=1))
    received = spy.calls[0]
    assert 'image_grid_thw' in received and 'video_grid_thw' not in received
    prompt = backend._processor.tokenizer.decode(received['input_ids'][0])
    assert '<|image_pad|>' in prompt and '<|video_pad|>' not in prompt
    assert result.text and result.completion_tokens == 6


@pytest.mark.parametrize('frames', [1, 4])
def test_model_input_size_is_the_frame_rounded_to_whole_tokens(backend, frames):
    result = backend.generate(_request(backend.family, frames=frames, max_new_tokens=1))
    # 128x96 frames: Qwen3-VL rounds to 32 px per token, Qwen2.5-VL to 28 px.
    expected = (128, 96) if backend.family is ModelFamily.QWEN3_VL else (140, 84)
    assert result.model_input_size == expected


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


def test_concurrent_calls_are_serialized(backend):
    request = _request(backend.family, max_new_tokens=8)
    expected = backend.generate(request).text
    results = []
    threads = [threading.Thread(target=lambda: results.append(backend.generate(request).text))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [expected] * 3


def test_think_tags_survive_decoding_and_eos_means_stop(qwen3, monkeypatch):
    tokenizer = qwen3._processor.tokenizer
    answer_ids = tokenizer('<think>\nthe cup</think>\n\nyes', add_special_tokens=False)[
        'input_ids'] + [tokenizer.convert_tokens_to_ids('<|im_end|>')]

    def generate(*, input_ids, streamer, **kwargs):
        import torch

        streamer.put(input_ids)
        for token in answer_ids:
            streamer.put(torch.tensor([token]))
        streamer.end()
        return torch.cat([input_ids, torch.tensor([answer_ids])], dim=-1)

    monkeypatch.setattr(qwen3._model, 'generate', generate)
    pieces = []
    result = qwen3.generate(_request(ModelFamily.QWEN3_VL, max_new_tokens=64),
                            on_text=lambda text, tokens: pieces.append(text))
    assert result.text == '<think>\nthe cup</think>\n\nyes'
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


@pytest.mark.parametrize('config, message', [
    ({'model_type': 'llama', 'vocab_size': 32, 'hidden_size': 16, 'num_hidden_layers': 1,
      'num_attention_heads': 2, 'intermediate_size': 32}, "unsupported model type 'llama'"),
    ({'model_type': 'not_a_model'}, 'not_a_model'),
])
def test_unsupported_checkpoint_is_a_load_error(tmp_path, config, message):
    (tmp_path / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=message):
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


def test_tiny_checkpoints_are_small_and_keep_the_real_vision_geometry(tiny_qwen3_checkpoint,
                                                                      tiny_qwen25_checkpoint):
    for path, patch in ((tiny_qwen3_checkpoint, 16), (tiny_qwen25_checkpoint, 14)):
        config = json.loads((path / 'config.json').read_text())
        assert config['vision_config']['patch_size'] == patch
        assert config['vision_config']['spatial_merge_size'] == 2
        assert config['vision_config']['temporal_patch_size'] == 2
        assert checkpoint_summary(path)[1] < 1_000_000


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
    assert _Decoder(tokenizer).decode(ids) == '<think>\nok</think>\n\nyes'


def test_streamer_holds_back_split_characters():
    import torch

    tokenizer = build_tokenizer()
    ids = tokenizer('a€b ünd', add_special_tokens=False)['input_ids']
    assert len(ids) > len('a€b ünd') - 2, 'the euro sign should take several byte tokens'
    pieces = []
    streamer = _TextStreamer(_Decoder(tokenizer), lambda text, tokens: pieces.append(text))
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: skipped
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert ''.join(pieces) == 'a€b ünd'
    assert not any('\ufffd' in piece for piece in pieces)
