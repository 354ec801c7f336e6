"""A synthetic camera scene with known geometry: a red marker moving along a known path.

The demo stream, the sample bag and the benchmarks render it, and evaluation checks trajectories
against `marker_position`, so the expected answers follow from the geometry, not from a label.
An RGB-D camera looks straight down at the scene: its aligned depth image (`render_depth`) and
calibration (`camera_info`) place every pixel in metres (`scene_point`), for answers in 3D.
"""

import functools
import math
from typing import Any

import cv2
import numpy as np

PERIOD = 8.0
"""Seconds for the marker to go once around its path."""


def marker_position(t: float, width: int, height: int) -> tuple[float, float]:
    """Where the marker's centre is at time t (seconds), in pixels of a width x height image.

    The path is an ellipse around the image centre, clockwise on screen, starting at the right.
    """
    angle = 2.0 * math.pi * (t % PERIOD) / PERIOD
    return (width / 2 + 0.35 * width * math.cos(angle),
            height / 2 + 0.3 * height * math.sin(angle))


def basket_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The grey basket's corners (x_min, y_min, x_max, y_max) in pixels of a width x height
    image: a fixed target for grounding questions.
    """
    return (int(width * 0.42), int(height * 0.4), int(width * 0.58), int(height * 0.6))


def marker_radius(width: int) -> int:
    """Radius of the red marker in an image `width` pixels wide."""
    return max(4, width // 32)


def lamp_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The lamp's corners (x_min, y_min, x_max, y_max) in pixels: top left, clear of the
    marker's path, which keeps to the middle 70 x 60 % of the image.
    """
    return (int(width * 0.03), int(height * 0.04), int(width * 0.12), int(height * 0.16))


def lamp_lit(t: float, lamp_on_at: float | None) -> bool:
    """Whether the scene's lamp is lit at time t (a scene change for monitors to detect)."""
    return lamp_on_at is not None and t >= lamp_on_at


def render_scene(t: float, width: int = 640, height: int = 480, *,
                 lamp_on_at: float | None = None) -> np.ndarray:
    """Render the scene at time t: a tiled floor, a grey basket, and the red marker.

    Args:
        t: seconds since the start.
        width: image width in pixels.
        height: image height in pixels.
        lamp_on_at: with a time, a lamp in the top left corner, dark before it and bright green
            from it on (lamp_box, lamp_lit); None (the default): no lamp.

    Returns:
        An RGB uint8 array of shape (height, width, 3).
    """
    image = np.empty((height, width, 3), np.uint8)
    tile = max(8, width // 16)
    rows = (np.arange(height) // tile)[:, None]
    columns = (np.arange(width) // tile)[None, :]
    image[:] = np.where(((rows + columns) % 2 == 0)[..., None], (205, 200, 190), (180, 175, 165))
    basket = basket_box(width, height)
    cv2.rectangle(image, basket[:2], basket[2:], (110, 110, 115), -1)
    if lamp_on_at is not None:
        lamp = lamp_box(width, height)
        colour = (40, 230, 60) if lamp_lit(t, lamp_on_at) else (45, 50, 45)
        cv2.rectangle(image, lamp[:2], lamp[2:], colour, -1)
    x, y = marker_position(t, width, height)
    radius = marker_radius(width)
    cv2.circle(image, (round(x), round(y)), radius, (220, 30, 30), -1, cv2.LINE_AA)
    cv2.putText(image, f't={t:6.2f}s', (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (20, 20, 20), 1, cv2.LINE_AA)
    return image


# --- the scene in 3D -----------------------------------------------------------------------------

FLOOR_DEPTH = 1.5
"""Metres from the camera to the floor (the camera looks straight down, so the floor is a plane
of constant depth)."""
BASKET_DEPTH = 1.2
"""Metres to the top of the basket (30 cm tall)."""
MARKER_DEPTH = 1.45
"""Metres to the top of the marker (a puck 5 cm tall)."""
CALIBRATION_SIZE = (640, 480)
"""The size the camera was calibrated at; a stream of another size scales K per axis."""
CALIBRATION_K = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)
DISTORTION = (-0.12, 0.05, 0.0008, -0.0006, 0.0)
"""plumb_bob coefficients (k1, k2, p1, p2, k3): a mild barrel lens, as on RGB-D cameras."""


def camera_info(width: int, height: int) -> dict[str, Any]:
    """The colour camera's calibration for a width x height stream, as CameraInfo fields.

    K is CALIBRATION_K scaled per axis (image_proc's resize convention); the distortion
    coefficients do not change with scale.
    """
    scale_x, scale_y = width / CALIBRATION_SIZE[0], height / CALIBRATION_SIZE[1]
    k = list(CALIBRATION_K)
    k[0], k[2] = k[0] * scale_x, k[2] * scale_x
    k[4], k[5] = k[4] * scale_y, k[5] * scale_y
    return {'width': width, 'height': height, 'distortion_model': 'plumb_bob',
            'd': list(DISTORTION), 'k': k,
            'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            'p': [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]}


def depth_at(u: float, v: float, t: float, width: int, height: int) -> float:
    """The depth (metres) the camera measures at pixel (u, v) at time t: the marker, the basket
    or the floor, whichever covers the pixel (the same shapes render_scene draws).
    """
    column, row = round(u), round(v)
    x, y = marker_position(t, width, height)
    if math.hypot(column - round(x), row - round(y)) <= marker_radius(width):
        return MARKER_DEPTH
    x_min, y_min, x_max, y_max = basket_box(width, height)
    if x_min <= column <= x_max and y_min <= row <= y_max:
        return BASKET_DEPTH
    return FLOOR_DEPTH


def render_depth(t: float, width: int = 640, height: int = 480) -> np.ndarray:
    """The aligned depth image at time t in millimetres (16UC1, REP 118).

    Returns:
        A uint16 array of shape (height, width).
    """
    depth = np.full((height, width), round(FLOOR_DEPTH * 1000), np.uint16)
    basket = basket_box(width, height)
    cv2.rectangle(depth, basket[:2], basket[2:], round(BASKET_DEPTH * 1000), -1)
    x, y = marker_position(t, width, height)
    cv2.circle(depth, (round(x), round(y)), marker_radius(width), round(MARKER_DEPTH * 1000), -1)
    return depth


def scene_point(u: float, v: float, t: float, width: int,
                height: int) -> tuple[float, float, float]:
    """Where pixel (u, v) of a width x height frame at time t lies in the colour camera's
    optical frame (metres): the pixel's ray through the distorted lens, at depth_at().

    The ray inverts the lens's forward model (cv2.projectPoints) by Newton's method, not by
    cv2.undistortPoints, which the 3D lifting uses: the truth does not share its code.
    """
    info = camera_info(width, height)
    k = np.array(info['k'], np.float64).reshape(3, 3)
    d = np.array(info['d'], np.float64)
    target = np.array([u, v], np.float64)

    def project(ray: np.ndarray) -> np.ndarray:
        pixel, _ = cv2.projectPoints(np.array([[ray[0], ray[1], 1.0]]), np.zeros(3),
                                     np.zeros(3), k, d)
        return pixel.reshape(2)

    ray = np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1]])
    for _ in range(30):
        residual = project(ray) - target
        if np.max(np.abs(residual)) < 1e-9:
            break
        step = 1e-6
        jacobian = np.column_stack([(project(ray + step * axis) - project(ray)) / step
                                    for axis in np.eye(2)])
        ray = ray - np.linalg.solve(jacobian, residual)
    z = depth_at(u, v, t, width, height)
    return float(ray[0] * z), float(ray[1] * z), z


# --- the second camera ---------------------------------------------------------------------------
# The scene in 3D is what the head camera (the camera above) sees, made solid: every surface it
# sees is the top of a column reaching down to the floor along its rays (the basket, the marker
# puck), so a second viewpoint sees those columns' walls as well as their tops and agrees with
# the head's depth image by construction. Points are in the head camera's optical frame (x
# right, y down the head image, z towards the floor), in metres. A blue cube stands on the floor
# outside the head's field of view: only the side camera sees it.

CAMERAS = ('head', 'side')
"""The sample's camera names: `head`, today's camera looking straight down, and `side`."""
SIDE_CALIBRATION_SIZE = (480, 360)
"""The size the side camera was calibrated at; another stream size scales K per axis."""
SIDE_CALIBRATION_K = (380.0, 0.0, 239.5, 0.0, 380.0, 179.5, 0.0, 0.0, 1.0)
SIDE_EYE = (0.6, 1.7, 0.3)
"""Where the side camera is (head frame, metres): right of and beyond the bottom edge of the
head's view, 1.2 m above the floor."""
SIDE_TARGET = (0.4, 0.0, 1.5)
"""The floor point the side camera's optical axis goes through (head frame, metres)."""
CUBE_MIN = (1.15, -0.1, 1.3)
CUBE_MAX = (1.35, 0.1, 1.5)
"""Opposite corners of the blue cube (head frame, metres): 20 cm on the floor, right of the
head's view (the head's image ends about 1.0 m right of its axis on the floor)."""
FLOOR_COLOUR = ((205, 200, 190), (180, 175, 165))
BASKET_COLOURS = ((110, 110, 115), (82, 82, 88))
"""Top and walls of the basket."""
MARKER_COLOURS = ((220, 30, 30), (165, 22, 22))
CUBE_COLOURS = ((60, 95, 225), (40, 65, 175), (30, 48, 140))
"""The cube's top, its faces along x and its faces along y."""
_MARCH_STEP = 0.004
"""Metres between samples of a side ray through the layer the head's columns fill."""


def _side_rotation() -> np.ndarray:
    """Rows: the side camera's x, y, z axes in the head frame (y points down to the floor)."""
    eye, target = np.array(SIDE_EYE), np.array(SIDE_TARGET)
    z = (target - eye) / np.linalg.norm(target - eye)
    down = np.array([0.0, 0.0, 1.0])
    y = down - down.dot(z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z])


def head_to_side(point: Any) -> np.ndarray:
    """Points (..., 3) in the head camera's optical frame -> the side camera's, in metres."""
    return (np.asarray(point, np.float64) - np.array(SIDE_EYE)) @ _side_rotation().T


def side_to_head(point: Any) -> np.ndarray:
    """Points (..., 3) in the side camera's optical frame -> the head camera's, in metres."""
    return np.asarray(point, np.float64) @ _side_rotation() + np.array(SIDE_EYE)


def side_camera_info(width: int, height: int) -> dict[str, Any]:
    """The side camera's calibration for a width x height stream, as CameraInfo fields (a
    rectified lens: no distortion).
    """
    scale_x = width / SIDE_CALIBRATION_SIZE[0]
    scale_y = height / SIDE_CALIBRATION_SIZE[1]
    k = list(SIDE_CALIBRATION_K)
    k[0], k[2] = k[0] * scale_x, k[2] * scale_x
    k[4], k[5] = k[4] * scale_y, k[5] * scale_y
    return {'width': width, 'height': height, 'distortion_model': 'plumb_bob',
            'd': [0.0] * 5, 'k': k,
            'r': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            'p': [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]}


def project_to_side(point: Any, width: int, height: int) -> np.ndarray:
    """Points (..., 3) in the head frame -> (..., 3) of side pixel u, v and depth z (metres)."""
    side = head_to_side(point)
    k = side_camera_info(width, height)['k']
    z = side[..., 2]
    return np.stack([k[0] * side[..., 0] / z + k[2], k[4] * side[..., 1] / z + k[5], z], -1)


def project_to_head(point: Any, width: int = CALIBRATION_SIZE[0],
                    height: int = CALIBRATION_SIZE[1]) -> np.ndarray:
    """Points (..., 3) in the head frame -> (..., 2) head pixels, through its distorted lens
    (the plumb_bob model cv2.projectPoints applies).
    """
    point = np.asarray(point, np.float64)
    k = camera_info(width, height)['k']
    k1, k2, p1, p2, k3 = DISTORTION
    x, y = point[..., 0] / point[..., 2], point[..., 1] / point[..., 2]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([k[0] * xd + k[2], k[4] * yd + k[5]], -1)


def marker_centre(t: float, *, top: bool = True) -> np.ndarray:
    """The marker's centre at time t in the head frame (metres): on its top, or on the floor."""
    width, height = CALIBRATION_SIZE
    u, v = marker_position(t, width, height)
    x, y, z = scene_point(u, v, t, width, height)
    depth = MARKER_DEPTH if top else FLOOR_DEPTH
    return np.array([x / z * depth, y / z * depth, depth])


def _column_depth(pixels: np.ndarray, t: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Depth of the head's surface at head pixels (..., 2) of the calibration size, and which
    column it is (0 floor, 1 basket, 2 marker); t None: without the marker.
    """
    width, height = CALIBRATION_SIZE
    u, v = pixels[..., 0], pixels[..., 1]
    x_min, y_min, x_max, y_max = basket_box(width, height)
    basket = (u >= x_min - 0.5) & (u <= x_max + 0.5) & (v >= y_min - 0.5) & (v <= y_max + 0.5)
    kind = np.where(basket, 1, 0)
    if t is not None:
        mx, my = marker_position(t, width, height)
        kind = np.where(np.hypot(u - mx, v - my) <= marker_radius(width) + 0.5, 2, kind)
    depth = np.choose(kind, [FLOOR_DEPTH, BASKET_DEPTH, MARKER_DEPTH])
    return depth, kind


def _side_rays(width: int, height: int) -> np.ndarray:
    """Unit directions (height, width, 3) in the head frame of the side camera's pixels."""
    k = side_camera_info(width, height)['k']
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float64),
                                np.arange(height, dtype=np.float64))
    rays = np.stack([(columns - k[2]) / k[0], (rows - k[5]) / k[4], np.ones_like(rows)], -1)
    rays = rays @ _side_rotation()
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _march(rays: np.ndarray, top: float, t: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray (N, 3) from the side camera to the first solid point of the
    head's columns between depth `top` and the floor, and the column kind it is in.
    """
    eye = np.array(SIDE_EYE)
    enter = (top - eye[2]) / rays[:, 2]
    floor = (FLOOR_DEPTH - eye[2]) / rays[:, 2]
    steps = int(np.ceil(np.max(floor - enter) / _MARCH_STEP)) + 1
    hit = floor.copy()
    found = np.zeros(len(rays), bool)
    for step in range(steps):
        distance = np.minimum(enter + step * _MARCH_STEP, floor)
        points = eye + rays * distance[:, None]
        depth, _ = _column_depth(project_to_head(points), t)
        solid = ~found & (points[:, 2] >= depth - 1e-9)
        hit[solid] = distance[solid]
        found |= solid
    # Refine the crossing between the last free sample and the first solid one.
    low, high = np.maximum(hit - _MARCH_STEP, enter), hit
    for _ in range(12):
        middle = (low + high) / 2
        points = eye + rays * middle[:, None]
        depth, _ = _column_depth(project_to_head(points), t)
        solid = points[:, 2] >= depth - 1e-9
        high, low = np.where(solid, middle, high), np.where(solid, low, middle)
    points = eye + rays * high[:, None]
    _, kind = _column_depth(project_to_head(points), t)
    return high, kind


def _cube_hits(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the cube (inf: misses it) and the axis of the face hit."""
    eye = np.array(SIDE_EYE)
    with np.errstate(divide='ignore', invalid='ignore'):
        near = (np.array(CUBE_MIN) - eye) / rays
        far = (np.array(CUBE_MAX) - eye) / rays
    entry = np.minimum(near, far)
    leave = np.min(np.maximum(near, far), axis=-1)
    enter = np.max(entry, axis=-1)
    axis = np.argmax(entry, axis=-1)
    distance = np.where((enter <= leave) & (enter > 0), enter, np.inf)
    return distance, axis


def _rays_near(rays: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the side rays (N, 3) that pass within radius of a point (head frame)."""
    to_centre = centre - np.array(SIDE_EYE)
    along = rays @ to_centre
    miss = np.linalg.norm(rays * along[:, None] - to_centre, axis=-1)
    return np.flatnonzero(miss <= radius)


@functools.lru_cache(maxsize=4)
def _side_static(width: int, height: int) -> tuple[np.ndarray, ...]:
    """The side view of the still scene: per pixel the ray, its distance to the first surface,
    and what it is (0 floor, 1 basket, 3 cube), and the cube face's axis.
    """
    rays = _side_rays(width, height).reshape(-1, 3)
    eye = np.array(SIDE_EYE)
    distance = (FLOOR_DEPTH - eye[2]) / rays[:, 2]
    kind = np.zeros(len(rays), np.int64)
    # Only rays through the basket's bounding sphere can meet its column; the rest meet the
    # floor (or the cube).
    near = _rays_near(rays, np.array([0.0, 0.0, (BASKET_DEPTH + FLOOR_DEPTH) / 2]), 0.3)
    distance[near], kind[near] = _march(rays[near], BASKET_DEPTH - 1e-6, None)
    cube, axis = _cube_hits(rays)
    kind = np.where(cube < distance, 3, kind)
    distance = np.minimum(cube, distance)
    for array in (rays, distance, kind, axis):
        array.flags.writeable = False
    return rays, distance, kind, axis


@functools.lru_cache(maxsize=2)
def _side_surface(t: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each side ray (flat, row-major) to the scene at time t, and the kind of
    surface hit (0 floor, 1 basket, 2 marker, 3 cube): the still scene with the marker added
    where its column is nearer.
    """
    rays, distance, kind, _ = _side_static(width, height)
    distance, kind = distance.copy(), kind.copy()
    # Only rays through the marker's bounding sphere can meet its column: those of the pixels
    # inside the square around the sphere's image.
    centre = (marker_centre(t, top=True) + marker_centre(t, top=False)) / 2
    radius = 1.6 * marker_radius(CALIBRATION_SIZE[0]) / CALIBRATION_K[0] * FLOOR_DEPTH + 0.03
    u, v, z = project_to_side(centre, width, height)
    k = side_camera_info(width, height)['k']
    reach = max(k[0], k[4]) * radius / max(z - radius, 1e-3) + 2
    columns = np.arange(max(int(u - reach), 0), min(int(u + reach) + 1, width))
    rows = np.arange(max(int(v - reach), 0), min(int(v + reach) + 1, height))
    near = (rows[:, None] * width + columns[None, :]).reshape(-1)
    if near.size:
        hit, hit_kind = _march(rays[near], MARKER_DEPTH - 1e-6, t)
        nearer = (hit_kind == 2) & (hit < distance[near])
        distance[near[nearer]] = hit[nearer]
        kind[near[nearer]] = 2
    distance.flags.writeable = kind.flags.writeable = False
    return distance, kind


@functools.lru_cache(maxsize=4)
def _side_still_colours(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The side view's colours without the marker (flat RGB uint8), and where the lamp is."""
    rays, distance, kind, axis = _side_static(width, height)
    points = np.array(SIDE_EYE) + rays * distance[:, None]
    head = project_to_head(points)
    tile = max(8, CALIBRATION_SIZE[0] // 16)
    checker = ((np.floor(head[:, 0] + 0.5) // tile + np.floor(head[:, 1] + 0.5) // tile)
               % 2 == 0)
    colour = np.where(checker[:, None], FLOOR_COLOUR[0], FLOOR_COLOUR[1]).astype(np.uint8)
    x_min, y_min, x_max, y_max = lamp_box(*CALIBRATION_SIZE)
    lamp = ((kind == 0) & (head[:, 0] >= x_min - 0.5) & (head[:, 0] <= x_max + 0.5)
            & (head[:, 1] >= y_min - 0.5) & (head[:, 1] <= y_max + 0.5))
    basket = kind == 1
    top = basket & (points[:, 2] <= BASKET_DEPTH + 1e-4)
    colour[top] = BASKET_COLOURS[0]
    colour[basket & ~top] = BASKET_COLOURS[1]
    cube = kind == 3
    colour[cube] = np.array(CUBE_COLOURS)[np.array([1, 2, 0])[axis[cube]]]
    colour.flags.writeable = lamp.flags.writeable = False
    return colour, lamp


def render_side_scene(t: float, width: int = SIDE_CALIBRATION_SIZE[0],
                      height: int = SIDE_CALIBRATION_SIZE[1], *,
                      lamp_on_at: float | None = None) -> np.ndarray:
    """Render the scene at time t from the side camera (see render_scene for the arguments).

    The floor's tiles and the lamp are where the head camera draws them (the same head pixels
    at the calibration size); tops are lit, walls darker; the blue cube is in view.

    Returns:
        An RGB uint8 array of shape (height, width, 3).
    """
    rays, still, _, _ = _side_static(width, height)
    colour, lamp = _side_still_colours(width, height)
    colour = colour.copy()
    if lamp_on_at is not None:
        colour[lamp] = (40, 230, 60) if lamp_lit(t, lamp_on_at) else (45, 50, 45)
    distance, kind = _side_surface(t, width, height)
    marker = np.flatnonzero(kind == 2)
    points = np.array(SIDE_EYE) + rays[marker] * distance[marker, None]
    top = points[:, 2] <= MARKER_DEPTH + 1e-4
    colour[marker] = np.where(top[:, None], MARKER_COLOURS[0], MARKER_COLOURS[1])
    image = np.ascontiguousarray(colour.reshape(height, width, 3))
    cv2.putText(image, f'side t={t:6.2f}s', (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (20, 20, 20), 1, cv2.LINE_AA)
    return image


def render_side_depth(t: float, width: int = SIDE_CALIBRATION_SIZE[0],
                      height: int = SIDE_CALIBRATION_SIZE[1]) -> np.ndarray:
    """The side camera's depth image at time t in millimetres (16UC1, REP 118: z along its
    optical axis).

    Returns:
        A uint16 array of shape (height, width).
    """
    rays, _, _, _ = _side_static(width, height)
    distance, _ = _side_surface(t, width, height)
    z = (rays @ _side_rotation()[2]) * distance
    return np.round(z * 1000).astype(np.uint16).reshape(height, width)


def side_scene_point(u: float, v: float, t: float, width: int,
                     height: int) -> tuple[float, float, float]:
    """Where pixel (u, v) of the side camera's width x height frame at time t lies in its
    optical frame (metres): the first surface its ray meets.
    """
    k = side_camera_info(width, height)['k']
    ray = np.array([(u - k[2]) / k[0], (v - k[5]) / k[4], 1.0]) @ _side_rotation()
    ray /= np.linalg.norm(ray)
    distance, _ = _march(ray[None], BASKET_DEPTH - 1e-6, t)
    cube, _ = _cube_hits(ray[None])
    point = head_to_side(np.array(SIDE_EYE) + ray * min(distance[0], cube[0]))
    return float(point[0]), float(point[1]), float(point[2])


def side_surface_kind(t: float, width: int, height: int) -> np.ndarray:
    """What each side pixel sees at time t: 0 floor, 1 basket, 2 marker, 3 cube (height,
    width).
    """
    _, kind = _side_surface(t, width, height)
    return kind.reshape(height, width)


def cube_box_side(width: int, height: int) -> tuple[float, float, float, float]:
    """The cube's box (x_min, y_min, x_max, y_max) in side pixels: around its eight corners."""
    corners = np.array([[x, y, z] for x in (CUBE_MIN[0], CUBE_MAX[0])
                        for y in (CUBE_MIN[1], CUBE_MAX[1]) for z in (CUBE_MIN[2], CUBE_MAX[2])])
    pixels = project_to_side(corners, width, height)
    return (float(pixels[:, 0].min()), float(pixels[:, 1].min()),
            float(pixels[:, 0].max()), float(pixels[:, 1].max()))


def cube_centre_side(width: int, height: int, percentiles: tuple[float, float] = (5.0, 95.0)
                     ) -> tuple[float, float, float]:
    """The centre of the cube's surface the side camera sees, in its optical frame (metres):
    the middle of the given percentiles of those surface points on each axis.
    """
    rays, distance, kind, _ = _side_static(width, height)
    cube = kind == 3
    points = head_to_side(np.array(SIDE_EYE) + rays[cube] * distance[cube, None])
    low, high = np.percentile(points, percentiles, axis=0)
    x, y, z = (low + high) / 2
    return float(x), float(y), float(z)
