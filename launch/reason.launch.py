"""Start the reasoning node: `ros2 launch cosmos_reason_ros reason.launch.py image_topic:=...`.

What the arguments mean and do lives in cosmos_reason_ros.ros.launch_arguments (tested there).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from cosmos_reason_ros.ros.launch_arguments import ARGUMENTS, parameter_overrides, remappings


def _reason_node(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = values['params_file'] or os.path.join(
        get_package_share_directory('cosmos_reason_ros'), 'config', 'desktop_gpu.yaml')
    return [Node(package='cosmos_reason_ros', executable='reason_node', name='cosmos_reason',
                 namespace=values['namespace'], output='screen', emulate_tty=True,
                 parameters=[params_file, parameter_overrides(values)],
                 remappings=remappings(values))]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_reason_node)])
