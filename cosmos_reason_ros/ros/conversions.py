"""Between ROS messages and the core's types: goals in, typed results out."""

from collections.abc import Sequence
import math
import struct

from builtin_interfaces.msg import Time
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.families import ImageShape
from cosmos_reason_ros.core.answers.modes import Mode
from cosmos_reason_ros.core.answers.parsing import ParseStatus
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.camera.images import (
    check_image_shape,
    check_pixel_cap,
    declared_size,
    decode_image,
    downscale,
    ImageDecodeError,
    NANOSEC_PER_SEC,
    stamp_seconds,
    valid_stamp,
)
from cosmos_reason_ros.core.camera.views import DEFAULT_CAMERA, View
from cosmos_reason_ros.core.config import GoalLimits, WindowConfig
from cosmos_reason_ros.core.depth.views import camera_of
from cosmos_reason_ros.core.errors import InvalidRequestError, SUCCESS_CODE
from cosmos_reason_ros.core.reasoner import ReasonOutcome, ReasonRequest
from cosmos_reason_ros.msg import (
    BoundingBox2D,
    CameraView,
    NextAction,
    Point2D,
    ReasoningResult,
    TemporalEvent,
    Trajectory2D,
)

_CDR_HEADER = {b'\x00\x00': ('>iI', '>I'), b'\x00\x01': ('<iI', '<I')}


def header_from_cdr(raw: bytes) -> tuple[float, str] | None:
    """Read header.stamp and header.frame_id from a serialized Image or CompressedImage.

    Both messages start with std_msgs/Header (int32 sec, uint32 nanosec, string frame_id) right
    after the 4-byte CDR encapsulation header, so a frame the window will drop costs a few bytes
    of parsing instead of deserializing and copying the whole image.

    Returns:
        (stamp in seconds, frame_id), or None when the data is too short or not plain CDR. The
        stamp is NaN when nanosec is 1e9 or more, which ROS does not define: such a frame is
        invalid input, never a time to sort by.
    """
    layout = _CDR_HEADER.get(bytes(raw[:2]))
    if layout is None or len(raw) < 16:
        return None
    stamp_format, length_format = layout
    sec, nanosec = struct.unpack_from(stamp_format, raw, 4)
    (length,) = struct.unpack_from(length_format, raw, 12)
    if length == 0 or 16 + length > len(raw):
        return None
    frame_id = bytes(raw[16:16 + length - 1]).decode('utf-8', errors='replace')
    if nanosec >= NANOSEC_PER_SEC:
        return math.nan, frame_id
    return sec + nanosec * 1e-9, frame_id


def to_time(seconds: float) -> Time:
    """Seconds (float) to builtin_interfaces/Time."""
    sec = math.floor(seconds)
    nanosec = min(round((seconds - sec) * 1e9), 999_999_999)
    return Time(sec=int(sec), nanosec=int(nanosec))


GOAL_NUMBERS = ('window_duration', 'max_frames', 'window_end', 'max_new_tokens', 'temperature',
                'top_p', 'top_k', 'seed', 'priority')
"""The goal's numeric fields. One rule for all: NaN and infinities are refused (INVALID_GOAL
naming the field); zero or a negative value takes the default (the node's parameter or the
mode's preset), except temperature 0, which means greedy decoding; other values are used as
given, and a value out of range (top_p above 1, max_new_tokens above its ceiling) is refused.
priority is an integer used as given, negative values included (background work)."""


def goal_to_request(goal: Reason.Goal, window: WindowConfig,
                    limits: GoalLimits = GoalLimits(), *,
                    decode_images: bool = True,
                    shape: ImageShape | None = None) -> ReasonRequest:
    """Turn an action goal into a core request, checking what can be checked up front.

    Goal images are counted, and each one's declared size is checked against
    limits.max_source_pixels and the processor's shape limits, before any is decoded. Numeric
    fields follow GOAL_NUMBERS' rule.

    Args:
        goal: the action goal.
        window: pixel budget of the frames (images are decoded for it).
        limits: image count and size caps.
        decode_images: False checks the images without decoding them and leaves the request's
            frames empty: decode_goal_frames() decodes them once the goal may run, so a goal
            the concurrency policy turns away costs no decoding.
        shape: the model family's image shape limits (None: unchecked).

    Raises:
        InvalidRequestError: unknown mode, a numeric field NaN or infinite, a window_end or
            image stamp with nanosec >= 1e9, too many images, or a goal image that is too
            large, out of shape or cannot be decoded.
    """
    try:
        mode = Mode.from_name(goal.mode)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None
    window_end = _goal_stamp(goal.window_end, 'window_end')
    window_duration = _finite(goal.window_duration, 'window_duration')
    temperature = _finite(goal.temperature, 'temperature')
    top_p = _finite(goal.top_p, 'top_p')
    if decode_images:
        frames = decode_goal_frames(goal, window, limits, shape)
    else:
        _checked_images(goal, limits, window, shape)
        frames = ()
    return ReasonRequest(
        mode=mode, task=goal.task.strip(), choices=tuple(goal.choices),
        object_name=goal.object_name.strip(), reasoning=goal.reasoning,
        window_duration=max(window_duration, 0.0), max_frames=goal.max_frames,
        window_end=window_end if window_end > 0 else None,
        max_new_tokens=goal.max_new_tokens,
        temperature=None if temperature < 0 else temperature,
        top_p=None if top_p <= 0 else top_p,
        top_k=goal.top_k if goal.top_k > 0 else None,
        seed=goal.seed if goal.seed >= 0 else None,
        greedy=goal.greedy, unconstrained=goal.unconstrained, priority=goal.priority,
        frames=frames, cameras=tuple(goal.cameras))


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise InvalidRequestError(
            f'{name} must be a finite number (0 or a negative value takes the default), got '
            f'{value}')
    return float(value)


def _goal_stamp(stamp: Time, name: str) -> float:
    if not valid_stamp(stamp):
        raise InvalidRequestError(
            f'{name} has nanosec {stamp.nanosec}: ROS stamps hold nanosec below 1e9 (carry '
            'whole seconds into sec)')
    return stamp_seconds(stamp)


def decode_goal_frames(goal: Reason.Goal, window: WindowConfig, limits: GoalLimits,
                       shape: ImageShape | None = None) -> tuple[Frame, ...]:
    """The goal's images as frames, decoded for the window's pixel budget.

    Raises:
        InvalidRequestError: too many images, one too large, out of shape, with an invalid
            stamp, or one that cannot be decoded.
    """
    messages = _checked_images(goal, limits, window, shape)
    frames = []
    for index, message in enumerate(messages):
        try:
            decoded = decode_image(message, max_source_pixels=limits.max_source_pixels,
                                   target_pixels=window.max_pixels, shape=shape)
        except ImageDecodeError as error:
            raise InvalidRequestError(f'goal image {index}: {error}') from None
        frames.append(Frame(stamp=stamp_seconds(message.header.stamp),
                            image=downscale(decoded.image, window.max_pixels),
                            source_size=decoded.source_size,
                            frame_id=message.header.frame_id))
    return tuple(frames)


def _checked_images(goal: Reason.Goal, limits: GoalLimits, window: WindowConfig,
                    shape: ImageShape | None) -> Sequence:
    """The goal's image messages, counted, their stamps and declared sizes and shapes checked
    (nothing decoded).
    """
    messages = [*goal.images, *goal.compressed_images]
    if len(messages) > limits.max_images:
        raise InvalidRequestError(
            f'the goal carries {len(messages)} images, more than max_images '
            f'({limits.max_images}): send fewer')
    for index, message in enumerate(messages):
        _goal_stamp(message.header.stamp, f'goal image {index} header.stamp')
        if hasattr(message, 'encoding'):
            width, height = int(message.width), int(message.height)
        else:
            _, size = declared_size(bytes(message.data[:65536]))
            if size is None:
                continue  # decoding says what is wrong with it
            width, height = size
        try:
            if shape is not None and width > 0 and height > 0:
                check_image_shape(width, height, shape, f'goal image {index}',
                                  target_pixels=window.max_pixels)
            check_pixel_cap(width, height, limits.max_source_pixels, f'goal image {index}')
        except ImageDecodeError as error:
            raise InvalidRequestError(str(error)) from None
    return messages


def view_header(view: View) -> Header:
    """The header of a view's last frame: its stamp and the camera's frame_id."""
    last = view.frames[-1]
    return Header(stamp=to_time(last.stamp), frame_id=last.frame_id)


def camera_view_msg(view: View) -> CameraView:
    """A view the model saw as a CameraView: name, frame_id, stamps, size, missed slots."""
    width, height = view.source_size
    return CameraView(name=view.name, frame_id=view.frames[-1].frame_id,
                      stamps=[to_time(frame.stamp) for frame in view.frames],
                      image_width=width, image_height=height,
                      missing_stamps=[to_time(stamp) for stamp in view.missing])


def outcome_to_msg(outcome: ReasonOutcome) -> ReasoningResult:
    """Fill a ReasoningResult from a finished goal; coordinates are source-image pixels of the
    camera each trajectory or box names (header, frame_stamps and image size: the first view's).
    """
    msg = empty_result_msg(outcome.request)  # error_code SUCCESS: the goal finished
    views = outcome.views or (View(DEFAULT_CAMERA, tuple(outcome.frames)),)
    header = view_header(views[0])
    width, height = outcome.source_size

    def view_of(camera: str) -> View:
        # An item naming no view of the goal (the parser reports it) keeps the first view's
        # geometry; its camera field still says what it named.
        try:
            return outcome.view(camera) if outcome.views else views[0]
        except KeyError:
            return views[0]

    parsed, generation = outcome.parsed, outcome.generation
    msg.header = header
    msg.model_id = outcome.model_id
    msg.served_by = generation.served_by
    msg.raw_text = generation.text
    msg.reasoning = parsed.reasoning
    msg.answer = parsed.answer
    msg.parse_status = int(parsed.status)
    msg.parse_error = parsed.error
    msg.constrained = generation.constrained
    msg.reasoning_cut = generation.reasoning_cut
    msg.answer_cut = generation.finish_reason == 'length'
    msg.trajectories = [_trajectory_msg(trajectory, view_of(_camera_of(trajectory, views)),
                                        _camera_of(trajectory, views))
                        for trajectory in parsed.trajectories]
    msg.boxes = [BoundingBox2D(camera=_camera_of(box, views), label=box.label,
                               x_min=float(box.x_min), y_min=float(box.y_min),
                               x_max=float(box.x_max), y_max=float(box.y_max))
                 for box in parsed.boxes]
    # Event times count from the earliest frame of any view (the prompt's clock).
    first = min(view.frames[0].stamp for view in views)
    msg.events = [TemporalEvent(start=to_time(first + event.start),
                                end=to_time(first + event.end),
                                start_offset=float(event.start), end_offset=float(event.end),
                                caption=event.caption)
                  for event in parsed.events]
    if parsed.next_action:
        msg.next_action = [NextAction(header=header, description=parsed.next_action)]
    msg.choice = parsed.choice
    msg.verdict = parsed.verdict
    msg.frame_stamps = [to_time(frame.stamp) for frame in outcome.frames]
    msg.image_width, msg.image_height = width, height
    msg.views = [camera_view_msg(view) for view in views]
    msg.prompt_tokens = generation.prompt_tokens
    msg.completion_tokens = generation.completion_tokens
    msg.preprocess_time = generation.preprocess_time
    msg.time_to_first_token = generation.time_to_first_token
    msg.generation_time = generation.generation_time
    msg.total_time = outcome.total_time
    msg.decode_tokens_per_second = generation.decode_tokens_per_second
    return msg


def _camera_of(item, views: Sequence[View]) -> str:
    return camera_of(item, [view.name for view in views])


def _trajectory_msg(trajectory, view: View, camera: str) -> Trajectory2D:
    width, height = view.source_size
    return Trajectory2D(header=view_header(view), camera=camera, label=trajectory.label,
                        points=[Point2D(x=float(x), y=float(y)) for x, y in trajectory.points],
                        image_width=width, image_height=height)


def empty_result_msg(request: ReasonRequest | None, *, model_id: str = '',
                     raw_text: str = '', error_code: int = SUCCESS_CODE) -> ReasoningResult:
    """A ReasoningResult for a goal that did not finish: what was asked, any partial text and
    the failure's code (Reason.Result's value; the caller that knows the failure passes it).
    """
    msg = ReasoningResult(model_id=model_id, raw_text=raw_text,
                          parse_status=int(ParseStatus.NOT_RUN), error_code=error_code)
    if request is not None:
        msg.mode = request.mode.value
        msg.task = request.task
    return msg


def rgb_to_image_msg(image: np.ndarray, header: Header) -> Image:
    """An RGB uint8 array as a sensor_msgs/Image (rgb8)."""
    height, width = image.shape[:2]
    return Image(header=header, height=height, width=width, encoding='rgb8', is_bigendian=0,
                 step=width * 3, data=np.ascontiguousarray(image).tobytes())
