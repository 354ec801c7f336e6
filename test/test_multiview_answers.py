"""Answers over several cameras: prompts that name the views, formats with a camera field, the
parser routing each point or box to its view, and the mosaic that draws them.
"""

import numpy as np
import pytest

from cosmos_reason_ros.core.answers.overlay import draw_views, PREDICTED, TILE_GAP
from cosmos_reason_ros.core.answers.parsing import Box, ParsedAnswer, ParseStatus, Trajectory
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.camera.views import View


def view_of(name: str, image_size: tuple[int, int], source_size: tuple[int, int]) -> View:
    width, height = image_size
    return View(name, (Frame(1.0, np.zeros((height, width, 3), np.uint8), source_size),))


def answer(**fields) -> ParsedAnswer:
    return ParsedAnswer('', '', ParseStatus.OK, **fields)


def is_predicted(pixel) -> bool:
    """Drawn in the predicted colour (anti-aliased edges blend it with the black frame)."""
    red, green, blue = (int(v) for v in pixel)
    return green > PREDICTED[1] // 2 and red < green // 2 and blue < green // 2


# --- the mosaic ----------------------------------------------------------------------------------

def test_mosaic_draws_each_box_on_the_tile_of_the_camera_it_names():
    # head: 320x240 stored from a 640x480 camera; wrist: 160x120 stored from 1280x960.
    views = (view_of('head', (320, 240), (640, 480)), view_of('wrist', (160, 120), (1280, 960)))
    box = Box('cup', 640, 240, 960, 720, camera='wrist')
    mosaic = draw_views(views, answer(boxes=(box,)), tile_height=120, text='')
    assert mosaic.shape == (120, 160 + TILE_GAP + 160, 3)
    head, wrist = mosaic[:, :160], mosaic[:, 160 + TILE_GAP:]
    # The box, in wrist source pixels, lands on the wrist tile at 1/8 scale: x 80..120, y 30..90.
    assert is_predicted(wrist[60, 80]) and is_predicted(wrist[30, 100])
    assert not any(is_predicted(p) for p in head[:100].reshape(-1, 3))


def test_mosaic_draws_a_trajectory_on_its_view_and_nothing_for_an_unknown_camera():
    views = (view_of('head', (200, 100), (200, 100)), view_of('wrist', (200, 100), (200, 100)))
    trajectories = (Trajectory('gripper', ((20.0, 20.0), (60.0, 20.0)), camera='head'),
                    Trajectory('gripper', ((20.0, 60.0), (60.0, 60.0)), camera='tail'))
    mosaic = draw_views(views, answer(trajectories=trajectories), tile_height=100, text='')
    head, wrist = mosaic[:, :200], mosaic[:, 200 + TILE_GAP:]
    assert is_predicted(head[20, 40])
    assert not is_predicted(head[60, 40])
    assert not any(is_predicted(p) for p in wrist.reshape(-1, 3))


def test_mosaic_of_one_unnamed_view_draws_unnamed_items_and_no_label():
    views = (view_of('', (160, 120), (640, 480)),)
    box = Box('cup', 0, 0, 320, 240)
    mosaic = draw_views(views, answer(boxes=(box,)), tile_height=120, text='')
    assert mosaic.shape == (120, 160, 3)
    assert is_predicted(mosaic[30, 80]) and is_predicted(mosaic[60, 40])
    assert not mosaic[100:, 100:].any()  # no label band, no drawing: still black


def test_mosaic_labels_each_tile_with_its_camera_name():
    views = (view_of('head', (100, 100), (100, 100)), view_of('wrist', (100, 100), (100, 100)))
    mosaic = draw_views(views, answer(), tile_height=100, text='')
    for tile in (mosaic[:, :100], mosaic[:, 100 + TILE_GAP:]):
        assert tile[80:].max() == 255  # white letters in the bottom band
        assert not tile[:70].any()


@pytest.mark.parametrize('views, tile_height, message', [
    ((), 360, 'at least one view'),
    ((view_of('head', (10, 10), (10, 10)),), 8, 'tile_height'),
])
def test_mosaic_refuses_what_it_cannot_draw(views, tile_height, message):
    with pytest.raises(ValueError, match=message):
        draw_views(views, answer(), tile_height=tile_height)
