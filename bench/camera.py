"""A 1080p camera for the benchmarks: pre-rendered frames published at a fixed rate.

Frames are rendered and serialized once; each publish only writes the header stamp into the
serialized bytes, so this process costs little and the node's CPU is what the benchmark sees.
"""

import argparse
from collections.abc import Sequence
import json
import signal
import struct
import sys
import time

import cv2
import numpy as np

from cosmos_reason_ros.demo.sample_scene import render_scene

DISTINCT_FRAMES = 8
"""Frames rendered up front and published in turn (the marker moves between them)."""


def render_frames(width: int, height: int, count: int = DISTINCT_FRAMES,
                  noise: float = 6.0) -> list[np.ndarray]:
    """BGR frames of the sample scene with sensor-like noise, so JPEG sizes look like a camera's.

    Args:
        width: Frame width in pixels.
        height: Frame height in pixels.
        count: How many distinct frames.
        noise: Standard deviation of the Gaussian noise added to each pixel (0-255 scale).
    """
    rng = np.random.default_rng(0)
    frames = []
    for index in range(count):
        rgb = render_scene(index / 30.0, width, height).astype(np.int16)
        rgb += rng.normal(0.0, noise, rgb.shape).astype(np.int16)
        bgr = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        frames.append(bgr)
    return frames


def serialized_frames(encoding: str, width: int, height: int,
                      jpeg_quality: int = 90) -> list[bytearray]:
    """CDR-serialized Image (bgr8) or CompressedImage (JPEG) messages, stamp left at zero."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    messages = []
    for bgr in render_frames(width, height):
        header = Header(frame_id='camera')
        if encoding == 'jpeg':
            ok, jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            assert ok
            msg = CompressedImage(header=header, format='jpeg', data=jpeg.tobytes())
        else:
            msg = Image(header=header, height=height, width=width, encoding='bgr8',
                        step=width * 3, data=bgr.tobytes())
        messages.append(bytearray(serialize_message(msg)))
    return messages


def serialized_depth(width: int, height: int) -> list[bytearray]:
    """A CDR-serialized aligned depth Image (16UC1, millimetres) and the colour CameraInfo."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    depth = np.full((height, width), 2000, np.uint16)
    depth[height // 3:height // 2, width // 2:width * 3 // 4] = 1200
    header = Header(frame_id='camera')
    focal = 0.8 * width
    info = CameraInfo(header=header, width=width, height=height, distortion_model='plumb_bob',
                      d=[-0.25, 0.07, 0.001, -0.001, 0.0],
                      k=[focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0])
    return [bytearray(serialize_message(Image(header=header, height=height, width=width,
                                              encoding='16UC1', step=width * 2,
                                              data=depth.tobytes()))),
            bytearray(serialize_message(info))]


def stamp_into(serialized: bytearray, stamp: float) -> bytes:
    """The message with header.stamp set (it sits right after the 4-byte CDR header)."""
    sec = int(stamp)
    layout = '<iI' if serialized[1] == 1 else '>iI'
    struct.pack_into(layout, serialized, 4, sec, int((stamp - sec) * 1e9))
    return bytes(serialized)


def publish(encoding: str, width: int, height: int, rate: float, duration: float,
            depth: bool = False, report=None, cameras: Sequence[str] = ()) -> dict:
    """Publish for `duration` seconds at `rate` Hz; returns counts and the payload size.

    With `depth`, each frame is followed by an aligned 16UC1 depth image on `depth` and a
    CameraInfo on `camera_info` with the same stamp (an RGB-D camera). `report` gets the
    summary before the teardown, which can abort the process (Fast DDS, large messages).
    With `cameras`, every frame goes out on each camera N's `N/image` (`N/image/compressed`)
    with the same stamp (`published` counts frames per camera); not with depth.
    """
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    frames = serialized_frames(encoding, width, height)
    rclpy.init()
    # SIGTERM (a bench that runs the camera for as long as it needs) ends the loop below, so
    # that the node and the DDS participant are destroyed: killed, they would leave their
    # segments in /dev/shm.
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
    node = rclpy.create_node('bench_camera')
    topic, message_type = (('image/compressed', CompressedImage) if encoding == 'jpeg'
                           else ('image', Image))
    publishers = [node.create_publisher(message_type, f'{name}/{topic}' if name else topic,
                                        qos_profile_sensor_data) for name in cameras or ['']]
    if depth:
        depth_message, info_message = serialized_depth(width, height)
        depth_publisher = node.create_publisher(Image, 'depth', qos_profile_sensor_data)
        info_publisher = node.create_publisher(CameraInfo, 'camera_info',
                                               qos_profile_sensor_data)
    deadline = time.monotonic() + 10.0
    while any(each.get_subscription_count() == 0 for each in publishers) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    published = 0
    started = time.monotonic()
    while True:
        due = started + published / rate
        now = time.monotonic()
        if due - started >= duration or stopping:
            break
        if due > now:
            time.sleep(due - now)
        stamp = time.time()
        message = stamp_into(frames[published % len(frames)], stamp)
        for each in publishers:
            each.publish(message)
        if depth:
            depth_publisher.publish(stamp_into(depth_message, stamp))
            info_publisher.publish(stamp_into(info_message, stamp))
        published += 1
    elapsed = time.monotonic() - started
    result = {'published': published, 'seconds': elapsed,
              'bytes_per_frame': sum(map(len, frames)) // len(frames)}
    if depth:
        result['depth_bytes_per_frame'] = len(depth_message)
    if report is not None:
        report(result)
    node.destroy_node()
    rclpy.shutdown()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (python -m bench.camera); prints a JSON summary when done."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--encoding', choices=('raw', 'jpeg'), default='raw',
                        help='raw: sensor_msgs/Image bgr8 on image; jpeg: CompressedImage on '
                             'image/compressed')
    parser.add_argument('--width', type=int, default=1920)
    parser.add_argument('--height', type=int, default=1080)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--duration', type=float, default=20.0)
    parser.add_argument('--depth', action='store_true',
                        help='also publish aligned 16UC1 depth and CameraInfo (an RGB-D camera)')
    parser.add_argument('--cameras', nargs='+', default=[], metavar='NAME',
                        help="publish each frame on every camera N's N/image (several cameras)")
    args = parser.parse_args(argv)
    if args.depth and args.cameras:
        parser.error('--depth publishes one RGB-D camera: leave out --cameras')
    publish(args.encoding, args.width, args.height, args.rate, args.duration, args.depth,
            report=lambda result: print(json.dumps(result), flush=True), cameras=args.cameras)
    return 0


if __name__ == '__main__':
    sys.exit(main())
