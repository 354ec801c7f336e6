"""The launch file's arguments and the node options they turn into (testable without launch).

Several cameras: `camera_topics` holds a YAML mapping of camera name to its image topic, or to a
mapping of its `image`, `depth` and `camera_info` topics, e.g.
`camera_topics:="{head: /head/color/image_raw, wrist: /wrist/color/image_raw}"`. Its names, in
order, become the `cameras` parameter, and each camera's relative topics `N/image`
(`N/image/compressed`), `N/depth` and `N/camera_info` are remapped to the topics given.
"""

from collections.abc import Mapping

import yaml

from cosmos_reason_ros.core.camera.views import check_camera_names

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
    'camera_topics': ('', 'Several cameras: a YAML mapping of camera name to its image topic '
                          '(or to {image: ..., depth: ..., camera_info: ...}), e.g. "{head: '
                          '/head/color/image_raw, wrist: /wrist/color/image_raw}"; sets the '
                          'cameras parameter to its names, in order. Empty: one unnamed camera '
                          '(image_topic)'),
}

CAMERA_TOPICS = ('image', 'depth', 'camera_info')
"""What a camera of camera_topics may name: its relative topics N/image, N/depth, N/camera_info."""


class LaunchArgumentError(ValueError):
    """A launch argument that cannot be used; the message says what to change."""

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
    cameras = camera_topics(values)
    if cameras:
        overrides['cameras'] = list(cameras)
    if values['depth_topic'].strip() or any('depth' in topics for topics in cameras.values()):
        overrides['depth.enabled'] = True
    return overrides


def camera_topics(values: dict[str, str]) -> dict[str, dict[str, str]]:
    """The `camera_topics` argument read: camera name -> {'image': ..., 'depth': ...,
    'camera_info': ...} (only the topics given), in the argument's order; empty for one
    unnamed camera.

    Raises:
        LaunchArgumentError: not YAML, not a mapping, a bad camera name, a camera without an
            image topic, an unknown topic kind, or image_topic/depth_topic/camera_info_topic set
            beside it (they are the unnamed camera's).
    """
    text = values.get('camera_topics', '').strip()
    if not text:
        return {}
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LaunchArgumentError(f'camera_topics is not YAML: {error}') from None
    example = 'e.g. camera_topics:="{head: /head/image_raw, wrist: /wrist/image_raw}"'
    if not isinstance(document, Mapping) or not document:
        raise LaunchArgumentError(
            f'camera_topics must map camera names to image topics, got {text!r}: {example}')
    try:
        check_camera_names([str(name) for name in document])
    except ValueError as error:
        raise LaunchArgumentError(f'camera_topics: {error}') from None
    unnamed = [name for name in ('depth_topic', 'camera_info_topic')
               if values.get(name, '').strip()]
    if values.get('image_topic', 'image').strip() != ARGUMENTS['image_topic'][0]:
        unnamed.insert(0, 'image_topic')
    if unnamed:
        raise LaunchArgumentError(
            f"{', '.join(unnamed)} set beside camera_topics: those are the one unnamed camera's; "
            'give each named camera its topics in camera_topics ({image: ..., depth: ..., '
            'camera_info: ...})')
    cameras: dict[str, dict[str, str]] = {}
    for name, topics in document.items():
        if isinstance(topics, str):
            topics = {'image': topics}
        if not isinstance(topics, Mapping):
            raise LaunchArgumentError(
                f'camera_topics: camera {name!r} needs its image topic, or a mapping of '
                f"{', '.join(CAMERA_TOPICS)} topics; got {topics!r}")
        unknown = sorted(set(map(str, topics)) - set(CAMERA_TOPICS))
        if unknown:
            raise LaunchArgumentError(
                f'camera_topics: camera {name!r} names {unknown[0]!r}; a camera has the topics '
                f"{', '.join(CAMERA_TOPICS)}")
        given = {kind: str(topic).strip().rstrip('/') for kind, topic in topics.items()
                 if topic is not None and str(topic).strip()}
        if 'image' not in given:
            raise LaunchArgumentError(f'camera_topics: camera {name!r} needs an image topic')
        cameras[str(name)] = given
    return cameras


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
    camera_info beside the image topic, as image_transport publishes it). With camera_topics,
    the same for each named camera N under `N/`.

    Raises:
        LaunchArgumentError: camera_topics cannot be used (see camera_topics()).
    """
    cameras = camera_topics(values)
    if not cameras:
        return _camera_remappings('', values['image_topic'], values['depth_topic'],
                                  values['camera_info_topic'])
    return [pair for name, topics in cameras.items()
            for pair in _camera_remappings(f'{name}/', topics['image'], topics.get('depth', ''),
                                           topics.get('camera_info', ''))]


def _camera_remappings(prefix: str, image: str, depth: str,
                       info: str) -> list[tuple[str, str]]:
    topic = image.rstrip('/')
    pairs = [(f'{prefix}image', topic), (f'{prefix}image/compressed', topic + '/compressed')]
    depth = depth.strip().rstrip('/')
    if depth:
        info = info.strip().rstrip('/')
        if not info:
            parent = topic.rsplit('/', 1)[0] if '/' in topic else ''
            info = f'{parent}/camera_info' if parent else 'camera_info'
        pairs += [(f'{prefix}depth', depth), (f'{prefix}camera_info', info)]
    return pairs
