"""A sample bag of the synthetic scene and a question set whose answers follow from its geometry.

    python -m cosmos_reason_ros.demo.sample_data OUT_DIR
writes OUT_DIR/sample_bag (MCAP, 30 fps colour, aligned depth and CameraInfo) and
OUT_DIR/questions.yaml (the example question set, with expected answers in pixels and metres).
"""

import argparse
from collections.abc import Sequence
import pathlib
import sys
from typing import Any

import cv2
import numpy as np

from cosmos_reason_ros.core.depth.compressed import encode_compressed_depth
from cosmos_reason_ros.demo.sample_scene import (
    basket_box,
    camera_info,
    CAMERAS,
    cube_box_side,
    marker_centre,
    marker_position,
    marker_radius,
    project_to_side,
    render_depth,
    render_scene,
    render_side_depth,
    render_side_scene,
    scene_point,
    side_camera_info,
    side_scene_point,
)

WIDTH, HEIGHT = 320, 240
FPS = 30.0
SECONDS = 4.0
START = 1_700_000_000.0
"""Header stamp of the first frame (seconds since the epoch)."""
LATENCY = 0.004
"""Log time minus header stamp: a recorder receives a frame a few milliseconds after it was
taken, so bag time and header stamps differ, as on a robot."""
RAW_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
STATUS_TOPIC = '/robot/status'
DEPTH_TOPIC = '/camera/aligned_depth_to_color/image_raw'
COMPRESSED_DEPTH_TOPIC = DEPTH_TOPIC + '/compressedDepth'
CAMERA_INFO_TOPIC = '/camera/camera_info'
DEPTH_DELAY = 0.003
"""Depth header stamp minus colour header stamp: an RGB-D camera exposes its two sensors a few
milliseconds apart, so depth is matched to colour by nearest stamp, not by equal stamps."""
FRAME_ID = 'camera_color_optical_frame'
DEPTH_LOG_DELAY_NS = 5_000_000
"""Depth is logged 5 ms after its colour frame (aligning depth to colour takes time)."""
SIDE_WIDTH, SIDE_HEIGHT = 240, 180
"""The side camera's stream size in the sample bag (its own size, not the head's)."""
SIDE_RAW_TOPIC = '/side_camera/image_raw'
SIDE_DEPTH_TOPIC = '/side_camera/depth/image_raw'
SIDE_CAMERA_INFO_TOPIC = '/side_camera/camera_info'
SIDE_FRAME_ID = 'side_camera_color_optical_frame'
SIDE_OFFSET = 0.007
"""Side header stamp minus head header stamp: two cameras on one robot are rarely triggered
together, so views are matched by nearest stamp within a tolerance."""


def write_sample_bag(path: str | pathlib.Path, *, width: int = WIDTH, height: int = HEIGHT,
                     fps: float = FPS, seconds: float = SECONDS, storage: str = 'mcap',
                     compressed: bool = True, depth: bool = True,
                     lamp_on_at: float | None = None, side: bool = False) -> pathlib.Path:
    """Write the synthetic scene as a rosbag2 bag.

    Topics: RAW_TOPIC (sensor_msgs/Image, bgr8), COMPRESSED_TOPIC (CompressedImage, JPEG) when
    `compressed`, DEPTH_TOPIC (Image, 16UC1 millimetres, aligned to the colour image) and
    CAMERA_INFO_TOPIC (CameraInfo with plumb_bob distortion) when `depth`, the same depth as
    image_transport's compressedDepth (PNG) on COMPRESSED_DEPTH_TOPIC when both, and STATUS_TOPIC
    (std_msgs/String, 1 Hz) so the bag is not only images.
    Frame i has the header stamp START + i / fps and is logged LATENCY later; its depth frame
    is stamped DEPTH_DELAY later and rendered at that time.
    With `side`, the second camera too (SIDE_WIDTH x SIDE_HEIGHT, stamped SIDE_OFFSET after the
    head): SIDE_RAW_TOPIC (Image, bgr8) and, with `depth`, SIDE_DEPTH_TOPIC (16UC1, registered:
    stamped as its colour frame) and SIDE_CAMERA_INFO_TOPIC; the head's topics are unchanged.

    Args:
        path: the bag folder to create (must not exist).
        width: image width in pixels.
        height: image height in pixels.
        fps: camera rate.
        seconds: length of the recording.
        storage: 'mcap' or 'sqlite3'.
        compressed: also write the JPEG topic.
        depth: also write the depth and CameraInfo topics.
        lamp_on_at: draw the scene's lamp, lit from this many seconds on (a change for
            monitors to detect); None: no lamp, the scene every item of the sample set is
            labelled on.
        side: also write the side camera's topics.

    Returns:
        The bag folder.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    store = get_typestore(Stores.ROS2_KILTED)
    image_type = store.types['sensor_msgs/msg/Image']
    compressed_type = store.types['sensor_msgs/msg/CompressedImage']
    string_type = store.types['std_msgs/msg/String']
    header_type = store.types['std_msgs/msg/Header']
    time_type = store.types['builtin_interfaces/msg/Time']
    info_type = store.types['sensor_msgs/msg/CameraInfo']
    roi_type = store.types['sensor_msgs/msg/RegionOfInterest']
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    path = pathlib.Path(path)
    count = int(round(seconds * fps))
    start_ns = int(START * 1e9)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        raw = writer.add_connection(RAW_TOPIC, image_type.__msgtype__, typestore=store)
        jpeg = (writer.add_connection(COMPRESSED_TOPIC, compressed_type.__msgtype__,
                                      typestore=store) if compressed else None)
        status = writer.add_connection(STATUS_TOPIC, string_type.__msgtype__, typestore=store)
        depth_connection = info_connection = png_connection = None
        if depth and compressed:
            png_connection = writer.add_connection(COMPRESSED_DEPTH_TOPIC,
                                                   compressed_type.__msgtype__, typestore=store)
        if depth:
            depth_connection = writer.add_connection(DEPTH_TOPIC, image_type.__msgtype__,
                                                     typestore=store)
            info_connection = writer.add_connection(CAMERA_INFO_TOPIC, info_type.__msgtype__,
                                                    typestore=store)
        calibration = camera_info(width, height)
        side_connections = None
        if side:
            side_connections = (
                writer.add_connection(SIDE_RAW_TOPIC, image_type.__msgtype__, typestore=store),
                writer.add_connection(SIDE_DEPTH_TOPIC, image_type.__msgtype__,
                                      typestore=store) if depth else None,
                writer.add_connection(SIDE_CAMERA_INFO_TOPIC, info_type.__msgtype__,
                                      typestore=store) if depth else None)

        def header_at(stamp_ns: int, frame_id: str = FRAME_ID) -> Any:
            return header_type(stamp=time_type(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                               frame_id=frame_id)

        def info_message(header: Any, fields: dict[str, Any]) -> Any:
            return info_type(
                header=header, height=fields['height'], width=fields['width'],
                distortion_model=fields['distortion_model'], d=np.array(fields['d']),
                k=np.array(fields['k']), r=np.array(fields['r']), p=np.array(fields['p']),
                binning_x=0, binning_y=0,
                roi=roi_type(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))

        for index in range(count):
            t = index / fps
            stamp_ns = start_ns + round(t * 1e9)
            log_ns = stamp_ns + round(LATENCY * 1e9)
            header = header_at(stamp_ns)
            bgr = cv2.cvtColor(render_scene(t, width, height, lamp_on_at=lamp_on_at),
                               cv2.COLOR_RGB2BGR)
            message = image_type(header=header, height=height, width=width, encoding='bgr8',
                                 is_bigendian=0, step=width * 3, data=bgr.reshape(-1))
            writer.write(raw, log_ns, store.serialize_cdr(message, image_type.__msgtype__))
            if jpeg is not None:
                ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
                message = compressed_type(header=header, format='jpeg',
                                          data=np.frombuffer(encoded.tobytes(), np.uint8))
                writer.write(jpeg, log_ns + 1000,
                             store.serialize_cdr(message, compressed_type.__msgtype__))
            if depth_connection is not None and info_connection is not None:
                depth_ns = stamp_ns + round(DEPTH_DELAY * 1e9)
                millimetres = render_depth(t + DEPTH_DELAY, width, height)
                message = image_type(header=header_at(depth_ns), height=height, width=width,
                                     encoding='16UC1', is_bigendian=0, step=width * 2,
                                     data=millimetres.view(np.uint8).reshape(-1))
                writer.write(depth_connection, log_ns + DEPTH_LOG_DELAY_NS,
                             store.serialize_cdr(message, image_type.__msgtype__))
                if png_connection is not None:
                    format_, data = encode_compressed_depth(millimetres)
                    message = compressed_type(header=header_at(depth_ns), format=format_,
                                              data=np.frombuffer(data, np.uint8))
                    writer.write(png_connection, log_ns + DEPTH_LOG_DELAY_NS + 1000,
                                 store.serialize_cdr(message, compressed_type.__msgtype__))
                message = info_message(header, calibration)
                writer.write(info_connection, log_ns + 3000,
                             store.serialize_cdr(message, info_type.__msgtype__))
            if side_connections is not None:
                _write_side_frame(writer, store, side_connections, t, stamp_ns,
                                  header_at, info_message, lamp_on_at)
            if index % int(round(fps)) == 0:
                message = string_type(data=f'running t={t:.1f}')
                writer.write(status, log_ns + 2000,
                             store.serialize_cdr(message, string_type.__msgtype__))
    return path


def _write_side_frame(writer: Any, store: Any, connections: tuple[Any, Any, Any], t: float,
                      head_stamp_ns: int, header_at: Any, info_message: Any,
                      lamp_on_at: float | None) -> None:
    """The side camera's messages for the head frame at time t (stamped SIDE_OFFSET later)."""
    image_type = store.types['sensor_msgs/msg/Image']
    info_type = store.types['sensor_msgs/msg/CameraInfo']
    raw, depth, info = connections
    width, height = SIDE_WIDTH, SIDE_HEIGHT
    stamp_ns = head_stamp_ns + round(SIDE_OFFSET * 1e9)
    log_ns = stamp_ns + round(LATENCY * 1e9)
    header = header_at(stamp_ns, SIDE_FRAME_ID)
    seen_at = t + SIDE_OFFSET
    bgr = cv2.cvtColor(render_side_scene(seen_at, width, height, lamp_on_at=lamp_on_at),
                       cv2.COLOR_RGB2BGR)
    message = image_type(header=header, height=height, width=width, encoding='bgr8',
                         is_bigendian=0, step=width * 3, data=bgr.reshape(-1))
    writer.write(raw, log_ns, store.serialize_cdr(message, image_type.__msgtype__))
    if depth is None or info is None:
        return
    millimetres = render_side_depth(seen_at, width, height)
    message = image_type(header=header, height=height, width=width, encoding='16UC1',
                         is_bigendian=0, step=width * 2,
                         data=millimetres.view(np.uint8).reshape(-1))
    writer.write(depth, log_ns + DEPTH_LOG_DELAY_NS,
                 store.serialize_cdr(message, image_type.__msgtype__))
    writer.write(info, log_ns + 3000,
                 store.serialize_cdr(info_message(header, side_camera_info(width, height)),
                                     info_type.__msgtype__))


def marker_path(start: float, end: float, width: int = WIDTH, height: int = HEIGHT,
                step: float = 0.25) -> list[tuple[float, float]]:
    """Marker positions from time start to end (seconds since the first frame) every step."""
    count = int(round((end - start) / step))
    return [marker_position(start + i * step, width, height) for i in range(count + 1)]


def below_basket_interval(width: int = WIDTH, height: int = HEIGHT,
                          seconds: float = SECONDS) -> tuple[float, float]:
    """First and last time (1 ms resolution) the marker is right below the basket."""
    x1, _, x2, y2 = basket_box(width, height)
    times = [t / 1000 for t in range(int(seconds * 1000))
             if x1 <= marker_position(t / 1000, width, height)[0] <= x2
             and marker_position(t / 1000, width, height)[1] > y2]
    return times[0], times[-1]


def question_set_yaml(width: int = WIDTH, height: int = HEIGHT, seconds: float = SECONDS,
                      source: str = 'sample_bag') -> str:
    """The sample question set, with every expected answer computed from the scene geometry."""
    def path(start: float, end: float) -> str:
        points = marker_path(start, end, width, height)
        return '[' + ', '.join(f'[{x:.1f}, {y:.1f}]' for x, y in points) + ']'

    def points_3d(points: list[tuple[float, float]], asked: float) -> str:
        # Where the pixels of the expected path lie in the depth frame of the asking time.
        lifted = (scene_point(x, y, asked, width, height) for x, y in points)
        return '[' + ', '.join(f'[{x:.3f}, {y:.3f}, {z:.3f}]' for x, y, z in lifted) + ']'

    basket = basket_box(width, height)
    basket_centre = ((basket[0] + basket[2]) / 2, (basket[1] + basket[3]) / 2)
    into_basket = [marker_position(2.0, width, height), basket_centre]

    mx, my = marker_position(3.0, width, height)
    radius = marker_radius(width)
    marker_box = [mx - radius, my - radius, mx + radius, my + radius]
    below_start, below_end = below_basket_interval(width, height, seconds)
    return _TEMPLATE.format(
        source=source, width=width, height=height, seconds=seconds,
        path_1=path(1.0, 2.0), path_2=path(2.5, 3.5),
        path_1_3d=points_3d(marker_path(1.0, 2.0, width, height), 1.0),
        path_2_3d=points_3d(marker_path(2.5, 3.5, width, height), 2.5),
        into_basket='[' + ', '.join(f'[{x:.1f}, {y:.1f}]' for x, y in into_basket) + ']',
        into_basket_3d=points_3d(into_basket, 2.0),
        basket_centre_3d=points_3d([basket_centre], 1.5),
        marker_centre_3d=points_3d([(mx, my)], 3.0),
        depth_topic=DEPTH_TOPIC, camera_info_topic=CAMERA_INFO_TOPIC,
        basket=', '.join(str(v) for v in basket_box(width, height)),
        marker=', '.join(f'{v:.1f}' for v in marker_box),
        below_start=below_start, below_end=below_end)


_TEMPLATE = """\
# A question set: labelled moments of one recording, each with a question and its answer.
# This one belongs to the synthetic sample bag; regenerate both with
#   python -m cosmos_reason_ros.demo.sample_data OUT_DIR
# and evaluate with
#   cosmos-reason eval OUT_DIR/sample_bag --questions OUT_DIR/questions.yaml --out OUT_DIR/report
# The scene ({width}x{height} px, {seconds:g} s at 30 fps): a red marker circles clockwise around a
# grey basket; marker_position() in demo/sample_scene.py gives its centre at any time. An RGB-D
# camera looks straight down: the floor is 1.5 m away, the top of the basket 1.2 m and the top of
# the marker (a 5 cm puck) 1.45 m; scene_point() gives any pixel in metres.

version: 1                    # format version of this file
name: sample-scene            # title of the report
source: {source:<21} # rosbag2 bag (folder, .mcap or .db3) or a video clip;
                              # relative paths start at this file's folder;
                              # `cosmos-reason eval SOURCE` replaces it
topic: /camera/image_raw      # image topic (sensor_msgs/Image or CompressedImage); --topic
                              # replaces it; leave it out when the bag has one image topic
# Answers lifted into 3D (leave both out for 2D only): depth aligned to the image (16UC1 mm or
# 32FC1 m) and the colour camera's CameraInfo; --depth-topic and --camera-info-topic replace them
depth_topic: {depth_topic}
camera_info_topic: {camera_info_topic}

defaults:                     # any item field below except id, at, stamp, expected
  window_duration: 2.0        # seconds of history before the asking time (0: the run's default;
                              # 'all': the whole recording)
  max_frames: 8               # most frames sent to the model (0: the run's default)
  max_new_tokens: 400         # generation budget (0: the run's default); a constrained
                              # answer (structured_output) ends as soon as it is complete
  reasoning: false            # ask the model to think in <think> tags first
  tolerance: 0.1              # trajectories: right when the mean error <= this x image diagonal
  tolerance_3d: 0.05          # ... and in 3D, when the mean error <= this many metres
  iou_threshold: 0.5          # boxes, events: right when the mean best IoU >= this

# Each item: when it asks (`at`: seconds after the bag starts, i.e. after its first message, as
# `ros2 bag play --clock` counts on /clock; or `stamp`: absolute bag time in seconds; or
# `at: end`), the mode (question, caption, next_action, trajectory, grounding,
# temporal_localization, multiple_choice), its text fields, and `expected`: exactly one of
#   choice: A                  multiple_choice (a letter, or the text of one choice)
#   verdict: no                question (yes or no)
#   trajectory: [[x, y], ...]  trajectory (source image pixels, in order); beside it, or alone:
#   trajectory_3d: [[x, y, z], ...]  the same path in metres in the colour camera's optical
#                              frame, scored on the answer lifted with the bag's depth
#   boxes: [[x1, y1, x2, y2]]  grounding (source image pixels; or {{bbox: [...], label: ...}});
#                              beside it, or alone, centres_3d: [[x, y, z], ...] the centres
#                              of the boxed objects' visible surfaces in metres
#   events: [{{start: s, end: s, caption: ...}}]  temporal_localization (seconds after the
#                              bag starts, like `at`; 'mm:ss.ff' strings work too)
#   keywords: [w1, [w2, w2b]]  question, caption, next_action: every entry must occur in the
#                              answer (a list gives alternative words)
# Leave `expected` out to measure parsing and latency only. The frames are those the node would
# hold at the item's time: every frame logged up to then, kept at 4 fps by header stamp.
items:
  - id: marker-path-1s
    at: 1.0
    mode: trajectory
    task: Move the red marker along its path for the next second
    expected:
      # marker_position(t) for t = 1.0, 1.25, ..., 2.0 s
      trajectory: {path_1}
      # those pixels in metres: the marker's top, then the floor it will cross
      trajectory_3d: {path_1_3d}

  - id: marker-path-2.5s
    at: 2.5
    mode: trajectory
    task: Move the red marker along its path for the next second
    expected:
      trajectory: {path_2}
      trajectory_3d: {path_2_3d}

  - id: marker-into-basket
    at: 2.0
    mode: trajectory
    task: Pick up the red marker and put it into the grey basket
    expected:
      # from the marker to the middle of the basket; in 3D from its top to the basket's top
      trajectory: {into_basket}
      trajectory_3d: {into_basket_3d}

  - id: basket-box
    at: 1.5
    mode: grounding
    object_name: the grey basket
    expected:
      boxes: [[{basket}]]
      # the centre of its top in metres (boxes are measured on the nearest surface in them)
      centres_3d: {basket_centre_3d}

  - id: marker-box
    at: 3.0
    mode: grounding
    object_name: the red marker
    expected:
      boxes: [[{marker}]]
      centres_3d: {marker_centre_3d}

  - id: marker-direction
    at: 3.0
    mode: multiple_choice
    task: Which way does the red marker move around the grey basket?
    choices: [clockwise, counterclockwise, it does not move]
    expected:
      choice: A

  - id: marker-in-basket
    at: 2.0
    mode: question
    task: Is the red marker inside the grey basket? Answer yes or no.
    expected:
      verdict: no

  - id: marker-below-basket
    at: 3.9
    mode: temporal_localization
    task: The red marker passes right below the grey basket
    window_duration: 4.0
    max_frames: 16
    expected:
      events:
        - {{start: {below_start:.3f}, end: {below_end:.3f}, caption: marker below basket}}

  - id: scene-caption
    at: end
    mode: caption
    expected:
      keywords: [red, [marker, ball, circle, dot, disk], [basket, box, bin]]
"""


def write_sample(out_dir: str | pathlib.Path, *, storage: str = 'mcap') -> pathlib.Path:
    """Write OUT_DIR/sample_bag and OUT_DIR/questions.yaml; returns the question set's path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'sample_bag'
    if bag.exists():
        raise FileExistsError(f"'{bag}' exists: remove it or choose another folder")
    write_sample_bag(bag, storage=storage)
    questions = out / 'questions.yaml'
    questions.write_text(question_set_yaml(), encoding='utf-8')
    return questions


def two_camera_set_yaml(seconds: float = SECONDS, source: str = 'two_camera_bag') -> str:
    """The sample set over two cameras, head and side, with expected answers in the view that
    holds them (the side camera's pixels and optical frame for its items).
    """
    width, height = SIDE_WIDTH, SIDE_HEIGHT

    def listed(points: Any, digits: int) -> str:
        return '[' + ', '.join('[' + ', '.join(f'{value:.{digits}f}' for value in point) + ']'
                               for point in points) + ']'

    def side_path(start: float) -> list[tuple[float, float]]:
        times = [start + i * 0.25 for i in range(5)]
        return [tuple(project_to_side(marker_centre(t), width, height)[:2]) for t in times]

    path = side_path(1.1)
    # Lifted with the side depth of the view's last frame: stamped SIDE_OFFSET after 1.0 s.
    path_3d = [side_scene_point(u, v, 1.0 + SIDE_OFFSET, width, height) for u, v in path]
    basket = basket_box(WIDTH, HEIGHT)
    basket_centre = ((basket[0] + basket[2]) / 2, (basket[1] + basket[3]) / 2)
    return _TWO_CAMERA_TEMPLATE.format(
        source=source, seconds=seconds, head=CAMERAS[0], side=CAMERAS[1],
        raw_topic=RAW_TOPIC, depth_topic=DEPTH_TOPIC, camera_info_topic=CAMERA_INFO_TOPIC,
        side_raw_topic=SIDE_RAW_TOPIC, side_depth_topic=SIDE_DEPTH_TOPIC,
        side_camera_info_topic=SIDE_CAMERA_INFO_TOPIC, width=WIDTH, height=HEIGHT,
        side_width=width, side_height=height, offset_ms=SIDE_OFFSET * 1000,
        cube_box=listed([cube_box_side(width, height)], 1),
        side_path=listed(path, 1), side_path_3d=listed(path_3d, 3),
        basket=listed([basket], 0),
        basket_centre_3d=listed([scene_point(*basket_centre, 1.5, WIDTH, HEIGHT)], 3))


_TWO_CAMERA_TEMPLATE = """\
# A question set over two cameras of one recording: items name the cameras they ask about,
# and an expected point or box names the camera whose view it is in.
# This one belongs to the two-camera sample bag; regenerate both with
#   python -m cosmos_reason_ros.demo.sample_data OUT_DIR --two-cameras
# and evaluate with
#   cosmos-reason eval OUT_DIR/two_camera_bag --questions OUT_DIR/two_cameras.yaml \\
#       --out OUT_DIR/report2
# The scene is the sample scene ({seconds:g} s at 30 fps) seen by two cameras: `{head}` looks
# straight down ({width}x{height}), as in questions.yaml; `{side}` ({side_width}x{side_height},
# stamped {offset_ms:g} ms after the head) looks at it obliquely from 1.2 m above the floor and
# also sees a blue cube that stands outside the head's view (demo/sample_scene.py).

version: 1
name: sample-two-cameras
source: {source:<21} # a rosbag2 bag, relative to this file
cameras:                      # name -> topics in the bag, in the order items ask them
  {head}:                       # the short form `{head}: /topic` gives the image only
    image: {raw_topic}
    depth: {depth_topic}
    camera_info: {camera_info_topic}
  {side}:
    image: {side_raw_topic}
    depth: {side_depth_topic}
    camera_info: {side_camera_info_topic}

defaults:
  window_duration: 2.0
  max_frames: 8
  max_new_tokens: 400
  reasoning: false

# Each item as in questions.yaml, with `cameras: [...]` (the views it sends, in prompt order;
# default: all of the set's) and, beside expected points or boxes, `camera: NAME`: the view
# they are in (pixels of that camera, metres in its optical frame; default: the item's first
# camera). An answer in another camera's view scores as a miss. Items ask at X.1 s so that
# the side frame stamped 7 ms after the head's is already logged.
items:
  - id: cube-box-side
    at: 2.1
    mode: grounding
    object_name: the blue cube
    expected:
      camera: {side}
      # around the cube's eight corners in side pixels (no centres_3d: seen obliquely, the
      # floor around the cube lies at its depths, and a box's lifted centre takes it in)
      boxes: {cube_box}

  - id: cube-seen
    at: 2.1
    mode: question
    task: Is there a blue cube on the floor? Answer yes or no.
    expected:
      verdict: yes

  - id: cube-seen-head-only
    at: 2.1
    mode: question
    cameras: [{head}]
    task: Is there a blue cube on the floor? Answer yes or no.
    expected:
      verdict: no

  - id: marker-path-side
    at: 1.1
    mode: trajectory
    cameras: [{side}, {head}]
    task: Move the red marker along its path for the next second
    expected:
      camera: {side}
      # the top of the marker at 1.1, 1.35, ..., 2.1 s in side pixels
      trajectory: {side_path}
      # those pixels in metres, with the side depth of 1.007 s
      trajectory_3d: {side_path_3d}

  - id: basket-box-head
    at: 1.6
    mode: grounding
    object_name: the grey basket
    expected:
      camera: {head}
      boxes: {basket}
      centres_3d: {basket_centre_3d}
"""


def write_two_camera_sample(out_dir: str | pathlib.Path, *,
                            storage: str = 'mcap') -> pathlib.Path:
    """Write OUT_DIR/two_camera_bag (the sample bag with the side camera) and
    OUT_DIR/two_cameras.yaml; returns the question set's path.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'two_camera_bag'
    if bag.exists():
        raise FileExistsError(f"'{bag}' exists: remove it or choose another folder")
    write_sample_bag(bag, storage=storage, compressed=False, side=True)
    questions = out / 'two_cameras.yaml'
    questions.write_text(two_camera_set_yaml(), encoding='utf-8')
    return questions


MONITOR_SECONDS = 8.0
"""Length of the monitor sample bag."""
LAMP_ON_AT = 5.0
"""When the lamp of the monitor sample bag lights up (seconds after its first frame)."""


def monitor_set_yaml(source: str = 'monitor_bag', lamp_on_at: float = LAMP_ON_AT) -> str:
    """The sample set of monitors: the lamp's change labelled at the time it is drawn."""
    return _MONITOR_TEMPLATE.format(source=source, lamp_on_at=lamp_on_at,
                                    seconds=MONITOR_SECONDS)


_MONITOR_TEMPLATE = """\
# A set of labelled monitors: standing queries with the times their answer should change.
# This one belongs to the monitor sample bag; regenerate both with
#   python -m cosmos_reason_ros.demo.sample_data OUT_DIR --monitors
# and evaluate with
#   cosmos-reason eval OUT_DIR/monitor_bag --questions OUT_DIR/monitors.yaml --out OUT_DIR/report
# The scene is the sample scene ({seconds:g} s at 30 fps) with a lamp in its top left corner,
# dark until {lamp_on_at:g} s and bright green from then on.

version: 1
name: sample-monitors
source: {source:<21} # as in a question set: a bag or clip, relative to this file
topic: /camera/image_raw

# Each monitor is what a monitors_file declares (docs/monitors.md: name, task, mode, period,
# window_duration, max_frames, ...) with its labels: `events`, each the normalized answer
# expected from a time on (`from`: seconds after the bag starts, like an item's `at`), and
# `initial`, the answer before the first event. The normalized answer is the verdict of a
# yes/no question, the letter of a multiple choice, else the answer text (docs/monitors.md).
# `max_latency` (default 3 periods): an event not answered within it is missed.
monitors:
  - name: lamp_lit
    task: Is the lamp in the top left corner lit green? Answer yes or no.
    period: 1.0
    window_duration: 1.0
    max_frames: 2
    max_new_tokens: 64
    initial: 'no'
    events:
      - {{answer: 'yes', from: {lamp_on_at:g}}}
    max_latency: 2.0
"""


def write_monitor_sample(out_dir: str | pathlib.Path, *,
                         storage: str = 'mcap') -> pathlib.Path:
    """Write OUT_DIR/monitor_bag (the sample scene with the lamp lighting up at LAMP_ON_AT)
    and OUT_DIR/monitors.yaml; returns the monitor set's path.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'monitor_bag'
    if bag.exists():
        raise FileExistsError(f"'{bag}' exists: remove it or choose another folder")
    write_sample_bag(bag, seconds=MONITOR_SECONDS, storage=storage, compressed=False,
                     depth=False, lamp_on_at=LAMP_ON_AT)
    monitors = out / 'monitors.yaml'
    monitors.write_text(monitor_set_yaml(), encoding='utf-8')
    return monitors


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m cosmos_reason_ros.demo.sample_data`."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='folder to write sample_bag/ and questions.yaml into')
    parser.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    parser.add_argument('--monitors', action='store_true',
                        help='also write monitor_bag/ (a lamp lights up at 5 s) and '
                             'monitors.yaml, its labelled monitors')
    parser.add_argument('--two-cameras', action='store_true',
                        help='also write two_camera_bag/ (the head and side cameras) and '
                             'two_cameras.yaml, items over both views')
    args = parser.parse_args(argv)
    try:
        questions = write_sample(args.out_dir, storage=args.storage)
        monitors = (write_monitor_sample(args.out_dir, storage=args.storage)
                    if args.monitors else None)
        two = (write_two_camera_sample(args.out_dir, storage=args.storage)
               if args.two_cameras else None)
    except FileExistsError as error:
        print(f'sample_data: {error}', file=sys.stderr)
        return 2
    if two is not None:
        print(f"wrote {two.parent / 'two_camera_bag'} and {two}")
    if monitors is not None:
        print(f"wrote {monitors.parent / 'monitor_bag'} and {monitors}")
    print(f"wrote {questions.parent / 'sample_bag'} and {questions}")
    print(f'evaluate: cosmos-reason eval {questions.parent / "sample_bag"} --questions '
          f'{questions} --out {questions.parent / "report"}')
    return 0


__all__ = [
    'CAMERA_INFO_TOPIC', 'COMPRESSED_DEPTH_TOPIC', 'COMPRESSED_TOPIC', 'DEPTH_TOPIC',
    'LAMP_ON_AT', 'MONITOR_SECONDS', 'RAW_TOPIC', 'SIDE_CAMERA_INFO_TOPIC', 'SIDE_DEPTH_TOPIC',
    'SIDE_FRAME_ID', 'SIDE_HEIGHT', 'SIDE_OFFSET', 'SIDE_RAW_TOPIC', 'SIDE_WIDTH', 'basket_box',
    'below_basket_interval', 'marker_path', 'marker_radius', 'monitor_set_yaml',
    'question_set_yaml', 'two_camera_set_yaml', 'write_monitor_sample', 'write_sample',
    'write_sample_bag', 'write_two_camera_sample',
]


if __name__ == '__main__':
    sys.exit(main())
