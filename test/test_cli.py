"""`cosmos-reason parse` and `run`: the core on files, without ROS."""

import io
import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scripted_backend import ScriptedBackend
import yaml

from cosmos_reason_ros import cli
from cosmos_reason_ros.core.answers.modes import ModelFamily
from cosmos_reason_ros.demo.sample_scene import render_scene

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
SHARED_CLIP = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'av_turn_right.mp4'


def _run(argv, capsys, stdin=''):
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = cli.main(argv)
    finally:
        sys.stdin = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_parse_maps_a_real_trajectory_to_source_pixels(capsys):
    text = (FIXTURES / 'reason2_trajectory_tape.txt').read_text()
    code, out, _ = _run(['parse', '--mode', 'trajectory', '--image-size', '1910x1190'], capsys,
                        stdin=text)

    parsed = json.loads(out)
    assert code == 0 and parsed['status'] == 'ok'
    assert parsed['trajectories'][0]['points'][0] == pytest.approx([372.45, 749.7])
    assert parsed['reasoning'].startswith('I will move my left gripper')


def test_parse_of_garbage_reports_failure_not_an_exception(capsys):
    code, out, _ = _run(['parse', '--mode', 'grounding', '--image-size', '640x480'], capsys,
                        stdin='no boxes here {')
    parsed = json.loads(out)
    assert code == 0 and parsed['status'] == 'failed' and parsed['error']


@pytest.mark.parametrize('reasoning, status', [(True, 'truncated'), (False, 'failed')])
def test_parse_of_an_edge_answer_cut_off_inside_its_opened_reasoning(capsys, reasoning, status):
    argv = ['parse', '--mode', 'trajectory', '--family', 'cosmos3_edge', '--image-size',
            '640x480'] + (['--reasoning'] if reasoning else [])
    code, out, _ = _run(argv, capsys, stdin='The gripper should move from [195, 630] to')
    parsed = json.loads(out)
    assert code == 0 and parsed['status'] == status


@pytest.fixture
def image_folder(tmp_path):
    for index in range(6):
        frame = cv2.cvtColor(render_scene(index * 0.25, 160, 120), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(tmp_path / f'frame_{index:03d}.png'), frame)
    return tmp_path


@pytest.mark.parametrize('checkpoint', ['tiny_qwen3_checkpoint', 'tiny_edge_checkpoint',
                                        'tiny_omni_checkpoint'])
def test_run_on_an_image_folder_answers_with_the_folder_timing(image_folder, checkpoint,
                                                                request, capsys):
    model = request.getfixturevalue(checkpoint)
    code, out, _ = _run(['run', str(image_folder), '--model', str(model),
                         '--device', 'cpu', '--task', 'Where does the marker go?',
                         '--max-new-tokens', '8', '--greedy'], capsys)

    printed = json.loads(out)
    assert code == 0 and printed['status'] == 'succeeded'
    result = printed['output']
    assert result['frame_stamps'] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    assert (result['image_width'], result['image_height']) == (160, 120)
    assert result['completion_tokens'] == 8
    assert result['raw_text'] and result['parse_status'] in ('ok', 'failed')
    # The words of the action's result message, as `ask` prints it.
    assert printed['message'].startswith('8 tokens in ')
    assert result['constrained'] is False and result['reasoning_cut'] is False
    assert result['answer_cut'] is True  # 8 tokens of a random model: stopped at the budget


def test_run_on_a_missing_file_says_so(tiny_qwen3_checkpoint, capsys):
    code, out, err = _run(['run', '/nonexistent/clip.mp4', '--model',
                         str(tiny_qwen3_checkpoint)], capsys)
    assert code == 2 and "'/nonexistent/clip.mp4' does not exist" in err
    assert json.loads(out)['status'] == 'invalid_goal'


@pytest.mark.skipif(not SHARED_CLIP.exists(), reason='shared/data is not beside this checkout')
def test_run_on_the_real_clip_samples_it_at_4_fps(tiny_qwen3_checkpoint, capsys):
    code, out, _ = _run(['run', str(SHARED_CLIP), '--model', str(tiny_qwen3_checkpoint),
                         '--device', 'cpu', '--task', 'Is it safe to turn right?',
                         '--max-new-tokens', '8', '--greedy', '--max-pixels', '50000'], capsys)

    result = json.loads(out)['output']
    assert code == 0
    assert (result['image_width'], result['image_height']) == (1008, 560)
    gaps = np.diff(result['frame_stamps'])
    assert len(result['frame_stamps']) % 2 == 0 and np.allclose(gaps, 0.25, atol=0.02)


def test_run_without_torch_says_what_to_install(tmp_path):
    image = tmp_path / 'frame.png'
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    # sys.modules[name] = None makes `import name` fail, as on a machine without torch.
    script = ('import sys\n'
              "sys.modules['torch'] = None\n"
              'from cosmos_reason_ros import cli\n'
              f"sys.exit(cli.main(['run', {str(image)!r}, '--model', 'any']))\n")
    completed = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                               timeout=120, cwd=pathlib.Path(__file__).resolve().parents[1])

    assert completed.returncode == 2, completed.stderr
    assert "pip install 'cosmos_reason_ros[model]'" in completed.stderr


@pytest.mark.parametrize('checkpoint, family', [('tiny_edge_checkpoint', 'cosmos3_edge'),
                                                ('tiny_omni_checkpoint', 'cosmos3_omni')])
def test_eval_runs_the_cosmos3_reasoners_on_the_sample_bag(checkpoint, family, request,
                                                           tmp_path, capsys):
    from cosmos_reason_ros.demo.sample_data import write_sample

    questions_path = write_sample(tmp_path / 'sample')
    data = yaml.safe_load(questions_path.read_text())
    data['items'] = data['items'][:2]
    questions = tmp_path / 'q.yaml'
    questions.write_text(yaml.safe_dump(data))
    code, out, _ = _run(['eval', str(questions_path.parent / 'sample_bag'), '--questions',
                         str(questions), '--model', str(request.getfixturevalue(checkpoint)),
                         '--device', 'cpu', '--dtype', 'fp32', '--quiet', '--out',
                         str(tmp_path / 'report')], capsys)
    summary = json.loads(out)
    assert code == 0 and summary['answered'] == 2 and summary['complete']
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert report['run']['model']['family'] == family


# --depth: an answer lifted to 3D from files (scripted model, known 2D) ----------------------

DISTORTION = [-0.25, 0.07, 0.001, -0.001, 0.0]
K_160X120 = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
TRUTH_3D = np.array([[-0.5, -0.3, 2.0], [0.3, 0.2, 2.0]])


@pytest.fixture
def depth_files(tmp_path, monkeypatch):
    """A 160x120 frame, its 16-bit depth (2 m plane, a hole) and a 320x240 calibration."""
    frame = tmp_path / 'frame.png'
    cv2.imwrite(str(frame), cv2.cvtColor(render_scene(0.0, 160, 120), cv2.COLOR_RGB2BGR))
    depth = np.full((120, 160), 2000, np.uint16)
    depth[10:31, 10:31] = 0
    cv2.imwrite(str(tmp_path / 'depth.png'), depth)
    (tmp_path / 'camera.yaml').write_text(yaml.safe_dump({
        'image_width': 320, 'image_height': 240, 'camera_name': 'color',
        'camera_matrix': {'rows': 3, 'cols': 3,
                          'data': [300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0]},
        'distortion_model': 'plumb_bob',
        'distortion_coefficients': {'rows': 1, 'cols': 5, 'data': DISTORTION}}))
    pixels, _ = cv2.projectPoints(TRUTH_3D, np.zeros(3), np.zeros(3), K_160X120,
                                  np.array(DISTORTION))
    points = [*pixels.reshape(-1, 2), (20.0, 20.0)]
    answer = json.dumps([{'point_2d': [float(u) / 160 * 1000, float(v) / 120 * 1000],
                          'label': 'gripper trajectory'} for u, v in points])
    loads = []

    def load_backend(args):
        loads.append(args)
        return ScriptedBackend({}, default=answer, family=ModelFamily.QWEN3_VL)

    monkeypatch.setattr(cli, '_load_backend', load_backend)
    return tmp_path, loads


def test_run_lifts_the_trajectory_with_the_depth_image_and_calibration(depth_files, capsys):
    folder, _ = depth_files
    code, out, err = _run(['run', str(folder / 'frame.png'), '--mode', 'trajectory', '--task',
                          'Move the tape', '--depth', str(folder / 'depth.png'),
                          '--camera-info', str(folder / 'camera.yaml')], capsys)
    assert code == 0, err
    lift = json.loads(out)['lift']
    assert lift['status'] == 'ok'
    trajectory = lift['trajectories'][0]
    assert trajectory['valid'] == [True, True, False]
    np.testing.assert_allclose(trajectory['points'][:2], TRUTH_3D, atol=1e-3)
    assert trajectory['points'][2] == [None, None, None]


def test_run_with_pinhole_intrinsics(depth_files, capsys):
    folder, _ = depth_files
    code, out, err = _run(['run', str(folder / 'frame.png'), '--mode', 'trajectory', '--task',
                          'Move the tape', '--depth', str(folder / 'depth.png'),
                          '--intrinsics', '150,150,80,60'], capsys)
    assert code == 0, err
    trajectory = json.loads(out)['lift']['trajectories'][0]
    assert trajectory['valid'] == [True, True, False]
    assert [point[2] for point in trajectory['points']] == [2.0, 2.0, None]


@pytest.mark.parametrize('extra,words', [
    (['--depth', 'DIR/frame.png', '--intrinsics', '1,1,1,1'], 'one channel'),
    (['--depth', 'DIR/missing.png', '--intrinsics', '1,1,1,1'], 'cannot read the depth image'),
    (['--depth', 'DIR/depth.png'], '--camera-info FILE or --intrinsics'),
    (['--camera-info', 'DIR/camera.yaml'], 'need --depth'),
    (['--depth', 'DIR/depth.png', '--camera-info', 'DIR/frame.png'], 'calibration'),
], ids=['colour_as_depth', 'missing', 'no_camera', 'no_depth', 'bad_yaml'])
def test_bad_depth_inputs_are_refused_before_the_model_loads(depth_files, capsys, extra, words):
    folder, loads = depth_files
    argv = ['run', str(folder / 'frame.png'), '--mode', 'trajectory', '--task', 'Move'] + [
        part.replace('DIR', str(folder)) for part in extra]
    code, _, err = _run(argv, capsys)
    assert code == 2 and words in err and not loads


@pytest.fixture
def two_views(tmp_path, monkeypatch):
    """The sample scene from the head (a folder) and from the side (a folder of another size),
    and a scripted backend that records what it was sent.
    """
    from cosmos_reason_ros.demo.sample_scene import render_side_scene

    head, side = tmp_path / 'head', tmp_path / 'side'
    head.mkdir(), side.mkdir()
    for index in range(4):
        cv2.imwrite(str(head / f'{index:03d}.png'),
                    cv2.cvtColor(render_scene(index * 0.25, 160, 120), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(side / f'{index:03d}.png'),
                    cv2.cvtColor(render_side_scene(index * 0.25, 120, 90), cv2.COLOR_RGB2BGR))
    backend = ScriptedBackend({}, default='yes', family=ModelFamily.QWEN3_VL)
    monkeypatch.setattr(cli, '_load_backend', lambda args: backend)
    return head, side, backend


def test_run_with_named_views_sends_each_in_order_and_prints_them(two_views, capsys):
    head, side, backend = two_views
    code, out, err = _run(['run', '--view', f'side={side}', '--view', f'head={head}',
                           '--mode', 'question', '--task', 'Is there a blue cube?'], capsys)
    assert code == 0, err
    printed = json.loads(out)['output']
    assert [view['name'] for view in printed['views']] == ['side', 'head']
    assert [(v['image_width'], v['image_height']) for v in printed['views']] == [(120, 90),
                                                                                (160, 120)]
    assert printed['views'][1]['frame_stamps'] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert printed['views'][0]['missing_stamps'] == []
    assert printed['frame_stamps'] == printed['views'][0]['frame_stamps'], 'the first view'
    assert printed['verdict'] == 'yes'
    (request,) = backend.requests
    assert [view.name for view in request.views] == ['side', 'head']
    assert [view.frames[0].shape[:2] for view in request.views] == [(90, 120), (120, 160)]


def test_run_with_one_positional_media_stays_one_unnamed_view(two_views, capsys):
    head, _, backend = two_views
    code, out, err = _run(['run', str(head), '--task', 'What happens?'], capsys)
    assert code == 0, err
    assert 'views' not in json.loads(out)['output']
    assert backend.requests[0].views == ()


@pytest.mark.parametrize('argv, words', [
    (['--view', 'head'], "--view 'head': write NAME=MEDIA"),
    (['--view', 'head=a', '--view', 'head=b'], "--view names camera 'head' twice"),
    (['--view', '2nd=a'], "--view: cameras[0] '2nd' is not a camera name"),
    (['MEDIA', '--view', 'head=a'], 'give the media (one view) or --view NAME=MEDIA'),
    ([], 'give the media (one view) or --view NAME=MEDIA'),
    (['--view', 'head=HEAD', '--view', 'side=/nonexistent'], "'/nonexistent' does not exist"),
    (['--view', 'head=HEAD', '--view', 'side=HEAD', '--depth', 'd.png'],
     '--depth lifts the answer of one view'),
])
def test_bad_views_are_refused_before_the_model_loads(two_views, capsys, argv, words):
    head, _, backend = two_views
    argv = [part.replace('MEDIA', str(head)).replace('HEAD', str(head)) for part in argv]
    code, out, err = _run(['run', *argv], capsys)
    assert code == 2 and words in err
    assert json.loads(out)['status'] == 'invalid_goal' and not backend.requests
