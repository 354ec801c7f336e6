"""The cost of lifting one answer to 3D (target: under 2 ms), at 640x480 and 1280x720.

Times core.depth.geometry.lift_answer as the node calls it per answer: the CameraInfo scaled and
checked, the depth message viewed in place, a five-point trajectory and one box lifted through
plumb_bob undistortion. Run: python -m bench.lift_bench [--repeats N]
"""

import argparse
import statistics
import time

import numpy as np

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory
from cosmos_reason_ros.core.depth.geometry import CameraInfoData, DepthData, lift_answer

TARGET_MS = 2.0
SIZES = ((640, 480), (1280, 720))


def scene(width: int, height: int):
    """A 16UC1 depth image (a plane at 2 m, an object at 1.2 m, a hole) and its CameraInfo."""
    depth = np.full((height, width), 2000, np.uint16)
    depth[height // 3:height // 2, width // 2:width * 3 // 4] = 1200
    depth[:height // 10, :width // 10] = 0
    focal = 0.8 * width
    info = CameraInfoData(k=(focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0),
                          d=(-0.25, 0.07, 0.001, -0.001, 0.0), distortion_model='plumb_bob',
                          width=width, height=height)
    message = DepthData('16UC1', width, height, width * 2, depth.tobytes())
    trajectory = Trajectory('gripper trajectory', tuple(
        (width * f, height * g) for f, g in ((0.2, 0.6), (0.4, 0.5), (0.55, 0.4), (0.6, 0.4),
                                             (0.05, 0.05))))
    box = Box('basket', width * 0.45, height * 0.3, width * 0.8, height * 0.55)
    return info, message, trajectory, box


def measure(width: int, height: int, repeats: int):
    info, depth, trajectory, box = scene(width, height)
    timings = {}
    for name, trajectories, boxes in (('trajectory (5 points)', [trajectory], []),
                                      ('box', [], [box]),
                                      ('trajectory + box', [trajectory], [box])):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            lift_answer(trajectories, boxes, (width, height), camera_info=info, depth=depth)
            samples.append((time.perf_counter() - start) * 1e3)
        timings[name] = statistics.median(samples)
    return timings


def deserialize_ms(width: int, height: int, repeats: int) -> float:
    """The node's other per-answer cost: deserializing the matched depth message (rclpy)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    raw = serialize_message(Image(width=width, height=height, encoding='16UC1', step=width * 2,
                                  data=bytes(width * height * 2)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        deserialize_message(raw, Image)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=200)
    args = parser.parse_args()
    for width, height in SIZES:
        for name, milliseconds in measure(width, height, args.repeats).items():
            print(f'{width}x{height} {name}: {milliseconds:.3f} ms median per answer '
                  f'({milliseconds / TARGET_MS:.2f} of the {TARGET_MS:g} ms target)')
        try:
            milliseconds = deserialize_ms(width, height, args.repeats)
        except ImportError:
            print('rclpy not importable: depth deserialization not measured')
            continue
        print(f'{width}x{height} deserializing the matched depth message (node): '
              f'{milliseconds:.3f} ms median per answer')


if __name__ == '__main__':
    main()
