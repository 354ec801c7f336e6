"""Answers lifted into 3D against hand-computed cameras and depth images (no ROS)."""

import dataclasses

import cv2
import numpy as np
import pytest

from cosmos_reason_ros.core.answers.overlay import draw_overlay, NO_DEPTH
from cosmos_reason_ros.core.answers.parsing import Box, Trajectory
from cosmos_reason_ros.core.depth.geometry import (
    CameraInfoData,
    CameraModel,
    DepthData,
    lift_answer,
    LiftError,
    LiftSettings,
    LiftStatus,
)

K_VGA = (500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0)
SIZE = (640, 480)


def camera_info(k=K_VGA, d=(), model='plumb_bob', size=SIZE, **fields) -> CameraInfoData:
    return CameraInfoData(k=k, d=d, distortion_model=model, width=size[0], height=size[1],
                          **fields)


def depth_data(metres: np.ndarray, encoding: str = '32FC1') -> DepthData:
    if encoding == '16UC1':
        values = np.round(np.nan_to_num(metres) * 1000).astype('<u2')
    else:
        values = metres.astype('<f4')
    height, width = values.shape
    return DepthData(encoding=encoding, width=width, height=height,
                     step=width * values.itemsize, data=values.tobytes())


def plane(z: float, size=SIZE) -> np.ndarray:
    return np.full((size[1], size[0]), z, dtype=np.float32)


def lift_trajectory(points, info, depth, size=SIZE, settings=LiftSettings()):
    lifted = lift_answer([Trajectory('path', tuple(points))], [], size, camera_info=info,
                         depth=depth, settings=settings)
    assert lifted.status is LiftStatus.OK, lifted.message
    return lifted.trajectories[0]


@pytest.mark.parametrize('encoding', ['32FC1', '16UC1'])
def test_pinhole_point_is_ray_times_depth(encoding):
    # x = (420 - 320) / 500 = 0.2, y = (290 - 240) / 500 = 0.1, at z = 2 m.
    trajectory = lift_trajectory([(420.0, 290.0), (320.0, 240.0)], camera_info(),
                                 depth_data(plane(2.0), encoding))
    np.testing.assert_allclose(trajectory.points, [(0.4, 0.2, 2.0), (0.0, 0.0, 2.0)],
                               atol=1e-6)
    assert trajectory.valid == (True, True)


DISTORTED = [
    ('plumb_bob', (-0.28, 0.09, 0.001, -0.0008, -0.01)),
    ('rational_polynomial', (0.4, -0.1, 0.0005, 0.0002, 0.01, 0.7, -0.05, 0.02)),
    ('equidistant', (-0.03, 0.01, -0.004, 0.0005)),
]


@pytest.mark.parametrize('model,d', DISTORTED, ids=[name for name, _ in DISTORTED])
def test_distorted_pixels_lift_back_to_the_points_opencv_projected(model, d):
    truth = np.array([[0.0, 0.0, 1.5], [0.5, -0.35, 1.5], [-0.6, 0.4, 1.5], [0.3, 0.2, 1.5]])
    k = np.array(K_VGA).reshape(3, 3)
    if model == 'equidistant':
        pixels, _ = cv2.fisheye.projectPoints(truth.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                              k, np.array(d))
    else:
        pixels, _ = cv2.projectPoints(truth, np.zeros(3), np.zeros(3), k, np.array(d))
    pixels = pixels.reshape(-1, 2)
    assert np.all((pixels >= 0) & (pixels < SIZE)), 'the test points must lie in the image'
    # Far corners move by pixels under this distortion: a pinhole would be far off.
    assert np.abs(pixels[2] - (k[0, 0] * -0.4 + k[0, 2])).max() > 3
    trajectory = lift_trajectory(pixels, camera_info(d=d, model=model),
                                 depth_data(plane(1.5)))
    np.testing.assert_allclose(trajectory.points, truth, atol=1e-6)


def test_a_point_on_a_depth_hole_is_invalid_and_its_neighbour_uses_valid_depths_only():
    depth = plane(2.0)
    depth[100:111, 100:111] = 0.0  # a hole (no return)
    depth[300:311, 300:311] = np.nan
    depth[200, 200] = 0.0
    depth[201, 201] = 100.0  # beyond max_depth
    trajectory = lift_trajectory([(105.0, 105.0), (305.0, 305.0), (200.0, 200.0), (99.0, 99.0)],
                                 camera_info(), depth_data(depth))
    assert trajectory.valid == (False, False, True, True)
    assert np.all(np.isnan(trajectory.points[0])) and np.all(np.isnan(trajectory.points[1]))
    assert trajectory.points[2][2] == pytest.approx(2.0)
    assert trajectory.points[3][2] == pytest.approx(2.0)


def test_a_point_on_a_depth_edge_takes_one_surface_never_a_depth_in_between():
    depth = plane(3.0)
    depth[:, :200] = 1.0
    z = lift_trajectory([(199.5, 240.0), (200.0, 240.0)], camera_info(),
                        depth_data(depth)).points
    assert {round(point[2], 6) for point in z} <= {1.0, 3.0}


def scene_with_box(foreground_columns, foreground_rows, z_near=1.0, z_far=3.0):
    depth = plane(z_far)
    depth[foreground_rows[0]:foreground_rows[1], foreground_columns[0]:foreground_columns[1]] = \
        z_near
    return depth


def lift_one_box(box: Box, depth: np.ndarray, settings=LiftSettings()):
    lifted = lift_answer([], [box], SIZE, camera_info=camera_info(), depth=depth_data(depth),
                         settings=settings)
    assert lifted.status is LiftStatus.OK
    return lifted.boxes[0]


@pytest.mark.parametrize('box', [
    Box('basket', 180, 140, 330, 260),  # the object fills 55 % of the box
    Box('basket', 140, 120, 360, 300),  # 25 %: still more than box_min_fraction
], ids=['object_fills_most', 'object_a_quarter'])
def test_a_box_over_a_depth_edge_measures_the_object_not_the_background(box):
    lifted = lift_one_box(box, scene_with_box((200, 300), (150, 250)))
    assert lifted.valid
    # Object: columns 200..299, rows 150..249 at 1 m; X = (u - 320) / 500, Y = (v - 240) / 500.
    assert lifted.centre[2] == pytest.approx(1.0)
    assert lifted.size[2] == pytest.approx(0.0)
    assert lifted.centre[0] == pytest.approx((249.5 - 320) / 500, abs=0.01)
    assert lifted.centre[1] == pytest.approx((199.5 - 240) / 500, abs=0.01)
    # 5th to 95th percentile of a 0.2 m wide surface.
    assert lifted.size[0] == pytest.approx(0.18, abs=0.015)
    assert lifted.size[1] == pytest.approx(0.18, abs=0.015)


def test_an_object_below_box_min_fraction_of_its_box_gives_way_to_the_background():
    box = Box('basket', 100, 100, 400, 300)  # the 100x100 object is 17 % of it
    lifted = lift_one_box(box, scene_with_box((200, 300), (150, 250)))
    assert lifted.centre[2] == pytest.approx(3.0)


def test_flying_pixels_in_front_of_a_box_are_ignored():
    depth = scene_with_box((200, 300), (150, 250))
    depth[150:160, 200:300] = 0.5  # 10 % of the box: edge noise nearer than the object
    lifted = lift_one_box(Box('tape', 200, 150, 300, 250), depth)
    assert lifted.centre[2] == pytest.approx(1.0)


def test_a_small_object_on_a_noisy_table_is_its_own_surface_and_the_table_stays_one():
    rng = np.random.default_rng(0)
    # A table at 1.5 m with 1 % depth noise (a stereo camera at this range) stays one surface.
    noisy = (1.5 + rng.normal(0.0, 0.015, (SIZE[1], SIZE[0]))).astype(np.float32)
    table = lift_one_box(Box('table', 100, 100, 500, 400), noisy)
    assert table.centre[2] == pytest.approx(1.5, abs=0.005), 'noise does not split one surface'
    # A 5 cm puck on a table, 3 mm noise on both (a good sensor at 1.5 m): the puck's top is a
    # surface of its own, although it covers only 73 % of its box.
    depth = (1.5 + rng.normal(0.0, 0.003, (SIZE[1], SIZE[0]))).astype(np.float32)
    depth[200:260, 300:360] -= 0.05
    puck = lift_one_box(Box('puck', 295, 195, 365, 265), depth)
    assert puck.centre[2] == pytest.approx(1.45, abs=0.002)
    merged = lift_one_box(Box('puck', 295, 195, 365, 265), depth,
                          dataclasses.replace(LiftSettings(), box_edge_gap=0.1))
    assert merged.centre[2] > 1.46, 'a 10 cm gap measures the puck with the table'


def test_a_box_over_a_hole_is_invalid_with_its_count():
    depth = plane(2.0)
    depth[100:200, 100:200] = 0.0
    depth[150, 150:155] = 2.0
    every_pixel = LiftSettings(box_max_samples=100 * 100)
    lifted = lift_one_box(Box('gone', 100, 100, 200, 200), depth, every_pixel)
    assert not lifted.valid and lifted.depth_pixels == 5
    assert np.all(np.isnan(lifted.centre))


def test_intrinsics_scale_from_the_1280x720_calibration_to_a_640x360_stream():
    info = camera_info(k=(910.0, 0.0, 640.0, 0.0, 912.0, 360.0, 0.0, 0.0, 1.0), size=(1280, 720))
    camera = CameraModel.for_image(info, (640, 360))
    np.testing.assert_allclose(camera.k, [[455.0, 0, 320.0], [0, 456.0, 180.0], [0, 0, 1]])
    # The same ray from either image: pixel (960, 540) at full size is (480, 270) in the stream.
    full = CameraModel.for_image(info, (1280, 720))
    np.testing.assert_allclose(camera.rays(np.array([[480.0, 270.0]])),
                               full.rays(np.array([[960.0, 540.0]])))


def test_binning_and_roi_apply_as_image_geometry_does():
    info = camera_info(k=(910.0, 0.0, 640.0, 0.0, 910.0, 360.0, 0.0, 0.0, 1.0),
                       size=(1280, 720), binning_x=2, binning_y=2)
    np.testing.assert_allclose(CameraModel.for_image(info, (640, 360)).k[:2],
                               [[455.0, 0, 320.0], [0, 455.0, 180.0]])
    roi = camera_info(k=(910.0, 0.0, 640.0, 0.0, 910.0, 360.0, 0.0, 0.0, 1.0),
                      size=(1280, 720), roi=(100, 50, 640, 360))
    np.testing.assert_allclose(CameraModel.for_image(roi, (640, 360)).k[:2],
                               [[910.0, 0, 540.0], [0, 910.0, 310.0]])


@pytest.mark.parametrize('info,size,words', [
    (camera_info(size=(1280, 720), binning_x=2, binning_y=2), (320, 180), 'ambiguous'),
    (camera_info(size=(1280, 720), roi=(100, 50, 640, 360)), (320, 180), 'ambiguous'),
    (camera_info(size=(1280, 720)), (640, 480), 'cropped, not scaled'),
    (camera_info(k=(0.0,) * 9), SIZE, 'all zeros'),
    (camera_info(model='double_sphere', d=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)), SIZE,
     "'double_sphere' is not one OpenCV can undo"),
    (camera_info(model='equidistant', d=(0.1, 0.2)), SIZE, 'needs 4 coefficients'),
    (camera_info(size=(0, 0)), SIZE, 'calibration size'),
], ids=['binning', 'roi', 'aspect', 'k_zero', 'unknown_model', 'fisheye_length', 'no_size'])
def test_camera_info_that_cannot_describe_the_image_is_refused_with_the_fix(info, size, words):
    with pytest.raises(LiftError, match=words) as caught:
        CameraModel.for_image(info, size)
    assert caught.value.status is LiftStatus.INVALID_CAMERA_INFO
    lifted = lift_answer([Trajectory('path', ((1.0, 1.0),))], [], size, camera_info=info,
                         depth=depth_data(plane(1.0, size)))
    assert lifted.status is LiftStatus.INVALID_CAMERA_INFO and words in lifted.message


def test_bad_depth_and_missing_inputs_give_a_status_and_no_points():
    answer = ([Trajectory('path', ((10.0, 10.0),))], [])
    bgr = DepthData('bgr8', 640, 480, 640 * 3, bytes(640 * 480 * 3))
    short = DepthData('16UC1', 640, 480, 1280, bytes(100))
    cases = [
        (camera_info(), bgr, LiftStatus.DEPTH_ENCODING, "'bgr8' is not supported"),
        (camera_info(), short, LiftStatus.DEPTH_ENCODING, 'does not fit'),
        (camera_info(), depth_data(plane(1.0, (320, 240))), LiftStatus.DEPTH_SIZE,
         'aligned'),
        (camera_info(), None, LiftStatus.NO_DEPTH, 'depth.tolerance'),
        (None, depth_data(plane(1.0)), LiftStatus.NO_CAMERA_INFO, 'camera_info'),
    ]
    for info, depth, status, words in cases:
        lifted = lift_answer(*answer, SIZE, camera_info=info, depth=depth)
        assert (lifted.status, lifted.trajectories) == (status, ()), lifted
        assert words in lifted.message
    assert lift_answer([], [], SIZE, camera_info=None, depth=None).status is LiftStatus.NONE


def test_rows_with_padding_and_big_endian_depth_are_read_in_place():
    values = np.full((4, 6), 1234, dtype='>u2')
    padded = np.zeros((4, 8), dtype='>u2')
    padded[:, :6] = values
    depth = DepthData('16UC1', 6, 4, 16, padded.tobytes(), is_bigendian=True)
    info = camera_info(k=(5.0, 0, 3.0, 0, 5.0, 2.0, 0, 0, 1.0), size=(6, 4))
    lifted = lift_answer([Trajectory('p', ((3.0, 2.0),))], [], (6, 4), camera_info=info,
                         depth=depth)
    assert lifted.trajectories[0].points[0] == pytest.approx((0.0, 0.0, 1.234))


def test_the_debug_image_crosses_out_points_without_depth():
    image = np.zeros((120, 160, 3), np.uint8)
    drawn = draw_overlay(image, (320, 240), no_depth=[(100.0, 60.0)])
    # Source (100, 60) is (50, 30) on the half-size image; the cross is red there only.
    assert tuple(drawn[30, 50]) == NO_DEPTH
    assert not drawn[:, 80:].any()
