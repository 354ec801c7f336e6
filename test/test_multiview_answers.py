"""Answers over several cameras: prompts that name the views, formats with a camera field, the
parser routing each point or box to its view, and the mosaic that draws them.
"""

import json
import random

import numpy as np
import pytest

from cosmos_reason_ros.core.answers.check import format_mismatch
from cosmos_reason_ros.core.answers.formats import (
    answer_format,
    JSON_SEPARATORS,
    plan_answer,
    StructuredAnswer,
)
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.overlay import draw_views, PREDICTED, TILE_GAP
from cosmos_reason_ros.core.answers.parsing import (
    Box,
    parse_answer,
    ParsedAnswer,
    ParseStatus,
    Trajectory,
    ViewGeometry,
)
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.backends.grammar import GrammarCompiler
from cosmos_reason_ros.core.camera.frames import Frame
from cosmos_reason_ros.core.camera.views import View
from cosmos_reason_ros.demo.tiny_model import build_tokenizer


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


# --- prompts -------------------------------------------------------------------------------------

TRAJECTORY_TWO_VIEWS = (
    'The 2 views are from the cameras "head" and "wrist", in this order. You are given the task '
    '"pick up the cup". Specify the 2D trajectory your end effector should follow in pixel '
    'space. Return the trajectory coordinates in JSON format like this: {"point_2d": [x, y], '
    '"label": "gripper trajectory", "camera": "head"}. Give each point the "camera" whose view '
    'its coordinates are in: one of "head" or "wrist".')


@pytest.mark.parametrize('mode, kwargs, user', [
    (Mode.TRAJECTORY, {'task': 'pick up the cup'}, TRAJECTORY_TWO_VIEWS),
    (Mode.GROUNDING, {'object_name': 'the red cup'},
     'The 2 views are from the cameras "head" and "wrist", in this order. Locate the bounding '
     'box of the red cup. Return a json. Write each box as {"bbox_2d": [x1, y1, x2, y2], '
     '"label": "the red cup", "camera": "head"}. Give each box the "camera" whose view its '
     'coordinates are in: one of "head" or "wrist".'),
    (Mode.QUESTION, {'task': 'Is the part in the gripper?'},
     'The 2 views are from the cameras "head" and "wrist", in this order. Is the part in the '
     'gripper?'),
    (Mode.CAPTION, {}, 'The 2 views are from the cameras "head" and "wrist", in this order. '
                       'Caption the video in detail.'),
    (Mode.MULTIPLE_CHOICE, {'task': 'Held?', 'choices': ['yes', 'no']},
     'The 2 views are from the cameras "head" and "wrist", in this order. Held?\n(A) yes\n(B) no'
     "\nAnswer with the option's letter from the given choices directly."),
])
@pytest.mark.parametrize('family', list(ModelFamily))
def test_a_prompt_over_two_cameras_names_them_in_order(mode, kwargs, user, family):
    prompt = build_prompt(mode, family=family, cameras=('head', 'wrist'), **kwargs)
    assert prompt.user == user


def test_three_cameras_are_listed_in_goal_order_and_the_example_names_the_first():
    prompt = build_prompt(Mode.TRAJECTORY, family=ModelFamily.QWEN3_VL, task='go',
                          cameras=('wrist', 'head', 'left_side'), reasoning=True)
    assert prompt.user.startswith(
        'The 3 views are from the cameras "wrist", "head" and "left_side", in this order. ')
    assert '"camera": "wrist"}.' in prompt.user
    # The camera sentence ends the question; the reasoning suffix still comes last.
    assert prompt.user.index('one of "wrist", "head" or "left_side".') < \
        prompt.user.index('Answer the question using')


@pytest.mark.parametrize('mode, kwargs', [
    (Mode.TRAJECTORY, {'task': 'pick up the cup'}),
    (Mode.GROUNDING, {'object_name': 'the red cup'}),
    (Mode.QUESTION, {'task': 'Is it held?'}),
    (Mode.TEMPORAL, {}),
])
@pytest.mark.parametrize('cameras', [(), ('head',)])
def test_one_camera_keeps_the_prompt_byte_identical(mode, kwargs, cameras):
    family = ModelFamily.QWEN3_VL
    assert build_prompt(mode, family=family, cameras=cameras, **kwargs) == \
        build_prompt(mode, family=family, **kwargs)


# --- parsing -------------------------------------------------------------------------------------

HEAD = ViewGeometry('head', (1280, 720), (448, 252))
WRIST = ViewGeometry('wrist', (640, 480), (320, 224))
TWO_VIEWS = (HEAD, WRIST)
REASON2 = ModelFamily.QWEN3_VL

# design.md §4, output 3 (Reason2, "Move the tape into the basket", reasoning on), with the
# camera field a two-camera prompt asks for: the first three points in the head view, the
# last two in the wrist view.
TAPE_TWO_VIEWS = (
    '<think> I will move my left gripper from its current position at [195, 630] to the tape, '
    'then over the basket, which the wrist camera shows below the gripper. </think>\n\n'
    '```json\n[\n'
    '  {"point_2d": [195, 630], "label": "gripper trajectory", "camera": "head"},\n'
    '  {"point_2d": [485, 657], "label": "gripper trajectory", "camera": "head"},\n'
    '  {"point_2d": [496, 650], "label": "gripper trajectory", "camera": "head"},\n'
    '  {"point_2d": [496, 423], "label": "gripper trajectory", "camera": "wrist"},\n'
    '  {"point_2d": [496, 388], "label": "gripper trajectory", "camera": "wrist"}\n'
    ']\n```')


def on(view: ViewGeometry, *normalized: tuple[float, float]) -> list[float]:
    """0-1000 points in a view's source pixels, flattened."""
    width, height = view.source_size
    return [value for x, y in normalized for value in (x / 1000 * width, y / 1000 * height)]


def flat(points) -> list[float]:
    return [value for point in points for value in point]


@pytest.mark.parametrize('text, expected', [
    (TAPE_TWO_VIEWS,
     [('gripper trajectory', 'head', on(HEAD, (195, 630), (485, 657), (496, 650))),
      ('gripper trajectory', 'wrist', on(WRIST, (496, 423), (496, 388)))]),
    # Camera names as keys of a dict of lists, of items or of bare pairs.
    ('{"head": [{"point_2d": [100, 200], "label": "reach"}, {"point_2d": [300, 400], '
     '"label": "reach"}], "wrist": [{"point_2d": [500, 500], "label": "grasp"}]}',
     [('reach', 'head', on(HEAD, (100, 200), (300, 400))),
      ('grasp', 'wrist', on(WRIST, (500, 500)))]),
    ('{"wrist": [[0, 0], [1000, 1000]], "head": [[500, 500], [250, 750]]}',
     [('', 'wrist', on(WRIST, (0, 0), (1000, 1000))),
      ('', 'head', on(HEAD, (500, 500), (250, 750)))]),
    # An item's own field wins over the key it sits under.
    ('{"head": [{"point_2d": [10, 20], "camera": "wrist"}, {"point_2d": [30, 40]}]}',
     [('', 'wrist', on(WRIST, (10, 20))), ('', 'head', on(HEAD, (30, 40)))]),
    # One label over two views: two trajectories, one per (label, camera), in order.
    ('[{"point_2d": [1, 2], "label": "arm", "camera": "wrist"}, '
     '{"point_2d": [3, 4], "label": "arm", "camera": "head"}, '
     '{"point_2d": [5, 6], "label": "arm", "camera": "wrist"}]',
     [('arm', 'wrist', on(WRIST, (1, 2), (5, 6))), ('arm', 'head', on(HEAD, (3, 4)))]),
])
def test_each_point_lands_in_the_view_it_names(text, expected):
    parsed = parse_answer(text, Mode.TRAJECTORY, family=REASON2, source_size=HEAD.source_size,
                          views=TWO_VIEWS)
    assert parsed.status is ParseStatus.OK, parsed.error
    got = [(t.label, t.camera, flat(t.points)) for t in parsed.trajectories]
    assert got == [(label, camera, pytest.approx(points)) for label, camera, points in expected]


@pytest.mark.parametrize('text, error_part, cameras', [
    ('[{"point_2d": [100, 100], "label": "a", "camera": "head"}, '
     '{"point_2d": [200, 200], "label": "a"}]',
     "trajectory 'a' names no camera; expected \"camera\" to be one of 'head', 'wrist' "
     "(mapped with the first view, 'head')", ['head', '']),
    ('[{"point_2d": [100, 100], "label": "a", "camera": "tail"}, '
     '{"point_2d": [200, 200], "label": "a", "camera": "tail"}]',
     """trajectory 'a' names camera '"tail"'""", ['tail']),
    ('[[100, 100], [200, 200]]', "trajectory '' names no camera", ['']),
    ('[{"point_2d": [1, 2], "camera": 3}, {"point_2d": [3, 4], "camera": 3}]',
     "trajectory '' names camera '3'", ['']),
])
def test_a_point_naming_no_known_camera_fails_the_answer_but_is_kept(text, error_part,
                                                                     cameras):
    parsed = parse_answer(text, Mode.TRAJECTORY, family=REASON2, source_size=HEAD.source_size,
                          views=TWO_VIEWS)
    assert parsed.status is ParseStatus.FAILED
    assert error_part in parsed.error
    assert parsed.error.count('names') == 1  # once per trajectory, not once per point
    assert [t.camera for t in parsed.trajectories] == cameras
    # Kept, mapped with the first view's sizes.
    unknown = next(t for t in parsed.trajectories if t.camera != 'head')
    assert unknown.points[0][0] <= HEAD.source_size[0]


def test_qwen25_points_map_and_range_check_with_the_input_size_of_their_own_view():
    # x 400 lies inside the head input (448 wide) but outside the wrist input (320 wide).
    text = ('[{"point_2d": [400, 100], "camera": "head"}, {"point_2d": [224, 112], '
            '"camera": "head"}, {"point_2d": [160, 112], "camera": "wrist"}, '
            '{"point_2d": [400, 100], "camera": "wrist"}]')
    parsed = parse_answer(text, Mode.TRAJECTORY, family=ModelFamily.QWEN2_5_VL,
                          source_size=HEAD.source_size, model_input_size=(448, 252),
                          views=TWO_VIEWS)
    head, wrist = parsed.trajectories
    assert flat(head.points) == pytest.approx([400 / 448 * 1280, 100 / 252 * 720, 640, 320])
    assert wrist.points[0] == pytest.approx((320, 240))
    assert parsed.status is ParseStatus.FAILED
    assert parsed.error == ("point 4 of '' (400, 100) lies outside the 320x224 model input of "
                            'Cosmos-Reason1 (Qwen2.5-VL); kept unclamped')


@pytest.mark.parametrize('text, expected', [
    ('[{"bbox_2d": [0, 0, 500, 500], "label": "cup", "camera": "wrist"}, '
     '{"bbox_2d": [500, 500, 1000, 1000], "label": "shelf", "camera": "head"}]',
     [('cup', 'wrist', (0, 0, 320, 240)), ('shelf', 'head', (640, 360, 1280, 720))]),
    ('```json\n{"wrist": [[250, 250, 750, 750]], "head": [{"bbox_2d": [0, 0, 100, 100]}]}\n```',
     [('the cup', 'wrist', (160, 120, 480, 360)), ('the cup', 'head', (0, 0, 128, 72))]),
])
def test_each_box_lands_in_the_view_it_names(text, expected):
    parsed = parse_answer(text, Mode.GROUNDING, family=REASON2, source_size=HEAD.source_size,
                          object_name='the cup', views=TWO_VIEWS)
    assert parsed.status is ParseStatus.OK, parsed.error
    got = [(b.label, b.camera, (b.x_min, b.y_min, b.x_max, b.y_max)) for b in parsed.boxes]
    assert got == [(label, camera, pytest.approx(box)) for label, camera, box in expected]


def test_a_bare_box_over_two_views_names_no_camera():
    parsed = parse_answer('[10, 20, 30, 40]', Mode.GROUNDING, family=REASON2,
                          source_size=HEAD.source_size, object_name='cup', views=TWO_VIEWS)
    assert parsed.status is ParseStatus.FAILED
    assert parsed.error.startswith('box 1 names no camera; expected "camera" to be one of')
    assert parsed.boxes[0].camera == ''


@pytest.mark.parametrize('views, camera', [((), ''), ((ViewGeometry('wrist', (640, 480)),),
                                                      'wrist')])
def test_one_view_needs_no_camera_field_and_is_filled_in(views, camera):
    # design.md §4, output 3, as Reason2 wrote it: no camera field.
    text = ('```json\n[{"point_2d": [195, 630], "label": "gripper trajectory"}, '
            '{"point_2d": [496, 388], "label": "gripper trajectory"}]\n```')
    parsed = parse_answer(text, Mode.TRAJECTORY, family=REASON2, source_size=(640, 480),
                          views=views)
    assert parsed.status is ParseStatus.OK
    assert [(t.label, t.camera) for t in parsed.trajectories] == [
        ('gripper trajectory', camera)]
    assert flat(parsed.trajectories[0].points) == pytest.approx(
        [195 / 1000 * 640, 630 / 1000 * 480, 496 / 1000 * 640, 388 / 1000 * 480])


def test_without_views_a_camera_key_is_a_label_as_before():
    text = '{"head": [[100, 100], [200, 200]]}'
    without = parse_answer(text, Mode.TRAJECTORY, family=REASON2, source_size=(1000, 1000))
    assert [(t.label, t.camera) for t in without.trajectories] == [('head', '')]


# --- formats -------------------------------------------------------------------------------------

CAMERAS = ('head', 'wrist_camera')


def two_points(first: str, second: str | None) -> str:
    items = [{'point_2d': [10, 20], 'label': 'reach', 'camera': first},
             {'point_2d': [30, 40], 'label': 'reach', 'camera': second}]
    if second is None:
        del items[1]['camera']
    return json.dumps(items, separators=JSON_SEPARATORS)


@pytest.mark.parametrize('family', [ModelFamily.QWEN3_VL, ModelFamily.QWEN2_5_VL])
def test_the_trajectory_format_takes_each_camera_and_refuses_others(family):
    fmt = answer_format(Mode.TRAJECTORY, family=family, model_input_size=(448, 252),
                        cameras=CAMERAS)
    assert format_mismatch(fmt, two_points('head', 'wrist_camera')) == ''
    assert format_mismatch(fmt, two_points('wrist_camera', 'head')) == ''
    assert 'is not of the trajectory format' in format_mismatch(fmt, two_points('head', 'tail'))
    assert 'is not of the trajectory format' in format_mismatch(fmt, two_points('head', None))


def test_the_grounding_format_takes_each_camera_and_refuses_others():
    fmt = answer_format(Mode.GROUNDING, family=ModelFamily.COSMOS3_EDGE, cameras=CAMERAS)

    def boxes(camera):
        return json.dumps([{'bbox_2d': [1, 2, 3, 4], 'label': 'cup', 'camera': camera}],
                          separators=JSON_SEPARATORS)

    assert format_mismatch(fmt, boxes('head')) == ''
    assert format_mismatch(fmt, boxes('wrist_camera')) == ''
    assert format_mismatch(fmt, boxes('Head')) != ''
    assert format_mismatch(fmt, boxes('wrist')) != ''  # a prefix of a name is no name


@pytest.mark.parametrize('mode', [Mode.TRAJECTORY, Mode.GROUNDING])
def test_the_longest_answer_names_the_longest_camera_in_every_item(mode):
    plain = answer_format(mode, family=REASON2)
    named = answer_format(mode, family=REASON2, cameras=CAMERAS)
    items = len(json.loads(plain.longest))
    assert all(item['camera'] == 'wrist_camera' for item in json.loads(named.longest))
    assert named.max_tokens == plain.max_tokens + items * len(', "camera": "wrist_camera"')
    assert format_mismatch(named, named.longest) == ''


@pytest.mark.parametrize('mode', [Mode.TRAJECTORY, Mode.GROUNDING, Mode.TEMPORAL])
def test_one_camera_or_a_temporal_answer_has_no_camera_field(mode):
    plain = answer_format(mode, family=REASON2)
    assert answer_format(mode, family=REASON2, cameras=('head',)) == plain
    if mode is Mode.TEMPORAL:
        assert answer_format(mode, family=REASON2, cameras=CAMERAS) == plain


def test_the_plan_takes_the_cameras_of_the_structured_request():
    plan = plan_answer(StructuredAnswer(Mode.GROUNDING, cameras=CAMERAS), max_new_tokens=2048,
                       reasoning=False, framing=1, family=REASON2)
    schema = plan.format.json_schema['items']
    assert schema['properties']['camera'] == {'type': 'string', 'enum': list(CAMERAS)}
    assert 'camera' in schema['required']


@pytest.mark.parametrize('mode', [Mode.TRAJECTORY, Mode.GROUNDING])
def test_answers_drawn_from_the_camera_grammar_parse_into_the_views_they_name(mode):
    from test_answer_formats import _draw  # the same random walk over the compiled grammar

    tokenizer = build_tokenizer()
    stop = tokenizer.convert_tokens_to_ids('<|im_end|>')
    compiler = GrammarCompiler(tokenizer, vocab_size=len(tokenizer), stop_token_ids=[stop])
    fmt = answer_format(mode, family=REASON2, cameras=('head', 'wrist'))
    compiled = compiler._compiled(fmt, prefix='', suffix='')  # noqa: SLF001
    rng = random.Random(mode.value)
    seen = set()
    for _ in range(8):
        text = _draw(tokenizer, compiled, rng)
        parsed = parse_answer(text, mode, family=REASON2, source_size=HEAD.source_size,
                              object_name='cup', views=TWO_VIEWS)
        assert parsed.status is ParseStatus.OK, (text, parsed.error)
        items = parsed.trajectories or parsed.boxes
        assert [item.camera for item in items] and \
            {item.camera for item in items} <= {'head', 'wrist'}
        written = [item['camera'] for item in json.loads(text)]
        if mode is Mode.TRAJECTORY:  # grouped by (label, camera): compare the counts
            assert sorted(written) == sorted(t.camera for t in items for _ in t.points)
        else:
            assert written == [box.camera for box in items]
        seen |= {item.camera for item in items}
    assert seen == {'head', 'wrist'}
