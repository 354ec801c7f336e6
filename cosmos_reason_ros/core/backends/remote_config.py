"""Settings of the remote backend: which OpenAI-compatible server (vLLM, NIM), and how to talk
to it. The ROS layer builds RemoteConfig from its parameters, the CLI from its options.
"""

import dataclasses
import re

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.errors import ModelLoadError

STRUCTURED_OUTPUT_FIELDS = ('structured_outputs', 'guided')
"""How a constrained answer is asked for: vLLM >= 0.11's `structured_outputs` object (NIM
follows vLLM), or older vLLM's `guided_json` / `guided_regex` fields."""

VIDEO_TRANSPORTS = ('video', 'images')
"""How several frames travel: one video item with their timing, or one image item each."""

FAMILIES = ('auto', *(family.value for family in ModelFamily))
"""Model families a remote server may serve; 'auto' guesses from the served model's name."""

MAX_SESSION_HEADER_CHARS = 64
MAX_SESSION_KEY_CHARS = 256
_HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header name as HTTP defines it (RFC 9110 token): no space, no colon, ASCII only."""


@dataclasses.dataclass(frozen=True)
class RemoteConfig:
    """Where the server is and how requests are built, sent and retried.

    The API key itself is never part of the configuration: `api_key_env` names the environment
    variable that holds it, and whoever builds the backend reads it (see backends.factory).
    """

    base_url: str = 'http://127.0.0.1:8000/v1'
    """Server URL up to and including the API version, as OpenAI clients take it."""
    base_urls: tuple[str, ...] = ()
    """Several servers (replicas, routers) in order of preference, each like base_url; a
    request that fails on one before any text arrived moves on to the next (see
    backends.endpoints). Empty: base_url alone."""
    served_model: str = 'nvidia/Cosmos-Reason2-2B'
    """Model name the server serves (vLLM: --served-model-name, else the model path or id)."""
    api_key_env: str = ''
    """Name of the environment variable holding the API key; '' sends no key."""
    family: str = 'auto'
    """auto | qwen3_vl | qwen2_5_vl | cosmos3_edge | cosmos3_omni: decides prompts, frame timing
    and coordinates. 'auto' reads the served name: Reason1 or Qwen2.5 means qwen2_5_vl,
    Cosmos3-Nano/Super cosmos3_omni, Cosmos3-Edge (or NIM's plain cosmos3) cosmos3_edge,
    anything else qwen3_vl."""
    timeout: float = 60.0
    """Seconds to wait for the connection and, after that, for each next piece of the answer.
    Long generations are fine as long as tokens keep coming."""
    request_deadline: float = 300.0
    """Seconds a whole request may take, retries and a slow trickle of tokens included; the
    request is then stopped and fails. 0: no deadline (only `timeout` between pieces)."""
    max_answer_chars: int = 262144
    """Most characters of answer (reasoning included) accepted from the server; a longer answer
    fails instead of filling memory."""
    max_retries: int = 2
    """Retries after a connection error or a 5xx/429 answer, before any text arrived."""
    retry_backoff: float = 0.5
    """Seconds before the first retry; each further retry waits twice as long (a server's
    Retry-After header wins, up to 30 s)."""
    startup_timeout: float = 0.0
    """load() polls the server this many seconds until it answers (0: one check)."""
    video_transport: str = 'video'
    """video: one `data:video/jpeg;base64,...` item with the frames' real timing (vLLM);
    images: one image_url item per frame, for servers without video input (no timing)."""
    send_media_uuids: bool = False
    """Name each media item by a hash of its bytes (vLLM's documented `uuid` on a content part),
    so that the server keys its processor, encoder and prefix caches by the name instead of
    hashing the item. Across monitor ticks only `video_transport: images` shares items: a
    video item changes with every new frame. vLLM only; other servers may refuse the field.
    The frames are still sent: a name the server no longer holds would fail the request."""
    send_frame_timing: bool = True
    """Send the frames' timing as per-request media_io_kwargs (vLLM >= 0.11 started with
    --trust-request-mm-kwargs). Without it vLLM assumes one frame per second."""
    jpeg_quality: int = 90
    """JPEG quality (1-100) of the frames sent."""
    max_pixels: int = 640 * 360
    """Pixel budget per frame: larger frames are downscaled (aspect kept) before encoding."""
    max_concurrent: int = 4
    """Goals sent to the server at once (it batches them); the concurrency policy applies
    above this number."""
    stream: bool = True
    """Stream the answer (server-sent events): feedback while generating, prompt cancel."""
    structured_output_fields: str = 'structured_outputs'
    """structured_outputs | guided: the request fields that ask the server to constrain an
    answer to its format (see STRUCTURED_OUTPUT_FIELDS). A server that refuses them is told
    once, and answers go unconstrained with a warning in the result."""
    extra_body: str = ''
    """A JSON object of further request fields, for what a server offers beyond the OpenAI API
    (vLLM: repetition_penalty, as NVIDIA's Cosmos-Reason1 examples use, min_p, ignore_eos).
    The fields the backend writes for a goal (sampling, max_tokens, ...) win; '' adds none."""
    session_key: str = ''
    """A stable key for this client, sent as the OpenAI `user` field and in session_header, so
    that a consistent-hash router (vllm-router --policy consistent_hash) keeps one robot's
    requests on one replica, whose prefix and multimodal caches stay warm. The ROS node fills
    in its fully qualified name (e.g. /robot7/cosmos_reason); '' sends none."""
    session_header: str = 'x-session-id'
    """The HTTP header that carries session_key on every request (vllm-router's consistent_hash
    reads X-Session-ID first); '' sends the key only as `user`."""
    send_priority: bool = False
    """Send each request's priority as vLLM's `priority` field (see vllm_priority()); the
    server must run with --scheduling-policy priority for it to change the order."""
    fallback_local: bool = False
    """Also load the local model (ModelConfig: model, device, dtype...) and answer with it when
    every endpoint fails before any answer text arrived, so that a robot keeps working when
    the network drops (see backends.local_fallback). The local model must be of the server's
    model family."""


def check_routing(config: RemoteConfig) -> None:
    """Refuse a session key or header that cannot travel in an HTTP request.

    Raises:
        ModelLoadError: the header name is not an HTTP token of at most 64 characters, or the
            key is not printable ASCII of at most 256 characters; the message names the
            parameter.
    """
    header = config.session_header
    if header and (len(header) > MAX_SESSION_HEADER_CHARS or not _HTTP_TOKEN.fullmatch(header)):
        raise ModelLoadError(
            f'session_header {header!r} is not an HTTP header name: use at most '
            f'{MAX_SESSION_HEADER_CHARS} letters, digits or -_. and no space or colon (e.g. '
            "'x-session-id'), or '' to send the key only as the request's user field")
    key = config.session_key
    if len(key) > MAX_SESSION_KEY_CHARS:
        raise ModelLoadError(f'session_key is {len(key)} characters long: use at most '
                             f'{MAX_SESSION_KEY_CHARS} (a robot or node name)')
    # Header values travel as ASCII; surrounding spaces would be stripped on the way.
    if key and (not (key.isascii() and key.isprintable()) or key != key.strip()):
        raise ModelLoadError(f'session_key {key!r} must be printable ASCII without leading or '
                             'trailing spaces (e.g. /robot7/cosmos_reason)')


def vllm_priority(priority: int) -> int:
    """The `priority` field vLLM takes for a request of this priority.

    Goals count higher as more urgent; vLLM's priority scheduler serves the lowest value first
    (ties by arrival), so the value is negated: a goal of priority 5 goes as -5, ahead of
    background work at 0.
    """
    return -priority


__all__ = ['FAMILIES', 'RemoteConfig', 'STRUCTURED_OUTPUT_FIELDS', 'VIDEO_TRANSPORTS',
           'check_routing', 'vllm_priority']
