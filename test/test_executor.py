"""ReasonExecutor: every callback runs, each is handed to the thread pool once, coroutines finish.

rclpy's stock MultiThreadedExecutor hands a queued callback out again on every loop (ros2/rclpy
#1452); under a camera stream that spun at most of a core.
"""

import collections
import os
import random
import threading
import time

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import String

from cosmos_reason_ros.ros.executor import ReasonExecutor
from cosmos_reason_ros.ros.spinning import spinning

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def new_domain():
    # Like ros_graph: a random domain keeps concurrent test runs apart.
    return random.SystemRandom().randint(1, 101)


class _CountingExecutor(ReasonExecutor):
    """Keeps every callback task it hands out, to count how often each one was."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tasks = []

    def wait_for_ready_callbacks(self, *args, **kwargs):
        handler, entity, node = super().wait_for_ready_callbacks(*args, **kwargs)
        self.tasks.append(handler)
        return handler, entity, node

    def most_handed_out(self):
        return max(collections.Counter(map(id, self.tasks)).values())


def _counting(context, *nodes, threads=4):
    executor = _CountingExecutor(num_threads=threads, context=context)
    for node in nodes:
        executor.add_node(node)
    return executor


def test_each_message_is_handled_and_handed_out_once():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=new_domain())
    node = Node('subscriber', context=context)
    received = []
    done = threading.Event()

    def on_message(message):
        received.append(message.data)
        time.sleep(0.002)  # a callback that takes a while, like a kept frame
        if len(received) == 100:
            done.set()

    node.create_subscription(String, 'chatter', on_message, 200,
                             callback_group=MutuallyExclusiveCallbackGroup())
    publisher = node.create_publisher(String, 'chatter', 200)
    with spinning(_counting(context, node), destroy=(node.destroy_node,),
                  context=context) as executor:
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for index in range(100):
            publisher.publish(String(data=str(index)))
            time.sleep(0.001)
        assert done.wait(20.0), f'{len(received)} of 100 messages handled'
        assert received == [str(index) for index in range(100)]
        assert executor.most_handed_out() <= 2


def test_a_coroutine_awaiting_a_future_still_finishes():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=new_domain())
    node = Node('coroutines', context=context)
    future = Future()
    finished = threading.Event()

    async def waiter():
        if not finished.is_set():
            await future
            finished.set()

    waiting = node.create_timer(0.01, waiter)
    node.create_timer(0.2, lambda: future.done() or future.set_result(True),
                      callback_group=MutuallyExclusiveCallbackGroup())
    with spinning(_counting(context, node), destroy=(node.destroy_node,), context=context):
        try:
            assert finished.wait(10.0)
        finally:
            waiting.cancel()


def test_a_middleware_error_in_a_callback_does_not_stop_spinning():
    """Rclpy's action server publishes status arrays in its own callbacks; an RCLError there
    once ended spin() and with it the node.
    """
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=new_domain())
    node = Node('failing', context=context)
    ticks = []
    errors = []
    enough = threading.Event()

    def failing_tick():
        ticks.append(time.monotonic())
        if len(ticks) >= 5:
            enough.set()
        raise _rclpy.RCLError('cannot publish data')

    node.create_timer(0.01, failing_tick)
    executor = ReasonExecutor(num_threads=2, context=context, on_middleware_error=errors.append)
    executor.add_node(node)
    # Not spinning(): the test asserts that the spin thread itself is still alive.
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert enough.wait(10.0), 'spinning stopped at the first error'
        assert spinner.is_alive() and errors
        assert all('cannot publish data' in str(error) for error in errors)
    finally:
        executor.shutdown(timeout_sec=5.0)
        spinner.join(5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)
