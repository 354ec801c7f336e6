"""Chat completion requests for an OpenAI-compatible server, built from a GenerationRequest.

Pure functions: frames as JPEG with their real timing, sampling and structured-output fields.
"""

import base64
from collections.abc import Sequence
import dataclasses
import hashlib
import json
from typing import Any

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.families import (
    family_for_served_name,
    model_input_size,
    video_timing,
)
from cosmos_reason_ros.core.answers.formats import (
    AnswerBudgetError,
    AnswerFormat,
    framing_tokens,
    plan_answer,
)
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.answers.prompts import view_label
from cosmos_reason_ros.core.backends.base import (
    check_request,
    GenerationRequest,
    RequestView,
    Sampling,
)
from cosmos_reason_ros.core.backends.openai_stream import excerpt
from cosmos_reason_ros.core.backends.remote_config import (
    FAMILIES,
    RemoteConfig,
    vllm_priority,
)
from cosmos_reason_ros.core.camera.images import downscale
from cosmos_reason_ros.core.errors import InvalidRequestError, ModelLoadError


def encode_jpeg(frame: np.ndarray, quality: int) -> str:
    """Base64 of an RGB uint8 frame encoded as JPEG.

    Raises:
        InvalidRequestError: the frame cannot be encoded.
    """
    bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InvalidRequestError(f'frame of shape {frame.shape} could not be JPEG-encoded')
    return base64.b64encode(data.tobytes()).decode('ascii')


def frame_timing(timestamps: Sequence[float], family: ModelFamily, *,
                 origin: float | None = None) -> dict[str, Any]:
    """The frame metadata that carries real timing through vLLM's `video/jpeg` loader.

    The same timing as the local backend (families.video_timing): text-timestamp families get
    indices of a virtual 1000 fps video, so the `<t seconds>` markers vLLM writes are the real
    stamps; Qwen2.5-VL gets the frames' mean rate. num_frames -1 keeps every frame (vLLM keeps
    32 otherwise).

    Args:
        timestamps: Stamps of the frames in seconds, increasing.
        family: Model family.
        origin: The stamp that is 0 seconds (families.video_timing); None: the first frame's.

    Returns:
        The `media_io_kwargs['video']` of a chat completion request.
    """
    timing = video_timing(timestamps, family, origin=origin)
    return {'num_frames': -1, 'fps': timing.fps, 'frames_indices': timing.frames_indices,
            'total_num_frames': timing.total_num_frames}


def views_timing(views: Sequence[RequestView], family: ModelFamily
                 ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The one `media_io_kwargs['video']` of a request with several videos, and any warning.

    vLLM applies a request's media_io_kwargs to every video item alike and refuses
    frames_indices whose length differs from a video's frame count. The views of one goal are
    sampled at the same slot times, so when every video has as many frames, the first video's
    timing on the shared clock (origin 0.0) is sent: the other views' frames lie within the
    sync tolerance of those stamps. When the counts differ (a view missed slots), no
    frames_indices fit every video: the first video's mean rate is sent instead, so the
    markers are evenly spaced from 0 s (said in the warning).

    Args:
        views: The views sent as videos (two frames or more each), in prompt order.
        family: Model family.
    """
    first = views[0]
    counts = {len(view.frames) for view in views}
    if len(counts) == 1:
        return frame_timing(first.timestamps, family, origin=0.0), ()
    span = float(first.timestamps[-1]) - float(first.timestamps[0])
    fps = (len(first.timestamps) - 1) / span if span > 0 else 1.0
    frames = ', '.join(f'{view.name} {len(view.frames)}' for view in views)
    return {'num_frames': -1, 'fps': fps}, (
        f'the camera views have different frame counts ({frames}) and vLLM takes one frame '
        "timing per request: the videos were sent at the first view's mean rate "
        f'({fps:.2f} fps), so their time markers are evenly spaced, not the real stamps',)


def media_uuid(url: str) -> str:
    """The `uuid` vLLM takes for a media item: a SHA-256 of its data URL (the JPEG bytes).

    The name changes exactly when what the server decodes changes (frame, size, JPEG quality),
    so the server may key its multimodal caches by it instead of hashing the item itself.
    """
    return 'sha256:' + hashlib.sha256(url.encode('ascii')).hexdigest()


def media_parts(frames_b64: Sequence[str], *, transport: str,
                send_uuids: bool = False) -> list[dict[str, Any]]:
    """The content parts of one view's frames: one video item, or image items.

    Args:
        frames_b64: The view's frames, JPEG in base64, oldest first.
        transport: 'video' sends several frames as one video item, 'images' as image items.
        send_uuids: Name each media item by its content (vLLM's `uuid` on a content part,
            see media_uuid()).
    """
    if len(frames_b64) > 1 and transport == 'video':
        media = [{'type': 'video_url',
                  'video_url': {'url': 'data:video/jpeg;base64,' + ','.join(frames_b64)}}]
    else:
        media = [{'type': 'image_url', 'image_url': {'url': 'data:image/jpeg;base64,' + frame}}
                 for frame in frames_b64]
    if send_uuids:
        for item in media:
            item['uuid'] = media_uuid(item[item['type']]['url'])
    return media


def build_messages(request: GenerationRequest, *, frames_b64: Sequence[str],
                   transport: str, send_uuids: bool = False,
                   views_b64: Sequence[Sequence[str]] = ()) -> list[dict[str, Any]]:
    """The conversation in the Cosmos convention: system, then a user turn with media first.

    With several cameras each view is a text part with its label (prompts.view_label), then
    its media parts (media_parts()), in prompt order, then the user text.

    Args:
        request: The prompt (frames are taken from frames_b64 or views_b64).
        frames_b64: The request's frames, JPEG in base64, oldest first (one view).
        transport: 'video' sends several frames as one video item, 'images' as image items.
        send_uuids: Name each media item by its content (vLLM's `uuid` on a content part,
            see media_uuid()).
        views_b64: Each of request.views' frames, JPEG in base64, in request order; empty for
            one view.
    """
    if request.views:
        media = []
        for view, frames in zip(request.views, views_b64, strict=True):
            media.append({'type': 'text', 'text': view_label(view.name)})
            media += media_parts(frames, transport=transport, send_uuids=send_uuids)
    else:
        media = media_parts(frames_b64, transport=transport, send_uuids=send_uuids)
    messages: list[dict[str, Any]] = []
    if request.prompt.system:
        messages.append({'role': 'system', 'content': request.prompt.system})
    messages.append({'role': 'user',
                     'content': [*media, {'type': 'text', 'text': request.prompt.user}]})
    return messages


def sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """Map Sampling onto chat completion fields (top_k is a vLLM extension NIM accepts too)."""
    fields: dict[str, Any] = {'max_tokens': sampling.max_new_tokens}
    if sampling.greedy:
        fields['temperature'] = 0.0
    else:
        fields.update(temperature=sampling.temperature, top_p=sampling.top_p)
        if sampling.top_k > 0:
            fields['top_k'] = sampling.top_k
    if sampling.presence_penalty is not None:
        fields['presence_penalty'] = sampling.presence_penalty
    if sampling.seed is not None:
        fields['seed'] = sampling.seed
    return fields


def parse_extra_body(text: str) -> dict[str, Any]:
    """The request fields of RemoteConfig.extra_body ('' holds none).

    Raises:
        ModelLoadError: the text is not a JSON object.
    """
    if not text.strip():
        return {}
    example = 'write an object such as {"repetition_penalty": 1.05}'
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise ModelLoadError(f'extra_body is not JSON ({error}): {example}') from None
    if not isinstance(fields, dict):
        raise ModelLoadError(f'extra_body must be a JSON object, not {excerpt(fields)}: '
                             f'{example}')
    return fields


@dataclasses.dataclass(frozen=True)
class PreparedRequest:
    """A request turned into the JSON body of a chat completion, and what it says about frames."""

    body: dict[str, Any]
    model_input_size: tuple[int, int]
    """(width, height) of the frames as the model sees them (see model_input_size()); the
    first view's, with several."""
    frame_size: tuple[int, int]
    """(width, height) of the JPEG frames sent (the first view's)."""
    answer_format: AnswerFormat | None = None
    """The format the body asks the server to constrain the answer to (None: free text)."""
    warnings: tuple[str, ...] = ()
    """Why an answer format asked for is not in the body; what of the frames' timing could not
    be sent."""
    view_input_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) each view is seen at, in request order (several views only)."""
    view_frames: tuple[int, ...] = ()
    """Frames of each view, in request order (several views only)."""
    media_items: dict[str, int] = dataclasses.field(default_factory=dict)
    """Media items of the body per vLLM modality ('video', 'image'): what
    --limit-mm-per-prompt must allow."""


def prepare_request(request: GenerationRequest, config: RemoteConfig,
                    family: ModelFamily) -> PreparedRequest:
    """Validate a request and build its chat completion body.

    One frame goes as an image; several as one video item with their real timing
    (config.video_transport 'video') or as several images ('images', no timing). The fields of
    config.extra_body come first, so that the request's own fields win. With
    config.send_media_uuids each media item also carries its content's name (media_uuid()).

    Raises:
        InvalidRequestError: no frames, frames that are not RGB uint8 of one size, or timestamps
            that are not one increasing stamp per frame.
        ModelLoadError: config.extra_body is not a JSON object (load() reports it first).
    """
    check_request(request)
    views = [[downscale(np.asarray(frame), config.max_pixels) for frame in view.frames]
             for view in request.all_views]
    frames = views[0]
    height, width = frames[0].shape[:2]
    views_b64 = [[encode_jpeg(frame, config.jpeg_quality) for frame in view] for view in views]
    frames_b64 = views_b64[0]
    body: dict[str, Any] = {
        **parse_extra_body(config.extra_body),
        'model': config.served_model,
        'messages': build_messages(request, frames_b64=frames_b64,
                                   transport=config.video_transport,
                                   send_uuids=config.send_media_uuids,
                                   views_b64=views_b64 if request.views else ()),
        **sampling_fields(request.sampling),
        'stream': config.stream,
        # Explicit both ways: Cosmos3-Edge's template thinks unless told not to, and without
        # reasoning asked for, vLLM's qwen3 reasoning parser would file an answer that has no
        # </think> under reasoning and leave the content empty.
        'chat_template_kwargs': {'enable_thinking': request.prompt.reasoning},
    }
    if config.stream:
        body['stream_options'] = {'include_usage': True}
    if config.session_key:
        # The OpenAI field for "who is asking"; routers that hash the body read it too.
        body['user'] = config.session_key
    if config.send_priority:
        body['priority'] = vllm_priority(request.priority)
    as_video = config.video_transport == 'video'
    timing_warnings: tuple[str, ...] = ()
    if request.views:
        videos = [view for view in request.views if len(view.frames) > 1]
        if videos and as_video and config.send_frame_timing:
            timing, timing_warnings = views_timing(videos, family)
            body['media_io_kwargs'] = {'video': timing}
    elif len(frames) > 1 and as_video and config.send_frame_timing:
        body['media_io_kwargs'] = {'video': frame_timing(request.timestamps, family)}
    input_size = model_input_size(width, height, family)
    view_sizes = tuple(model_input_size(view[0].shape[1], view[0].shape[0], family)
                       for view in views) if request.views else ()
    warnings: tuple[str, ...] = ()
    answer = None
    if request.structured is not None:
        reasoning = request.prompt.reasoning
        try:
            # The server writes the closing </think> of a capped reasoning (and the stop
            # token); Reason1's <answer> tags are not part of its constrained content.
            # With several views: the element-wise largest, so that no view's points are
            # cut off by another's smaller bounds.
            largest = (max(size[0] for size in view_sizes),
                       max(size[1] for size in view_sizes)) if view_sizes else input_size
            plan = plan_answer(request.structured, max_new_tokens=request.sampling.max_new_tokens,
                               reasoning=reasoning, family=family, model_input_size=largest,
                               framing=framing_tokens(reasoning=reasoning, opens_reasoning=False,
                                                      answer_tags=False))
        except AnswerBudgetError:
            raise
        except InvalidRequestError as error:
            plan, warnings = None, (f'the answer was not constrained to its format: {error}',)
        if plan is not None:
            answer = plan.format
            body.update(structured_output_fields(answer, config.structured_output_fields))
            if reasoning:
                # vLLM closes the reasoning after this many tokens (needs its reasoning
                # parser or --reasoning-config); the constraint then applies to the answer,
                # which the cap leaves room for within max_tokens.
                body['thinking_token_budget'] = plan.max_reasoning_tokens
    return PreparedRequest(body=body, model_input_size=input_size, frame_size=(width, height),
                           answer_format=answer, warnings=timing_warnings + warnings,
                           view_input_sizes=view_sizes,
                           view_frames=tuple(len(view) for view in views)
                           if request.views else (),
                           media_items=_media_items(views, as_video))


def _media_items(views: Sequence[Sequence[np.ndarray]], as_video: bool) -> dict[str, int]:
    """How many items of each vLLM modality the views make (see media_parts())."""
    items = {'video': 0, 'image': 0}
    for frames in views:
        if len(frames) > 1 and as_video:
            items['video'] += 1
        else:
            items['image'] += len(frames)
    return {modality: count for modality, count in items.items() if count}


def structured_output_fields(answer: AnswerFormat, style: str) -> dict[str, Any]:
    """The request fields that constrain the answer to its format on a vLLM-style server.

    With a reasoning parser (vllm serve --reasoning-parser) the server applies them after the
    reasoning, so the reasoning stays free.

    Args:
        answer: The format.
        style: 'structured_outputs' (vLLM >= 0.11, NIM) or 'guided' (older vLLM).
    """
    if style == 'guided':
        return ({'guided_regex': answer.regex} if answer.regex is not None
                else {'guided_json': answer.json_schema})
    if answer.regex is not None:
        return {'structured_outputs': {'regex': answer.regex}}
    # Compact JSON, as the local grammar writes it: no room for runs of whitespace.
    return {'structured_outputs': {'json': answer.json_schema, 'disable_any_whitespace': True}}


def routing_headers(config: RemoteConfig) -> dict[str, str]:
    """The header that carries the session key to a router (none without a key or header)."""
    if config.session_key and config.session_header:
        return {config.session_header: config.session_key}
    return {}


def check_server_context(prepared: PreparedRequest, frames: int, max_new_tokens: int,
                         max_model_len: int | None) -> None:
    """Refuse a request that cannot fit the server's context, before it is sent.

    The server alone knows the prompt's exact length; the frames give a lower bound (at most two
    frames share a temporal patch and one token covers at most 32x32 pixels), so nothing that
    would fit is refused. The server's own HTTP 400 covers the rest. With several views, every
    view's frames count, each at its own size.

    Args:
        prepared: The request as built (its views' sizes and frame counts).
        frames: Frames of the one view (ignored with several views: prepared counts them).
        max_new_tokens: Tokens asked for.
        max_model_len: The server's context; None: unknown, nothing is checked.

    Raises:
        InvalidRequestError: the frames' tokens plus max_new_tokens exceed max_model_len.
    """
    if max_model_len is None:
        return
    views = (tuple(zip(prepared.view_frames, prepared.view_input_sizes))
             or ((frames, prepared.model_input_size),))
    at_least = sum(-(-count // 2) * (width // 32) * (height // 32)
                   for count, (width, height) in views)
    if at_least + max_new_tokens > max_model_len:
        fewer = ('send fewer frames (max_frames) or ask about fewer cameras' if len(views) > 1
                 else 'send fewer frames (max_frames)')
        what = f'the frames of {len(views)} cameras' if len(views) > 1 else 'the frames'
        raise InvalidRequestError(
            f'{what} alone take at least {at_least} tokens and {max_new_tokens} new tokens '
            f"were asked for, more than the server's context of {max_model_len} tokens "
            f'(max_model_len): lower max_new_tokens, or {fewer}')


def guess_family(config: RemoteConfig, *names: str) -> ModelFamily:
    """The configured family, or for 'auto' a guess from the served model's names.

    Raises:
        ModelLoadError: the configured family is not one of FAMILIES.
    """
    if config.family not in FAMILIES:
        raise ModelLoadError(f"unknown family '{config.family}': use one of "
                             + ', '.join(FAMILIES))
    if config.family != 'auto':
        return ModelFamily(config.family)
    return family_for_served_name(config.served_model, *names) or ModelFamily.QWEN3_VL


__all__ = [
    'PreparedRequest',
    'build_messages', 'check_server_context', 'encode_jpeg', 'frame_timing', 'guess_family',
    'media_parts', 'media_uuid', 'parse_extra_body', 'prepare_request', 'routing_headers',
    'sampling_fields', 'structured_output_fields', 'views_timing',
]
