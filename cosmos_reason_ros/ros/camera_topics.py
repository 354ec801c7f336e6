"""The topics of a camera: today's `image`, `depth`, `camera_info` for the one unnamed camera,
and the same below the camera's name (`wrist/image`) for each camera named in `cameras`.
"""


def camera_topic(camera: str, topic: str) -> str:
    """The relative topic of one camera: `topic` itself for the unnamed camera ('image',
    'depth', 'camera_info'), `camera/topic` for a named one ('wrist/image'). Relative, so that
    namespaces and remappings apply.
    """
    return f'{camera}/{topic}' if camera else topic


__all__ = ['camera_topic']
