"""The demo camera on a real rclpy graph: one unnamed camera as before, or the sample's named
cameras (head, side) under their namespaces, as reason_node with `cameras` subscribes them.
"""

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from cosmos_reason_ros.demo.sample_scene import render_side_depth, side_camera_info
from cosmos_reason_ros.ros.sample_stream import SampleStream

TIMEOUT = 30.0


def receive(overrides, topics):
    """The first message on each (topic, type) from a SampleStream with these parameters."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    stream = SampleStream(context=context, parameter_overrides=overrides)
    listener = rclpy.create_node('listener', context=context)
    got = {}
    try:
        for topic, kind in topics:
            listener.create_subscription(kind, topic, lambda msg, t=topic: got.setdefault(t, msg),
                                         qos_profile_sensor_data)
        executor.add_node(stream)
        executor.add_node(listener)
        deadline = time.monotonic() + TIMEOUT
        while len(got) < len(topics) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        return got
    finally:
        executor.shutdown()
        stream.destroy_node()
        listener.destroy_node()
        rclpy.shutdown(context=context)


def test_two_named_cameras_publish_under_their_namespaces_stamped_alike():
    got = receive([Parameter('cameras', value=['head', 'side']), Parameter('depth', value=True),
                   Parameter('width', value=160), Parameter('height', value=120),
                   Parameter('side_width', value=120), Parameter('side_height', value=90),
                   Parameter('rate', value=5.0)],
                  [('head/image', Image), ('side/image', Image), ('side/depth', Image),
                   ('side/camera_info', CameraInfo), ('head/camera_info', CameraInfo)])
    assert len(got) == 5, f'received only {sorted(got)}'
    head, side = got['head/image'], got['side/image']
    assert (head.width, head.height) == (160, 120) and (side.width, side.height) == (120, 90)
    assert side.header.frame_id == 'side_optical_frame'
    assert list(got['side/camera_info'].k) == side_camera_info(120, 90)['k']
    assert got['head/camera_info'].width == 160
    depth = got['side/depth']
    stamp = depth.header.stamp
    assert (stamp.sec, stamp.nanosec) == (got['side/camera_info'].header.stamp.sec,
                                          got['side/camera_info'].header.stamp.nanosec)
    image = np.frombuffer(bytes(depth.data), np.uint16).reshape(90, 120)
    # The floor and the basket do not move: the published depth is the side view's, away from
    # the marker.
    truth = render_side_depth(0.0, 120, 90)
    assert np.mean(image == truth) > 0.95


def test_the_default_is_one_unnamed_camera_on_image():
    got = receive([Parameter('width', value=160), Parameter('height', value=120)],
                  [('image', Image)])
    assert (got['image'].width, got['image'].height) == (160, 120)
    assert got['image'].header.frame_id == 'camera'


def test_an_unknown_camera_is_refused_naming_the_samples_cameras():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ValueError, match='the sample has the cameras head, side'):
            SampleStream(context=context,
                         parameter_overrides=[Parameter('cameras', value=['head', 'wrist'])])
    finally:
        rclpy.shutdown(context=context)
