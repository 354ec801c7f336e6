"""image_transport's compressedDepth: decoded as the plugin encodes it, bounded before decoding."""

import struct

import cv2
import numpy as np
import pytest

from cosmos_reason_ros.core.depth.compressed import (
    decode_compressed_depth,
    encode_compressed_depth,
    HEADER,
)
from cosmos_reason_ros.core.depth.geometry import DepthImage, LiftError, LiftSettings, LiftStatus
from cosmos_reason_ros.demo.sample_scene import render_depth


def metres(depth) -> np.ndarray:
    return DepthImage.from_data(depth).metres(slice(None), slice(None), LiftSettings())


def test_16uc1_comes_back_exactly():
    millimetres = render_depth(1.0, 64, 48)
    millimetres[:4, :4] = 0  # a hole stays a hole
    format_, data = encode_compressed_depth(millimetres)
    assert format_ == '16UC1; compressedDepth png'
    depth = decode_compressed_depth(format_, data, expected_size=(64, 48))
    assert depth.encoding == '16UC1'
    np.testing.assert_array_equal(np.frombuffer(depth.data, '<u2').reshape(48, 64), millimetres)


def test_32fc1_comes_back_within_the_plugins_inverse_depth_quantization():
    truth = render_depth(1.0, 64, 48).astype(np.float32) / 1000
    truth[:4, :4] = np.nan
    truth[-4:, -4:] = 12.0  # beyond depth_max: no depth
    depth = decode_compressed_depth(*encode_compressed_depth(truth))
    decoded = metres(depth)
    assert depth.encoding == '32FC1'
    assert np.isnan(decoded[:4, :4]).all() and np.isnan(decoded[-4:, -4:]).all()
    valid = np.isfinite(truth) & (truth < 10)
    # One quantization step at 1.5 m is depth^2 / A = 2.25 / 10100 m: about 0.2 mm.
    assert np.nanmax(np.abs(decoded[valid] - truth[valid])) < 3e-4


@pytest.mark.parametrize('format_, data, status, words', [
    ('16UC1; compressedDepth rvl', HEADER.pack(0, 0, 0) + b'\x00' * 16,
     LiftStatus.DEPTH_ENCODING, "set the publisher's format parameter to png"),
    ('16UC1; png compressed 16UC1', b'\x89PNG', LiftStatus.DEPTH_ENCODING,
     'not a compressedDepth format'),
    ('bgr8; compressedDepth png', HEADER.pack(0, 0, 0) + b'x', LiftStatus.DEPTH_ENCODING,
     "compressedDepth of 'bgr8' is not depth"),
    ('16UC1; compressedDepth png', b'short', LiftStatus.DEPTH_ENCODING, 'holds no image'),
    ('16UC1; compressedDepth png', HEADER.pack(0, 0, 0) + b'not a png at all',
     LiftStatus.DEPTH_ENCODING, 'is not a PNG with a size'),
])
def test_what_cannot_be_decoded_says_why(format_, data, status, words):
    with pytest.raises(LiftError, match=words) as raised:
        decode_compressed_depth(format_, data)
    assert raised.value.status is status


def test_a_png_declaring_a_huge_or_another_size_is_refused_before_decoding(monkeypatch):
    _, data = encode_compressed_depth(np.zeros((48, 64), np.uint16))
    png = bytearray(data[HEADER.size:])
    struct.pack_into('>II', png, 16, 40000, 40000)  # IHDR: 1.6 gigapixels
    bomb = bytes(data[:HEADER.size]) + bytes(png)
    decoded = []
    monkeypatch.setattr(cv2, 'imdecode', lambda *args: decoded.append(args))
    with pytest.raises(LiftError, match='declares 40000x40000 pixels, more than'):
        decode_compressed_depth('16UC1; compressedDepth png', bomb)
    with pytest.raises(LiftError, match='the depth image is 64x48 and the colour image 32x24') \
            as raised:
        decode_compressed_depth('16UC1; compressedDepth png', data, expected_size=(32, 24))
    assert raised.value.status is LiftStatus.DEPTH_SIZE
    assert decoded == [], 'nothing was decoded'
