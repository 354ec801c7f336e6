"""A small `ros2 bag play --clock` for tests: a bag read with rosbags, replayed on a real graph.

Each message goes out as its recorded CDR bytes at its log time, and /clock carries the bag time,
so a node with use_sim_time sees what it would see from rosbag2's player.
"""

import importlib
import pathlib
import threading
import time

from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock


def message_class(msgtype: str) -> type:
    """The rclpy class of a ROS 2 type name such as 'sensor_msgs/msg/Image'."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


class BagPlayer:
    """Plays the topics named in `remap` (bag topic -> published topic) and /clock."""

    def __init__(self, context: Context, bag: pathlib.Path, remap: dict[str, str], *,
                 rate: float = 1.0, clock_period: float = 0.02):
        self.node = Node('bag_player', context=context)
        self._bag = pathlib.Path(bag)
        self._rate = rate
        self._clock_period = clock_period
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.published = 0
        self.error: BaseException | None = None
        with AnyReader([self._bag]) as reader:
            types = {topic: info.msgtype for topic, info in reader.topics.items()}
        self._publishers = {
            topic: self.node.create_publisher(message_class(types[topic]), target,
                                              qos_profile_sensor_data)
            for topic, target in remap.items()}
        self._clock = self.node.create_publisher(
            Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._thread = threading.Thread(target=self._play, name='bag-player', daemon=True)

    def wait_for_subscribers(self, counts: dict[str, int], timeout: float) -> bool:
        """Wait until each topic has at least the given number of matched subscriptions.

        Args:
            counts: published topic name ('/clock' included) -> subscriptions needed.
            timeout: seconds.
        """
        publishers = {pub.topic_name: pub for pub in [*self._publishers.values(), self._clock]}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(publishers[topic].get_subscription_count() >= count
                   for topic, count in counts.items()):
                return True
            self._stop.wait(0.05)  # discovery has no event to wait on; poll it
        return False

    def start(self) -> None:
        """Start playing in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop playing and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self.node.destroy_node()

    def _play(self) -> None:
        try:
            with AnyReader([self._bag]) as reader:
                connections = [c for c in reader.connections if c.topic in self._publishers]
                bag_start = reader.start_time
                wall_start = time.monotonic()
                self._publish_clock(bag_start)
                for connection, timestamp, raw in reader.messages(connections=connections):
                    due = wall_start + (timestamp - bag_start) * 1e-9 / self._rate
                    while not self._stop.is_set():
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        self._stop.wait(min(left, self._clock_period))
                        elapsed = min(time.monotonic(), due) - wall_start
                        self._publish_clock(bag_start + int(elapsed * self._rate * 1e9))
                    if self._stop.is_set():
                        return
                    self._publish_clock(timestamp)
                    self._publishers[connection.topic].publish(bytes(raw))
                    self.published += 1
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.error = error
        finally:
            self.finished.set()

    def _publish_clock(self, nanoseconds: int) -> None:
        self._clock.publish(Clock(clock=Time(sec=nanoseconds // 10**9,
                                             nanosec=nanoseconds % 10**9)))
