"""The ROS-free core: frames, prompts, parsing, backends and evaluation.

Nothing under this package imports rclpy; the ROS layer (cosmos_reason_ros.ros) imports it.
"""
