"""The reasoning node: camera frames in, the Reason action served, typed answers out.

It only orchestrates: the window, the model, the prompts and the parser live in the core.
"""

import dataclasses
import os
import threading
import time
from typing import Dict, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.action import ActionServer, CancelResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.backends.factory import create_backend
from cosmos_reason_ros.core.backends.openai_backend import OpenAIBackend
from cosmos_reason_ros.core.errors import (
    Failure, GenerationCancelled, ModelLoadError, ModelNotReadyError, ReasonError,
    result_code_of)
from cosmos_reason_ros.core.frames import FrameWindow, Offer
from cosmos_reason_ros.core.images import decode_image
from cosmos_reason_ros.core.overlay import draw_overlay
from cosmos_reason_ros.core.reasoner import Reasoner, ReasonOutcome, ReasonRequest
from cosmos_reason_ros.core.scheduling import GoalScheduler
from cosmos_reason_ros.msg import ReasoningResult
from cosmos_reason_ros.ros.conversions import (
    empty_result_msg, goal_to_request, header_from_cdr, outcome_to_msg, rgb_to_image_msg)
from cosmos_reason_ros.ros.executor import ReasonExecutor
from cosmos_reason_ros.ros.large_buffers import reuse_large_buffers
from cosmos_reason_ros.ros.parameters import declare_node_config
from cosmos_reason_ros.ros.stamp_filter import StampFilter, content_filter_options

Result = Reason.Result


class ReasonNode(Node):
    """Serves ~/reason about the frames arriving on `image` (or `image/compressed`)."""

    def __init__(self, **kwargs):
        super().__init__('cosmos_reason', **kwargs)
        self._config = declare_node_config(self, image_topic='image')
        frames_group = MutuallyExclusiveCallbackGroup()
        goals_group = ReentrantCallbackGroup()
        status_group = MutuallyExclusiveCallbackGroup()

        message_type = CompressedImage if self._config.compressed_input else Image
        topic = 'image/compressed' if self._config.compressed_input else 'image'
        self._image_type = message_type
        self._image_sub = self._subscribe_frames(message_type, topic, frames_group)
        self._stamp_filter = StampFilter(self._image_sub, self.get_logger(),
                                         requested=self._config.dds_frame_filter)
        self._window = FrameWindow(dataclasses.replace(
            self._config.window, source=self._image_sub.topic_name))

        # The API key of a remote backend comes from the variable remote.api_key_env names.
        self._backend = create_backend(self._config.backend_settings, environ=os.environ)
        self._model_name = self._config.backend_settings.model_name
        self._model_state = 'loading'
        self._model_error = ''
        self._reasoner = Reasoner(self._backend, self._window, self._config.goals,
                                  frame_wait_timeout=self._config.frame_wait_timeout,
                                  limits=self._config.limits)
        self._scheduler = GoalScheduler(self._config.concurrency_policy,
                                        slots=self._config.backend_settings.max_concurrent,
                                        max_queued=self._config.max_queued_goals)
        self._cancel_events: Dict[bytes, threading.Event] = {}
        self._last_latency = 0.0
        self._goals_served = 0
        self._frames_seen = 0
        self._frames_unreadable = 0
        self._frames_seen_at_last_status = (0, time.monotonic())

        self._result_pub = self.create_publisher(ReasoningResult, '~/result', 10)
        self._debug_pub = self.create_publisher(Image, '~/debug_image', 1)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._server = ActionServer(
            self, Reason, '~/reason', execute_callback=self._execute,
            cancel_callback=self._on_cancel, callback_group=goals_group)
        self.create_timer(self._config.diagnostics_period, self._publish_diagnostics,
                          callback_group=status_group)
        self._loader = threading.Thread(target=self._load_model, name='model-loader',
                                        daemon=True)
        self._loader.start()

    @property
    def executor_threads(self) -> int:
        """Threads the executor needs: frames, status, and one per running or queued goal."""
        return 3 + self._scheduler.slots + self._config.max_queued_goals

    @property
    def model_state(self) -> str:
        """'loading', 'ready' or 'failed'."""
        return self._model_state

    def wait_until_loaded(self, timeout: float) -> bool:
        """Block until the model finished loading (or failed); True when it is ready."""
        self._loader.join(timeout)
        return self._model_state == 'ready'

    def destroy_node(self) -> None:
        """Stop running goals and free the model before the node goes away."""
        for event in list(self._cancel_events.values()):
            event.set()
        self._loader.join(timeout=30.0)
        self._backend.close()
        super().destroy_node()

    # Model --------------------------------------------------------------------------------

    def _load_model(self) -> None:
        model = self._model_name
        self.get_logger().info(f"loading model '{model}'")
        try:
            self._backend.load()
        except ModelLoadError as error:
            self._fail_load(str(error))
        except Exception as error:  # noqa: BLE001 - a load failure must not kill the node
            self._fail_load(f"model '{model}' failed to load: {error!r}")
        else:
            self._model_state = 'ready'
            self.get_logger().info(f"model '{model}' ready ({self._backend.family.value})")

    def _fail_load(self, message: str) -> None:
        self._model_error = message
        self._model_state = 'failed'
        self.get_logger().error(message + ' - the node keeps running; every goal gets this error')

    def _check_model(self) -> None:
        if self._model_state == 'failed':
            raise ModelLoadError(self._model_error)
        if self._model_state != 'ready':
            raise ModelNotReadyError(
                f"model '{self._model_name}' is still loading: retry in a few seconds "
                '(/diagnostics reports when it is ready)')

    # Frames -------------------------------------------------------------------------------

    def _subscribe_frames(self, message_type, topic: str, group) -> Subscription:
        """Subscribe to the camera, with the stamp filter where the middleware has one.

        raw=True hands over the serialized message: the stamp decides whether a frame is needed
        before anything is deserialized or converted. The content filter goes further: frames
        the window will skip (7 of 8 at 30 fps) are not delivered at all.
        """
        options = content_filter_options() if self._config.dds_frame_filter else None
        if options is not None:
            try:
                return self.create_subscription(
                    message_type, topic, self._on_image, qos_profile_sensor_data,
                    callback_group=group, raw=True, content_filter_options=options)
            except Exception as error:  # noqa: BLE001 - fall back to filtering in the node
                self.get_logger().warning(
                    f'no content filter on {topic} ({error}): every frame is delivered and '
                    'the node drops those it does not keep')
        return self.create_subscription(message_type, topic, self._on_image,
                                        qos_profile_sensor_data, callback_group=group, raw=True)

    def _on_image(self, raw: bytes) -> None:
        self._frames_seen += 1
        header = header_from_cdr(raw)
        if header is None:
            self._frames_unreadable += 1
            self.get_logger().warning(
                f"dropping an image on '{self._image_sub.topic_name}' with an unreadable "
                'header', throttle_duration_sec=5.0)
            return
        stamp, frame_id = header
        try:
            offer = self._window.offer(stamp, lambda: self._decode(raw), frame_id)
        # Anything raised here would stop the executor: a bad frame is dropped, never fatal.
        except Exception as error:  # noqa: BLE001
            self.get_logger().warning(
                f"dropping an image on '{self._image_sub.topic_name}': {error} "
                f'({self._window.stats.invalid} dropped so far)', throttle_duration_sec=5.0)
            return
        if offer in (Offer.KEPT, Offer.REWOUND, Offer.RESIZED):
            self._stamp_filter.update(self._window.wanted_stamps())
        if offer is Offer.REWOUND:
            self.get_logger().warning(
                f"stamps on '{self._image_sub.topic_name}' jumped back to {stamp:.3f} s "
                '(bag loop or simulation reset): the frame window was cleared')
        elif offer is Offer.RESIZED:
            resize = self._window.last_resize
            self.get_logger().warning(
                f"the images on '{self._image_sub.topic_name}' changed size from "
                f'{resize.previous[0]}x{resize.previous[1]} to {resize.size[0]}x{resize.size[1]}: '
                'the frame window starts anew (a goal sees frames of one size)',
                throttle_duration_sec=5.0)

    def _decode(self, raw: bytes):
        # The declared size is checked before decoding; a JPEG decodes reduced for the window.
        return decode_image(deserialize_message(raw, self._image_type),
                            max_source_pixels=self._config.limits.max_source_pixels,
                            target_pixels=self._config.window.max_pixels)

    # Goals --------------------------------------------------------------------------------

    def _on_cancel(self, goal_handle: ServerGoalHandle) -> CancelResponse:
        self._cancel_events.setdefault(bytes(goal_handle.goal_id.uuid), threading.Event()).set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: ServerGoalHandle) -> Result:
        goal_id = bytes(goal_handle.goal_id.uuid)
        cancel = self._cancel_events.setdefault(goal_id, threading.Event())
        progress = _Progress(goal_handle, self._config.feedback_period)
        request: Optional[ReasonRequest] = None
        try:
            self._check_model()
            request = goal_to_request(goal_handle.request, self._config.window,
                                      self._config.limits)
            ticket = self._scheduler.admit(cancel)
            if not ticket.wait():
                raise GenerationCancelled('preempted by a newer goal' if ticket.preempted
                                          else 'canceled while waiting for the model')
            with ticket:
                outcome = self._reasoner.run(request, now=self._now(), on_stage=progress.stage,
                                             on_text=progress.text, cancel=cancel)
        except GenerationCancelled as error:
            preempted = not goal_handle.is_cancel_requested
            kind = Failure.PREEMPTED if preempted else Failure.CANCELED
            return self._finish_failed(goal_handle, kind.result_code, str(error), request,
                                       progress, canceled=not preempted)
        except ReasonError as error:
            return self._finish_failed(goal_handle, result_code_of(error), str(error), request,
                                       progress)
        except Exception as error:  # noqa: BLE001 - a model failure must not kill the node
            self.get_logger().error(f'goal failed unexpectedly: {error!r}')
            return self._finish_failed(goal_handle, result_code_of(error),
                                       f'internal error: {error!r}', request, progress)
        finally:
            self._cancel_events.pop(goal_id, None)
        return self._finish_succeeded(goal_handle, outcome, progress)

    def _finish_succeeded(self, goal_handle: ServerGoalHandle, outcome: ReasonOutcome,
                          progress: '_Progress') -> Result:
        msg = outcome_to_msg(outcome)
        # From the goal's acceptance, as documented: a wait in the goal queue is included.
        msg.total_time = progress.elapsed
        self._result_pub.publish(msg)
        self._publish_overlay(outcome, msg.header)
        self._last_latency = msg.total_time
        self._goals_served += 1
        goal_handle.succeed()
        return Result(error_code=Result.SUCCESS, message=_summary(outcome, msg.total_time),
                      output=msg)

    def _finish_failed(self, goal_handle: ServerGoalHandle, code: int, message: str,
                       request: Optional[ReasonRequest], progress: '_Progress', *,
                       canceled: bool = False) -> Result:
        self.get_logger().warning(
            f'goal ended with {Failure.from_result_code(code).value}: {message}')
        output = empty_result_msg(request, model_id=self._model_name,
                                  raw_text=progress.text_so_far)
        if canceled:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return Result(error_code=code, message=message, output=output)

    def _publish_overlay(self, outcome: ReasonOutcome, header: Header) -> None:
        if not self._config.publish_debug_image or self._debug_pub.get_subscription_count() == 0:
            return
        parsed = outcome.parsed
        image = draw_overlay(outcome.frames[-1].image, outcome.source_size,
                             trajectories=parsed.trajectories, boxes=parsed.boxes,
                             text=parsed.answer or parsed.error)
        self._debug_pub.publish(rgb_to_image_msg(image, header))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        seen, since = self._frames_seen_at_last_status
        now = time.monotonic()
        input_rate = (self._frames_seen - seen) / max(now - since, 1e-6)
        self._frames_seen_at_last_status = (self._frames_seen, now)
        stats = self._window.stats
        level, message = {
            'loading': (DiagnosticStatus.WARN, 'model loading'),
            'failed': (DiagnosticStatus.ERROR, self._model_error),
        }.get(self._model_state, (DiagnosticStatus.OK, 'ready'))
        if level == DiagnosticStatus.OK and stats.fill == 0:
            level, message = DiagnosticStatus.WARN, f"no frames on '{self._image_sub.topic_name}'"
        values = {
            'model': self._model_name, 'model_state': self._model_state,
            # With the middleware's stamp filter only the frames the window keeps arrive.
            'frame_filter': 'dds' if self._stamp_filter.active else 'node',
            'frame_filter_reason': self._stamp_filter.reason,
            'input_rate_hz': f'{input_rate:.1f}', 'frames_received': str(self._frames_seen),
            'frames_kept': str(stats.kept),
            'frames_invalid': str(stats.invalid + self._frames_unreadable),
            'window_fill': str(stats.fill), 'window_span_s': f'{stats.span:.2f}',
            'goals_running': str(self._scheduler.busy),
            'goals_queued': str(self._scheduler.queued),
            'goals_served': str(self._goals_served),
            'last_latency_s': f'{self._last_latency:.3f}',
            'backend': self._config.backend,
        }
        if isinstance(self._backend, OpenAIBackend):
            values['server'] = self._config.remote.base_url
            values['server_status'] = self._backend.status.message
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: reasoning', message=message,
            hardware_id=self._model_name,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])
        self._diagnostics_pub.publish(DiagnosticArray(
            header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))


class _Progress:
    """Feedback of one goal: every stage change, and partial text at most once per period."""

    def __init__(self, goal_handle: ServerGoalHandle, period: float):
        self._goal_handle = goal_handle
        self._period = period
        self._started = time.monotonic()
        self._last_sent = 0.0
        self._stage = ''
        self._chunks = []
        self._tokens = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the goal was accepted (its execution began)."""
        return time.monotonic() - self._started

    @property
    def text_so_far(self) -> str:
        return ''.join(self._chunks)

    def stage(self, stage: str) -> None:
        self._stage = stage
        self._send()

    def text(self, delta: str, tokens: int) -> None:
        self._chunks.append(delta)
        self._tokens = tokens
        if time.monotonic() - self._last_sent >= self._period:
            self._send()

    def _send(self) -> None:
        self._last_sent = time.monotonic()
        self._goal_handle.publish_feedback(Reason.Feedback(
            stage=self._stage, tokens=self._tokens, partial_text=self.text_so_far,
            elapsed=self._last_sent - self._started))


def _summary(outcome: ReasonOutcome, total_time: float) -> str:
    generation = outcome.generation
    return (f'{generation.completion_tokens} tokens in {total_time:.2f} s, '
            f'parse {outcome.parsed.status.name.lower()}')


def main(args=None) -> None:
    """Run the node until shutdown (ros2 run cosmos_reason_ros reason_node)."""
    reuse_large_buffers()
    rclpy.init(args=args)
    node = ReasonNode()
    executor = ReasonExecutor(num_threads=node.executor_threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()


__all__ = ['ReasonNode', 'main']
