"""Recordings written for the evaluation tests: rosbag2 bags of the sample scene with any log
times, header stamps, storage and encoding, and a steady camera's timeline.
"""

from collections.abc import Iterable, Sequence
import pathlib

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

from cosmos_reason_ros.demo.sample_data import START
from cosmos_reason_ros.demo.sample_scene import render_scene

STORE = get_typestore(Stores.ROS2_KILTED)
W, H = 160, 120


def write_bag(path: pathlib.Path, frames: Iterable[tuple[float, float]], *,
              storage: str = 'mcap', encoding: str = 'rgb8', topic: str = '/camera/image',
              extra: Sequence[str] = ('/status',), corrupt: Sequence[int] = ()) -> pathlib.Path:
    """A bag of the sample scene: one frame per (log time, header stamp), both in seconds
    after START; std_msgs/String topics in `extra` get one message at time 0; the frames
    numbered in `corrupt` lose half their pixel data.
    """
    image_type = STORE.types['sensor_msgs/msg/Image']
    compressed_type = STORE.types['sensor_msgs/msg/CompressedImage']
    header_type = STORE.types['std_msgs/msg/Header']
    time_type = STORE.types['builtin_interfaces/msg/Time']
    string_type = STORE.types['std_msgs/msg/String']
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    kind = compressed_type if encoding == 'jpeg' else image_type
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        for name in extra:
            connection = writer.add_connection(name, string_type.__msgtype__, typestore=STORE)
            writer.write(connection, int(START * 1e9),
                         STORE.serialize_cdr(string_type(data='hello'), string_type.__msgtype__))
        camera = (writer.add_connection(topic, kind.__msgtype__, typestore=STORE)
                  if topic else None)
        for number, (log_time, stamp) in enumerate(frames if camera else ()):
            stamp_ns = int(START * 1e9) + round(stamp * 1e9)
            header = header_type(stamp=time_type(sec=stamp_ns // 10**9,
                                                 nanosec=stamp_ns % 10**9), frame_id='cam')
            message = _message(render_scene(stamp, W, H), header, encoding)
            if number in corrupt:
                message.data = message.data[:len(message.data) // 2]
            writer.write(camera, int(START * 1e9) + round(log_time * 1e9),
                         STORE.serialize_cdr(message, kind.__msgtype__))
    return path


def _message(rgb: np.ndarray, header, encoding: str):
    if encoding == 'jpeg':
        ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return STORE.types['sensor_msgs/msg/CompressedImage'](
            header=header, format='jpeg', data=np.frombuffer(data.tobytes(), np.uint8))
    pixels = {'rgb8': rgb, 'bgr8': cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
              'mono8': cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)}[encoding]
    channels = 1 if pixels.ndim == 2 else 3
    return STORE.types['sensor_msgs/msg/Image'](
        header=header, height=H, width=W, encoding=encoding, is_bigendian=0,
        step=W * channels, data=np.ascontiguousarray(pixels).reshape(-1))


def steady(seconds: float, fps: float = 30.0, latency: float = 0.004):
    """(log time, stamp) of a camera running for `seconds` at `fps`."""
    return [(i / fps + latency, i / fps) for i in range(int(round(seconds * fps)))]
