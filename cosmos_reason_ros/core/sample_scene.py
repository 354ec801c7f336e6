"""A synthetic camera scene with known geometry: a red marker moving along a known path.

The demo stream, the sample bag and the benchmarks render it, and evaluation checks trajectories
against `marker_position`, so the expected answers follow from the geometry, not from a label.
"""

import math
from typing import Tuple

import cv2
import numpy as np

PERIOD = 8.0
"""Seconds for the marker to go once around its path."""


def marker_position(t: float, width: int, height: int) -> Tuple[float, float]:
    """Where the marker's centre is at time t (seconds), in pixels of a width x height image.

    The path is an ellipse around the image centre, clockwise on screen, starting at the right.
    """
    angle = 2.0 * math.pi * (t % PERIOD) / PERIOD
    return (width / 2 + 0.35 * width * math.cos(angle),
            height / 2 + 0.3 * height * math.sin(angle))


def basket_box(width: int, height: int) -> Tuple[int, int, int, int]:
    """The grey basket's corners (x_min, y_min, x_max, y_max) in pixels of a width x height
    image: a fixed target for grounding questions."""
    return (int(width * 0.42), int(height * 0.4), int(width * 0.58), int(height * 0.6))


def marker_radius(width: int) -> int:
    """Radius of the red marker in an image `width` pixels wide."""
    return max(4, width // 32)


def render_scene(t: float, width: int = 640, height: int = 480) -> np.ndarray:
    """Render the scene at time t: a tiled floor, a grey basket, and the red marker.

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
    x, y = marker_position(t, width, height)
    radius = marker_radius(width)
    cv2.circle(image, (round(x), round(y)), radius, (220, 30, 30), -1, cv2.LINE_AA)
    cv2.putText(image, f't={t:6.2f}s', (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (20, 20, 20), 1, cv2.LINE_AA)
    return image
