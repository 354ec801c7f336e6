"""Pictures of an answer: trajectories, boxes and text drawn on the frame the model saw last.

Used for the node's ~/debug_image and for the evaluation report (expected next to predicted);
with several cameras, draw_views puts every view side by side, the answer on the view it names.
"""

from collections.abc import Mapping, Sequence
import textwrap

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.parsing import Box, ParsedAnswer, Trajectory
from cosmos_reason_ros.core.camera.views import View

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


TILE_GAP = 4
"""Pixels of dark grey between two tiles of a mosaic."""
_GAP_COLOUR: RGB = (40, 40, 40)
_LABEL_HEIGHT = 20


def draw_views(views: Sequence[View], parsed: ParsedAnswer, *, tile_height: int = 360,
               text: str | None = None,
               no_depth: Mapping[str, Sequence[tuple[float, float]]] | None = None
               ) -> np.ndarray:
    """One picture of a multi-view answer: every view's newest frame side by side, in prompt
    order, each labelled with its camera's name and carrying the points and boxes that name it.

    A trajectory or box is drawn on the tile of the view its `camera` names; with one view,
    everything is drawn on it (its items name that view or ''). An item naming no view (the
    parser reports it as a problem) is drawn nowhere: its coordinates belong to no image.

    Args:
        views: the views the model saw (core.camera.views.View, prompt order, at least one).
        parsed: the parsed answer (source pixels of each item's view).
        tile_height: pixel height of every tile; each keeps its view's aspect ratio.
        text: the text drawn across the top (None: the answer, or the parse error without one).
        no_depth: camera name -> points (that view's source pixels) that had no valid depth.

    Returns:
        An RGB uint8 image, tile_height high, the tiles' widths plus TILE_GAP between them.

    Raises:
        ValueError: no views, or a tile_height below 16.
    """
    if not views:
        raise ValueError('draw_views needs at least one view')
    if tile_height < 16:
        raise ValueError(f'tile_height must be at least 16 pixels, got {tile_height}')
    single = len(views) == 1
    no_depth = no_depth or {}
    tiles = []
    for view in views:
        image = view.frames[-1].image
        height, width = image.shape[:2]
        size = (max(1, round(width * tile_height / max(height, 1))), tile_height)
        tile = cv2.resize(np.ascontiguousarray(image, dtype=np.uint8), size,
                          interpolation=cv2.INTER_AREA if height > tile_height
                          else cv2.INTER_LINEAR)

        def on_view(camera: str, name: str = view.name) -> bool:
            return camera == name or (single and camera == '')

        tile = draw_overlay(
            tile, view.source_size,
            trajectories=[t for t in parsed.trajectories if on_view(t.camera)],
            boxes=[b for b in parsed.boxes if on_view(b.camera)],
            no_depth=no_depth.get(view.name, ()))
        if view.name:
            _draw_label(tile, view.name)
        tiles.append(tile)
    gap = np.full((tile_height, TILE_GAP, 3), _GAP_COLOUR, np.uint8)
    pieces = [tiles[0]]
    for tile in tiles[1:]:
        pieces += [gap, tile]
    mosaic = np.ascontiguousarray(np.concatenate(pieces, axis=1))
    band = parsed.answer or parsed.error if text is None else text
    if band:
        _draw_text(mosaic, band)
    return mosaic


def _draw_label(tile: np.ndarray, name: str) -> None:
    """The camera's name in a darkened band along the bottom of its tile."""
    top = tile.shape[0] - _LABEL_HEIGHT
    tile[top:] = (tile[top:] * 0.35).astype(np.uint8)
    cv2.putText(tile, name, (6, tile.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (255, 255, 255), 1, cv2.LINE_AA)


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
