"""The optional depth and CameraInfo inputs of the node, and the lifting of its answers to 3D.

Depth frames arrive serialized: the stamp decides, before anything is deserialized, whether a
frame can match a colour frame the window keeps; only the one matched to an answer's frame is
ever converted, when that answer is lifted. Where the middleware filters content (as for the
colour frames, see stamp_filter), depth frames that can match no kept colour frame are not
delivered at all. Depth comes raw on `depth`, or as image_transport's compressedDepth (PNG) on
`depth/compressedDepth` (the remapped `depth` plus that suffix, as image_transport names it).
A node with several cameras has one DepthInput per camera: camera N takes `N/depth` and
`N/camera_info`, and lifts the points and boxes of the answer that name N.
"""

from collections.abc import Sequence

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory
from cosmos_reason_ros.core.camera.frames import FrameWindow
from cosmos_reason_ros.core.depth.compressed import decode_compressed_depth
from cosmos_reason_ros.core.depth.geometry import (
    camera_info_data,
    DepthData,
    lift_answer,
    Lifted,
    LiftError,
    LiftSettings,
    LiftStatus,
)
from cosmos_reason_ros.core.depth.matching import DepthMatcher
from cosmos_reason_ros.core.reasoner import ReasonOutcome
from cosmos_reason_ros.ros.camera_topics import camera_topic
from cosmos_reason_ros.ros.conversions import header_from_cdr
from cosmos_reason_ros.ros.stamp_filter import content_filter_options, StampFilter

_PENDING = 8
DEPTH_WAIT = 0.2
"""Seconds an answer waits for its frame's depth, still on its way (a depth stream often
trails its colour stream by a few milliseconds); with no depth at all, each answer waits this."""


class DepthInput:
    """Subscribes to one camera's `depth` and `camera_info`, pairs depth with its kept frames,
    lifts answers.
    """

    def __init__(self, node: Node, window: FrameWindow, *, tolerance: float,
                 settings: LiftSettings, callback_group: CallbackGroup,
                 capacity: int, transport: str = 'raw', camera: str = ''):
        """Create the input (nothing subscribed until subscribe()).

        Args:
            node: the reasoning node.
            window: the colour frame window whose kept frames depth is matched to.
            tolerance: largest stamp difference (s) of a match.
            settings: depth range and box measurement.
            callback_group: the colour frames' group, so that matching sees frames in order.
            capacity: depth frames held, those of the newest kept colour frames (at most the
                window's capacity).
            transport: 'raw' (Image on `depth`) or 'compressedDepth' (CompressedImage on
                `depth/compressedDepth`).
            camera: the camera's name: N takes `N/depth` and `N/camera_info`; '' (the one
                unnamed camera) takes `depth` and `camera_info`.
        """
        self.camera = camera
        """The camera's name ('' for the one unnamed camera)."""
        self._node = node
        self._window = window
        self._settings = settings
        self._group = callback_group
        self._compressed = transport == 'compressedDepth'
        self._filters: list[StampFilter] = []
        self._capacity = min(capacity, window.config.capacity)
        self._matcher = DepthMatcher(tolerance, self._capacity,
                                     rewind_threshold=window.config.rewind_threshold,
                                     max_pending=_PENDING)
        self._depth_sub: Subscription | None = None
        self._info_sub: Subscription | None = None
        self._camera_info: bytes | None = None
        self.depth_frames = 0
        """Depth frames received."""
        self.camera_infos = 0
        """CameraInfo messages received."""

    @property
    def depth_skipped(self) -> int:
        """Depth frames dropped by stamp (never deserialized)."""
        return self._matcher.skipped

    def subscribe(self, dds_filter: bool) -> None:
        """Subscribe to `depth` (serialized) and `camera_info`, with sensor-data QoS.

        Args:
            dds_filter: window.dds_filter: let the middleware drop depth frames by stamp.
        """
        if self._compressed:
            # image_transport's naming: the transport's topic below the remapped base topic.
            topic = self._node.resolve_topic_name(self._topic('depth')) + '/compressedDepth'
            self._depth_sub = self._subscribe(CompressedImage, topic, self._on_depth,
                                              dds_filter)
        else:
            self._depth_sub = self._subscribe(Image, self._topic('depth'), self._on_depth,
                                              dds_filter)
        # A driver sends CameraInfo with every frame; only an answer reads it, so it is
        # filtered like depth and kept serialized.
        self._info_sub = self._subscribe(CameraInfo, self._topic('camera_info'),
                                         self._on_camera_info, dds_filter)
        self._filters = [StampFilter(subscription, self._node.get_logger(), requested=dds_filter)
                         for subscription in (self._depth_sub, self._info_sub)]

    def _topic(self, topic: str) -> str:
        return camera_topic(self.camera, topic)

    def _subscribe(self, message_type, topic: str, callback, dds_filter: bool) -> Subscription:
        """A serialized subscription, stamp-filtered in the middleware where it can be."""
        options = content_filter_options() if dds_filter else None
        if options is not None:
            try:
                return self._node.create_subscription(
                    message_type, topic, callback, qos_profile_sensor_data,
                    callback_group=self._group, raw=True, content_filter_options=options)
            except Exception as error:  # noqa: BLE001 - fall back to filtering in the node
                self._node.get_logger().warning(f'no content filter on {topic} ({error})')
        return self._node.create_subscription(message_type, topic, callback,
                                              qos_profile_sensor_data,
                                              callback_group=self._group, raw=True)

    def unsubscribe(self) -> None:
        """Stop both subscriptions and forget the frames held."""
        for subscription in (self._depth_sub, self._info_sub):
            if subscription is not None:
                self._node.destroy_subscription(subscription)
        self._depth_sub = self._info_sub = None
        self._filters = []
        self._matcher.clear()

    def colour_kept(self, stamp: float) -> None:
        """The window stored a colour frame with this stamp; the depth filter follows it."""
        self._matcher.colour_kept(stamp)
        bounds = self._matcher.wanted_stamps(self._window.wanted_stamps())
        if bounds is None:
            return
        for stamp_filter in self._filters:
            stamp_filter.update(bounds)

    def lift(self, outcome: ReasonOutcome) -> tuple[Lifted, float | None]:
        """The answer's trajectories and boxes in 3D, and the stamp of the depth frame used."""
        return self.lift_items(outcome.parsed.trajectories, outcome.parsed.boxes,
                               outcome.frames[-1].stamp, outcome.source_size)

    def lift_items(self, trajectories: Sequence[Trajectory], boxes: Sequence[Box],
                   stamp: float, source_size: tuple[int, int]) -> tuple[Lifted, float | None]:
        """Trajectories and boxes in pixels of this camera's frame at `stamp` (of size
        `source_size`) in 3D, and the stamp of the depth frame used (None when none was).
        """
        if not trajectories and not boxes:
            return Lifted(LiftStatus.NONE, 'the answer holds no points or boxes to lift'), None
        match = self._matcher.match(stamp, timeout=DEPTH_WAIT)
        if match is None and self._matcher.forgot(stamp):
            return Lifted(LiftStatus.NO_DEPTH, (
                f"the answer's frame is older than the {self._capacity} newest kept frames "
                'whose depth is held: raise depth.capacity to lift answers about older '
                'frames')), None
        depth_stamp = match.stamp if match is not None else None
        try:
            depth = None if match is None else self._depth_data(match.payload, source_size)
        except LiftError as error:
            return Lifted(error.status, str(error)), depth_stamp
        raw_info = self._camera_info
        camera = None if raw_info is None else camera_info_data(
            deserialize_message(raw_info, CameraInfo))
        lifted = lift_answer(trajectories, boxes, source_size, camera_info=camera, depth=depth,
                             settings=self._settings)
        return lifted, depth_stamp

    def _depth_data(self, payload: bytes, size: tuple[int, int]) -> DepthData:
        """The matched depth frame, deserialized (and decoded, for compressedDepth).

        Raises:
            LiftError: a compressedDepth frame that cannot be decoded or is not `size`.
        """
        if self._compressed:
            compressed = deserialize_message(payload, CompressedImage)
            return decode_compressed_depth(compressed.format, compressed.data,
                                           expected_size=size)
        message = deserialize_message(payload, Image)
        return DepthData(encoding=message.encoding, width=message.width, height=message.height,
                         step=message.step, data=message.data,
                         is_bigendian=bool(message.is_bigendian))

    def _on_depth(self, raw: bytes) -> None:
        self.depth_frames += 1
        header = header_from_cdr(raw)
        if header is None:
            self._node.get_logger().warning(
                f"dropping a depth image on '{self._topic('depth')}' with an unreadable header",
                throttle_duration_sec=5.0)
            return
        self._matcher.offer_depth(header[0], raw, colour_wanted=self._window.wanted_stamps())

    def _on_camera_info(self, raw: bytes) -> None:
        self._camera_info = raw
        self.camera_infos += 1

    def diagnostics(self) -> dict[str, str]:
        """Counters for /diagnostics."""
        return {'depth_frames_received': str(self.depth_frames),
                'depth_frames_skipped': str(self.depth_skipped),
                'camera_info_received': str(self.camera_infos)}


__all__ = ['DepthInput']
