"""Evaluation in 3D: the sample bag's depth and CameraInfo, answers lifted as the node lifts
them, and errors in metres in the report.

The model is a scripted test double that answers the expected pixels (the tiny checkpoints
cannot aim), so a right 2D answer must come out right in metres, and a wrong match must show.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
from scripted_backend import ScriptedBackend
import yaml

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.depth.geometry import DepthImage, LiftSettings
from cosmos_reason_ros.core.evaluation.asking import ReplaySettings
from cosmos_reason_ros.core.evaluation.depth_track import DepthSettings, DepthTrack
from cosmos_reason_ros.core.evaluation.question_file import load_questions
from cosmos_reason_ros.core.evaluation.replay import Replay
from cosmos_reason_ros.core.evaluation.report import load_report, write_report
from cosmos_reason_ros.demo.sample_data import (
    CAMERA_INFO_TOPIC,
    COMPRESSED_DEPTH_TOPIC,
    DEPTH_DELAY,
    DEPTH_TOPIC,
    HEIGHT,
    START,
    WIDTH,
    write_sample,
    write_sample_bag,
)
from cosmos_reason_ros.demo.sample_scene import (
    basket_box,
    BASKET_DEPTH,
    FLOOR_DEPTH,
    MARKER_DEPTH,
    marker_position,
)

SETTINGS = ReplaySettings(window=WindowConfig(max_pixels=WIDTH * HEIGHT))
TRAJECTORIES = ('marker-path-1s', 'marker-path-2.5s', 'marker-into-basket')
GROUNDINGS = ('basket-box', 'marker-box')


def qwen3_points(points) -> str:
    """A Reason2 trajectory answer: 0-1000 coordinates of the source image."""
    items = ', '.join(f'{{"point_2d": [{x / WIDTH * 1000:.3f}, {y / HEIGHT * 1000:.3f}], '
                      '"label": "path"}' for x, y in points)
    return f'```json\n[{items}]\n```'


def qwen3_box(box) -> str:
    """A Reason2 grounding answer: the box in 0-1000 coordinates of the source image."""
    scaled = [box.x_min / WIDTH * 1000, box.y_min / HEIGHT * 1000, box.x_max / WIDTH * 1000,
              box.y_max / HEIGHT * 1000]
    return f'```json\n[{{"bbox_2d": {scaled}, "label": "object"}}]\n```'


def oracle(questions, shift=(0.0, 0.0)) -> ScriptedBackend:
    """Answers every trajectory and box item with its expected pixels (moved by `shift`)."""
    paths = {item.id: [(x + shift[0], y + shift[1]) for x, y in item.expected.trajectory]
             for item in questions.items if item.id in TRAJECTORIES}
    boxes = {item.id: item.expected.boxes[0] for item in questions.items
             if item.id in GROUNDINGS}
    return ScriptedBackend({
        'along its path': [qwen3_points(paths['marker-path-1s']),
                           qwen3_points(paths['marker-path-2.5s'])],
        'into the grey basket': qwen3_points(paths['marker-into-basket']),
        'bounding box of the grey basket': qwen3_box(boxes['basket-box']),
        'bounding box of the red marker': qwen3_box(boxes['marker-box'])},
        default='no', family=ModelFamily.QWEN3_VL)


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp('sample'))


def test_the_sample_bag_holds_depth_and_calibration_of_the_rendered_scene(sample):
    track = DepthTrack(sample.parent / 'sample_bag', DEPTH_TOPIC, CAMERA_INFO_TOPIC)
    assert track.describe() == {'depth_topic': DEPTH_TOPIC, 'depth_frames': 120,
                                'camera_info_topic': CAMERA_INFO_TOPIC, 'camera_infos': 120}
    depth, stamp = track.depth_for(START + 3.0, START + 3.0, tolerance=0.02)
    assert stamp == pytest.approx(START + 3.0 + DEPTH_DELAY, abs=1e-6)
    assert depth.encoding == '16UC1' and (depth.width, depth.height) == (WIDTH, HEIGHT)
    metres = DepthImage.from_data(depth)
    x, y = marker_position(3.0 + DEPTH_DELAY, WIDTH, HEIGHT)
    x1, y1, x2, y2 = basket_box(WIDTH, HEIGHT)
    row = metres.metres(slice(None), slice(None), LiftSettings())
    assert row[round(y), round(x)] == pytest.approx(MARKER_DEPTH)
    assert row[(y1 + y2) // 2, (x1 + x2) // 2] == pytest.approx(BASKET_DEPTH)
    assert row[2, 2] == pytest.approx(FLOOR_DEPTH)
    info = track.camera_info_at(START + 3.0)
    assert info.distortion_model == 'plumb_bob' and any(info.d)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.frame_id == 'camera_color_optical_frame'


def test_right_pixels_land_within_a_millimetre_of_the_scene_in_metres(sample, tmp_path):
    questions = load_questions(sample)
    run = Replay(oracle(questions), SETTINGS).run(questions)
    results = {result.item.id: result for result in run.results}
    for name in TRAJECTORIES:
        result = results[name]
        assert result.status == 'answered', result.error
        assert result.score.correct and result.score.correct_3d, result.score
        assert result.score.trajectory_3d.mean_m < 1e-3
        assert result.score.trajectory_3d.without_depth == 0
        # The depth frame is the one of the answer's frame: 3 ms after it.
        assert result.depth_stamp - result.frame_stamps[-1] == pytest.approx(DEPTH_DELAY,
                                                                              abs=1e-6)
    for name in GROUNDINGS:
        result = results[name]
        assert result.score.correct and result.score.correct_3d, result.score
    # A box is measured on its nearest surface: the basket's top, 30 cm above the floor, and
    # the marker's, 5 cm above it (more than depth.box_edge_gap). The far edges of a box are
    # exclusive pixel bounds: half a pixel is 2.4 mm at 1.2 m.
    for name, depth in (('basket-box', BASKET_DEPTH), ('marker-box', MARKER_DEPTH)):
        assert results[name].score.centres_3d.mean_m < 5e-3
        assert results[name].lifted.boxes[0].centre[2] == pytest.approx(depth)
    # In 3D the path starts on the top of the marker and ends on the top of the basket.
    into = results['marker-into-basket'].lifted.trajectories[0].points
    assert (into[0][2], into[-1][2]) == (pytest.approx(MARKER_DEPTH), pytest.approx(BASKET_DEPTH))

    path = write_report(run, tmp_path / 'report')
    report = load_report(path)
    summary = report['summary']
    assert (summary['accuracy_3d']['k'], summary['accuracy_3d']['n']) == (5, 5)
    assert summary['centre_error_3d']['max'] < 5e-3
    assert summary['trajectory_error_3d']['mean_m']['max'] < 1e-3
    assert summary['lifting'] == {'ok': 5}
    item = next(item for item in report['items'] if item['id'] == 'marker-into-basket')
    assert item['expected']['trajectory_3d'][1][2] == pytest.approx(BASKET_DEPTH)
    assert item['lifted']['status'] == 'ok' and all(item['lifted']['trajectories'][0]['valid'])
    assert report['run']['sources'][0]['depth'][0]['depth_frames'] == 120
    markdown = (path.parent / 'report.md').read_text()
    assert '| accuracy: trajectory in 3D | 5/5' in markdown
    assert '| box centre error in 3D (p50 / p90) |' in markdown
    assert 'in 3D correct: mean error 0.' in markdown


def test_compressed_depth_in_the_bag_lifts_like_the_raw_depth(sample):
    raw = load_questions(sample)
    compressed = load_questions(sample, depth_topic=COMPRESSED_DEPTH_TOPIC)
    ours = Replay(oracle(raw), SETTINGS).run(raw).results
    theirs = Replay(oracle(compressed), SETTINGS).run(compressed).results
    lifted = [(a.lifted, b.lifted) for a, b in zip(ours, theirs) if a.item.id in TRAJECTORIES]
    assert len(lifted) == 3
    for a, b in lifted:
        assert a.status.name == b.status.name == 'OK'
        np.testing.assert_array_equal(a.trajectories[0].points, b.trajectories[0].points)


def test_a_path_off_by_ten_pixels_is_wrong_in_metres_but_right_in_pixels(sample):
    questions = load_questions(sample)
    run = Replay(oracle(questions, shift=(10.0, 0.0)), SETTINGS).run(questions)
    result = next(r for r in run.results if r.item.id == 'marker-into-basket')
    # 10 px is 0.03 of the diagonal: right in the image. At 1.2-1.45 m with fx 250 px it is
    # about 5-6 cm, and the shifted start falls off the marker onto the floor: wrong in 3D.
    assert result.score.trajectory.mean_fraction < 0.1
    assert result.score.correct_3d is False and result.score.correct is False
    assert result.score.trajectory_3d.mean_m > 0.05


def test_no_depth_within_the_tolerance_is_a_per_item_status_not_a_guess(sample):
    questions = load_questions(sample)
    settings = dataclasses.replace(SETTINGS, depth=DepthSettings(tolerance=0.001))
    run = Replay(oracle(questions), settings).run(questions)
    result = next(r for r in run.results if r.item.id == 'marker-path-1s')
    assert result.status == 'answered' and result.parsed.trajectories
    assert result.lifted.status.name == 'NO_DEPTH' and result.depth_stamp is None
    assert result.score.correct is False and result.score.trajectory.mean_px < 0.5
    assert 'not lifted into 3D (no_depth)' in result.score.detail


def test_a_bag_without_the_depth_topic_fails_the_lifted_items_and_names_the_topics(tmp_path):
    bag = write_sample_bag(tmp_path / 'bag', seconds=1.0, compressed=False, depth=False)
    questions = load_questions(write_questions(tmp_path, bag))
    run = Replay(oracle_for_one(), SETTINGS).run(questions)
    result, = run.results
    assert result.status == 'error' and result.error_code == 'source'
    assert (f"depth_topic '{DEPTH_TOPIC}' is not in it; its Image or CompressedImage topics: "
            '/camera/image_raw' in result.error)
    assert '--depth-topic' in result.error


def write_questions(folder, bag):
    path = folder / 'q.yaml'
    path.write_text(yaml.safe_dump({
        'version': 1, 'source': str(bag), 'topic': '/camera/image_raw',
        'depth_topic': DEPTH_TOPIC, 'camera_info_topic': CAMERA_INFO_TOPIC,
        'items': [{'id': 'go', 'at': 0.5, 'mode': 'trajectory', 'task': 'into the grey basket',
                   'expected': {'trajectory_3d': [[0.0, 0.0, 1.2]]}}]}))
    return path


def oracle_for_one() -> ScriptedBackend:
    return ScriptedBackend({'into the grey basket': qwen3_points([(160.0, 120.0)])},
                           family=ModelFamily.QWEN3_VL)


def test_cli_eval_checks_the_depth_topics_before_loading_a_model(sample, tmp_path, capsys):
    common = ['eval', str(sample.parent / 'sample_bag'), '--questions', str(sample),
              '--model', str(tmp_path / 'no-model'), '--quiet', '--out', str(tmp_path / 'r')]
    assert cli.main(common + ['--depth-topic', '/camera/depth']) == 2
    error = capsys.readouterr().err
    assert ("depth_topic '/camera/depth' is not in it; its Image or CompressedImage topics: "
            f'{DEPTH_TOPIC}, {COMPRESSED_DEPTH_TOPIC}, /camera/image_raw, ') in error
    assert cli.main(common + ['--camera-info-topic', '/camera/image_raw']) == 2
    assert ("camera_info_topic '/camera/image_raw' is a sensor_msgs/msg/Image; its CameraInfo "
            f'topics: {CAMERA_INFO_TOPIC}') in capsys.readouterr().err


def test_json_report_writes_points_without_depth_as_null(sample, tmp_path):
    questions = load_questions(sample)
    # A path off the right edge of the image: the points there have no depth.
    backend = ScriptedBackend({'into the grey basket': qwen3_points([(160.0, 120.0),
                                                                      (400.0, 120.0)])},
                              default='no', family=ModelFamily.QWEN3_VL)
    only = dataclasses.replace(questions, items=tuple(
        item for item in questions.items if item.id == 'marker-into-basket'))
    path = write_report(Replay(backend, SETTINGS).run(only), tmp_path / 'r')
    item, = json.loads(path.read_text())['items']
    lifted = item['lifted']['trajectories'][0]
    assert lifted['valid'] == [True, False] and lifted['points'][1] == [None, None, None]
    assert item['score']['trajectory_3d']['without_depth'] == 1
    assert not math.isnan(item['score']['trajectory_3d']['mean_m'])
    assert np.isfinite(lifted['points'][0]).all()
