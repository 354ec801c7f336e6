"""The conventions of each supported model family, in one table.

A family is told apart by the checkpoint config's `model_type` (never by the model's name, except
for a remote server that does not say). Everything that differs between families (where the
reasoning instruction goes, whether the chat template has a thinking switch, how frame timing
reaches the model, the coordinate convention, the visual token size) is a field of its
FamilySpec, so that adding a family is one entry here plus its tests.
"""

from collections.abc import Sequence
import dataclasses
import enum

from cosmos_reason_ros.core.answers.modes import ModelFamily


class Coordinates(enum.Enum):
    """How a family writes points and boxes."""

    NORMALIZED_1000 = 'normalized_1000'
    """0-1000 per axis, independent per axis, origin top left."""
    MODEL_INPUT_PIXELS = 'model_input_pixels'
    """Absolute pixels of the resized image the model saw."""


class ReasoningPrompt(enum.Enum):
    """Where the instruction to reason in <think> tags goes."""

    USER_SUFFIX = 'user_suffix'
    """Appended to the user text after a blank line (Reason2 and Cosmos 3)."""
    SYSTEM_SUFFIX = 'system_suffix'
    """Appended to the system prompt (Reason1, with <answer> tags)."""


class FrameTiming(enum.Enum):
    """How the frames' real times reach the model."""

    TEXT_TIMESTAMPS = 'text_timestamps'
    """The processor writes `<t seconds>` before each temporal patch, from video metadata; the
    frames go as indices of a virtual 1000 fps video so that t is the real stamp."""
    MEAN_FPS = 'mean_fps'
    """No text timestamps; the rotary time embedding takes the frames' mean rate."""


@dataclasses.dataclass(frozen=True)
class ImageShape:
    """The image shapes a family's processor accepts (its `smart_resize`), checked on every
    image before it is kept or decoded: a processor that refuses a frame fails the goal, and a
    camera frame it refuses would fail every later goal that selects it.
    """

    max_aspect_ratio: float
    """Longest side over shortest side: above it the processor raises ('absolute aspect ratio
    must be smaller than 200')."""
    min_side: int
    """Shortest side in pixels the processor takes: 1 for every family with transformers 5.23,
    whose video processors scale a side below the token size up and whose image processors
    round it up to min_pixels (older Qwen2-VL processors refused sides below 28 px)."""
    processor: str
    """The processor whose limits these are, named in the refusal."""


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """Everything the pipeline needs to know about one family of checkpoints."""

    family: ModelFamily
    title: str
    """How the README and error messages name it."""
    model_types: tuple[str, ...]
    """transformers `config.model_type` values of its checkpoints."""
    model_class: str
    """The transformers class that loads it (through AutoModelForImageTextToText)."""
    coordinates: Coordinates
    reasoning_prompt: ReasoningPrompt
    thinking_switch: bool
    """The chat template takes `enable_thinking`; it is then always passed explicitly."""
    thinking_opens_answer: bool
    """With thinking on, the template's generation prompt already holds `<think>`, so the output
    starts inside the reasoning and has only the closing `</think>`."""
    temporal_patch_size: int
    """Frames per temporal patch: each patch gets one timestamp (2: pairs of frames, 1: each)."""
    frame_timing: FrameTiming
    token_pixels: int
    """Side in pixels of one visual token (patch size times spatial merge): processors round
    frame sizes to multiples of it."""
    pixel_budget_is_total: bool
    """The video processor's pixel bounds count all frames together (else each frame)."""
    served_name_hints: tuple[str, ...]
    """Lower-case fragments of served model names that mean this family (remote 'auto')."""
    image_shape: ImageShape

    @property
    def even_frames(self) -> bool:
        """Send an even number of frames: a lone last frame would be repeated to fill a patch
        whose timestamp then lies between two instants.
        """
        return self.frame_timing is FrameTiming.TEXT_TIMESTAMPS and self.temporal_patch_size > 1


TIMESTAMP_FPS = 1000.0
"""Rate of the virtual video whose frame indices carry real stamps: index = round(t * 1000), so
the `<t seconds>` markers are the real stamps to the millisecond."""

_SPECS = (
    FamilySpec(
        family=ModelFamily.QWEN3_VL, title='Cosmos-Reason2 (Qwen3-VL)',
        model_types=('qwen3_vl', 'qwen3_vl_moe'), model_class='Qwen3VLForConditionalGeneration',
        coordinates=Coordinates.NORMALIZED_1000, reasoning_prompt=ReasoningPrompt.USER_SUFFIX,
        thinking_switch=False, thinking_opens_answer=False, temporal_patch_size=2,
        frame_timing=FrameTiming.TEXT_TIMESTAMPS, token_pixels=32, pixel_budget_is_total=True,
        served_name_hints=('reason2', 'qwen3-vl'),
        image_shape=ImageShape(200.0, 1, 'the Qwen3-VL video processor')),
    FamilySpec(
        family=ModelFamily.QWEN2_5_VL, title='Cosmos-Reason1 (Qwen2.5-VL)',
        model_types=('qwen2_5_vl',), model_class='Qwen2_5_VLForConditionalGeneration',
        coordinates=Coordinates.MODEL_INPUT_PIXELS,
        reasoning_prompt=ReasoningPrompt.SYSTEM_SUFFIX, thinking_switch=False,
        thinking_opens_answer=False, temporal_patch_size=2, frame_timing=FrameTiming.MEAN_FPS,
        token_pixels=28, pixel_budget_is_total=False,
        served_name_hints=('reason1', 'qwen2.5', 'qwen2-5', 'qwen2_5'),
        image_shape=ImageShape(200.0, 1, 'the Qwen2-VL image and video processors')),
    FamilySpec(
        family=ModelFamily.COSMOS3_EDGE, title='Cosmos3-Edge reasoner',
        model_types=('cosmos3_edge',), model_class='Cosmos3EdgeForConditionalGeneration',
        coordinates=Coordinates.NORMALIZED_1000, reasoning_prompt=ReasoningPrompt.USER_SUFFIX,
        thinking_switch=True, thinking_opens_answer=True, temporal_patch_size=1,
        frame_timing=FrameTiming.TEXT_TIMESTAMPS, token_pixels=32, pixel_budget_is_total=True,
        # NVIDIA NIM's `cosmos3` image serves the Edge reasoner under that plain name.
        served_name_hints=('cosmos3-edge', 'cosmos-3-edge', 'cosmos3'),
        image_shape=ImageShape(200.0, 1, 'the Cosmos3-Edge image and video processors')),
    FamilySpec(
        family=ModelFamily.COSMOS3_OMNI, title='Cosmos3-Nano/Super reasoner',
        model_types=('cosmos3_omni',), model_class='Cosmos3OmniForConditionalGeneration',
        coordinates=Coordinates.NORMALIZED_1000, reasoning_prompt=ReasoningPrompt.USER_SUFFIX,
        thinking_switch=False, thinking_opens_answer=False, temporal_patch_size=2,
        frame_timing=FrameTiming.TEXT_TIMESTAMPS, token_pixels=32, pixel_budget_is_total=True,
        served_name_hints=('cosmos3-nano', 'cosmos3-super', 'cosmos-3-nano', 'cosmos-3-super'),
        image_shape=ImageShape(200.0, 1, 'the Qwen3-VL video processor')),
)
FAMILY_SPECS: dict[ModelFamily, FamilySpec] = {spec.family: spec for spec in _SPECS}


def family_spec(family: ModelFamily) -> FamilySpec:
    """The conventions of `family` (a ModelFamily or its value)."""
    return FAMILY_SPECS[ModelFamily(family)]


def image_shape(family: ModelFamily | None) -> ImageShape:
    """The shapes `family`'s processor accepts; with the family not known yet (a remote server
    that has not answered), the strictest over every family.
    """
    if family is not None:
        return family_spec(family).image_shape
    shapes = [spec.image_shape for spec in _SPECS]
    strictest = min(shapes, key=lambda shape: (shape.max_aspect_ratio, -shape.min_side))
    return ImageShape(strictest.max_aspect_ratio, max(shape.min_side for shape in shapes),
                      'the processor of any supported family')


def supported_families() -> str:
    """The supported families in words, for error messages."""
    return ', '.join(f"{spec.title} (model_type {' or '.join(spec.model_types)})"
                     for spec in _SPECS)


def family_for_model_type(model_type: str) -> ModelFamily:
    """The family of a checkpoint from its config's `model_type`.

    Raises:
        ValueError: the model type is not a supported reasoner; the message names it and lists
            the supported ones.
    """
    for spec in _SPECS:
        if model_type in spec.model_types:
            return spec.family
    raise ValueError(f'the checkpoint is a {model_type!r} model, which is not a supported '
                     f'reasoner: supported are {supported_families()}')


def family_for_served_name(*names: str) -> ModelFamily | None:
    """The family a served model's names point to, or None when they say nothing.

    The most specific hint wins, so that 'nvidia/Cosmos3-Nano' is not taken for the plain
    'cosmos3' of the Edge NIM.
    """
    joined = ' '.join(names).lower().replace('_', '-')
    matches = [(len(hint), spec.family) for spec in _SPECS for hint in spec.served_name_hints
               if hint in joined]
    return max(matches, key=lambda match: match[0])[1] if matches else None


@dataclasses.dataclass(frozen=True)
class VideoTiming:
    """Frame timing as processors and vLLM's video loader take it (VideoMetadata fields)."""

    fps: float
    frames_indices: list[int]
    total_num_frames: int

    @property
    def duration(self) -> float:
        return self.total_num_frames / self.fps


def video_timing(timestamps: Sequence[float], family: ModelFamily, *,
                 origin: float | None = None) -> VideoTiming:
    """The metadata that carries the frames' real timing to the model's processor.

    Text-timestamp families: frames are indices of a virtual 1000 fps video (index = round((t -
    origin) * 1000)), so the `<t seconds>` markers are the real stamps (averaged over the frames
    of each temporal patch). Mean-fps families: the frames' mean rate, (frames - 1) / span, from
    which the processor derives the seconds per temporal patch.

    Args:
        timestamps: Stamps of the frames in seconds, increasing.
        family: Model family.
        origin: The stamp that is 0 seconds. None: the first frame's (one video). The views of
            a multi-camera request share one clock (GenerationRequest), so each passes 0.0 and
            a view whose first frame is at 0.007 s says so in its markers.

    Raises:
        ValueError: a text-timestamp frame lies before the origin.
    """
    start = float(timestamps[0])
    if family_spec(family).frame_timing is FrameTiming.TEXT_TIMESTAMPS:
        zero = start if origin is None else float(origin)
        indices = [int(round((float(t) - zero) * TIMESTAMP_FPS)) for t in timestamps]
        if indices[0] < 0:
            raise ValueError(f'the first frame is {start:.3f} s, before the clock origin '
                             f'{zero:.3f} s: stamps must be seconds from the origin')
        return VideoTiming(TIMESTAMP_FPS, indices, indices[-1] + 1)
    span = float(timestamps[-1]) - start
    count = len(timestamps)
    fps = (count - 1) / span if count > 1 and span > 0 else 1.0
    return VideoTiming(fps, list(range(count)), count)


def model_input_size(width: int, height: int, family: ModelFamily) -> tuple[int, int]:
    """(width, height) a processor resizes a frame to when its pixel budget allows: the nearest
    multiples of the family's token size (at least one token).
    """
    factor = family_spec(family).token_pixels
    return (max(factor, round(width / factor) * factor),
            max(factor, round(height / factor) * factor))


def visual_tokens(width: int, height: int, frames: int, family: ModelFamily) -> int:
    """Visual tokens the language model reads for `frames` frames of width x height (after the
    processor's rounding): one token per token_pixels square, per temporal patch.
    """
    spec = family_spec(family)
    input_width, input_height = model_input_size(width, height, family)
    patches = -(-frames // spec.temporal_patch_size)
    return patches * (input_width // spec.token_pixels) * (input_height // spec.token_pixels)


__all__ = [
    'Coordinates', 'FAMILY_SPECS', 'FamilySpec', 'FrameTiming', 'ImageShape', 'ReasoningPrompt',
    'TIMESTAMP_FPS', 'VideoTiming', 'family_for_model_type', 'family_for_served_name',
    'family_spec', 'image_shape', 'model_input_size', 'supported_families', 'video_timing',
    'visual_tokens',
]
