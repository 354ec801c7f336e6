"""The encoded-frame cache: exact per family, same greedy answers, bounded, off by default.

The features of a temporal patch must not depend on the other patches of the video, or reusing
them would change answers; this is checked bit for bit (CPU, fp32) on the processor's real
output for every family, then end to end over two ticks of a sliding window.
"""

import numpy as np
import pytest
import torch

from cosmos_reason_ros.core.backends import vision_cache
from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.backends.vision_cache import patch_key, VisionFeatureCache
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import ModelLoadError

FAMILIES = {
    'qwen3_vl': 'tiny_qwen3_checkpoint',
    'qwen2_5_vl': 'tiny_qwen25_checkpoint',
    'cosmos3_edge': 'tiny_edge_checkpoint',
    'cosmos3_omni': 'tiny_omni_checkpoint',
}
WINDOW = 8
"""Frames per tick."""
STEP = 2
"""Frames that are new at the second tick (a multiple of every family's temporal patch)."""


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(count)]


def _request(frames: list[np.ndarray]) -> GenerationRequest:
    return GenerationRequest(
        prompt=Prompt(system='You are a helpful assistant.', user='Is the door open?'),
        frames=frames, timestamps=[0.25 * i for i in range(len(frames))],
        sampling=Sampling(max_new_tokens=12, greedy=True))


def _backend(checkpoint, megabytes: int = 0) -> TransformersBackend:
    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', dtype='fp32',
                                              vision_cache_mb=megabytes))
    backend.load()
    return backend


@pytest.fixture(params=sorted(FAMILIES))
def checkpoint(request):
    return request.getfixturevalue(FAMILIES[request.param])


def test_a_patch_alone_encodes_to_the_rows_it_gets_inside_the_video(checkpoint):
    backend = _backend(checkpoint)
    try:
        with torch.inference_mode():
            inputs = backend.preprocess(_request(_frames(WINDOW))).inputs
            pixels, grid = inputs['pixel_values_videos'], inputs['video_grid_thw']
            base = backend._model.base_model
            whole = base.get_video_features(pixels, grid, return_dict=True)
            t, h, w = grid[0].tolist()
            rows, tokens = h * w, h * w // base.visual.spatial_merge_size ** 2
            deepstack = getattr(whole, 'deepstack_features', None) or []
            assert t == WINDOW // backend._processor.video_processor.temporal_patch_size
            for i in range(t):
                alone = base.get_video_features(
                    pixels[i * rows:(i + 1) * rows], torch.tensor([[1, h, w]]), return_dict=True)
                inside = slice(i * tokens, (i + 1) * tokens)
                # Tolerance zero: the same rows through the same kernels.
                assert torch.equal(alone.pooler_output[0], whole.pooler_output[0][inside])
                for k, layer in enumerate(deepstack):
                    assert torch.equal(alone.deepstack_features[k][0], layer[0][inside])
    finally:
        backend.close()


def test_answers_over_a_sliding_window_match_and_reuse_the_shared_patches(checkpoint):
    frames = _frames(WINDOW + STEP)
    ticks = [_request(frames[:WINDOW]), _request(frames[STEP:])]
    plain = _backend(checkpoint)
    try:
        expected = [plain.generate(tick).text for tick in ticks]
        assert plain.vision_cache_stats is None
    finally:
        plain.close()
    cached = _backend(checkpoint, megabytes=64)
    try:
        patch = cached._processor.video_processor.temporal_patch_size
        patches, new = WINDOW // patch, STEP // patch
        first = cached.generate(ticks[0]).text
        stats = cached.vision_cache_stats
        assert (stats.hits, stats.misses, stats.entries) == (0, patches, patches)
        second = cached.generate(ticks[1]).text
        stats = cached.vision_cache_stats
        assert (stats.hits, stats.misses) == (patches - new, patches + new)
        assert 0 < stats.bytes <= stats.max_bytes
        assert 'vision cache 64 MB' in cached.describe()
    finally:
        cached.close()
    assert [first, second] == expected
    assert cached.vision_cache_stats is None


def test_the_cache_is_off_unless_asked_for(tiny_qwen3_checkpoint):
    backend = _backend(tiny_qwen3_checkpoint)
    try:
        assert backend.vision_cache_stats is None
        assert 'get_video_features' not in vars(backend._model.base_model)
        assert 'vision cache' not in backend.describe()
    finally:
        backend.close()


def test_an_unverified_vision_tower_gets_no_cache(tiny_qwen3_checkpoint, monkeypatch):
    monkeypatch.setattr(vision_cache, 'VERIFIED_VISION_TOWERS', frozenset({'SomeOtherTower'}))
    backend = _backend(tiny_qwen3_checkpoint, megabytes=64)
    try:
        assert backend.vision_cache_stats is None
        assert 'Qwen3VLVisionModel is not among' in backend.vision_cache_note
        assert 'get_video_features' not in vars(backend._model.base_model)
        assert backend.generate(_request(_frames(4))).completion_tokens > 0
    finally:
        backend.close()


def test_a_negative_size_fails_the_load_with_the_fix(tiny_qwen3_checkpoint):
    config = ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu', vision_cache_mb=-1)
    with pytest.raises(ModelLoadError, match='vision_cache_mb is -1: set it to 0'):
        TransformersBackend(config).load()


def test_close_removes_the_hook_and_frees_the_features(tiny_qwen3_checkpoint):
    backend = _backend(tiny_qwen3_checkpoint, megabytes=64)
    model = backend._model
    backend.generate(_request(_frames(4)))
    cache = backend._vision_cache
    assert cache.stats().entries == 2
    backend.close()
    assert cache.stats().entries == 0 and cache.stats().bytes == 0
    assert 'get_video_features' not in vars(model.base_model)


def _entry(values: int) -> tuple[torch.Tensor, ...]:
    return (torch.zeros(values, dtype=torch.float32),)


def test_the_least_recently_used_entries_go_first_within_the_byte_bound():
    cache = VisionFeatureCache(max_bytes=3 * 400)
    for name in (b'a', b'b', b'c'):
        cache.put(name, _entry(100))
    assert cache.get(b'a') is not None      # a is now the most recent
    cache.put(b'd', _entry(100))
    assert cache.get(b'b') is None
    assert all(cache.get(name) is not None for name in (b'a', b'c', b'd'))
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (3, 1200, 1)
    cache.put(b'huge', _entry(1000))        # larger than the whole cache: not kept
    assert cache.get(b'huge') is None and cache.stats().entries == 3
    cache.clear()
    assert cache.stats() == vision_cache.CacheStats(0, 0, 0, 0, 0, 1200, 0.0)


def test_a_cache_of_no_bytes_is_refused():
    with pytest.raises(ValueError, match='max_bytes must be positive'):
        VisionFeatureCache(0)


def test_the_key_holds_the_pixels_the_grid_and_the_model():
    rows = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    key = patch_key(b'model|float32|cpu|', 2, 2, rows)
    assert key == patch_key(b'model|float32|cpu|', 2, 2, rows.clone())
    changed = rows.clone()
    changed[3, 5] += 1e-6
    assert key != patch_key(b'model|float32|cpu|', 2, 2, changed)
    assert key != patch_key(b'model|float32|cpu|', 1, 4, rows)
    assert key != patch_key(b'other|float32|cpu|', 2, 2, rows)
    assert key != patch_key(b'model|bfloat16|cpu|', 2, 2, rows)
