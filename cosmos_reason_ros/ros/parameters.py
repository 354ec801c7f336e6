"""The node's parameters: declared once with descriptors, read into frozen configs at configure.

The node reads them in its configure transition: while it is unconfigured (before configure,
after cleanup or a failed load) they may be changed with `ros2 param set`; in every other state a
change is refused with the reason (see refuse_change). `autostart` and `diagnostics_period` are
read once at start-up and are read-only.
"""

from collections.abc import Sequence
import dataclasses
import pathlib
from typing import Any

from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from cosmos_reason_ros.core.backends.factory import BACKENDS, BackendSettings
from cosmos_reason_ros.core.backends.remote_config import (
    FAMILIES,
    RemoteConfig,
    STRUCTURED_OUTPUT_FIELDS,
    VIDEO_TRANSPORTS,
)
from cosmos_reason_ros.core.camera.views import check_camera_names, DEFAULT_SYNC_TOLERANCE
from cosmos_reason_ros.core.config import (
    GoalDefaults,
    GoalLimits,
    ModelConfig,
    STRUCTURED_OUTPUT,
    WindowConfig,
)
from cosmos_reason_ros.core.depth.geometry import LiftSettings
from cosmos_reason_ros.core.monitors import MonitorBounds
from cosmos_reason_ros.core.scheduling import MAX_QUEUED, Policy, TickYield


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter: default, description, and the range or choices it accepts."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()


DEPTH_TRANSPORTS = ('raw', 'compressedDepth')
"""How the node takes depth: the image itself, or image_transport's compressedDepth (PNG)."""


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Everything the node reads from its parameters; its defaults are the parameters'."""

    model: ModelConfig = ModelConfig()
    window: WindowConfig = WindowConfig()
    goals: GoalDefaults = GoalDefaults()
    frame_wait_timeout: float = 2.0
    compressed_input: bool = False
    cameras: tuple[str, ...] = ()
    """Camera names in configuration (and prompt) order; empty: one unnamed camera on
    `image`. Use camera_names for the names the node runs with."""
    sync_tolerance: float = DEFAULT_SYNC_TOLERANCE
    """Seconds a camera's frame may lie from a slot time of a multi-view goal."""
    dds_frame_filter: bool = False
    concurrency_policy: Policy = Policy.REJECT
    max_queued_goals: int = MAX_QUEUED
    feedback_period: float = 0.25
    publish_debug_image: bool = True
    diagnostics_period: float = 1.0
    backend: str = BackendSettings.backend
    remote: RemoteConfig = RemoteConfig()
    limits: GoalLimits = GoalLimits()
    autostart: bool = True
    result_timeout: int = 900
    feedback_text_chars: int = 2048
    depth_enabled: bool = False
    depth_tolerance: float = 0.02
    depth_transport: str = 'raw'
    depth_capacity: int = 32
    lift: LiftSettings = LiftSettings()
    monitors_file: str = ''
    monitors: MonitorBounds = MonitorBounds()

    @property
    def camera_names(self) -> tuple[str, ...]:
        """The cameras as the core names them: ('',) for the one unnamed camera."""
        return check_camera_names(self.cameras)

    @property
    def backend_settings(self) -> BackendSettings:
        """The backend choice with the settings of each kind, for create_backend()."""
        return BackendSettings(backend=self.backend, model=self.model, remote=self.remote)


# Each parameter's default is declared once: in the config dataclass its value is read into.
_NODE = NodeConfig()
_MODEL = _NODE.model
_WINDOW = _NODE.window
_DEFAULTS = _NODE.goals
_LIMITS = _NODE.limits
_REMOTE = _NODE.remote
_LIFT = _NODE.lift
_MONITORS = _NODE.monitors

SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec('backend', _NODE.backend,
                  'Where the model runs: transformers (in this process) or openai (an '
                  'OpenAI-compatible server such as vLLM or NVIDIA NIM; see remote.*).',
                  choices=BACKENDS),
    ParameterSpec('model', _MODEL.model,
                  'Hub id or local checkpoint directory of a supported family (Reason1, Reason2, '
                  'Cosmos 3 Edge, Nano, Super; see docs/models.md). A '
                  'relative directory is looked up in the working directory, then in the '
                  "package's share directory (where set-up builds models/tiny-qwen3-vl)."),
    ParameterSpec('revision', _MODEL.revision,
                  'Hub revision to pin (commit, tag or branch); empty: default.'),
    ParameterSpec('dtype', _MODEL.dtype,
                  'Weight dtype.', choices=('auto', 'bf16', 'fp16', 'fp32')),
    ParameterSpec('device', _MODEL.device, 'auto, cpu, cuda or cuda:N.'),
    ParameterSpec('attn_implementation', _MODEL.attn_implementation, 'Attention kernel.',
                  choices=('sdpa', 'eager', 'flash_attention_2')),
    ParameterSpec('quantization', _MODEL.quantization,
                  'bitsandbytes weight quantization (CUDA only).',
                  choices=('none', '4bit', '8bit')),
    ParameterSpec('local_files_only', _MODEL.local_files_only,
                  'Never contact the model hub (offline robots).'),
    ParameterSpec('vision_cache_mb', _MODEL.vision_cache_mb,
                  'Megabytes of encoded video frames kept for reuse by windows that share '
                  'frames (monitors; local model only); 0: off.', range=(0, 65536)),
    ParameterSpec('cache_implementation', _MODEL.cache_implementation,
                  'KV cache of generation; static preallocates it, so that transformers compiles '
                  'decoding on CUDA (faster decoding after a slow first goal; slower on a CPU).',
                  choices=('dynamic', 'static')),
    ParameterSpec('remote.base_url', _REMOTE.base_url,
                  'Server URL including the API version, e.g. http://127.0.0.1:8000/v1.'),
    ParameterSpec('remote.base_urls', _REMOTE.base_urls,
                  'Several servers (replicas, routers) in order of preference, each like '
                  'remote.base_url; a request that fails on one before any text arrived moves '
                  'to the next, and one that failed is left alone for a cooldown (a circuit '
                  'breaker per server, shown on /diagnostics). Empty: remote.base_url alone.'),
    ParameterSpec('remote.session_key', _REMOTE.session_key,
                  'Key sent as the OpenAI user field and in remote.session_header, so that a '
                  "consistent-hash router keeps this robot's requests on one replica; empty: "
                  "the node's fully qualified name (e.g. /robot7/cosmos_reason)."),
    ParameterSpec('remote.session_header', _REMOTE.session_header,
                  'HTTP header that carries remote.session_key (vllm-router hashes '
                  'X-Session-ID first); empty: the key goes only as the user field.'),
    ParameterSpec('remote.send_priority', _REMOTE.send_priority,
                  "Send each goal's priority as vLLM's priority field (the server must run "
                  'with --scheduling-policy priority).'),
    ParameterSpec('remote.fallback_local', _REMOTE.fallback_local,
                  'Also load the local model (model, device, dtype...; of the served '
                  "model's family) and answer with it when every server endpoint fails before "
                  "any answer text arrived; such a result says served_by 'local'."),
    ParameterSpec('remote.served_model', _REMOTE.served_model,
                  'Model name the server serves (vLLM: --served-model-name).'),
    ParameterSpec('remote.api_key_env', _REMOTE.api_key_env,
                  'Name of the environment variable that holds the API key (the key itself '
                  'is never a parameter); empty: no key.'),
    ParameterSpec('remote.family', _REMOTE.family,
                  'Model family served; auto reads the name: Reason1/Qwen2.5 qwen2_5_vl, '
                  'Cosmos3-Nano/Super cosmos3_omni, Cosmos3-Edge or cosmos3 cosmos3_edge, else '
                  'qwen3_vl.',
                  choices=FAMILIES),
    ParameterSpec('remote.timeout', _REMOTE.timeout,
                  'Seconds to wait for the connection and for each next piece of the answer.',
                  range=(0.1, 3600.0)),
    ParameterSpec('remote.request_deadline', _REMOTE.request_deadline,
                  'Seconds a whole request may take (retries and a slow trickle of tokens '
                  'included) before it is stopped and fails; 0: no deadline.',
                  range=(0.0, 86400.0)),
    ParameterSpec('remote.max_answer_chars', _REMOTE.max_answer_chars,
                  'Most characters of answer (reasoning included) taken from the server; a '
                  'longer answer fails instead of filling memory.', range=(1024, 67108864)),
    ParameterSpec('remote.max_retries', _REMOTE.max_retries,
                  'Retries after connection errors and HTTP 5xx/429, before any text arrived.',
                  range=(0, 10)),
    ParameterSpec('remote.retry_backoff', _REMOTE.retry_backoff,
                  'Seconds before the first retry; doubles with each further one.',
                  range=(0.0, 60.0)),
    ParameterSpec('remote.startup_timeout', _REMOTE.startup_timeout,
                  'Seconds the start-up check waits for the server to come up (0: one try).',
                  range=(0.0, 3600.0)),
    ParameterSpec('remote.video_transport', _REMOTE.video_transport,
                  "video: one video item with the frames' real timing; images: one image "
                  'item per frame, for servers without video input.', choices=VIDEO_TRANSPORTS),
    ParameterSpec('remote.send_media_uuids', _REMOTE.send_media_uuids,
                  "Name each frame or video item by a hash of its bytes (vLLM's uuid field), "
                  'so the server keys its multimodal caches by it; with video_transport '
                  'images, frames shared by consecutive requests keep their name.'),
    ParameterSpec('remote.send_frame_timing', _REMOTE.send_frame_timing,
                  'Send frame timing as media_io_kwargs (vLLM with --trust-request-mm-kwargs).'),
    ParameterSpec('remote.jpeg_quality', _REMOTE.jpeg_quality,
                  'JPEG quality of the frames sent.', range=(1, 100)),
    ParameterSpec('remote.max_pixels', _REMOTE.max_pixels,
                  'Pixel budget per frame sent; larger frames are downscaled first.',
                  range=(1024, 16777216)),
    ParameterSpec('remote.max_concurrent', _REMOTE.max_concurrent,
                  'Goals sent to the server at once; concurrency_policy applies above it.',
                  range=(1, 256)),
    ParameterSpec('remote.stream', _REMOTE.stream,
                  'Stream the answer (feedback while generating, prompt cancel).'),
    ParameterSpec('remote.structured_output_fields', _REMOTE.structured_output_fields,
                  'Request fields that ask the server for a constrained answer: '
                  'structured_outputs (vLLM >= 0.11, NIM) or guided (older vLLM).',
                  choices=STRUCTURED_OUTPUT_FIELDS),
    ParameterSpec('remote.extra_body', _REMOTE.extra_body,
                  'JSON object of further request fields the server understands, e.g. '
                  '{"repetition_penalty": 1.05} for vLLM; the fields a goal sets win.'),
    ParameterSpec('compressed_input', _NODE.compressed_input,
                  'Subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image.'),
    ParameterSpec('cameras', _NODE.cameras,
                  'Camera names, in the order a goal that names none sees them. Empty: one '
                  'unnamed camera on image (image/compressed), depth and camera_info. Camera N '
                  'subscribes N/image (N/image/compressed), and with depth on N/depth and '
                  'N/camera_info (relative: remap them). A name is a letter followed by '
                  'letters, digits or underscores.'),
    ParameterSpec('cameras.sync_tolerance', _NODE.sync_tolerance,
                  "Seconds a camera's frame may lie from a slot time of a goal over several "
                  'cameras and still stand for it; a camera with no frame that near a slot '
                  'misses it (the result lists the missed slots).', range=(0.001, 10.0)),
    ParameterSpec('window.target_fps', _WINDOW.target_fps,
                  'Frames kept per second of header-stamp time.',
                  range=(0.1, 60.0)),
    ParameterSpec('window.capacity', _WINDOW.capacity,
                  'Most frames held in the window.', range=(2, 4096)),
    ParameterSpec('window.max_duration', _WINDOW.max_duration,
                  'Seconds of history kept before the newest frame.', range=(0.5, 3600.0)),
    ParameterSpec('window.max_pixels', _WINDOW.max_pixels,
                  'Pixel budget per stored frame; larger camera images are downscaled.',
                  range=(1024, 16777216)),
    ParameterSpec('window.jump_threshold', _WINDOW.jump_threshold,
                  'A stamp this many seconds ahead of the newest frame is a jump, kept only when '
                  'the next frame follows it (one stray stamp cannot take the window over); '
                  'also the most a rewound timeline may advance between its first two frames.',
                  range=(0.01, 3600.0)),
    ParameterSpec('window.dds_filter', _NODE.dds_frame_filter,
                  'Have the middleware deliver only the frames the window keeps (a content '
                  'filter on header.stamp, moved on with each kept frame), so a skipped frame '
                  "costs the node nothing. Off by default: Fast DDS filters on the writer's "
                  "side, where it can crash the camera's process (eProsima/Fast-DDS issue "
                  "4878; see docs/transport.md). Needs Fast DDS or Connext and Kilted's rclpy "
                  "(Jazzy's has no content-filter API); otherwise every frame arrives and the "
                  'node drops the surplus itself without deserializing it (/diagnostics: '
                  'frame_filter_reason).'),
    ParameterSpec('depth.enabled', _NODE.depth_enabled,
                  'Lift trajectories and boxes into 3D with an aligned depth image on depth '
                  '(16UC1 mm or 32FC1 m) and the colour CameraInfo on camera_info.'),
    ParameterSpec('depth.transport', _NODE.depth_transport,
                  "How depth arrives: raw (sensor_msgs/Image on depth) or compressedDepth "
                  "(image_transport's PNG CompressedImage on depth/compressedDepth).",
                  choices=DEPTH_TRANSPORTS),
    ParameterSpec('depth.capacity', _NODE.depth_capacity,
                  'Depth frames held: those of the newest kept colour frames (8 s at 4 fps); an '
                  'answer about an older frame gets LIFT_NO_DEPTH. Each costs its image size '
                  '(600 KiB at 640x480 16UC1, 1.8 MiB at 1280x720).', range=(1, 4096)),
    ParameterSpec('depth.tolerance', _NODE.depth_tolerance,
                  "Largest stamp difference (s) between the answer's frame and its depth "
                  'frame.', range=(0.0, 1.0)),
    ParameterSpec('depth.min_range', _LIFT.min_depth,
                  'Depths nearer than this (m) are invalid.', range=(0.0, 1000.0)),
    ParameterSpec('depth.max_range', _LIFT.max_depth,
                  'Depths farther than this (m) are invalid.', range=(0.0, 1000.0)),
    ParameterSpec('depth.point_radius', _LIFT.point_radius,
                  "A point's depth is the median of the valid depths within this many pixels.",
                  range=(0, 50)),
    ParameterSpec('depth.box_edge_gap', _LIFT.box_edge_gap,
                  'A depth jump (m) inside a box larger than this separates two surfaces; the '
                  "box's object is the nearest one holding a fifth of its depths.",
                  range=(0.001, 10.0)),
    ParameterSpec('depth.box_min_pixels', _LIFT.box_min_pixels,
                  'A box with fewer valid depths is invalid in 3D.', range=(1, 1000000)),
    ParameterSpec('goal.window_duration', _DEFAULTS.window_duration,
                  'Seconds of history a goal sees when it leaves window_duration at 0.',
                  range=(0.0, 3600.0)),
    ParameterSpec('goal.max_frames', _DEFAULTS.max_frames,
                  'Most frames per goal when the goal sets 0.',
                  range=(1, 256)),
    ParameterSpec('goal.max_frame_age', _DEFAULTS.max_frame_age,
                  'A goal fails with STALE_FRAMES when the newest frame is older (seconds).',
                  range=(0.0, 1e9)),
    ParameterSpec('goal.max_new_tokens', _DEFAULTS.max_new_tokens,
                  'Generation budget when the goal sets 0.',
                  range=(1, 32768)),
    ParameterSpec('goal.max_new_tokens_limit', _LIMITS.max_new_tokens,
                  'Ceiling on the max_new_tokens a goal may ask for (INVALID_GOAL above).',
                  range=(1, 1048576)),
    ParameterSpec('goal.max_task_chars', _LIMITS.max_task_chars,
                  'Most characters of task, object name and choices together (INVALID_GOAL '
                  'above).', range=(16, 1048576)),
    ParameterSpec('goal.max_images', _LIMITS.max_images,
                  'Most images a goal may carry (INVALID_GOAL above, checked before decoding); '
                  "the goal's max_frames then picks among them.", range=(1, 4096)),
    ParameterSpec('goal.max_cameras', _LIMITS.max_cameras,
                  'Most cameras (views) one goal may ask about; each is a video in the prompt '
                  '(INVALID_GOAL above).', range=(1, 64)),
    ParameterSpec('goal.time_limit', _LIMITS.time_limit,
                  'Seconds a goal may run once it holds the model; it is then stopped and fails '
                  'with GENERATION_FAILED. 0: no limit.', range=(0.0, 86400.0)),
    ParameterSpec('max_source_pixels', _LIMITS.max_source_pixels,
                  'Largest image (width x height, as its header declares it) decoded from the '
                  'camera or a goal; larger ones are refused before decoding.',
                  range=(1024, 1073741824)),
    ParameterSpec('structured_output', _DEFAULTS.structured_output,
                  'Decode the answers of trajectory, grounding, temporal and multiple-choice '
                  'goals under their format, so that they parse: auto (where the backend can), '
                  'on (always ask; the result says when it could not), off.',
                  choices=STRUCTURED_OUTPUT),
    ParameterSpec('goal.max_reasoning_tokens', _DEFAULTS.max_reasoning_tokens,
                  'With a constrained answer: reasoning tokens at most before the answer is '
                  "forced to start; 0: half of the goal's max_new_tokens. Lowered where the "
                  'longest answer the format allows would not fit in what is left.',
                  range=(0, 1048576)),
    ParameterSpec('goal.frame_wait_timeout', _NODE.frame_wait_timeout,
                  'Seconds a goal waits for a first frame (or its window_end) to arrive.',
                  range=(0.0, 600.0)),
    ParameterSpec('concurrency_policy', _NODE.concurrency_policy.value,
                  'What a goal meets while another runs.',
                  choices=tuple(policy.value for policy in Policy)),
    ParameterSpec('max_queued_goals', _NODE.max_queued_goals,
                  'Queue length for the queue policy.', range=(1, 1024)),
    ParameterSpec('result_timeout', _NODE.result_timeout,
                  'Seconds the result of a finished goal stays collectable; after that the '
                  'client reads status UNKNOWN (rclpy keeps it only 10 s by default). A result '
                  'once collected is forgotten 10 s after its goal ended.',
                  range=(1, 86400)),
    ParameterSpec('feedback_period', _NODE.feedback_period,
                  'Least seconds between feedback messages carrying partial text.',
                  range=(0.0, 60.0)),
    ParameterSpec('feedback_text_chars', _NODE.feedback_text_chars,
                  'Feedback carries the last this many characters of the text generated so far '
                  '(the result carries all of it).', range=(0, 1048576)),
    ParameterSpec('monitors_file', _NODE.monitors_file,
                  "YAML list of monitors (standing queries asked on the node's own schedule, "
                  'see docs/monitors.md), read at configure; a relative path is looked up in the '
                  "working directory, then in the package's share directory. Empty: none (add "
                  'them with ~/add_monitor).'),
    ParameterSpec('monitors.max_count', _MONITORS.max_count,
                  'Most monitors the node runs; one more is refused.', range=(1, 1024)),
    ParameterSpec('monitors.min_period', _MONITORS.min_period,
                  'Shortest period (s) a monitor may tick at; a shorter one is refused.',
                  range=(0.05, 86400.0)),
    ParameterSpec('monitors.goal_policy', _MONITORS.goal_policy,
                  'What a goal does to a monitor tick holding the model: preempt (the tick is '
                  'stopped and not published) or wait (for the tick to end). Either way the '
                  'goal never meets BUSY because of a tick.',
                  choices=tuple(policy.value for policy in TickYield)),
    ParameterSpec('publish_debug_image', _NODE.publish_debug_image,
                  'Publish the answer drawn on the last frame on ~/debug_image.'),
    ParameterSpec('diagnostics_period', _NODE.diagnostics_period,
                  'Seconds between /diagnostics messages (wall clock, also with use_sim_time).',
                  range=(0.1, 60.0)),
    ParameterSpec('autostart', _NODE.autostart,
                  'Configure (load the model) and activate on start-up, with no lifecycle '
                  'manager; false: stay unconfigured until told (ros2 lifecycle set, '
                  'nav2_lifecycle_manager, launch_ros lifecycle events).'),
)
STARTUP_ONLY = ('autostart', 'diagnostics_period', 'result_timeout')
"""Read once when the node starts; every other parameter is read at configure."""


def declare_node_parameters(node: Node) -> None:
    """Declare every parameter on `node` (values come from its overrides / YAML)."""
    for spec in SPECS:
        _declare(node, spec)


def declare_node_config(node: Node, image_topic: str) -> NodeConfig:
    """Declare every parameter on `node` and build the NodeConfig from their values."""
    declare_node_parameters(node)
    return read_node_config(node, image_topic)


def refuse_change(names: Sequence[str], state: str) -> str | None:
    """Why a change of these parameters is refused in lifecycle state `state` (None: allowed).

    Args:
        names: the parameters being set.
        state: the node's lifecycle state label ('unconfigured', 'inactive', ...).
    """
    ours = {spec.name for spec in SPECS}
    fixed = sorted(name for name in names if name in STARTUP_ONLY)
    if fixed:
        return f"{', '.join(fixed)}: read once at start-up; restart the node to change it"
    changed = sorted(name for name in names if name in ours)
    if changed and state != 'unconfigured':
        return (f"{', '.join(changed)}: the node is {state} and reads its parameters at "
                'configure; deactivate and cleanup first (ros2 lifecycle set <node> cleanup), '
                'then set it and configure again')
    return None


def read_node_config(node: Node, image_topic: str) -> NodeConfig:
    """Build the NodeConfig from the values of the declared parameters.

    Args:
        node: the node the parameters were declared on.
        image_topic: the resolved image topic, named in the window's error messages.

    Raises:
        ValueError: a value outside its choices (ranges are enforced by rclpy itself).
    """
    values = {spec.name: _read(node, spec) for spec in SPECS}
    return NodeConfig(
        model=ModelConfig(
            model=resolve_model(values['model']), revision=values['revision'],
            dtype=values['dtype'],
            device=values['device'], attn_implementation=values['attn_implementation'],
            quantization=values['quantization'], local_files_only=values['local_files_only'],
            cache_implementation=values['cache_implementation'],
            vision_cache_mb=values['vision_cache_mb']),
        window=WindowConfig(
            target_fps=values['window.target_fps'], capacity=values['window.capacity'],
            max_duration=values['window.max_duration'], max_pixels=values['window.max_pixels'],
            jump_threshold=values['window.jump_threshold'], source=image_topic),
        goals=GoalDefaults(
            window_duration=values['goal.window_duration'],
            max_frames=values['goal.max_frames'],
            max_frame_age=values['goal.max_frame_age'],
            max_new_tokens=values['goal.max_new_tokens'],
            structured_output=values['structured_output'],
            max_reasoning_tokens=values['goal.max_reasoning_tokens']),
        limits=GoalLimits(
            max_task_chars=values['goal.max_task_chars'],
            max_new_tokens=values['goal.max_new_tokens_limit'],
            max_images=values['goal.max_images'],
            max_source_pixels=values['max_source_pixels'],
            max_cameras=values['goal.max_cameras'],
            time_limit=values['goal.time_limit']),
        frame_wait_timeout=values['goal.frame_wait_timeout'],
        compressed_input=values['compressed_input'],
        cameras=_camera_names(values['cameras']),
        sync_tolerance=values['cameras.sync_tolerance'],
        dds_frame_filter=values['window.dds_filter'],
        concurrency_policy=Policy(values['concurrency_policy']),
        max_queued_goals=values['max_queued_goals'],
        feedback_period=values['feedback_period'],
        result_timeout=values['result_timeout'],
        feedback_text_chars=values['feedback_text_chars'],
        publish_debug_image=values['publish_debug_image'],
        diagnostics_period=values['diagnostics_period'],
        autostart=values['autostart'],
        depth_enabled=values['depth.enabled'],
        depth_tolerance=values['depth.tolerance'],
        depth_transport=values['depth.transport'],
        depth_capacity=values['depth.capacity'],
        lift=dataclasses.replace(
            _LIFT, min_depth=values['depth.min_range'], max_depth=values['depth.max_range'],
            point_radius=values['depth.point_radius'],
            box_min_pixels=values['depth.box_min_pixels'],
            box_edge_gap=values['depth.box_edge_gap']),
        backend=values['backend'],
        remote=_remote_config(node, values),
        monitors_file=resolve_share_file(values['monitors_file']),
        monitors=MonitorBounds(max_count=values['monitors.max_count'],
                               min_period=values['monitors.min_period'],
                               goal_policy=values['monitors.goal_policy']),
    )


def _camera_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The `cameras` parameter, checked (empty or [''] is the one unnamed camera).

    Raises:
        ValueError: a name that cannot be a topic namespace, or one given twice.
    """
    try:
        checked = check_camera_names(names)
    except ValueError as error:
        raise ValueError(f"parameter 'cameras': {error}") from None
    return () if checked == ('',) else checked


def _remote_config(node: Node, values: dict[str, Any]) -> RemoteConfig:
    remote = RemoteConfig(**{field.name: values[f'remote.{field.name}']
                             for field in dataclasses.fields(RemoteConfig)})
    if not remote.session_key:
        # One stable key per robot: namespaces tell robots apart (/robot7/cosmos_reason).
        remote = dataclasses.replace(remote, session_key=node.get_fully_qualified_name())
    return remote


def resolve_model(model: str, share: pathlib.Path | None = None) -> str:
    """The checkpoint `model` names, wherever the node was started.

    A relative directory is taken from the working directory when it is there, else from the
    package's share directory: config/cpu_test_model.yaml names models/tiny-qwen3-vl, which
    scripts/setup.sh builds in share/cosmos_reason_ros. A hub id, an absolute path, or a path
    found in neither place is returned unchanged.

    Args:
        model: the `model` parameter.
        share: the share directory to look in; None: the installed package's, if any.
    """
    path = pathlib.Path(model)
    if not model or path.is_absolute() or path.exists():
        return model
    if share is None:
        try:
            share = pathlib.Path(get_package_share_directory('cosmos_reason_ros'))
        except (PackageNotFoundError, ValueError):
            return model
    return str(share / path) if (share / path).is_dir() else model


def resolve_share_file(name: str, share: pathlib.Path | None = None) -> str:
    """The file `name` names: as given when absolute or found from the working directory, else
    in the package's share directory (config/monitors/example.yaml), else unchanged (its reader
    then says it cannot be read).
    """
    path = pathlib.Path(name)
    if not name or path.is_absolute() or path.exists():
        return name
    if share is None:
        try:
            share = pathlib.Path(get_package_share_directory('cosmos_reason_ros'))
        except (PackageNotFoundError, ValueError):
            return name
    return str(share / path) if (share / path).is_file() else name


def _declare(node: Node, spec: ParameterSpec) -> None:
    description = spec.description
    if spec.choices:
        description += ' One of: ' + ', '.join(spec.choices) + '.'
    descriptor = ParameterDescriptor(description=description,
                                     read_only=spec.name in STARTUP_ONLY, **_range_of(spec))
    default = spec.default
    if isinstance(default, tuple):
        # rclpy takes an empty list for a byte array: declare the type instead.
        default = list(default) if default else Parameter.Type.STRING_ARRAY
    node.declare_parameter(spec.name, default, descriptor)


def _read(node: Node, spec: ParameterSpec) -> Any:
    if isinstance(spec.default, tuple):
        try:
            return tuple(node.get_parameter(spec.name).value)
        except ParameterUninitializedException:
            return spec.default
    value = node.get_parameter(spec.name).value
    if spec.choices and value not in spec.choices:
        raise ValueError(f"parameter '{spec.name}' is {value!r}; use one of: "
                         + ', '.join(spec.choices))
    return value


def _range_of(spec: ParameterSpec) -> dict[str, Any]:
    if spec.range is None:
        return {}
    low, high = spec.range
    if isinstance(spec.default, bool) or not isinstance(spec.default, (int, float)):
        return {}
    if isinstance(spec.default, int):
        return {'integer_range': [IntegerRange(from_value=int(low), to_value=int(high), step=0)]}
    return {'floating_point_range': [
        FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]}
