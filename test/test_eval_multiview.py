"""Evaluation over several cameras: the sample scene's second viewpoint, the two-camera bag,
question sets that name cameras, replay's synchronised views, and scoring in the named view.

Core only (no ROS); the backend is the scripted test double, so the answers are the test's.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest
from scripted_backend import ScriptedBackend

from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.answers.overlay import EXPECTED, PREDICTED, TILE_GAP
from cosmos_reason_ros.core.answers.parsing import Box, ParsedAnswer, ParseStatus, Trajectory
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.depth_track import DepthSettings, DepthTrack
from cosmos_reason_ros.core.evaluation.question_file import load_questions, parse_question_set
from cosmos_reason_ros.core.evaluation.questions import CameraTopics, QuestionSetError
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import item_picture, MOSAIC_TILE_HEIGHT, write_report
from cosmos_reason_ros.core.evaluation.scoring import in_truth_view, score_answer
from cosmos_reason_ros.core.evaluation.sources import open_source, SourceError
from cosmos_reason_ros.demo import sample_scene as scene
from cosmos_reason_ros.demo.sample_data import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_TOPIC,
    DEPTH_TOPIC,
    RAW_TOPIC,
    SIDE_CAMERA_INFO_TOPIC,
    SIDE_DEPTH_TOPIC,
    SIDE_HEIGHT,
    SIDE_OFFSET,
    SIDE_RAW_TOPIC,
    SIDE_WIDTH,
    START,
    two_camera_set_yaml,
    write_sample_bag,
    write_two_camera_sample,
)

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / 'examples' / 'questions_two_cameras.yaml'
W, H = scene.CALIBRATION_SIZE
SW, SH = scene.SIDE_CALIBRATION_SIZE


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return write_two_camera_sample(tmp_path_factory.mktemp('two'))


# --- the scene in 3D -----------------------------------------------------------------------------

@pytest.mark.parametrize('what, t', [('basket top', 1.0), ('marker top', 2.0),
                                     ('floor', 0.5), ('marker top', 3.3)])
def test_a_point_the_head_sees_is_where_the_side_camera_draws_it(what, t):
    if what == 'basket top':
        box = scene.basket_box(W, H)
        pixel = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    elif what == 'floor':
        pixel = (560.0, 100.0)
    else:
        pixel = scene.marker_position(t, W, H)
    point = np.array(scene.scene_point(*pixel, t, W, H))  # head frame, metres
    assert np.allclose(scene.project_to_head(point), pixel, atol=1e-6)
    u, v, z = scene.project_to_side(point, SW, SH)
    assert 0 <= u < SW and 0 <= v < SH, 'in the side view'
    seen = scene.side_scene_point(u, v, t, SW, SH)
    assert np.allclose(seen, scene.head_to_side(point), atol=1e-3), 'the same place, 1 mm'
    assert seen[2] == pytest.approx(z, abs=1e-3)
    kind = scene.side_surface_kind(t, SW, SH)[round(v), round(u)]
    colour = scene.render_side_scene(t, SW, SH)[round(v), round(u)]
    expected = {'basket top': (1, scene.BASKET_COLOURS[0]), 'marker top':
                (2, scene.MARKER_COLOURS[0]), 'floor': (0, None)}[what]
    assert kind == expected[0]
    if expected[1] is not None:
        assert tuple(colour) == expected[1]


def test_side_depth_is_z_of_the_surface_each_pixel_sees():
    depth = scene.render_side_depth(1.5, SW, SH)
    for u, v in [(120, 300), (240, 180), (400, 170), (30, 60)]:
        x, y, z = scene.side_scene_point(u, v, 1.5, SW, SH)
        assert depth[v, u] == round(z * 1000), (u, v)
        info = scene.side_camera_info(SW, SH)
        k = info['k']
        assert (k[0] * x / z + k[2], k[4] * y / z + k[5]) == pytest.approx((u, v), abs=1e-6)


def test_the_cube_is_seen_by_the_side_camera_only():
    corners = np.array([[x, y, z] for x in (scene.CUBE_MIN[0], scene.CUBE_MAX[0])
                        for y in (scene.CUBE_MIN[1], scene.CUBE_MAX[1])
                        for z in (scene.CUBE_MIN[2], scene.CUBE_MAX[2])])
    head = scene.project_to_head(corners)
    assert (head[:, 0] > W).all(), 'right of the head image: the head cannot see it'
    kind = scene.side_surface_kind(1.0, SW, SH)
    x1, y1, x2, y2 = scene.cube_box_side(SW, SH)
    assert (kind == 3).sum() > 1000
    rows, columns = np.nonzero(kind == 3)
    assert x1 - 1 <= columns.min() and columns.max() <= x2 + 1
    assert y1 - 1 <= rows.min() and rows.max() <= y2 + 1
    image = scene.render_side_scene(1.0, SW, SH)
    assert tuple(image[round((y1 + y2) / 2) + 5, round((x1 + x2) / 2)]) in scene.CUBE_COLOURS


def test_the_side_camera_scales_k_per_axis_and_has_no_distortion():
    info = scene.side_camera_info(240, 180)
    assert info['k'] == [190.0, 0.0, 119.75, 0.0, 190.0, 89.75, 0.0, 0.0, 1.0]
    assert info['d'] == [0.0] * 5 and (info['width'], info['height']) == (240, 180)
    # The same 3D point lands on the same place of the image at both sizes.
    point = scene.marker_centre(1.0)
    small = scene.project_to_side(point, 240, 180)[:2]
    large = scene.project_to_side(point, SW, SH)[:2]
    assert small * 2 == pytest.approx(large)


# --- the bag and the question set ----------------------------------------------------------------

def test_the_two_camera_bag_has_each_cameras_topics_and_the_heads_are_unchanged(tmp_path,
                                                                                 sample):
    from rosbags.highlevel import AnyReader

    bag = sample.parent / 'two_camera_bag'
    with AnyReader([bag]) as reader:
        counts = {name: info.msgcount for name, info in reader.topics.items()}
        side = [c for c in reader.connections if c.topic == SIDE_RAW_TOPIC]
        message = next(reader.deserialize(raw, c.msgtype)
                       for c, _, raw in reader.messages(connections=side))
        infos = [c for c in reader.connections if c.topic == SIDE_CAMERA_INFO_TOPIC]
        info = next(reader.deserialize(raw, c.msgtype)
                    for c, _, raw in reader.messages(connections=infos))
    assert counts == {RAW_TOPIC: 120, '/robot/status': 4, DEPTH_TOPIC: 120,
                      CAMERA_INFO_TOPIC: 120, SIDE_RAW_TOPIC: 120, SIDE_DEPTH_TOPIC: 120,
                      SIDE_CAMERA_INFO_TOPIC: 120}
    assert (message.width, message.height) == (SIDE_WIDTH, SIDE_HEIGHT)
    assert message.header.frame_id == 'side_camera_color_optical_frame'
    assert message.header.stamp.nanosec == round(SIDE_OFFSET * 1e9)
    assert list(info.k) == scene.side_camera_info(SIDE_WIDTH, SIDE_HEIGHT)['k']
    # The head's messages are those of the one-camera bag, byte for byte.
    one = write_sample_bag(tmp_path / 'one', seconds=0.5)
    two = write_sample_bag(tmp_path / 'two', seconds=0.5, side=True)
    with AnyReader([one]) as first, AnyReader([two]) as second:
        for topic in (RAW_TOPIC, COMPRESSED_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC):
            a = [(t, raw) for c in first.connections if c.topic == topic
                 for _, t, raw in first.messages(connections=[c])]
            b = [(t, raw) for c in second.connections if c.topic == topic
                 for _, t, raw in second.messages(connections=[c])]
            assert a == b, topic


def test_the_example_two_camera_set_is_the_generated_one():
    assert EXAMPLE.read_text(encoding='utf-8') == two_camera_set_yaml()


def test_the_two_camera_set_reads_cameras_per_item_and_the_truths_view(sample):
    questions = load_questions(sample)
    items = {item.id: item for item in questions.items}
    head = CameraTopics('head', RAW_TOPIC, DEPTH_TOPIC, CAMERA_INFO_TOPIC)
    side = CameraTopics('side', SIDE_RAW_TOPIC, SIDE_DEPTH_TOPIC, SIDE_CAMERA_INFO_TOPIC)
    assert all(item.camera_topics == (head, side) for item in questions.items)
    assert items['cube-seen'].cameras == ('head', 'side')
    assert items['cube-seen-head-only'].cameras == ('head',)
    assert items['marker-path-side'].cameras == ('side', 'head')
    assert items['cube-box-side'].truth_camera == 'side'
    assert items['basket-box-head'].truth_camera == 'head'
    assert questions.lifted and questions.sources() == [(str(sample.parent.resolve() /
                                                             'two_camera_bag'), RAW_TOPIC)]


def test_side_truth_in_metres_is_what_lifting_the_true_pixels_gives(sample):
    item = next(i for i in load_questions(sample).items if i.id == 'marker-path-side')
    track = DepthTrack(sample.parent / 'two_camera_bag', SIDE_DEPTH_TOPIC,
                       SIDE_CAMERA_INFO_TOPIC)
    parsed = ParsedAnswer('', '', ParseStatus.OK,
                          trajectories=(Trajectory('', item.expected.trajectory),))
    lifted, stamp = track.lift(parsed, (SIDE_WIDTH, SIDE_HEIGHT), START + 1.0 + SIDE_OFFSET,
                               START + 1.1, DepthSettings())
    assert stamp == pytest.approx(START + 1.0 + SIDE_OFFSET, abs=1e-6)
    points = np.array(lifted.trajectories[0].points)
    assert np.abs(points - np.array(item.expected.trajectory_3d)).max() < 0.01


def base_set(**fields):
    data = {'version': 1, 'source': '/bags/two', 'cameras': {
        'head': {'image': '/head/image', 'depth': '/head/depth', 'camera_info': '/head/info'},
        'wrist': '/wrist/image'},
        'items': [{'id': 'q', 'at': 1.0, 'mode': 'caption'}]}
    data.update(fields)
    return data


@pytest.mark.parametrize('change, message', [
    ({'items': [{'at': 1, 'mode': 'caption', 'cameras': ['head', 'tail']}]},
     "camera 'tail' is not one of the set's cameras (head, wrist)"),
    ({'items': [{'at': 1, 'mode': 'caption', 'cameras': []}]}, "'cameras' is empty"),
    ({'items': [{'at': 1, 'mode': 'caption', 'cameras': ['head', 'head']}]},
     "'cameras' names 'head' more than once"),
    ({'items': [{'at': 1, 'mode': 'grounding', 'object_name': 'cup', 'cameras': ['head'],
                 'expected': {'camera': 'wrist', 'boxes': [[1, 1, 5, 5]]}}]},
     "expected camera 'wrist' is not one the item asks about (head)"),
    ({'items': [{'at': 1, 'mode': 'grounding', 'object_name': 'cup', 'expected': {
        'camera': 'wrist', 'boxes': [[1, 1, 5, 5]], 'centres_3d': [[0, 0, 1]]}}]},
     "expected centres_3d is in camera 'wrist', which has no 'depth' and 'camera_info'"),
    ({'items': [{'at': 1, 'mode': 'question', 'task': 'ok?',
                 'expected': {'camera': 'head', 'verdict': 'yes'}}]},
     'expected camera names the view of points or boxes'),
    ({'topic': '/camera/image'}, "topic name one unnamed camera, but this set names its "
                                 "cameras in 'cameras'"),
    ({'cameras': {'head': {'depth': '/d'}}}, "camera 'head' needs its image topic"),
    ({'cameras': {'head': {'image': '/i', 'depth': '/d'}}},
     "camera 'head': lifting answers into 3D needs both 'depth' and 'camera_info'"),
    ({'cameras': {'head': {'image': '/i', 'lens': 'wide'}}},
     "camera 'head': unknown field 'lens'"),
    ({'cameras': {'2nd': '/i'}}, "'cameras': cameras[0] '2nd' is not a camera name"),
    ({'cameras': ['/a', '/b']}, "'cameras' must map camera names to their image topic"),
])
def test_question_set_camera_errors_say_what_to_change(change, message):
    with pytest.raises(QuestionSetError) as raised:
        parse_question_set(base_set(**change), '/sets/two.yaml')
    assert message in str(raised.value)


def test_cameras_without_a_camera_mapping_are_refused():
    data = {'version': 1, 'source': '/bags/one', 'topic': '/camera/image', 'items': [
        {'at': 1, 'mode': 'caption', 'cameras': ['head']},
        {'at': 1, 'mode': 'grounding', 'object_name': 'cup',
         'expected': {'camera': 'head', 'boxes': [[1, 1, 5, 5]]}}]}
    with pytest.raises(QuestionSetError) as raised:
        parse_question_set(data, '/sets/one.yaml')
    assert "'cameras' names cameras of the set" in str(raised.value)
    assert "expected camera 'head' names a camera, but the set has none" in str(raised.value)


def test_short_and_long_camera_forms_and_item_defaults():
    questions = parse_question_set(base_set(), '/sets/two.yaml')
    item = questions.items[0]
    assert item.camera_topics == (CameraTopics('head', '/head/image', '/head/depth',
                                               '/head/info'),
                                  CameraTopics('wrist', '/wrist/image'))
    assert item.cameras == ('head', 'wrist') and item.topic == '/head/image'
    assert item.depth_topic == '' and item.truth_camera == 'head'


# --- sources and replay --------------------------------------------------------------------------

def test_a_camera_topic_missing_from_the_bag_names_the_camera(sample):
    bag = sample.parent / 'two_camera_bag'
    with pytest.raises(SourceError, match="camera 'wrist': bag .* has no topic '/wrist/image'"):
        open_source(bag, cameras=[('head', RAW_TOPIC), ('wrist', '/wrist/image')])
    source = open_source(bag, cameras=[('head', RAW_TOPIC), ('side', SIDE_RAW_TOPIC)])
    frames = list(source.frames())
    assert [f.camera for f in frames[:4]] == ['head', 'side', 'head', 'side']
    assert [f.bag_time for f in frames] == sorted(f.bag_time for f in frames)
    assert source.describe()['cameras']['side'] == {
        'topic': SIDE_RAW_TOPIC, 'message_type': 'sensor_msgs/msg/Image', 'messages': 120}


BOX_IN_SIDE = '[{"bbox_2d": [500, 300, 700, 500], "label": "cube"}]'


def scripted() -> ScriptedBackend:
    return ScriptedBackend({'blue cube on the floor': 'yes', 'blue cube': BOX_IN_SIDE,
                            'grey basket': '[{"bbox_2d": [420, 400, 580, 600]}]'},
                           default='[{"point_2d": [500, 500]}, {"point_2d": [600, 600]}]',
                           family=ModelFamily.QWEN3_VL)


@pytest.fixture(scope='module')
def replayed(sample):
    backend = scripted()
    run = Replay(backend, ReplaySettings()).run(load_questions(sample))
    return run, backend


def test_replay_sends_synchronised_views_in_the_items_order(replayed):
    run, backend = replayed
    results = {r.item.id: r for r in run.results}
    assert all(r.status == 'answered' for r in run.results), [r.error for r in run.results]
    path = results['marker-path-side']
    assert [view.name for view in path.views] == ['side', 'head']
    assert [view.source_size for view in path.views] == [(SIDE_WIDTH, SIDE_HEIGHT), (320, 240)]
    side, head = path.views
    # Frame k of each view is the one nearest the same slot: 7 ms apart, nothing missing.
    assert np.allclose(np.array(side.stamps) - np.array(head.stamps), SIDE_OFFSET, atol=1e-6)
    assert side.missing == () and head.missing == ()
    assert head.stamps[-1] == pytest.approx(START + 1.0, abs=1e-6)
    assert path.frame_stamps == side.stamps, 'frame_stamps stay the first view'
    assert path.source_size == (SIDE_WIDTH, SIDE_HEIGHT)
    request = next(r for r in backend.requests if r.views and r.views[0].name == 'side')
    assert [view.name for view in request.views] == ['side', 'head']
    assert request.views[1].timestamps[0] == 0.0, 'one clock from the earliest frame'
    assert request.views[0].timestamps[0] == pytest.approx(SIDE_OFFSET, abs=1e-4)
    only_head = results['cube-seen-head-only']
    assert [view.name for view in only_head.views] == ['head']


def test_report_records_each_view_and_draws_the_truths_view(replayed, tmp_path):
    run, _ = replayed
    report = json.loads(write_report(run, tmp_path / 'report').read_text())
    item = next(i for i in report['items'] if i['id'] == 'cube-box-side')
    assert [view['name'] for view in item['views']] == ['head', 'side']
    assert item['views'][1]['image_size'] == [SIDE_WIDTH, SIDE_HEIGHT]
    assert item['views'][1]['missing_stamps'] == []
    assert item['cameras']['side']['image'] == SIDE_RAW_TOPIC
    assert item['picture_camera'] == 'side' and item['expected']['camera'] == 'side'
    assert (tmp_path / 'report' / item['image']).exists()


def test_the_report_picture_of_several_views_is_the_mosaic_with_the_truth_on_its_view(replayed):
    run, _ = replayed
    result = next(r for r in run.results if r.item.id == 'cube-box-side')
    # Only each view's newest frame is kept in the result, not the window's frames.
    assert [(view.name, len(view.frames)) for view in result.view_pictures] == [
        ('head', 1), ('side', 1)]
    assert [view.frames[0].stamp for view in result.view_pictures] == [
        view.stamps[-1] for view in result.views]
    picture = item_picture(result)
    # 320x240 head and 240x180 side, each 360 high, side by side in prompt order.
    assert picture.shape == (MOSAIC_TILE_HEIGHT, 480 + TILE_GAP + 480, 3)
    head, side = picture[:, :480], picture[:, 480 + TILE_GAP:]

    def pixels(tile, colour):
        return int(np.all(tile == colour, axis=-1).sum())

    # The truth (blue) is on the side view; the scripted box names no camera, so it is drawn
    # (green) on the first view, head, where scoring counted it.
    assert pixels(side, EXPECTED) > 100 and pixels(head, EXPECTED) == 0
    assert pixels(head, PREDICTED) > 100 and pixels(side, PREDICTED) == 0


def test_a_one_camera_items_picture_is_its_frame_as_before(tmp_path):
    bag = write_sample_bag(tmp_path / 'one', width=160, height=120, seconds=1.0)
    questions = parse_question_set({
        'version': 1, 'source': str(bag), 'topic': RAW_TOPIC, 'items': [
            {'id': 'q', 'at': 0.6, 'mode': 'question', 'task': 'ok?', 'max_new_tokens': 8}]},
        tmp_path / 'one.yaml')
    (result,) = Replay(scripted(), ReplaySettings()).run(questions).results
    assert result.status == 'answered' and result.views == () and result.view_pictures == ()
    picture = item_picture(result)
    assert picture.shape == (360, 480, 3), 'the frame enlarged to the picture width'


def test_an_answer_in_another_cameras_view_scores_as_a_miss_with_a_note(replayed):
    run, _ = replayed
    result = next(r for r in run.results if r.item.id == 'cube-box-side')
    # The scripted box names no camera: it is in the first view, 'head'; the truth is 'side'.
    assert result.score.correct is False
    assert "answer has points or boxes in camera 'head'; the truth is in camera 'side'" in \
        result.score.detail
    basket = next(r for r in run.results if r.item.id == 'basket-box-head')
    assert basket.score.correct is True and basket.score.correct_3d is True


def test_scoring_takes_the_boxes_in_the_truths_view(sample):
    item = next(i for i in load_questions(sample).items if i.id == 'cube-box-side')
    truth = item.expected.boxes[0]
    right = Box('cube', truth.x_min, truth.y_min, truth.x_max, truth.y_max, camera='side')
    wrong = dataclasses.replace(right, camera='head')
    parsed = ParsedAnswer('', '', ParseStatus.OK, boxes=(wrong, right))
    kept, note = in_truth_view(item, parsed)
    assert kept.boxes == (right,) and "camera 'head'" in note
    score = score_answer(item, parsed, (SIDE_WIDTH, SIDE_HEIGHT))
    assert score.correct is True and score.iou == pytest.approx(1.0)
    score = score_answer(item, dataclasses.replace(parsed, boxes=(wrong,)),
                         (SIDE_WIDTH, SIDE_HEIGHT))
    assert score.correct is False and 'no box in the answer' in score.detail
    assert "the truth is in camera 'side'" in score.detail
