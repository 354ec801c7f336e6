"""The cache_implementation setting: from the parameter to generate(), same answers either way.

A static KV cache is what lets transformers compile decoding on a GPU (bench/gpu_bench.py); on
the CPU it only has to give the same greedy tokens as the default dynamic cache.
"""

import numpy as np
import pytest
import rclpy
from rclpy.node import Node

from cosmos_reason_ros.core.backends.base import GenerationRequest, Prompt, Sampling
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import ModelLoadError
from cosmos_reason_ros.ros.parameters import declare_node_config


def _declared(*args):
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', *args])
    node = Node('cosmos_reason', context=context)
    try:
        return declare_node_config(node, image_topic='image')
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize('args, expected', [
    ((), 'dynamic'),
    (('-p', 'cache_implementation:=static'), 'static'),
])
def test_the_parameter_reaches_the_model_config(args, expected):
    assert _declared(*args).model.cache_implementation == expected


def test_an_unknown_cache_parameter_is_refused_with_the_choices():
    with pytest.raises(ValueError, match='dynamic, static'):
        _declared('-p', 'cache_implementation:=paged')


def test_an_unknown_cache_implementation_fails_the_load(tiny_qwen3_checkpoint):
    config = ModelConfig(model=str(tiny_qwen3_checkpoint), device='cpu',
                         cache_implementation='paged')
    with pytest.raises(ModelLoadError, match="unknown cache_implementation 'paged'"):
        TransformersBackend(config).load()


def test_a_static_cache_gives_the_tokens_of_the_dynamic_one(tiny_qwen3_checkpoint):
    rng = np.random.default_rng(0)
    request = GenerationRequest(
        prompt=Prompt(system='You are a helpful assistant.', user='Caption the video.'),
        frames=[rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)],
        timestamps=[0.0, 0.25, 0.5, 0.75], sampling=Sampling(max_new_tokens=8, greedy=True))
    answers = {}
    for cache in ('dynamic', 'static'):
        backend = TransformersBackend(ModelConfig(
            model=str(tiny_qwen3_checkpoint), device='cpu', dtype='fp32',
            cache_implementation=cache))
        backend.load()
        try:
            result = backend.generate(request)
        finally:
            backend.close()
        answers[cache] = (result.text, result.completion_tokens)
    assert answers['static'] == answers['dynamic']
    assert answers['static'][1] == 8
