"""Depth images and camera calibrations from files, for lifting answers offline (cosmos-reason).

A depth image is a 16-bit PNG/TIFF in millimetres, a 32-bit float TIFF in metres, or a .npy
array (uint16: millimetres, float: metres). A calibration is the YAML that ROS's
camera_calibration writes (camera_calibration_parsers' format), or plain pinhole intrinsics.
"""

from collections.abc import Sequence
import pathlib

import cv2
import numpy as np
import yaml

from cosmos_reason_ros.core.depth.geometry import CameraInfoData, DepthData


class DepthFileError(ValueError):
    """A depth image or calibration file that cannot be used; the message says what to change."""


def load_depth(path: str | pathlib.Path) -> DepthData:
    """A depth image file as DepthData (16UC1 millimetres or 32FC1 metres).

    Raises:
        DepthFileError: missing or unreadable, or not one channel of uint16 or float.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == '.npy':
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DepthFileError(f"cannot read the depth array '{path}': {error}") from None
    else:
        values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if values is None:
            raise DepthFileError(f"cannot read the depth image '{path}': give a 16-bit PNG "
                                 '(millimetres), a 32-bit float TIFF (metres) or a .npy array')
    if values.ndim != 2:
        raise DepthFileError(f"the depth image '{path}' has {values.ndim} dimensions and "
                             f'shape {values.shape}: it must be one channel (height x width)')
    if values.dtype == np.uint16:
        encoding, values = '16UC1', values.astype('<u2')
    elif np.issubdtype(values.dtype, np.floating):
        encoding, values = '32FC1', values.astype('<f4')
    else:
        raise DepthFileError(f"the depth image '{path}' holds {values.dtype}: use uint16 "
                             'millimetres or float metres')
    height, width = values.shape
    return DepthData(encoding=encoding, width=width, height=height,
                     step=width * values.itemsize, data=np.ascontiguousarray(values).tobytes())


def load_camera_info(path: str | pathlib.Path) -> CameraInfoData:
    """A calibration YAML as camera_calibration writes it (image_width, image_height,
    camera_matrix, distortion_model, distortion_coefficients).

    Raises:
        DepthFileError: missing, not YAML, or a field missing or malformed.
    """
    path = pathlib.Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
        return CameraInfoData(
            k=tuple(float(value) for value in data['camera_matrix']['data']),
            d=tuple(float(value) for value in
                    (data.get('distortion_coefficients') or {}).get('data', ())),
            distortion_model=str(data.get('distortion_model', 'plumb_bob')),
            width=int(data['image_width']), height=int(data['image_height']))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise DepthFileError(f"cannot read the calibration '{path}': {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise DepthFileError(
            f"the calibration '{path}' lacks or mangles {error}: it needs image_width, "
            'image_height, camera_matrix.data (9 numbers), distortion_model and '
            "distortion_coefficients.data (camera_calibration's YAML)") from None


def pinhole(intrinsics: Sequence[float], size: tuple[int, int]) -> CameraInfoData:
    """A distortion-free camera of `size` with (fx, fy, cx, cy).

    Raises:
        DepthFileError: not four numbers.
    """
    if len(intrinsics) != 4:
        raise DepthFileError(f'intrinsics are fx,fy,cx,cy (four numbers), got {intrinsics!r}')
    fx, fy, cx, cy = (float(value) for value in intrinsics)
    return CameraInfoData(k=(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0), d=(),
                          distortion_model='plumb_bob', width=size[0], height=size[1])


__all__ = ['DepthFileError', 'load_camera_info', 'load_depth', 'pinhole']
