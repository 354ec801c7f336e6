"""The camera input of the node: one camera's image subscription and the ingest of its frames.

Frames arrive serialized: the stamp decides, before anything is deserialized, whether the window
keeps a frame; only kept frames are read (rosbags' CDR reader: the pixels are a view of the
serialized bytes, not a copy) and converted. Where the middleware filters content, frames the
window will skip are not delivered at all (see stamp_filter). A malformed image is dropped with
a throttled warning and counted, never fatal. A node with several cameras has one ImageInput
per camera, each with its own window, filter and counters.
"""

from collections.abc import Callable
import math
import time
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image

from cosmos_reason_ros.core.answers.families import ImageShape
from cosmos_reason_ros.core.camera.frames import FrameWindow, Offer
from cosmos_reason_ros.core.camera.images import (
    COMPRESSED_IMAGE_TYPE,
    decode_image,
    IMAGE_TYPE,
    prepare_cdr_reader,
    read_cdr_image,
)
from cosmos_reason_ros.core.camera.rates import StreamRate, StreamRateMeter
from cosmos_reason_ros.ros.camera_topics import camera_topic
from cosmos_reason_ros.ros.conversions import header_from_cdr
from cosmos_reason_ros.ros.depth_input import DepthInput
from cosmos_reason_ros.ros.stamp_filter import content_filter_options, StampFilter


class ImageInput:
    """Subscribes to one camera's `image` (or `image/compressed`) and offers each frame to its
    window; a named camera N takes `N/image` (`N/image/compressed`).
    """

    def __init__(self, node: Node, *, callback_group: CallbackGroup,
                 image_shape: Callable[[], ImageShape], camera: str = ''):
        """Create the input (nothing subscribed until subscribe()).

        Args:
            node: the reasoning node.
            callback_group: the frames' group (shared with depth, so that frames are in order).
            image_shape: the shapes the model's processor takes, read at each conversion.
            camera: the camera's name; '' for the one unnamed camera.
        """
        self.camera = camera
        """The camera's name ('' for the one unnamed camera)."""
        self._node = node
        # A logger of its own per named camera: the throttled warnings of one camera do not
        # silence another's (rclpy throttles per logger and call site).
        self._logger = node.get_logger().get_child(camera) if camera else node.get_logger()
        self._group = callback_group
        self._image_shape = image_shape
        self._message_type = Image
        self._max_source_pixels = 0
        self._window: FrameWindow | None = None
        self._depth: DepthInput | None = None
        self.subscription: Subscription | None = None
        """The camera subscription; None while the node is not active."""
        self._stamp_filter: StampFilter | None = None
        self._stream_rate = StreamRateMeter()
        self.frames_seen = 0
        """Images received, since the node started."""
        self.unreadable = 0
        """Images dropped for a header that cannot be read or stamped, since the node started."""

    @property
    def topic(self) -> str:
        """The camera topic subscribed (its relative name, e.g. 'image', while none is)."""
        subscription = self.subscription
        return subscription.topic_name if subscription is not None else self.base_topic

    @property
    def base_topic(self) -> str:
        """The relative image topic of this camera, before remapping ('image', 'wrist/image')."""
        return camera_topic(self.camera, 'image')

    @property
    def frame_filter(self) -> str:
        """'dds' where the middleware drops the frames the window skips, else 'node'."""
        stamp_filter = self._stamp_filter
        return 'dds' if stamp_filter is not None and stamp_filter.active else 'node'

    @property
    def frame_filter_reason(self) -> str:
        """Why the frames are filtered where they are."""
        stamp_filter = self._stamp_filter
        return stamp_filter.reason if stamp_filter is not None else 'not subscribed'

    def rate(self, now: float) -> StreamRate:
        """The rates received and shown by the stamps, over the horizon ending at `now`."""
        return self._stream_rate.rate(now)

    def subscribe(self, window: FrameWindow, depth: DepthInput | None, *, compressed: bool,
                  dds_filter: bool, max_source_pixels: int) -> None:
        """Subscribe to the camera and offer its frames to `window`.

        Args:
            window: the frame window of this configuration.
            depth: the depth input told of each kept frame; None with depth off.
            compressed: take sensor_msgs/CompressedImage on `image/compressed` (of this
                camera's namespace).
            dds_filter: window.dds_filter: let the middleware drop frames by stamp.
            max_source_pixels: largest image decoded (as its header declares it).
        """
        self._window, self._depth = window, depth
        self._max_source_pixels = max_source_pixels
        self._message_type = CompressedImage if compressed else Image
        prepare_cdr_reader(_TYPE_NAMES[self._message_type])
        topic = self.base_topic + ('/compressed' if compressed else '')
        self.subscription = self._subscribe(self._message_type, topic, dds_filter)
        self._stamp_filter = StampFilter(self.subscription, self._logger,
                                         requested=dds_filter)

    def _subscribe(self, message_type, topic: str, dds_filter: bool) -> Subscription:
        """Subscribe to the camera, with the stamp filter where the middleware has one.

        raw=True hands over the serialized message: the stamp decides whether a frame is needed
        before anything is deserialized or converted. The content filter goes further: frames
        the window will skip (7 of 8 at 30 fps) are not delivered at all.
        """
        node = self._node
        options = content_filter_options() if dds_filter else None
        if options is not None:
            try:
                return node.create_subscription(
                    message_type, topic, self._on_image, qos_profile_sensor_data,
                    callback_group=self._group, raw=True, content_filter_options=options)
            except Exception as error:  # noqa: BLE001 - fall back to filtering in the node
                self._logger.warning(
                    f'no content filter on {topic} ({error}): every frame is delivered and '
                    'the node drops those it does not keep')
        return node.create_subscription(message_type, topic, self._on_image,
                                        qos_profile_sensor_data,
                                        callback_group=self._group, raw=True)

    def unsubscribe(self) -> None:
        """Stop the subscription and forget the stream's rate (the window is the node's)."""
        subscription, self.subscription = self.subscription, None
        self._stamp_filter = None
        self._window = self._depth = None
        if subscription is not None:
            self._node.destroy_subscription(subscription)
        self._stream_rate.clear()

    def _on_image(self, raw: bytes) -> None:
        window, stamp_filter, subscription = self._window, self._stamp_filter, self.subscription
        if window is None or stamp_filter is None or subscription is None:
            return  # a frame that was already in flight when the node deactivated
        logger = self._logger
        self.frames_seen += 1
        header = header_from_cdr(raw)
        if header is None or not math.isfinite(header[0]):
            self.unreadable += 1
            what = ('an unreadable header' if header is None else
                    'header.stamp.nanosec >= 1e9 (ROS stamps hold nanosec below 1e9)')
            logger.warning(
                f"dropping an image on '{subscription.topic_name}' with {what} "
                f'({self.unreadable} so far)', throttle_duration_sec=5.0)
            return
        stamp, frame_id = header
        self._stream_rate.add(time.monotonic(), stamp)
        try:
            offer = window.offer(stamp, lambda: self._decode(raw, window), frame_id)
        # Anything raised here would stop the executor: a bad frame is dropped, never fatal.
        except Exception as error:  # noqa: BLE001
            logger.warning(
                f"dropping an image on '{subscription.topic_name}': {error} "
                f'({window.stats.invalid} dropped so far)', throttle_duration_sec=5.0)
            return
        if offer in (Offer.KEPT, Offer.REWOUND, Offer.RESIZED):
            stamp_filter.update(window.wanted_stamps())
            depth = self._depth
            if depth is not None:
                depth.colour_kept(stamp)
        if offer is Offer.REWOUND:
            logger.warning(
                f"stamps on '{subscription.topic_name}' jumped back to {stamp:.3f} s "
                '(bag loop or simulation reset): the frame window was cleared')
        elif offer is Offer.RESIZED:
            resize = window.last_resize
            logger.warning(
                f"the images on '{subscription.topic_name}' changed size from "
                f'{resize.previous[0]}x{resize.previous[1]} to {resize.size[0]}x{resize.size[1]}: '
                'the frame window starts anew (a goal sees frames of one size)',
                throttle_duration_sec=5.0)

    def _decode(self, raw: bytes, window: FrameWindow):
        # The declared size and shape are checked before decoding; a JPEG decodes reduced for
        # the window.
        return decode_image(read_image(raw, self._message_type),
                            max_source_pixels=self._max_source_pixels,
                            target_pixels=window.config.max_pixels, shape=self._image_shape())


_TYPE_NAMES = {Image: IMAGE_TYPE, CompressedImage: COMPRESSED_IMAGE_TYPE}


def read_image(raw: bytes, message_type: type) -> Any:
    """Deserialize a kept frame's CDR bytes into a message decode_image() takes.

    rosbags' reader (images.read_cdr_image: the pixels stay a view of `raw`); where it refuses
    bytes that rclpy reads, rclpy's reader decides, as before.

    Args:
        raw: the serialized sensor_msgs/Image or CompressedImage.
        message_type: Image or CompressedImage (rclpy's class, as subscribed).

    Returns:
        The message, with the fields of message_type.

    Raises:
        Exception: rclpy's error where neither reader can read the bytes.
    """
    message = read_cdr_image(raw, _TYPE_NAMES[message_type])
    return message if message is not None else deserialize_message(raw, message_type)


__all__ = ['ImageInput', 'read_image']
