"""Answers in 3D: the pixels of a 2D answer lifted into the colour camera's optical frame.

Intrinsics and distortion come from a CameraInfo (as plain fields), depth from an image aligned
to the colour camera; a pixel becomes a ray (OpenCV's undistortPoints) times the depth measured
around it. A pixel without a valid depth stays invalid: no depth is ever invented.
"""

from collections.abc import Sequence
import dataclasses
import enum
from typing import Any

import cv2
import numpy as np

from cosmos_reason_ros.core.answers.parsing import Box, Trajectory

Size = tuple[int, int]
Vector = tuple[float, float, float]

PLUMB_BOB = 'plumb_bob'
RATIONAL_POLYNOMIAL = 'rational_polynomial'
EQUIDISTANT = 'equidistant'
SUPPORTED_DISTORTION = (PLUMB_BOB, RATIONAL_POLYNOMIAL, EQUIDISTANT)
"""CameraInfo distortion models OpenCV can undo (sensor_msgs/distortion_models names)."""
_BROWN_LENGTHS = (4, 5, 8, 12, 14)  # what cv2.undistortPoints accepts
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
"""Undistortion iterates; OpenCV's default 5 steps leave pixels of error at the image corners
of a strongly distorted lens."""
_ASPECT_TOLERANCE = 0.01

DEPTH_SCALES = {'16UC1': 1e-3, 'mono16': 1e-3, '32FC1': 1.0}
"""Depth encodings and their unit in metres: REP 118 (16UC1 millimetres, 32FC1 metres)."""
_DEPTH_DTYPES = {'16UC1': 'u2', 'mono16': 'u2', '32FC1': 'f4'}


class LiftStatus(enum.IntEnum):
    """What became of an answer's 3D lifting (ReasoningResult.LIFT_*, checked by a test)."""

    NONE = 0
    """Nothing to lift: depth input is off, or the answer holds no points or boxes."""
    OK = 1
    """Lifted; each point and box says whether it had valid depth."""
    NO_DEPTH = 2
    """No depth frame within the matching tolerance of the answer's frame."""
    NO_CAMERA_INFO = 3
    """No CameraInfo received yet."""
    INVALID_CAMERA_INFO = 4
    """K not a calibration, a distortion model OpenCV cannot undo, or sizes that do not scale."""
    DEPTH_ENCODING = 5
    """The depth image's encoding is not 16UC1 (mm) or 32FC1 (m), or its data is short."""
    DEPTH_SIZE = 6
    """The depth image is not the size of the colour image (not aligned to it)."""


class LiftError(ValueError):
    """The inputs cannot give a 3D answer; `status` says which, the message what to change."""

    def __init__(self, status: LiftStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class CameraInfoData:
    """The fields of a sensor_msgs/CameraInfo that lifting needs, as plain values."""

    k: Sequence[float]
    """Row-major 3x3 intrinsics of the calibration (full resolution)."""
    d: Sequence[float]
    """Distortion coefficients."""
    distortion_model: str
    width: int
    """Calibration size (full resolution, before binning and ROI)."""
    height: int
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    """(x_offset, y_offset, width, height); zeros mean the full image."""
    frame_id: str = ''


def camera_info_data(message: Any) -> CameraInfoData:
    """The lifting fields of a sensor_msgs/CameraInfo, from an rclpy message or a rosbags one
    (both carry the same field names).
    """
    roi = message.roi
    return CameraInfoData(
        k=tuple(float(v) for v in message.k), d=tuple(float(v) for v in message.d),
        distortion_model=str(message.distortion_model), width=int(message.width),
        height=int(message.height), binning_x=int(message.binning_x),
        binning_y=int(message.binning_y),
        roi=(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
        frame_id=str(message.header.frame_id))


@dataclasses.dataclass(frozen=True)
class DepthData:
    """A depth image as sensor_msgs/Image carries it (nothing converted yet)."""

    encoding: str
    width: int
    height: int
    step: int
    data: Any
    """The pixel bytes: bytes or any buffer (a message's array.array is viewed, not copied)."""
    is_bigendian: bool = False


@dataclasses.dataclass(frozen=True)
class LiftSettings:
    """How depth is read and boxes are measured."""

    min_depth: float = 0.1
    """Depths nearer than this (metres) are invalid (sensor minimum range)."""
    max_depth: float = 20.0
    """Depths farther than this (metres) are invalid."""
    point_radius: int = 2
    """A point's depth is the median of the valid depths within this many pixels (5x5)."""
    box_min_pixels: int = 20
    """A box with fewer valid depths than this is invalid."""
    box_max_samples: int = 4096
    """Pixels of a box sampled (on a regular grid) at most."""
    box_percentiles: tuple[float, float] = (5.0, 95.0)
    """The box's extent spans these percentiles of its surface points on each axis."""
    box_edge_gap: float = 0.02
    """A jump of more than this (metres) between sorted depths separates two surfaces. Dense
    samples of one noisy surface leave no such gap (outliers at its tail hold too few depths
    to count), so it can be small: a 5 cm puck on a table is then its own surface."""
    box_min_fraction: float = 0.2
    """The box's object is the nearest surface holding at least this share of its depths
    (smaller near surfaces are edge noise or flying pixels)."""


class CameraModel:
    """Intrinsics and distortion of the image an answer refers to; turns pixels into rays."""

    def __init__(self, k: np.ndarray, d: np.ndarray, distortion_model: str, size: Size):
        self.k = k
        self.d = d
        self.distortion_model = distortion_model
        self.size = size

    @classmethod
    def for_image(cls, info: CameraInfoData, size: Size) -> 'CameraModel':
        """The camera model of an image of `size`, from a CameraInfo.

        Binning and ROI are applied as image_geometry does (the published image is the binned
        ROI of the calibration). A stream of another size is a scaled calibration: K scales
        per axis (image_proc's resize convention); the distortion coefficients do not change.

        Raises:
            LiftError: INVALID_CAMERA_INFO for an uncalibrated K, an unsupported distortion
                model, or a size that cannot be reached by scaling.
        """
        k = _checked_k(info.k)
        d = _checked_distortion(info.distortion_model, info.d)
        binning = (max(int(info.binning_x), 1), max(int(info.binning_y), 1))
        x_offset, y_offset, roi_width, roi_height = (int(value) for value in info.roi)
        cropped = any((x_offset, y_offset, roi_width, roi_height))
        if info.width <= 0 or info.height <= 0:
            raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                            f'CameraInfo has size {info.width}x{info.height}: publish the '
                            'calibration size with the intrinsics')
        full = (roi_width or info.width, roi_height or info.height) if cropped else \
            (info.width, info.height)
        effective = (full[0] // binning[0], full[1] // binning[1])
        k = k.copy()
        k[0, 2] -= x_offset
        k[1, 2] -= y_offset
        k[0] /= binning[0]
        k[1] /= binning[1]
        if tuple(size) == effective:
            return cls(k, d, info.distortion_model, effective)
        if cropped or binning != (1, 1):
            raise LiftError(
                LiftStatus.INVALID_CAMERA_INFO,
                f'CameraInfo with binning {binning[0]}x{binning[1]} and ROI {tuple(info.roi)} '
                f'describes a {effective[0]}x{effective[1]} image, but the answer refers to '
                f'{size[0]}x{size[1]}: whether the stream was scaled before or after binning '
                'and ROI is ambiguous; publish the CameraInfo of the stream itself (image_proc '
                'resize or crop_decimate do)')
        scale_x, scale_y = size[0] / info.width, size[1] / info.height
        if abs(scale_x / scale_y - 1.0) > _ASPECT_TOLERANCE:
            raise LiftError(
                LiftStatus.INVALID_CAMERA_INFO,
                f'CameraInfo is for {info.width}x{info.height} and the answer refers to '
                f'{size[0]}x{size[1]}: the aspect ratio differs, so the stream is cropped, not '
                'scaled; publish the CameraInfo of the stream itself')
        k[0] *= scale_x
        k[1] *= scale_y
        return cls(k, d, info.distortion_model, (int(size[0]), int(size[1])))

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Normalized rays (x/z, y/z) of pixels (N x 2, image_geometry's convention: the
        centre of the top-left pixel is (0, 0)); the point at depth z is (x*z, y*z, z).
        """
        points = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if not len(points):
            return np.zeros((0, 2))
        if self.distortion_model == EQUIDISTANT:
            rays = cv2.fisheye.undistortPoints(points, self.k, self.d, criteria=_CRITERIA)
        elif self.d.size and np.any(self.d):
            rays = _undistort(points, self.k, self.d)
        else:
            fx, fy, cx, cy = self.k[0, 0], self.k[1, 1], self.k[0, 2], self.k[1, 2]
            flat = points.reshape(-1, 2)
            return np.stack(((flat[:, 0] - cx - self.k[0, 1] * (flat[:, 1] - cy) / fy) / fx,
                             (flat[:, 1] - cy) / fy), axis=1)
        return rays.reshape(-1, 2)


def _undistort(points: np.ndarray, k: np.ndarray, d: np.ndarray) -> np.ndarray:
    """cv2.undistortPoints with our iteration criteria (OpenCV 4 names that overload
    undistortPointsIter; OpenCV 5 takes criteria in undistortPoints itself).
    """
    if hasattr(cv2, 'undistortPointsIter'):
        return cv2.undistortPointsIter(points, k, d, None, None, _CRITERIA)
    return cv2.undistortPoints(points, k, d, criteria=_CRITERIA)


def _checked_k(values: Sequence[float]) -> np.ndarray:
    k = np.asarray(values, dtype=np.float64)
    if k.size != 9 or not np.all(np.isfinite(k)):
        raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                        f'CameraInfo.k must hold 9 finite numbers, got {list(values)!r}')
    k = k.reshape(3, 3)
    if not (k[0, 0] > 0 and k[1, 1] > 0 and k[2, 2] == 1.0):
        raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                        f'CameraInfo.k is not a calibration (fx {k[0, 0]:g}, fy {k[1, 1]:g}, '
                        f'k[8] {k[2, 2]:g}; all zeros means an uncalibrated camera): calibrate '
                        "it (camera_calibration) or set the driver's camera_info_url")
    return k


def _checked_distortion(model: str, values: Sequence[float]) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(d)):
        raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                        f'CameraInfo.d holds a non-finite coefficient: {list(values)!r}')
    if model == EQUIDISTANT:
        if d.size != 4:
            raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                            f'equidistant distortion needs 4 coefficients, got {d.size}')
        return d
    if model in (PLUMB_BOB, RATIONAL_POLYNOMIAL):
        if d.size and d.size not in _BROWN_LENGTHS:
            raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                            f'{model} distortion with {d.size} coefficients: OpenCV takes '
                            f'{", ".join(str(n) for n in _BROWN_LENGTHS)}')
        return d
    if not np.any(d):
        return np.zeros(0)  # no model named and no distortion: a pinhole
    raise LiftError(LiftStatus.INVALID_CAMERA_INFO,
                    f"distortion model '{model}' is not one OpenCV can undo (supported: "
                    f"{', '.join(SUPPORTED_DISTORTION)}): publish rectified images with their "
                    'CameraInfo (image_proc rectify), whose distortion is zero')


class DepthImage:
    """A depth image viewed in place (no copy, no conversion until a region is read)."""

    def __init__(self, values: np.ndarray, scale: float):
        self.values = values
        self.scale = scale

    @property
    def size(self) -> Size:
        return self.values.shape[1], self.values.shape[0]

    @classmethod
    def from_data(cls, depth: DepthData) -> 'DepthImage':
        """View a depth message's bytes as a 2D array.

        Raises:
            LiftError: DEPTH_ENCODING for another encoding or data shorter than declared.
        """
        if depth.encoding not in DEPTH_SCALES:
            raise LiftError(LiftStatus.DEPTH_ENCODING,
                            f"depth encoding '{depth.encoding}' is not supported: publish "
                            f"{' or '.join(DEPTH_SCALES)} (REP 118), e.g. the camera "
                            "driver's aligned_depth_to_color image")
        dtype = np.dtype(_DEPTH_DTYPES[depth.encoding]).newbyteorder(
            '>' if depth.is_bigendian else '<')
        width, height, step = int(depth.width), int(depth.height), int(depth.step)
        if width <= 0 or height <= 0 or step < width * dtype.itemsize or \
                step % dtype.itemsize or len(depth.data) < step * height:
            raise LiftError(LiftStatus.DEPTH_ENCODING,
                            f'depth image {width}x{height} {depth.encoding} with step {step} '
                            f'does not fit its {len(depth.data)} bytes')
        rows = np.frombuffer(depth.data, dtype=dtype, count=step * height // dtype.itemsize)
        return cls(rows.reshape(height, step // dtype.itemsize)[:, :width],
                   DEPTH_SCALES[depth.encoding])

    def metres(self, rows: slice, columns: slice, settings: LiftSettings) -> np.ndarray:
        """Depths of a region in metres, NaN where invalid (zero, NaN, out of range)."""
        region = self.values[rows, columns].astype(np.float32) * np.float32(self.scale)
        with np.errstate(invalid='ignore'):
            region[~((region >= settings.min_depth) & (region <= settings.max_depth))] = np.nan
        return region


@dataclasses.dataclass(frozen=True)
class Trajectory3D:
    """A trajectory in metres in the colour optical frame; invalid points are NaN."""

    label: str
    points: tuple[Vector, ...]
    valid: tuple[bool, ...]


@dataclasses.dataclass(frozen=True)
class Box3D:
    """The visible surface of a boxed object: axis-aligned centre and size in metres."""

    label: str
    centre: Vector
    size: Vector
    valid: bool
    depth_pixels: int
    """Valid depths the box was measured from (sampled on a grid in large boxes)."""


@dataclasses.dataclass(frozen=True)
class Lifted:
    """An answer in 3D, or why it could not be lifted (the 2D answer stands either way)."""

    status: LiftStatus
    message: str = ''
    trajectories: tuple[Trajectory3D, ...] = ()
    boxes: tuple[Box3D, ...] = ()


def points_without_depth(trajectories: Sequence[Trajectory],
                         lifted: Lifted | None) -> list:
    """The 2D points whose 3D point had no valid depth (none when nothing was lifted)."""
    if lifted is None:
        return []
    return [point for trajectory, trajectory_3d in zip(trajectories, lifted.trajectories)
            for point, ok in zip(trajectory.points, trajectory_3d.valid) if not ok]


def sample_depth(depth: DepthImage, u: float, v: float, settings: LiftSettings) -> float:
    """The depth (metres) at pixel (u, v): the lower median of the valid depths around it.

    The lower median is one of the measured depths, so a window over a depth edge gives the
    depth of one surface, never one in between. NaN when none is valid.
    """
    width, height = depth.size
    column, row = int(round(u)), int(round(v))
    if not (0 <= column < width and 0 <= row < height):
        return float('nan')
    radius = settings.point_radius
    region = depth.metres(slice(max(row - radius, 0), row + radius + 1),
                          slice(max(column - radius, 0), column + radius + 1), settings)
    valid = region[np.isfinite(region)]
    if not valid.size:
        return float('nan')
    return float(np.partition(valid, (valid.size - 1) // 2)[(valid.size - 1) // 2])


def lift_points(points: Sequence[tuple[float, float]], camera: CameraModel, depth: DepthImage,
                settings: LiftSettings) -> tuple[tuple[Vector, ...], tuple[bool, ...]]:
    """3D points (metres, optical frame) of pixels, with whether each had valid depth."""
    rays = camera.rays(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    lifted, valid = [], []
    for (u, v), (x, y) in zip(points, rays):
        z = sample_depth(depth, u, v, settings)
        ok = bool(np.isfinite(z))
        lifted.append((x * z, y * z, z) if ok else (float('nan'),) * 3)
        valid.append(ok)
    return tuple(lifted), tuple(valid)


def lift_box(box: Box, camera: CameraModel, depth: DepthImage,
             settings: LiftSettings) -> Box3D:
    """The 3D centre and size of the nearest substantial surface inside a box.

    Sorted depths are split into surfaces where they jump by more than box_edge_gap; the
    nearest surface holding box_min_fraction of the valid depths is the object (a box drawn
    around an object also holds background at its margins). Centre and size span the
    box_percentiles of that surface's points on each axis.
    """
    width, height = depth.size
    columns = np.arange(max(int(np.floor(box.x_min)), 0), min(int(np.ceil(box.x_max)), width))
    rows = np.arange(max(int(np.floor(box.y_min)), 0), min(int(np.ceil(box.y_max)), height))
    invalid = Box3D(box.label, (float('nan'),) * 3, (float('nan'),) * 3, False, 0)
    if not columns.size or not rows.size:
        return invalid
    stride = max(1, int(np.ceil(np.sqrt(columns.size * rows.size / settings.box_max_samples))))
    columns, rows = columns[::stride], rows[::stride]
    region = depth.metres(slice(rows[0], rows[-1] + 1, stride),
                          slice(columns[0], columns[-1] + 1, stride), settings)
    grid_v, grid_u = np.meshgrid(rows, columns, indexing='ij')
    valid = np.isfinite(region)
    count = int(valid.sum())
    if count < settings.box_min_pixels:
        return dataclasses.replace(invalid, depth_pixels=count)
    z = region[valid].astype(np.float64)
    near = _nearest_surface(z, settings)
    pixels = np.stack((grid_u[valid][near], grid_v[valid][near]), axis=1)
    rays = camera.rays(pixels)
    points = np.column_stack((rays * z[near, None], z[near]))
    low, high = np.percentile(points, settings.box_percentiles, axis=0)
    centre = tuple(float(value) for value in (low + high) / 2)
    size = tuple(float(value) for value in high - low)
    return Box3D(box.label, centre, size, True, count)


def _nearest_surface(z: np.ndarray, settings: LiftSettings) -> np.ndarray:
    """Mask of the depths that belong to the nearest surface with enough of them."""
    order = np.argsort(z, kind='stable')
    ordered = z[order]
    cuts = np.flatnonzero(np.diff(ordered) > settings.box_edge_gap) + 1
    bounds = np.concatenate(([0], cuts, [ordered.size]))
    needed = settings.box_min_fraction * ordered.size
    start, stop = 0, ordered.size
    for begin, end in zip(bounds[:-1], bounds[1:]):
        if end - begin >= needed:
            start, stop = begin, end
            break
    mask = np.zeros(z.size, dtype=bool)
    mask[order[start:stop]] = True
    return mask


def lift_answer(trajectories: Sequence[Trajectory], boxes: Sequence[Box], image_size: Size, *,
                camera_info: CameraInfoData | None, depth: DepthData | None,
                settings: LiftSettings = LiftSettings()) -> Lifted:
    """Lift an answer's trajectories and boxes (pixels of an image of `image_size`) into 3D.

    Never raises for bad input: the returned status and message say what is missing or wrong.

    Args:
        trajectories: the parsed trajectories, in pixels of the source image.
        boxes: the parsed boxes, in pixels of the source image.
        image_size: (width, height) of the colour image the answer refers to.
        camera_info: the colour camera's CameraInfo, None when none arrived.
        depth: the depth image matched to the answer's frame, None when none matched.
        settings: depth range and box measurement.
    """
    if not trajectories and not boxes:
        return Lifted(LiftStatus.NONE, 'the answer holds no points or boxes to lift')
    if camera_info is None:
        return Lifted(LiftStatus.NO_CAMERA_INFO,
                      "no CameraInfo received on 'camera_info': is the camera publishing it? "
                      'check the remapping')
    if depth is None:
        return Lifted(LiftStatus.NO_DEPTH,
                      "no depth frame within depth.tolerance of the answer's frame: is the "
                      "depth camera publishing on 'depth', on the same clock? raise "
                      'depth.tolerance for a slower depth stream')
    try:
        camera = CameraModel.for_image(camera_info, image_size)
        image = DepthImage.from_data(depth)
        if image.size != tuple(image_size):
            raise LiftError(LiftStatus.DEPTH_SIZE,
                            f'the depth image is {image.size[0]}x{image.size[1]} and the colour '
                            f'image {image_size[0]}x{image_size[1]}: publish depth aligned to '
                            'the colour camera (e.g. aligned_depth_to_color)')
    except LiftError as error:
        return Lifted(error.status, str(error))
    lifted = []
    for trajectory in trajectories:
        points, valid = lift_points(trajectory.points, camera, image, settings)
        lifted.append(Trajectory3D(trajectory.label, points, valid))
    boxes_3d = tuple(lift_box(box, camera, image, settings) for box in boxes)
    missing = sum(not ok for trajectory in lifted for ok in trajectory.valid)
    total = sum(len(trajectory.valid) for trajectory in lifted)
    notes = []
    if missing:
        notes.append(f'{missing} of {total} points have no valid depth')
    empty = sum(not box.valid for box in boxes_3d)
    if empty:
        notes.append(f'{empty} of {len(boxes_3d)} boxes have fewer than '
                     f'{settings.box_min_pixels} valid depths')
    return Lifted(LiftStatus.OK, '; '.join(notes), tuple(lifted), boxes_3d)


__all__ = [
    'Box3D', 'CameraInfoData', 'CameraModel', 'camera_info_data', 'DEPTH_SCALES', 'DepthData',
    'DepthImage', 'LiftError', 'LiftSettings', 'LiftStatus', 'Lifted', 'SUPPORTED_DISTORTION',
    'Trajectory3D', 'lift_answer', 'lift_box', 'lift_points', 'points_without_depth',
    'sample_depth',
]
