"""Several cameras in one request, on both backends: each view labelled, in order, with its own
media, timing and size.

Local: the tiny random checkpoint of every family (Reason2, Reason1, Cosmos3-Edge, Cosmos3-Omni),
read on the rendered token ids the model receives. Remote: the chat completion body, and the
scripted servers for a server's refusal of a second video.
"""

import json

from generate_spy import GenerateSpy
import numpy as np
import pytest
import torch

from cosmos_reason_ros.core.answers.families import model_input_size, visual_tokens
from cosmos_reason_ros.core.answers.formats import StructuredAnswer
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import view_label
from cosmos_reason_ros.core.backends import openai_request, transformers_backend
from cosmos_reason_ros.core.backends.base import (
    GenerationRequest,
    Prompt,
    RequestView,
    Sampling,
)
from cosmos_reason_ros.core.backends.http_exchange import HttpStatusError
from cosmos_reason_ros.core.backends.openai_backend import media_limit_refusal, OpenAIBackend
from cosmos_reason_ros.core.backends.openai_request import (
    check_server_context,
    frame_timing,
    prepare_request,
)
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.backends.transformers_backend import (
    check_context,
    context_length,
    TransformersBackend,
)
from cosmos_reason_ros.core.config import ModelConfig
from cosmos_reason_ros.core.errors import GenerationError, InvalidRequestError

TASK = 'Is the part in the gripper?'
HEAD = (0.0, 0.25, 0.6, 0.75)
WRIST = (0.5, 0.75, 1.0, 1.25)
"""The wrist view starts 0.5 s into the request's clock: its markers must say so."""


def _frames(count, height, width, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _views(head=(96, 128), wrist=(64, 64), head_stamps=HEAD, wrist_stamps=WRIST):
    return (RequestView('head', _frames(len(head_stamps), *head, seed=1), head_stamps),
            RequestView('wrist', _frames(len(wrist_stamps), *wrist, seed=2), wrist_stamps))


def _request(views, *, max_new_tokens=2, structured=None):
    return GenerationRequest(
        prompt=Prompt(system='You are a helpful assistant.', user=TASK),
        frames=views[0].frames, timestamps=views[0].timestamps,
        sampling=Sampling(max_new_tokens=max_new_tokens, greedy=True), views=tuple(views),
        structured=structured)


def _loaded(checkpoint, **settings):
    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu', **settings))
    backend.load()
    yield backend
    backend.close()


def _find(ids, sequence, start=0):
    """Index of the first occurrence of sequence in ids at or after start (-1: none)."""
    for index in range(start, len(ids) - len(sequence) + 1):
        if ids[index:index + len(sequence)] == sequence:
            return index
    return -1


def _markers(text):
    """The `<t seconds>` markers of a prompt text, in order."""
    return [f'<{part.split(">")[0]}>' for part in text.split('<')[1:] if 'seconds>' in part]


def _expected_markers(stamps, family):
    """What the family's processor writes for frames at these stamps (on the request's clock):
    the mean of each temporal patch (two frames) for Qwen3-VL and Omni, each frame for Edge.
    """
    if family is ModelFamily.COSMOS3_EDGE:
        times = list(stamps)
    else:
        times = [(stamps[i] + stamps[i + 1]) / 2 for i in range(0, len(stamps), 2)]
    return [f'<{t:.1f} seconds>' for t in times]


def test_two_views_are_label_video_label_video_task_in_order(backend, monkeypatch):
    spy = GenerateSpy(monkeypatch, backend)
    views = _views()
    result = backend.generate(_request(views))
    ids = spy.calls[0]['input_ids'][0].tolist()
    tokenizer = backend._processor.tokenizer
    pad = tokenizer.convert_tokens_to_ids('<|video_pad|>')

    def encoded(text):
        return tokenizer(text, add_special_tokens=False)['input_ids']

    head, wrist, task = (_find(ids, encoded(view_label('head'))),
                         _find(ids, encoded(view_label('wrist'))), _find(ids, encoded(TASK)))
    assert -1 not in (head, wrist, task)
    assert head < wrist < task
    # Each view's placeholders lie between its label and the next thing, as many as its own
    # size makes: the views differ in size and neither took the other's.
    family = backend.family
    assert ids[head:wrist].count(pad) == visual_tokens(128, 96, 4, family)
    assert ids[wrist:task].count(pad) == visual_tokens(64, 64, 4, family)
    assert pad not in ids[:head] and pad not in ids[task:]
    assert result.prompt_tokens == len(ids)
    # Each view's own times, on the shared clock: the wrist view starts at 0.5 s.
    head_text, wrist_text = tokenizer.decode(ids[head:wrist]), tokenizer.decode(ids[wrist:task])
    if family is ModelFamily.QWEN2_5_VL:
        assert 'seconds>' not in tokenizer.decode(ids)
        # No text times: each video's temporal patch length from its own rate (4 frames over
        # 0.75 s is 4 fps, two frames a patch: 0.5 s; the wrist at 4 fps too, 0.5 s).
        assert spy.calls[0]['second_per_grid_ts'].tolist() == pytest.approx([0.5, 0.5])
    else:
        assert _markers(head_text) == _expected_markers(HEAD, family)
        assert _markers(wrist_text) == _expected_markers(WRIST, family)
        assert _markers(wrist_text)[0] in ('<0.6 seconds>', '<0.5 seconds>')


def test_each_view_is_seen_at_its_own_size(backend):
    views = _views(head=(96, 128), wrist=(64, 64))
    result = backend.generate(_request(views, max_new_tokens=1))
    family = backend.family
    assert result.view_input_sizes == (model_input_size(128, 96, family),
                                       model_input_size(64, 64, family))
    assert result.model_input_size == result.view_input_sizes[0]
    expected = ((140, 84), (56, 56)) if family is ModelFamily.QWEN2_5_VL else ((128, 96), (64, 64))
    assert result.view_input_sizes == expected


def test_a_view_with_one_frame_is_an_image_among_videos(backend, monkeypatch):
    spy = GenerateSpy(monkeypatch, backend)
    still = RequestView('shelf', _frames(1, 64, 96, seed=3), (0.3,))
    views = (*_views(), still)
    result = backend.generate(_request(views, max_new_tokens=1))
    received = spy.calls[0]
    assert received['video_grid_thw'].shape[0] == 2 and received['image_grid_thw'].shape[0] == 1
    ids = received['input_ids'][0].tolist()
    tokenizer = backend._processor.tokenizer
    image_pad = tokenizer.convert_tokens_to_ids('<|image_pad|>')
    shelf = _find(ids, tokenizer(view_label('shelf'), add_special_tokens=False)['input_ids'])
    assert shelf > 0 and image_pad not in ids[:shelf] and image_pad in ids[shelf:]
    assert result.view_input_sizes[2] == model_input_size(96, 64, backend.family)


def test_one_view_requests_carry_no_label_and_no_view_sizes(backend, monkeypatch):
    spy = GenerateSpy(monkeypatch, backend)
    head = _views()[0]
    request = GenerationRequest(prompt=Prompt(system='', user=TASK), frames=head.frames,
                                timestamps=head.timestamps,
                                sampling=Sampling(max_new_tokens=1, greedy=True))
    result = backend.generate(request)
    text = backend._processor.tokenizer.decode(spy.calls[0]['input_ids'][0])
    assert 'Camera "' not in text
    assert result.view_input_sizes == ()
    assert transformers_backend.build_messages(request, is_video=True) == [
        {'role': 'user', 'content': [{'type': 'video'}, {'type': 'text', 'text': TASK}]}]


def test_a_two_view_prompt_over_the_context_is_refused_before_generating(qwen3, monkeypatch):
    one = qwen3.preprocess(_request(_views()[:1])).prompt_tokens
    two = qwen3.preprocess(_request(_views())).prompt_tokens
    assert two > one
    context = context_length(qwen3._model.config)
    # As many new tokens as one view leaves room for: one view fits, two do not.
    max_new_tokens = context - one
    check_context(one, max_new_tokens, context)
    spy = GenerateSpy(monkeypatch, qwen3)
    with pytest.raises(InvalidRequestError) as raised:
        qwen3.generate(_request(_views(), max_new_tokens=max_new_tokens))
    assert f'the prompt takes {two} tokens' in str(raised.value)
    assert spy.calls == []


def test_out_of_memory_counts_the_frames_of_every_view(qwen3, monkeypatch):
    def generate(**kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory')

    monkeypatch.setattr(qwen3._model, 'generate', generate)
    with pytest.raises(GenerationError) as raised:
        qwen3.generate(_request(_views()))
    message = str(raised.value)
    assert ('8 frame(s) of 2 cameras (head: 4 of 128x96 px, wrist: 4 of 64x64 px)'
            in message)
    assert 'fewer cameras' in message


def test_the_grammar_is_planned_for_the_largest_view(qwen3, monkeypatch):
    planned = []

    def plan_answer(structured, **kwargs):
        planned.append(kwargs['model_input_size'])
        return None

    monkeypatch.setattr(transformers_backend, 'plan_answer', plan_answer)
    views = _views(head=(64, 192), wrist=(96, 128))   # (height, width)
    structured = StructuredAnswer(Mode.TRAJECTORY, cameras=('head', 'wrist'))
    result = qwen3.generate(_request(views, max_new_tokens=1, structured=structured))
    assert result.view_input_sizes == ((192, 64), (128, 96))
    assert planned == [(192, 96)]


def test_the_vision_cache_keeps_each_view_and_changes_no_token(tiny_qwen3_checkpoint, qwen3):
    views = _views()
    expected = qwen3.generate(_request(views, max_new_tokens=6)).text
    for cached in _loaded(tiny_qwen3_checkpoint, vision_cache_mb=16):
        assert cached.generate(_request(views, max_new_tokens=6)).text == expected
        first = cached.vision_cache_stats
        # Two temporal patches a view, every one encoded once and kept.
        assert (first.misses, first.hits, first.entries) == (4, 0, 4)
        # The same views again, in the other order: every patch found, whichever view.
        swapped = cached.generate(_request(views[::-1], max_new_tokens=1))
        assert cached.vision_cache_stats.hits == 4
        assert swapped.view_input_sizes == ((64, 64), (128, 96))


# ---------------------------------------------------------------------------------------------
# Remote


def _content(prepared):
    return prepared.body['messages'][-1]['content']


def test_remote_views_are_label_video_label_video_task_in_order():
    views = (*_views(), RequestView('shelf', _frames(1, 64, 96, seed=3), (0.3,)))
    prepared = prepare_request(_request(views), RemoteConfig(), ModelFamily.QWEN3_VL)
    content = _content(prepared)
    assert [part['type'] for part in content] == [
        'text', 'video_url', 'text', 'video_url', 'text', 'image_url', 'text']
    assert [part['text'] for part in content if part['type'] == 'text'] == [
        'Camera "head":', 'Camera "wrist":', 'Camera "shelf":', TASK]
    head, wrist = content[1]['video_url']['url'], content[3]['video_url']['url']
    assert head.count(',') == 4 and wrist.count(',') == 4   # 'data:...;base64,' + 3 commas
    assert prepared.view_input_sizes == ((128, 96), (64, 64), (96, 64))
    assert prepared.model_input_size == (128, 96)
    assert prepared.media_items == {'video': 2, 'image': 1}
    # Equal frame counts: the first video's real times on the shared clock, for every video.
    assert prepared.body['media_io_kwargs'] == {
        'video': frame_timing(HEAD, ModelFamily.QWEN3_VL, origin=0.0)}
    assert prepared.warnings == ()


def test_remote_timing_is_on_the_shared_clock():
    # The wrist view first: its frames are 0.5 s into the request's clock, and say so.
    prepared = prepare_request(_request(_views()[::-1]), RemoteConfig(), ModelFamily.QWEN3_VL)
    timing = prepared.body['media_io_kwargs']['video']
    assert timing['frames_indices'] == [500, 750, 1000, 1250]
    assert timing['total_num_frames'] == 1251 and timing['fps'] == 1000.0


def test_remote_views_sent_as_images_keep_their_labels():
    prepared = prepare_request(_request(_views()), RemoteConfig(video_transport='images'),
                               ModelFamily.QWEN3_VL)
    types = [part['type'] for part in _content(prepared)]
    assert types == ['text', *['image_url'] * 4, 'text', *['image_url'] * 4, 'text']
    assert 'media_io_kwargs' not in prepared.body
    assert prepared.media_items == {'image': 8}


def test_remote_views_of_different_lengths_get_one_rate_and_a_warning():
    views = _views(wrist_stamps=(0.5, 0.75))
    prepared = prepare_request(_request(views), RemoteConfig(), ModelFamily.QWEN3_VL)
    timing = prepared.body['media_io_kwargs']['video']
    # No frames_indices fit both videos (vLLM checks its length against each video).
    assert 'frames_indices' not in timing
    assert timing == {'num_frames': -1, 'fps': pytest.approx(4.0)}
    assert len(prepared.warnings) == 1 and 'head 4, wrist 2' in prepared.warnings[0]


def test_remote_server_context_counts_every_view():
    prepared = prepare_request(_request(_views(head=(320, 320), wrist=(320, 320))),
                               RemoteConfig(), ModelFamily.QWEN3_VL)
    one_view = 2 * 10 * 10          # two temporal patches of 10x10 tokens
    check_server_context(prepared, 4, 10, 2 * one_view + 10)
    with pytest.raises(InvalidRequestError) as raised:
        check_server_context(prepared, 4, 11, 2 * one_view + 10)
    assert 'the frames of 2 cameras alone take at least 400 tokens' in str(raised.value)
    assert 'fewer cameras' in str(raised.value)


def _refusal(limit):
    """The answer of vLLM to more videos than --limit-mm-per-prompt (validate_num_items)."""
    message = (f'At most {limit} video(s) may be provided in one prompt. Set '
               '`--limit-mm-per-prompt` to increase this limit.')

    def reply(handler):
        body = json.dumps({'error': {'message': message, 'type': 'BadRequestError',
                                     'param': 'video', 'code': 400}}).encode()
        handler.send_response(400)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


def test_a_server_that_takes_one_video_says_how_to_allow_more(servers):
    server, = servers([_refusal(1)])
    backend = OpenAIBackend(RemoteConfig(base_url=server.url, served_model='cosmos',
                                         retry_backoff=0.01))
    backend.load()
    with pytest.raises(GenerationError) as raised:
        backend.generate(_request(_views()))
    message = str(raised.value)
    assert 'allows at most 1 video item(s) per prompt and the request holds 2 video items' \
        in message
    assert '--limit-mm-per-prompt \'{"video": 2}\'' in message
    assert 'fewer cameras' in message
    assert len(server.bodies) == 1        # the request's fault: not retried


@pytest.mark.parametrize('message, media, fix', [
    # vLLM 0.32 (vllm/multimodal/processing/context.py) and older releases' wording.
    ('At most 2 video(s) may be provided in one prompt.', {'video': 3},
     '--limit-mm-per-prompt \'{"video": 3}\' (scripts/serve_vllm.sh: MAX_VIDEOS=3)'),
    ('At most 1 video(s) may be provided in one request.', {}, '\'{"video": 2}\''),
    ('At most 4 image(s) may be provided in one prompt.', {'image': 8},
     '--limit-mm-per-prompt \'{"image": 8}\', or ask about fewer cameras'),
    ('max_tokens must be at most 16384', {'video': 2}, None),
])
def test_media_limit_refusals_are_told_apart_from_other_400s(message, media, fix):
    refusal = media_limit_refusal(HttpStatusError(400, 'Bad Request', message, None), media)
    if fix is None:
        assert refusal is None
    else:
        assert fix in refusal and message in refusal


def test_one_view_remote_request_is_unchanged():
    head = _views()[0]
    request = GenerationRequest(prompt=Prompt(system='', user=TASK), frames=head.frames,
                                timestamps=head.timestamps,
                                sampling=Sampling(max_new_tokens=1, greedy=True))
    prepared = prepare_request(request, RemoteConfig(), ModelFamily.QWEN3_VL)
    assert [part['type'] for part in _content(prepared)] == ['video_url', 'text']
    assert prepared.body['media_io_kwargs'] == {'video': frame_timing(HEAD,
                                                                      ModelFamily.QWEN3_VL)}
    assert prepared.view_input_sizes == () and prepared.view_frames == ()
    assert openai_request.media_parts(['a'], transport='video') == [
        {'type': 'image_url', 'image_url': {'url': 'data:image/jpeg;base64,a'}}]


def test_the_preset_table_states_the_computed_tokens_for_one_and_two_cameras():
    from bench.multiview_bench import preset_tokens, ROOT

    rows = {line.split('|')[1].strip(): line
            for line in (ROOT / 'docs' / 'parameters.md').read_text().splitlines()
            if line.startswith('| `') and '.yaml` |' in line}
    for path in sorted((ROOT / 'config').glob('*.yaml')):
        _, _, one = preset_tokens(path, 1)
        _, _, two = preset_tokens(path, 2)
        assert rows[f'`{path.name}`'].endswith(f'| {one:,} | {two:,} |'), path.name


def test_views_stamped_before_the_shared_clock_are_refused(qwen3):
    views = _views(wrist_stamps=(-0.25, 0.0, 0.25, 0.5))
    for prepare in (qwen3.generate,
                    lambda request: prepare_request(request, RemoteConfig(),
                                                    ModelFamily.QWEN3_VL)):
        with pytest.raises(InvalidRequestError, match="camera 'wrist' start at -0.250 s"):
            prepare(_request(views))
