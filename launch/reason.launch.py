"""Start the reasoning node: `ros2 launch cosmos_reason_ros reason.launch.py image_topic:=...`.

`managed:=true` starts it as a lifecycle node: with `autostart:=true` launch configures it and,
once the model is loaded, activates it (launch_ros lifecycle events); with `autostart:=false` a
lifecycle manager (nav2_lifecycle_manager, `ros2 lifecycle set`) drives it. What the arguments
mean and do lives in cosmos_reason_ros.ros.launch_arguments (tested there).

Several cameras: `camera_topics:="{head: /head/color/image_raw, wrist: /wrist/color/image_raw}"`
sets the `cameras` parameter to the names and remaps each camera's `N/image` (and `N/depth`,
`N/camera_info` when given as `{image: ..., depth: ..., camera_info: ...}`).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from cosmos_reason_ros.ros.launch_arguments import (
    ACTIVATE,
    ARGUMENTS,
    CONFIGURE,
    is_managed,
    launch_transitions,
    parameter_overrides,
    remappings,
)
from launch import LaunchDescription


def _reason_node(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = values['params_file'] or os.path.join(
        get_package_share_directory('cosmos_reason_ros'), 'config', 'desktop_gpu.yaml')
    options = dict(package='cosmos_reason_ros', executable='reason_node', name='cosmos_reason',
                   namespace=values['namespace'], output='screen', emulate_tty=True,
                   parameters=[params_file, parameter_overrides(values)],
                   remappings=remappings(values))
    if not is_managed(values):
        return [Node(**options)]
    node = LifecycleNode(**options)
    actions = [node]
    transitions = launch_transitions(values)
    if ACTIVATE in transitions:
        # Only after configure (not after a later deactivate, which also ends in inactive).
        actions.append(RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[_change_state(node, Transition.TRANSITION_ACTIVATE)])))
    if CONFIGURE in transitions:
        actions.append(_change_state(node, Transition.TRANSITION_CONFIGURE))
    return actions


def _change_state(node, transition_id: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_reason_node)])
