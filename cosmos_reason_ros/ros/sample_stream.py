"""A camera stand-in: publishes the synthetic sample scene at a fixed rate.

`ros2 run cosmos_reason_ros sample_stream` feeds the demo; parameters choose size, rate,
whether frames go out raw (bgr8 on `image`) or as JPEG (on `image/compressed`), and whether an
aligned depth image (16UC1 on `depth`) and the camera's calibration (`camera_info`) go with them.
"""

import cv2
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from cosmos_reason_ros.demo.sample_scene import camera_info, render_depth, render_scene


class SampleStream(Node):
    """Publishes render_scene(t) with t taken from the node's clock."""

    def __init__(self, **kwargs):
        super().__init__('sample_stream', **kwargs)
        self._rate = self.declare_parameter('rate', 30.0).value
        self._width = self.declare_parameter('width', 640).value
        self._height = self.declare_parameter('height', 480).value
        self._compressed = self.declare_parameter('compressed', False).value
        self._frame_id = self.declare_parameter('frame_id', 'camera').value
        self._depth = None
        if self.declare_parameter('depth', False).value:
            self._depth = self.create_publisher(Image, 'depth', qos_profile_sensor_data)
            self._info = self.create_publisher(CameraInfo, 'camera_info',
                                               qos_profile_sensor_data)
        if self._compressed:
            self._pub = self.create_publisher(CompressedImage, 'image/compressed',
                                              qos_profile_sensor_data)
        else:
            self._pub = self.create_publisher(Image, 'image', qos_profile_sensor_data)
        self._start = self.get_clock().now()
        self.published = 0
        self.create_timer(1.0 / self._rate, self._publish)

    def _publish(self) -> None:
        if not self.context.ok():  # SIGTERM shut the context down; the timer may still fire
            return
        now = self.get_clock().now()
        t = (now - self._start).nanoseconds * 1e-9
        rgb = render_scene(t, self._width, self._height)
        header = Header(stamp=now.to_msg(), frame_id=self._frame_id)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._compressed:
            ok, jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            self._pub.publish(CompressedImage(header=header, format='jpeg',
                                              data=jpeg.tobytes()))
        else:
            self._pub.publish(Image(header=header, height=self._height, width=self._width,
                                    encoding='bgr8', step=self._width * 3, data=bgr.tobytes()))
        if self._depth is not None:
            depth = render_depth(t, self._width, self._height)
            self._depth.publish(Image(header=header, height=self._height, width=self._width,
                                      encoding='16UC1', step=self._width * 2,
                                      data=depth.tobytes()))
            self._info.publish(CameraInfo(header=header,
                                          **camera_info(self._width, self._height)))
        self.published += 1


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
