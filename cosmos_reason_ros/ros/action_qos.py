"""QoS of the Reason action's services, shared by the node and its clients.

rclpy's default service QoS keeps 10 requests: a burst of goals (one planner retrying, or
several planners at once) loses the rest without any answer. Both sides keep SERVICE_DEPTH.
"""


from rclpy.qos import qos_profile_services_default, QoSProfile

SERVICE_DEPTH = 256
"""Goal, cancel and result requests kept per side before the oldest would be dropped."""


def action_service_qos() -> dict[str, QoSProfile]:
    """The goal, result and cancel service profiles, as keyword arguments of rclpy's
    ActionServer and ActionClient.
    """
    profile = QoSProfile(depth=SERVICE_DEPTH,
                         history=qos_profile_services_default.history,
                         reliability=qos_profile_services_default.reliability,
                         durability=qos_profile_services_default.durability)
    return {'goal_service_qos_profile': profile, 'result_service_qos_profile': profile,
            'cancel_service_qos_profile': profile}


__all__ = ['SERVICE_DEPTH', 'action_service_qos']
