"""Camera messages to RGB arrays: decode sensor_msgs Image/CompressedImage, downscale, stamps.

Messages are duck-typed, so rclpy messages and rosbags bag messages go through the same code.
"""

import dataclasses
import functools
import math
import struct
import types
from typing import Any

import cv2
import numpy as np
from rosbags.image import image_to_cvimage, ImageError
from rosbags.serde import SerdeError
from rosbags.typesys import get_typestore, Stores

from cosmos_reason_ros.core.answers.families import ImageShape

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

DEFAULT_MAX_SOURCE_PIXELS = 4096 * 4096
"""Largest image (width x height as declared) decoded by default: above any robot camera
(4K is 8.3 MP), far below what a 600-byte JPEG can declare (30000x30000 needs 2.7 GB to decode)."""

COMPRESSED_FORMATS = ('JPEG', 'PNG', 'BMP', 'WebP')
"""Compressed formats decoded: those whose size can be read from the header before decoding."""

# libjpeg scales while decoding (DCT scaling) by these factors: no full-size pixels ever exist.
_JPEG_REDUCTIONS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                    (2, cv2.IMREAD_REDUCED_COLOR_2))


class ImageDecodeError(ValueError):
    """An image message could not be turned into an RGB array; the message says why."""


class ImageTooLargeError(ImageDecodeError):
    """An image declares more pixels than the cap; refused before anything was decoded."""


class ImageShapeError(ImageDecodeError):
    """An image's shape is one the model's processor refuses; refused before decoding."""


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """A decoded image, possibly already reduced while decoding, and the size it declared."""

    image: np.ndarray
    """HxWx3 uint8 RGB; smaller than source_size when the decoder scaled it down."""
    source_size: tuple[int, int]
    """(width, height) of the image as sent, which coordinates refer to."""


def image_to_rgb(msg: Any, *, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
                 target_pixels: int | None = None) -> np.ndarray:
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
        max_source_pixels: largest width x height converted.
        target_pixels: with a budget, bgr8 and rgb8 come out as downscale(image, target_pixels)
            would make them, downscaled before the channels are swapped (INTER_AREA works per
            channel, so the pixels are the same, and the swap touches a ninth of them at
            1080p); other encodings come out at full size.

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array that does not share memory with msg.data.

    Raises:
        ImageTooLargeError: width x height is above max_source_pixels.
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
    check_pixel_cap(width, height, max_source_pixels, f'{encoding} image')
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
    if target_pixels is not None and layout_name in ('bgr8', 'rgb8'):
        small = downscale(rows[:, :row_bytes].reshape(height, width, 3), target_pixels)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB) if layout_name == 'bgr8' else small
        return rgb if rgb.base is None and rgb.flags.c_contiguous else np.array(rgb, order='C')
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


def compressed_to_rgb(msg: Any, *,
                      max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG, PNG, BMP or WebP) to RGB at full size.

    Grey and 16-bit images come out as 8-bit RGB. compressedDepth images (a private header
    before the PNG) are not supported.

    Args:
        msg: a sensor_msgs/CompressedImage from rclpy or rosbags (format, data).
        max_source_pixels: largest width x height (as the header declares it) decoded.

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array.

    Raises:
        ImageTooLargeError: the header declares more than max_source_pixels pixels.
        ImageDecodeError: empty data, compressedDepth format, a format whose size cannot be
            read from its header, or data OpenCV cannot decode.
    """
    return decode_compressed(msg, max_source_pixels=max_source_pixels).image


def decode_compressed(msg: Any, *, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
                      target_pixels: int | None = None,
                      shape: ImageShape | None = None) -> DecodedImage:
    """Decode a CompressedImage after checking the size its header declares.

    The size is read from the header (JPEG SOF, PNG IHDR, BMP and WebP headers) and an image
    above max_source_pixels is refused before any pixel is decoded. With target_pixels, a
    JPEG is decoded straight at 1/2, 1/4 or 1/8 of its size (libjpeg DCT scaling) while it
    keeps at least target_pixels, so a camera-size frame never exists at full size.

    Args:
        msg: a sensor_msgs/CompressedImage from rclpy or rosbags (format, data).
        max_source_pixels: largest width x height decoded.
        target_pixels: the pixel budget the caller downscales to; None decodes at full size.
        shape: the model processor's limits, checked on the declared size (None: unchecked).

    Returns:
        The RGB image and the (width, height) the header declares.

    Raises:
        ImageTooLargeError, ImageDecodeError: see compressed_to_rgb().
        ImageShapeError: the declared size is out of shape.
    """
    image_format = str(msg.format)
    if 'compresseddepth' in image_format.lower():
        raise ImageDecodeError(
            f'CompressedImage format {image_format!r} (compressedDepth) is not supported: '
            'subscribe to a colour or raw image topic')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageDecodeError(f'CompressedImage (format {image_format!r}) holds no data')
    described = f'CompressedImage (format {image_format!r}, {data.size} bytes)'
    header = bytes(data[:65536]) if data.size > 65536 else data.tobytes()
    kind, size = declared_size(header)
    if kind is None:
        raise ImageDecodeError(
            f'{described} starting {header[:4]!r} is not '
            f'{", ".join(COMPRESSED_FORMATS[:-1])} or {COMPRESSED_FORMATS[-1]}: publish one of '
            'those (image_transport compressed sends JPEG or PNG)')
    if size is None:
        raise ImageDecodeError(
            f'could not decode {described}: the {kind} header declares no image size '
            '(truncated or corrupt)')
    width, height = size
    if shape is not None:
        check_image_shape(width, height, shape, described, target_pixels=target_pixels)
    check_pixel_cap(width, height, max_source_pixels, described)
    factor, flag = _reduction(kind, width, height, target_pixels)
    try:
        bgr = cv2.imdecode(data, flag)
    except cv2.error as error:
        bgr = None
        reason = f': {error}'
    else:
        reason = ''
    if bgr is None:
        raise ImageDecodeError(
            f'could not decode {described} starting {header[:4]!r}: corrupt or not an image '
            f'OpenCV reads{reason}')
    decoded_height, decoded_width = bgr.shape[:2]
    if factor > 1 and (decoded_width, decoded_height) == (-(-height // factor),
                                                          -(-width // factor)):
        width, height = height, width  # EXIF orientation turned it by 90 degrees
    elif factor == 1 and (decoded_width, decoded_height) != (width, height):
        width, height = decoded_width, decoded_height
    return DecodedImage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height))


def declared_size(data: bytes) -> tuple[str | None, tuple[int, int] | None]:
    """The format and (width, height) a compressed image's header declares, without decoding.

    Returns:
        (format name, size); the name is None for a format not in COMPRESSED_FORMATS, the size
        None when the header is cut short or declares no size.
    """
    if data.startswith(b'\xff\xd8'):
        return 'JPEG', _jpeg_size(data)
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
        if len(data) < 24 or data[12:16] != b'IHDR':
            return 'PNG', None
        return 'PNG', _positive(*struct.unpack_from('>II', data, 16))
    if data.startswith(b'BM'):
        return 'BMP', _bmp_size(data)
    if data.startswith(b'RIFF') and data[8:12] == b'WEBP':
        return 'WebP', _webp_size(data)
    return None, None


def check_pixel_cap(width: int, height: int, max_source_pixels: int, described: str) -> None:
    """Refuse an image whose declared size is above the cap.

    Raises:
        ImageTooLargeError: width x height > max_source_pixels.
    """
    if width * height > max_source_pixels:
        raise ImageTooLargeError(
            f'{described} declares {width}x{height} = {width * height} pixels, more than '
            f'max_source_pixels ({max_source_pixels}): send smaller images (or raise '
            'max_source_pixels if a camera really is that large)')


def _reduction(kind: str, width: int, height: int,
               target_pixels: int | None) -> tuple[int, int]:
    if kind == 'JPEG' and target_pixels is not None:
        for factor, flag in _JPEG_REDUCTIONS:
            if -(-width // factor) * -(-height // factor) >= target_pixels:
                return factor, flag
    return 1, cv2.IMREAD_COLOR


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (int(width), int(height)) if width > 0 and height > 0 else None


_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                       0xCF))


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            index += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        (length,) = struct.unpack_from('>H', data, index + 2)
        if marker in _JPEG_SOF:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack_from('>HH', data, index + 5)
            return _positive(width, height)
        index += 2 + length
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header_size,) = struct.unpack_from('<I', data, 14)
    if header_size == 12:
        return _positive(*struct.unpack_from('<HH', data, 18))
    width, height = struct.unpack_from('<ii', data, 18)
    return _positive(width, abs(height))


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b'VP8 ' and len(data) >= 30 and data[23:26] == b'\x9d\x01\x2a':
        width, height = struct.unpack_from('<HH', data, 26)
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b'VP8L' and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from('<I', data, 21)
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b'VP8X' and len(data) >= 30:
        width = int.from_bytes(data[24:27], 'little') + 1
        height = int.from_bytes(data[27:30], 'little') + 1
        return (width, height)
    return None


def decode_image(msg: Any, *, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
                 target_pixels: int | None = None,
                 shape: ImageShape | None = None) -> DecodedImage:
    """Convert an Image or CompressedImage for a pixel budget, refusing oversized ones first.

    Args:
        msg: the message; raw if it has `encoding`, compressed if it has `format`.
        max_source_pixels: largest width x height (as declared) converted.
        target_pixels: the budget the caller downscales to; a JPEG is decoded reduced (see
            decode_compressed()), bgr8 and rgb8 come downscaled to it (see image_to_rgb()).
        shape: the model processor's limits, checked before decoding (None: unchecked).

    Returns:
        The RGB image (at most the declared size) and the declared (width, height).

    Raises:
        ImageShapeError: the declared size (or its downscaled size) is out of shape.
        ImageTooLargeError, ImageDecodeError, TypeError: see to_rgb().
    """
    if hasattr(msg, 'encoding'):
        if shape is not None and int(msg.width) > 0 and int(msg.height) > 0:
            check_image_shape(int(msg.width), int(msg.height), shape,
                              f'{str(msg.encoding).strip()} image', target_pixels=target_pixels)
        image = image_to_rgb(msg, max_source_pixels=max_source_pixels,
                             target_pixels=target_pixels)
        return DecodedImage(image, (int(msg.width), int(msg.height)))
    if hasattr(msg, 'format'):
        return decode_compressed(msg, max_source_pixels=max_source_pixels,
                                 target_pixels=target_pixels, shape=shape)
    raise TypeError(
        f'{type(msg).__name__} is neither a sensor_msgs/Image nor a CompressedImage')


def to_rgb(msg: Any, *, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image or CompressedImage to an RGB array at full size.

    Args:
        msg: the message; raw if it has `encoding`, compressed if it has `format`.
        max_source_pixels: largest width x height (as declared) converted.

    Returns:
        A new C-contiguous HxWx3 uint8 RGB array.

    Raises:
        ImageDecodeError: see image_to_rgb() and compressed_to_rgb().
        TypeError: msg is neither kind of image message.
    """
    if hasattr(msg, 'encoding'):
        return image_to_rgb(msg, max_source_pixels=max_source_pixels)
    if hasattr(msg, 'format'):
        return compressed_to_rgb(msg, max_source_pixels=max_source_pixels)
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
    height, width = image.shape[:2]
    new_width, new_height = downscaled_size(width, height, max_pixels)
    if (new_width, new_height) == (width, height):
        return image
    return cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)


def downscaled_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) downscale() gives an image of width x height: itself when it fits the
    budget, else the largest size within it that keeps the aspect ratio (rounded).

    Raises:
        ValueError: max_pixels is below 1.
    """
    if max_pixels < 1:
        raise ValueError(f'max_pixels must be at least 1, got {max_pixels}')
    if height * width <= max_pixels:
        return width, height
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
    return new_width, new_height


def check_image_shape(width: int, height: int, shape: ImageShape, described: str, *,
                      target_pixels: int | None = None) -> None:
    """Refuse an image the model's processor would refuse, from its declared size alone.

    Args:
        width: the width the image declares.
        height: the height the image declares.
        shape: the limits of the model family's processor.
        described: how the message names the image ('goal image 0').
        target_pixels: the pixel budget it will be downscaled to before the processor sees
            it; its shape after that rounding is checked too.

    Raises:
        ImageShapeError: a side below shape.min_side or an aspect ratio above
            shape.max_aspect_ratio, before or after downscaling; the message names the limit.
    """
    sizes = [(width, height)]
    if target_pixels is not None and width > 0 and height > 0:
        sizes.append(downscaled_size(width, height, target_pixels))
    for index, (w, h) in enumerate(sizes):
        after = ' after downscaling to the frame budget' if index else ''
        if min(w, h) < shape.min_side:
            raise ImageShapeError(
                f'{described} is {width}x{height} px: its shortest side{after} is below the '
                f'{shape.min_side} px that {shape.processor} takes: send a larger image')
        ratio = max(w, h) / min(w, h)
        if ratio > shape.max_aspect_ratio:
            raise ImageShapeError(
                f'{described} is {width}x{height} px: its aspect ratio{after} is {ratio:.1f}:1, '
                f'above the {shape.max_aspect_ratio:g}:1 that {shape.processor} takes: crop '
                'it or send it in pieces')


NANOSEC_PER_SEC = 1_000_000_000
"""builtin_interfaces/Time.nanosec is below this: a larger value is not a time ROS defines."""


def valid_stamp(header_stamp: Any) -> bool:
    """True for a builtin_interfaces/Time as ROS defines it (0 <= nanosec < 1e9)."""
    return 0 <= int(header_stamp.nanosec) < NANOSEC_PER_SEC


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


IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'


@functools.cache
def _typestore() -> Any:
    return get_typestore(Stores.LATEST)  # Image and CompressedImage are alike in every distro


def prepare_cdr_reader(type_name: str) -> None:
    """Build rosbags' reader of a message type now (0.1-0.2 s on first use), not in the first
    frame's callback.
    """
    _typestore().get_msgdef(type_name)


def read_cdr_image(raw: bytes, type_name: str) -> Any | None:
    """Read a serialized sensor_msgs/Image or CompressedImage (CDR) without copying its pixels.

    rosbags' reader on a memoryview: the message's `data` is a numpy view of `raw` (rclpy's
    deserialize_message copies the pixels into a new array first: 0.8-0.9 ms against 0.01 ms for
    a 1080p bgr8 frame). decode_image() takes the message.

    Args:
        raw: the serialized message.
        type_name: IMAGE_TYPE or COMPRESSED_IMAGE_TYPE.

    Returns:
        The message, or None where rosbags refuses the bytes (a string that is not UTF-8 or
        lacks its terminator, bytes after the message): rosbags is stricter than rclpy, so the
        caller's own reader decides those.
    """
    try:
        # A memoryview: rosbags slices off the CDR header, which would copy bytes.
        return _typestore().deserialize_cdr(memoryview(raw), type_name)
    except SerdeError:
        return None


__all__ = [
    'COMPRESSED_IMAGE_TYPE', 'IMAGE_TYPE', 'prepare_cdr_reader', 'read_cdr_image',
    'COMPRESSED_FORMATS', 'DEFAULT_MAX_SOURCE_PIXELS', 'DecodedImage', 'ImageDecodeError',
    'ImageShapeError', 'ImageTooLargeError', 'NANOSEC_PER_SEC', 'SUPPORTED_ENCODINGS',
    'check_image_shape', 'check_pixel_cap', 'compressed_to_rgb', 'declared_size',
    'decode_compressed', 'decode_image', 'downscale', 'downscaled_size', 'image_to_rgb',
    'stamp_seconds', 'to_rgb', 'valid_stamp',
]
