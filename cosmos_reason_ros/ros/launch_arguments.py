"""The launch file's arguments and the node options they turn into (testable without launch)."""


# name -> (default, description); launch/reason.launch.py declares exactly these.
ARGUMENTS: dict[str, tuple[str, str]] = {
    'params_file': ('', 'YAML parameter file; empty: config/desktop_gpu.yaml of this package'),
    'model': ('', 'Hub id or local checkpoint; empty: the params file decides'),
    'image_topic': ('image', 'Camera topic to reason about (raw sensor_msgs/Image)'),
    'compressed': ('false', 'Subscribe to <image_topic>/compressed (CompressedImage) instead'),
    'namespace': ('', 'Namespace of the node (and of its ~/reason action)'),
    'use_sim_time': ('false', 'Use /clock (rosbag replay, simulation) for staleness checks'),
    'managed': ('false', 'Start it as a managed node whose transitions launch (with autostart) '
                         'or a lifecycle manager (nav2_lifecycle_manager, ros2 lifecycle) drive'),
    'autostart': ('true', 'Bring the node to active at start (configure: load the model, then '
                          'activate); false: it waits, unconfigured, for a lifecycle manager'),
    'depth_topic': ('', 'Depth image aligned to the colour camera (16UC1 mm or 32FC1 m); set: '
                        'answers are lifted to 3D (depth.enabled)'),
    'camera_info_topic': ('', "The colour camera's CameraInfo; empty: camera_info beside "
                              'image_topic'),
}

CONFIGURE = 'configure'
ACTIVATE = 'activate'


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """Parameters the launch arguments set on top of the params file."""
    overrides: dict[str, object] = {
        'use_sim_time': _is_true(values['use_sim_time']),
        'compressed_input': _is_true(values['compressed']),
        # A managed node is walked by launch (or a manager), never by itself.
        'autostart': _is_true(values['autostart']) and not is_managed(values),
    }
    if values['model'].strip():
        overrides['model'] = values['model'].strip()
    if values['depth_topic'].strip():
        overrides['depth.enabled'] = True
    return overrides


def is_managed(values: dict[str, str]) -> bool:
    """Whether launch starts the node as a lifecycle node whose transitions it drives."""
    return _is_true(values['managed'])


def launch_transitions(values: dict[str, str]) -> list[str]:
    """The transitions launch requests itself, in order: configure at start, activate once
    configure succeeded (launch_ros lifecycle events); none for a plain node or when a
    lifecycle manager drives it.
    """
    if is_managed(values) and _is_true(values['autostart']):
        return [CONFIGURE, ACTIVATE]
    return []


def remappings(values: dict[str, str]) -> list[tuple[str, str]]:
    """Topic remappings: the node's relative `image` (and `image/compressed`) to the camera;
    with a depth topic, `depth` to it and `camera_info` to the colour camera's (by default the
    camera_info beside the image topic, as image_transport publishes it).
    """
    topic = values['image_topic'].rstrip('/')
    pairs = [('image', topic), ('image/compressed', topic + '/compressed')]
    depth = values['depth_topic'].strip().rstrip('/')
    if depth:
        info = values['camera_info_topic'].strip().rstrip('/')
        if not info:
            parent = topic.rsplit('/', 1)[0] if '/' in topic else ''
            info = f'{parent}/camera_info' if parent else 'camera_info'
        pairs += [('depth', depth), ('camera_info', info)]
    return pairs
