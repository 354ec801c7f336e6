"""Depth images sent through image_transport's compressedDepth plugin, decoded for lifting.

A compressedDepth message is a sensor_msgs/CompressedImage whose format reads
'<encoding>; compressedDepth png' and whose data is a 12-byte header (int32 format, float32
quantization A and B) and a PNG: the 16-bit depths themselves for 16UC1, or for 32FC1 an inverse
depth quantized to 16 bits (depth = A / (value - B), 0 for no depth). The declared size is
checked before anything is decoded.
"""

import struct

import cv2
import numpy as np

from cosmos_reason_ros.core.camera.images import declared_size, DEFAULT_MAX_SOURCE_PIXELS
from cosmos_reason_ros.core.depth.geometry import DepthData, LiftError, LiftStatus

HEADER = struct.Struct('<iff')
"""compressed_depth_image_transport's ConfigHeader: format, depthParam[0], depthParam[1]."""
_SIXTEEN_BIT = ('16UC1', 'mono16')


def decode_compressed_depth(format_: str, data: bytes, *,
                            expected_size: tuple[int, int] | None = None,
                            max_pixels: int = DEFAULT_MAX_SOURCE_PIXELS) -> DepthData:
    """Decode a compressedDepth message's data into a depth image.

    Args:
        format_: the message's format field, e.g. '16UC1; compressedDepth png'.
        data: the message's data.
        expected_size: (width, height) the depth must have (the colour image's); another
            declared size is refused before decoding.
        max_pixels: largest declared width x height decoded.

    Raises:
        LiftError: DEPTH_ENCODING for another format, RVL, a short or corrupt PNG, or a size
            above max_pixels; DEPTH_SIZE for a declared size other than expected_size.
    """
    encoding, _, compression = (part.strip() for part in format_.partition(';'))
    if 'compressedDepth' not in compression and compression:
        raise _error(f"'{format_}' is not a compressedDepth format: subscribe to the depth "
                     "topic's compressedDepth transport, or to the raw depth image")
    if 'rvl' in compression:
        raise _error(f"compressedDepth '{compression}' is not supported: set the publisher's "
                     "format parameter to png (the plugin's default), or send raw depth")
    if encoding not in (*_SIXTEEN_BIT, '32FC1'):
        raise _error(f"compressedDepth of '{encoding}' is not depth: publish 16UC1 (mm) or "
                     '32FC1 (m)')
    payload = bytes(data[HEADER.size:])
    if len(data) <= HEADER.size:
        raise _error(f'a compressedDepth message of {len(data)} bytes holds no image')
    kind, size = declared_size(payload)
    if kind != 'PNG' or size is None:
        raise _error('compressedDepth data after its 12-byte header is not a PNG with a size')
    if size[0] * size[1] > max_pixels:
        raise _error(f'compressedDepth declares {size[0]}x{size[1]} pixels, more than '
                     f'{max_pixels}: not decoded')
    if expected_size is not None and tuple(size) != tuple(expected_size):
        raise LiftError(LiftStatus.DEPTH_SIZE,
                        f'the depth image is {size[0]}x{size[1]} and the colour image '
                        f'{expected_size[0]}x{expected_size[1]}: publish depth aligned to the '
                        'colour camera (e.g. aligned_depth_to_color)')
    values = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if values is None or values.dtype != np.uint16 or values.ndim != 2:
        raise _error('the compressedDepth PNG does not decode to one 16-bit channel')
    if encoding in _SIXTEEN_BIT:
        return _depth_data('16UC1', values.astype('<u2'))
    _, quant_a, quant_b = HEADER.unpack_from(bytes(data[:HEADER.size]))
    with np.errstate(divide='ignore', invalid='ignore'):
        metres = (np.float32(quant_a) / (values.astype(np.float32) - np.float32(quant_b)))
    metres[values == 0] = np.nan
    return _depth_data('32FC1', metres.astype('<f4'))


def _depth_data(encoding: str, values: np.ndarray) -> DepthData:
    height, width = values.shape
    return DepthData(encoding=encoding, width=width, height=height,
                     step=width * values.itemsize, data=np.ascontiguousarray(values).tobytes())


def _error(message: str) -> LiftError:
    return LiftError(LiftStatus.DEPTH_ENCODING, message)


def encode_compressed_depth(values: np.ndarray, *, depth_max: float = 10.0,
                            depth_quantization: float = 100.0) -> tuple[str, bytes]:
    """(format, data) of a depth image as compressed_depth_image_transport publishes it (for
    sample bags and tests; its quantization defaults are the plugin's).

    Args:
        values: uint16 millimetres (16UC1) or float32 metres (32FC1), height x width.
        depth_max: farther depths become 0 (no depth).
        depth_quantization: the plugin's depth_quantization parameter (32FC1 only).
    """
    if values.dtype == np.uint16:
        values = np.where(values > np.uint16(depth_max * 1000), 0, values).astype(np.uint16)
        ok, png = cv2.imencode('.png', values)
        header, encoding = HEADER.pack(0, 0.0, 0.0), '16UC1'
    else:
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        depths = values.astype(np.float32)
        # No depth (NaN, 0) and depths beyond depth_max are 0, the plugin's "no depth".
        with np.errstate(invalid='ignore'):
            measured = (depths > 0) & (depths < depth_max)
        inverse = np.zeros(depths.shape, np.uint16)
        inverse[measured] = (quant_a / depths[measured] + quant_b).astype(np.uint16)
        ok, png = cv2.imencode('.png', inverse)
        header, encoding = HEADER.pack(0, float(quant_a), float(quant_b)), '32FC1'
    assert ok
    return f'{encoding}; compressedDepth png', header + png.tobytes()


__all__ = ['HEADER', 'decode_compressed_depth', 'encode_compressed_depth']
