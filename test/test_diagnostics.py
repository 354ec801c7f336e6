"""/diagnostics from the node: it flows with use_sim_time and no /clock, and it warns when far
fewer camera frames arrive than their stamps say were sent.
"""

import threading
import time

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from ros_graph import Graph
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_reason_ros.ros.conversions import to_time

PERIOD = 1.0 / 30.0


def test_diagnostics_flow_with_sim_time_and_no_clock_and_say_so(tiny_qwen3_checkpoint):
    graph = Graph(tiny_qwen3_checkpoint, camera=False, use_sim_time=True)
    try:
        values = graph.diagnostics_where(lambda values: 'sim_time' in values)
        assert values['sim_time'] == 'waiting for /clock'
        assert '/clock' in values['message'] and values['level'] != '0'
    finally:
        graph.close()


def test_a_stream_losing_most_frames_in_transport_is_reported(tiny_qwen3_checkpoint):
    # The node's own filter sees every frame that arrives (the DDS filter would hide the loss).
    graph = Graph(tiny_qwen3_checkpoint, camera=False, **{'window.dds_filter': False})
    publisher = graph.peer.create_publisher(Image, '/image', qos_profile_sensor_data)
    stop = threading.Event()

    def camera_losing_nine_in_ten():
        # 30 fps stamps in real time; only frames 0 and 1 of every ten are sent.
        pixels = np.full((120, 160, 3), 90, np.uint8).tobytes()
        start, index = time.time(), 0
        while not stop.is_set():
            if index % 10 in (0, 1):
                publisher.publish(Image(header=Header(stamp=to_time(start + index * PERIOD)),
                                        height=120, width=160, encoding='rgb8', step=480,
                                        data=pixels))
            index += 1
            stop.wait(max(0.0, start + index * PERIOD - time.time()))

    thread = threading.Thread(target=camera_losing_nine_in_ten, daemon=True)
    thread.start()
    try:
        values = graph.diagnostics_where(lambda values: 'lost in transport' in values['message'])
        assert values['level'] == '1'
        assert float(values['stamps_rate_hz']) > 20.0 and float(values['input_rate_hz']) < 10.0
    finally:
        stop.set()
        thread.join(5.0)
        graph.close()
