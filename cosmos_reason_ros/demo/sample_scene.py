"""A synthetic camera scene with known geometry: a red marker moving along a known path.

The demo stream, the sample bag and the benchmarks render it, and evaluation checks trajectories
against `marker_position`, so the expected answers follow from the geometry, not from a label.
An RGB-D camera looks straight down at the scene: its aligned depth image (`render_depth`) and
calibration (`camera_info`) place every pixel in metres (`scene_point`), for answers in 3D.
"""

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
