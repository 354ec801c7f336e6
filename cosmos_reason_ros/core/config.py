"""Typed settings of the core, one frozen dataclass per concern.

The ROS layer builds these from declared parameters and the CLI from its options; the core never
reads parameters or environment variables itself.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """How camera frames are sampled, stored and handed to a goal."""

    target_fps: float = 4.0
    """Frames kept per second of header-stamp time (Cosmos-Reason is trained at 4 fps)."""
    capacity: int = 128
    """Most frames held at once; the oldest go first."""
    max_duration: float = 30.0
    """Frames older than this many seconds before the newest one are dropped."""
    max_pixels: int = 640 * 360
    """Pixel budget of one stored frame: larger images are downscaled (aspect kept) on arrival."""
    rewind_threshold: float = 0.5
    """A stamp this many seconds older than the newest one clears the window (bag loop, reset);
    a smaller step back is an out-of-order frame and is dropped. A single frame is not enough:
    the next frame must continue the new timeline, so one stray stamp clears nothing."""
    jump_threshold: float = 10.0
    """A stamp this many seconds ahead of the newest one is a jump: kept only when the next
    frame follows it (within this many seconds), so one stray stamp cannot take the window
    over. Also the most a rewound timeline's second frame may lie after its first."""
    source: str = 'image'
    """Name of the frame source (the resolved topic) used in error messages."""


@dataclasses.dataclass(frozen=True)
class GoalDefaults:
    """Values a goal falls back to when it leaves a field at zero."""

    window_duration: float = 4.0
    """Seconds of camera history a goal sees."""
    max_frames: int = 16
    """Most frames sent to the model per goal (subsampled evenly when the window holds more)."""
    max_frame_age: float = 2.0
    """A goal fails with STALE_FRAMES when the newest frame is older than this (seconds)."""
    max_new_tokens: int = 1024
    """Generation budget; 4096 is recommended for long reasoning on a GPU."""
    structured_output: str = 'auto'
    """auto | on | off: decode the answers of structured modes (trajectory, grounding,
    temporal localization, multiple choice) under their format's grammar, so that they parse.
    auto: where the backend can (the grammar library is installed; the server accepts the
    request fields); on: always ask, and say in the result when it could not be done."""
    max_reasoning_tokens: int = 0
    """Reasoning tokens at most before a constrained answer is forced to start (the reasoning
    is then closed and the result says so); 0: half of the goal's max_new_tokens. The backend
    lowers it where the answer's longest form would not fit in the rest
    (answer_formats.plan_answer)."""


STRUCTURED_OUTPUT = ('auto', 'on', 'off')
"""Values of GoalDefaults.structured_output."""


@dataclasses.dataclass(frozen=True)
class GoalLimits:
    """Bounds every goal must stay within, whatever it asks for: a goal above one is refused
    (INVALID_GOAL) or stopped, so that no single goal can hold the model or the memory.
    """

    max_task_chars: int = 8192
    """Most characters of task, object name and choices together (a prompt the model's context
    takes; a megabyte of text would keep the model busy with prefill for minutes)."""
    max_new_tokens: int = 16384
    """Ceiling on a goal's max_new_tokens."""
    max_images: int = 64
    """Most images a goal may carry; more are refused before any is decoded. The goal's
    max_frames then picks evenly among those sent."""
    max_cameras: int = 4
    """Most camera views one goal may ask about (each view is a video in the prompt)."""
    max_source_pixels: int = 4096 * 4096
    """Largest image (width x height as its header declares it) decoded, from the camera or a
    goal; larger ones are refused before decoding (decompression bombs)."""
    time_limit: float = 600.0
    """Seconds a goal may run once it holds the model (preprocessing and generation); it is
    then stopped and fails. 0 disables the limit."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model to load and how (local transformers backend)."""

    model: str = 'nvidia/Cosmos-Reason2-2B'
    """Hub id or local directory of the checkpoint."""
    revision: str = ''
    """Hub revision (branch, tag or commit) to pin; empty takes the default branch."""
    dtype: str = 'auto'
    """auto | bf16 | fp16 | fp32 ('auto': bf16 on a GPU that supports it, else fp32)."""
    device: str = 'auto'
    """auto | cuda | cuda:N | cpu ('auto': the first GPU if there is one)."""
    attn_implementation: str = 'sdpa'
    """sdpa | eager | flash_attention_2 (when flash-attn is installed)."""
    quantization: str = 'none'
    """none | 4bit | 8bit (bitsandbytes; CUDA only)."""
    local_files_only: bool = False
    """Never contact the hub (offline robots); the model must be in the local cache or a path."""
    cache_implementation: str = 'dynamic'
    """dynamic | static. 'static' preallocates the KV cache (prompt + max_new_tokens), which lets
    transformers compile the decoding step on CUDA: faster decoding once the first goal has
    compiled it (slowly, and again when a longer prompt needs a larger cache). Slower on a CPU."""
    vision_cache_mb: int = 0
    """Megabytes of encoded video frames kept for reuse (per temporal patch, keyed by the frames'
    pixels): windows that share frames with an earlier goal or monitor tick encode only their
    new frames. 0 turns the cache off. Exact on every supported family (docs/models.md)."""
