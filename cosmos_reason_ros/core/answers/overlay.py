"""Pictures of an answer: trajectories, boxes and text drawn on the frame the model saw last.

Used for the node's ~/debug_image and for the evaluation report (expected next to predicted).
"""

from collections.abc import Sequence
import textwrap

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory

RGB = tuple[int, int, int]
PREDICTED: RGB = (40, 220, 60)
EXPECTED: RGB = (60, 140, 255)
NO_DEPTH: RGB = (235, 40, 40)


def draw_overlay(image: np.ndarray, source_size: tuple[int, int], *,
                 trajectories: Sequence[Trajectory] = (), boxes: Sequence[Box] = (),
                 text: str = '', expected_trajectories: Sequence[Trajectory] = (),
                 expected_boxes: Sequence[Box] = (),
                 no_depth: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """Draw an answer on a copy of `image`.

    Args:
        image: HxWx3 RGB frame, possibly downscaled from the source image.
        source_size: (width, height) of the source image the coordinates refer to.
        trajectories: predicted trajectories (source pixels), drawn green with an arrow head.
        boxes: predicted boxes (source pixels), green.
        text: the answer, wrapped into a band at the top.
        expected_trajectories: ground truth, drawn blue.
        expected_boxes: ground truth boxes, blue.
        no_depth: points (source pixels) that had no valid depth in 3D, crossed out in red.

    Returns:
        A new RGB uint8 image of the same size as `image`.
    """
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    scale = (width / max(source_size[0], 1), height / max(source_size[1], 1))
    thickness = max(1, round(min(width, height) / 240))
    for trajectory_set, colour in ((expected_trajectories, EXPECTED), (trajectories, PREDICTED)):
        for trajectory in trajectory_set:
            _draw_trajectory(canvas, trajectory, scale, colour, thickness)
    for box_set, colour in ((expected_boxes, EXPECTED), (boxes, PREDICTED)):
        for box in box_set:
            _draw_box(canvas, box, scale, colour, thickness)
    for point in no_depth:
        centre = _to_canvas(point, scale)
        size = thickness + 4
        for dx in (-size, size):
            cv2.line(canvas, (centre[0] - dx, centre[1] - size),
                     (centre[0] + dx, centre[1] + size), NO_DEPTH, thickness, cv2.LINE_AA)
    if text:
        _draw_text(canvas, text)
    return canvas


def _to_canvas(point: tuple[float, float], scale: tuple[float, float]) -> tuple[int, int]:
    return round(point[0] * scale[0]), round(point[1] * scale[1])


def _draw_trajectory(canvas: np.ndarray, trajectory: Trajectory, scale: tuple[float, float],
                     colour: RGB, thickness: int) -> None:
    points = [_to_canvas(point, scale) for point in trajectory.points]
    if not points:
        return
    for start, end in zip(points, points[1:]):
        cv2.line(canvas, start, end, colour, thickness, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, point, thickness + 2, colour, -1, cv2.LINE_AA)
    if len(points) >= 2 and points[-2] != points[-1]:
        cv2.arrowedLine(canvas, points[-2], points[-1], colour, thickness, cv2.LINE_AA,
                        tipLength=0.3)


def _draw_box(canvas: np.ndarray, box: Box, scale: tuple[float, float], colour: RGB,
              thickness: int) -> None:
    top_left = _to_canvas((box.x_min, box.y_min), scale)
    bottom_right = _to_canvas((box.x_max, box.y_max), scale)
    cv2.rectangle(canvas, top_left, bottom_right, colour, thickness, cv2.LINE_AA)
    if box.label:
        cv2.putText(canvas, box.label, (top_left[0], max(12, top_left[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)


def _draw_text(canvas: np.ndarray, text: str, max_lines: int = 4) -> None:
    width = canvas.shape[1]
    columns = max(20, width // 8)
    lines = textwrap.wrap(' '.join(text.split()), columns)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [lines[max_lines - 1][:columns - 3] + '...']
    if not lines:
        return
    band = 16 * len(lines) + 6
    # Darken a band instead of painting it black so the scene stays readable under the text.
    canvas[:band] = (canvas[:band] * 0.35).astype(np.uint8)
    for index, line in enumerate(lines):
        cv2.putText(canvas, line, (6, 16 * (index + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
