"""Camera messages to RGB arrays: decode sensor_msgs Image/CompressedImage, downscale, stamps.

Messages are duck-typed, so rclpy messages and rosbags bag messages go through the same code.
"""

import math
import types
from typing import Any

import cv2
import numpy as np
from rosbags.image import image_to_cvimage, ImageError

# encoding -> (element dtype, values per pixel); the conversion itself is rosbags-image's.
_RAW_LAYOUTS: dict[str, tuple[str, int]] = {
    'rgb8': ('uint8', 3),
    'bgr8': ('uint8', 3),
    'rgba8': ('uint8', 4),
    'bgra8': ('uint8', 4),
    'mono8': ('uint8', 1),
    'mono16': ('uint16', 1),
    'rgb16': ('uint16', 3),
    'bgr16': ('uint16', 3),
    'rgba16': ('uint16', 4),
    'bgra16': ('uint16', 4),
    'bayer_rggb8': ('uint8', 1),
    'bayer_bggr8': ('uint8', 1),
    'bayer_gbrg8': ('uint8', 1),
    'bayer_grbg8': ('uint8', 1),
    'bayer_rggb16': ('uint16', 1),
    'bayer_bggr16': ('uint16', 1),
    'bayer_gbrg16': ('uint16', 1),
    'bayer_grbg16': ('uint16', 1),
    'yuv422': ('uint8', 2),
    'uyvy': ('uint8', 2),
    'yuyv': ('uint8', 2),
    'yuv422_yuy2': ('uint8', 2),
}
# OpenCV type names that cv_bridge treats as their single-channel counterparts.
_ALIASES = {'8UC1': 'mono8', '16UC1': 'mono16'}
_YUV = frozenset({'yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2'})

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(sorted(_RAW_LAYOUTS)) + tuple(sorted(_ALIASES))
"""Raw sensor_msgs/Image encodings image_to_rgb() accepts."""


class ImageDecodeError(ValueError):
    """An image message could not be turned into an RGB array; the message says why."""


def image_to_rgb(msg: Any) -> np.ndarray:
    """Convert a raw sensor_msgs/Image to an RGB array.

    The message is checked before any conversion (encoding, size, step, data length). Row
    padding (step larger than width x bytes per pixel) and big-endian 16-bit data are handled.
    mono16 (and 16UC1) is stretched from its own minimum and maximum to 0-255: such topics
    usually carry 10- to 14-bit IR, thermal or depth values that a plain `>> 8` leaves almost
    black; a flat image falls back to `>> 8`. 16-bit colour and Bayer encodings are scaled
    by 255/65535.

    Args:
        msg: a sensor_msgs/Image from rclpy or rosbags (anything with encoding, height, width,
            step, is_bigendian and data).

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array that does not share memory with msg.data.

    Raises:
        ImageDecodeError: unsupported encoding, empty image, step too small, data too short,
            odd width for YUV 4:2:2, or a conversion error.
    """
    encoding = str(msg.encoding).strip()
    layout_name = _layout_name(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    dtype_name, channels = _RAW_LAYOUTS[layout_name]
    itemsize = np.dtype(dtype_name).itemsize
    row_bytes = width * channels * itemsize
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty {encoding} image: {width}x{height} pixels')
    if step < row_bytes:
        raise ImageDecodeError(
            f'{encoding} image step {step} is smaller than width {width} x '
            f'{channels * itemsize} bytes per pixel = {row_bytes}')
    if step % itemsize:
        raise ImageDecodeError(
            f'{encoding} image step {step} is not a multiple of its {itemsize}-byte samples')
    if layout_name in _YUV and width % 2:
        raise ImageDecodeError(
            f'{encoding} image width {width} is odd: YUV 4:2:2 pairs pixels, width must be even')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < height * step:
        raise ImageDecodeError(
            f'{encoding} image data holds {data.size} bytes, expected height {height} x '
            f'step {step} = {height * step}')

    rows = data[:height * step].reshape(height, step)
    packed = rows if step == row_bytes else np.ascontiguousarray(rows[:, :row_bytes])
    # rosbags-image ignores step, so it gets the rows already unpadded.
    unpadded: Any = types.SimpleNamespace(
        encoding=layout_name, height=height, width=width, step=row_bytes,
        is_bigendian=int(msg.is_bigendian), data=packed.reshape(-1))
    try:
        if layout_name == 'mono16':
            gray = _stretch_to_8bit(image_to_cvimage(unpadded))
            rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        else:
            rgb = image_to_cvimage(unpadded, 'rgb8')
    except (ImageError, cv2.error) as error:
        raise ImageDecodeError(
            f'could not convert {encoding} image {width}x{height}: {error}') from error
    if np.may_share_memory(rgb, data) or not rgb.flags.c_contiguous:
        rgb = np.array(rgb, order='C')
    return rgb


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG, anything OpenCV reads) to RGB.

    Grey and 16-bit images come out as 8-bit RGB. compressedDepth images (a private header
    before the PNG) are not supported.

    Args:
        msg: a sensor_msgs/CompressedImage from rclpy or rosbags (format, data).

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array.

    Raises:
        ImageDecodeError: empty data, compressedDepth format, or data OpenCV cannot decode.
    """
    image_format = str(msg.format)
    if 'compresseddepth' in image_format.lower():
        raise ImageDecodeError(
            f'CompressedImage format {image_format!r} (compressedDepth) is not supported: '
            'subscribe to a colour or raw image topic')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageDecodeError(f'CompressedImage (format {image_format!r}) holds no data')
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as error:
        bgr = None
        reason = f': {error}'
    else:
        reason = ''
    if bgr is None:
        raise ImageDecodeError(
            f'could not decode CompressedImage (format {image_format!r}, {data.size} bytes, '
            f'starting {data[:4].tobytes()!r}): corrupt or not an image OpenCV reads{reason}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_rgb(msg: Any) -> np.ndarray:
    """Convert a sensor_msgs/Image or CompressedImage to an RGB array.

    Args:
        msg: the message; raw if it has `encoding`, compressed if it has `format`.

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array.

    Raises:
        ImageDecodeError: see image_to_rgb() and compressed_to_rgb().
        TypeError: msg is neither kind of image message.
    """
    if hasattr(msg, 'encoding'):
        return image_to_rgb(msg)
    if hasattr(msg, 'format'):
        return compressed_to_rgb(msg)
    raise TypeError(
        f'{type(msg).__name__} is neither a sensor_msgs/Image nor a CompressedImage')


def downscale(image: np.ndarray, max_pixels: int) -> np.ndarray:
    """Shrink an image to at most max_pixels pixels, keeping its aspect ratio.

    Args:
        image: HxW or HxWxC array.
        max_pixels: pixel budget (width x height) of the result.

    Returns:
        The image itself when it fits the budget (never upscaled), else a resized copy
        (cv2.INTER_AREA) with height x width <= max_pixels.

    Raises:
        ValueError: max_pixels is below 1.
    """
    if max_pixels < 1:
        raise ValueError(f'max_pixels must be at least 1, got {max_pixels}')
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (height * width))
    # Rounding (not flooring) keeps exact fits such as 1920x1080 -> 640x360 despite float error.
    new_width = max(1, round(width * scale))
    new_height = max(1, round(height * scale))
    while new_width * new_height > max_pixels:
        shrink_width = new_width / width >= new_height / height
        if new_width > 1 and (shrink_width or new_height == 1):
            new_width -= 1
        else:
            new_height -= 1
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)


def stamp_seconds(header_stamp: Any) -> float:
    """Convert a builtin_interfaces/Time (rclpy or rosbags) to float seconds.

    Args:
        header_stamp: anything with integer `sec` and `nanosec`.

    Returns:
        sec + nanosec / 1e9.
    """
    return float(header_stamp.sec) + float(header_stamp.nanosec) * 1e-9


def _layout_name(encoding: str) -> str:
    if encoding in _RAW_LAYOUTS:
        return encoding
    if encoding.upper() in _ALIASES:
        return _ALIASES[encoding.upper()]
    if encoding.lower() in _RAW_LAYOUTS:
        return encoding.lower()
    raise ImageDecodeError(
        f'unsupported image encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}')


def _stretch_to_8bit(gray: np.ndarray) -> np.ndarray:
    low, high = int(gray.min()), int(gray.max())
    if high == low:
        return (gray >> 8).astype(np.uint8)
    scaled = (gray.astype(np.float32) - low) * np.float32(255.0 / (high - low))
    return (scaled + 0.5).astype(np.uint8)


__all__ = [
    'ImageDecodeError', 'SUPPORTED_ENCODINGS', 'compressed_to_rgb', 'downscale', 'image_to_rgb',
    'stamp_seconds', 'to_rgb',
]
