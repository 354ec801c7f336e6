"""A camera stand-in: publishes the synthetic sample scene at a fixed rate.

`ros2 run cosmos_reason_ros sample_stream` feeds the demo; parameters choose size, rate,
whether frames go out raw (bgr8 on `image`) or as JPEG (on `image/compressed`), and whether an
aligned depth image (16UC1 on `depth`) and the camera's calibration (`camera_info`) go with them.
With `cameras` (e.g. [head, side]) it is the sample's named cameras instead: camera N publishes
the same topics under `N/` (`head/image`, `side/depth`, ...), all stamped alike, as
`reason_node` with the same `cameras` subscribes them.
"""

import cv2
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from cosmos_reason_ros.demo.sample_scene import (
    camera_info,
    CAMERAS,
    render_depth,
    render_scene,
    render_side_depth,
    render_side_scene,
    side_camera_info,
)

_RENDERERS = {'head': (render_scene, render_depth, camera_info),
              'side': (render_side_scene, render_side_depth, side_camera_info)}


class SampleStream(Node):
    """Publishes render_scene(t) with t taken from the node's clock."""

    def __init__(self, **kwargs):
        super().__init__('sample_stream', **kwargs)
        self._rate = self.declare_parameter('rate', 30.0).value
        self._width = self.declare_parameter('width', 640).value
        self._height = self.declare_parameter('height', 480).value
        self._compressed = self.declare_parameter('compressed', False).value
        self._frame_id = self.declare_parameter('frame_id', 'camera').value
        side_size = (self.declare_parameter('side_width', 480).value,
                     self.declare_parameter('side_height', 360).value)
        names = list(self.declare_parameter('cameras', ['']).value or [''])
        unknown = [name for name in names if name and name not in _RENDERERS]
        if unknown or (len(names) > 1 and '' in names):
            raise ValueError(f"cameras {names}: the sample has the cameras "
                             f"{', '.join(CAMERAS)} (or leave cameras empty for one unnamed "
                             'camera on image, depth, camera_info)')
        depth = self.declare_parameter('depth', False).value
        self._cameras = [
            _Camera(self, name, (self._width, self._height) if name != 'side' else side_size,
                    self._frame_id if not name else f'{name}_optical_frame',
                    self._compressed, depth) for name in names]
        self._start = self.get_clock().now()
        self.published = 0
        self.create_timer(1.0 / self._rate, self._publish)

    def _publish(self) -> None:
        if not self.context.ok():  # SIGTERM shut the context down; the timer may still fire
            return
        now = self.get_clock().now()
        t = (now - self._start).nanoseconds * 1e-9
        for camera in self._cameras:
            camera.publish(t, now.to_msg())
        self.published += 1


class _Camera:
    """One camera's publishers and renderer: the head's ('' or 'head') or the side's."""

    def __init__(self, node: Node, name: str, size: tuple[int, int], frame_id: str,
                 compressed: bool, depth: bool):
        prefix = f'{name}/' if name else ''
        self._render, self._render_depth, self._info_fields = _RENDERERS[name or 'head']
        self._width, self._height = size
        self._frame_id = frame_id
        self._compressed = compressed
        self._depth = self._info = None
        if depth:
            self._depth = node.create_publisher(Image, prefix + 'depth', qos_profile_sensor_data)
            self._info = node.create_publisher(CameraInfo, prefix + 'camera_info',
                                               qos_profile_sensor_data)
        if compressed:
            self._pub = node.create_publisher(CompressedImage, prefix + 'image/compressed',
                                              qos_profile_sensor_data)
        else:
            self._pub = node.create_publisher(Image, prefix + 'image', qos_profile_sensor_data)

    def publish(self, t: float, stamp) -> None:
        """Render the scene at t from this camera and publish it stamped `stamp`."""
        rgb = self._render(t, self._width, self._height)
        header = Header(stamp=stamp, frame_id=self._frame_id)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._compressed:
            ok, jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            self._pub.publish(CompressedImage(header=header, format='jpeg',
                                              data=jpeg.tobytes()))
        else:
            self._pub.publish(Image(header=header, height=self._height, width=self._width,
                                    encoding='bgr8', step=self._width * 3, data=bgr.tobytes()))
        if self._depth is not None and self._info is not None:
            depth = self._render_depth(t, self._width, self._height)
            self._depth.publish(Image(header=header, height=self._height, width=self._width,
                                      encoding='16UC1', step=self._width * 2,
                                      data=depth.tobytes()))
            self._info.publish(CameraInfo(header=header,
                                          **self._info_fields(self._width, self._height)))


def main(args=None) -> None:
    """Publish until shutdown."""
    rclpy.init(args=args)
    node = SampleStream()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: BLE001 - a publish that raced the shutdown is not an error
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
