"""Tests of image decoding: real rclpy sensor_msgs messages (and rosbags ones) to RGB arrays.

Covers the raw encodings and compressed formats a camera sends, bad messages, and downscaling.
"""

import builtin_interfaces.msg
import cv2
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import CompressedImage, Image

from cosmos_reason_ros.core.camera.images import (
    compressed_to_rgb,
    declared_size,
    decode_image,
    downscale,
    image_to_rgb,
    ImageDecodeError,
    ImageTooLargeError,
    stamp_seconds,
    to_rgb,
)

HEIGHT, WIDTH = 4, 6
RED = (255, 0, 0)
BLUE = (0, 0, 255)
ORANGE = (230, 120, 20)


def raw_message(encoding: str, pixels: np.ndarray, *, step: int | None = None,
                bigendian: bool = False) -> Image:
    """Build a sensor_msgs/Image; pixels is HxW or HxWxC, rows padded out to `step` bytes."""
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1).view(np.uint8).reshape(height, -1)
    step = row.shape[1] if step is None else step
    padded = np.zeros((height, step), np.uint8)
    padded[:, :row.shape[1]] = row
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=int(bigendian))
    msg.data = padded.tobytes()
    return msg


def solid(colour, channels: int = 3) -> np.ndarray:
    image = np.empty((HEIGHT, WIDTH, channels), np.uint8)
    image[...] = tuple(colour) + (255,) * (channels - 3)
    return image


def uyvy(y: int, u: int, v: int) -> np.ndarray:
    """Build a solid UYVY (ROS yuv422) image: U Y V Y for every pixel pair."""
    pairs = np.empty((HEIGHT, WIDTH // 2, 4), np.uint8)
    pairs[...] = (u, y, v, y)
    return pairs.reshape(HEIGHT, WIDTH, 2)


def bayer_rggb(colour) -> np.ndarray:
    red, green, blue = colour
    mosaic = np.empty((HEIGHT, WIDTH), np.uint8)
    mosaic[0::2, 0::2] = red
    mosaic[0::2, 1::2] = green
    mosaic[1::2, 0::2] = green
    mosaic[1::2, 1::2] = blue
    return mosaic


# -- raw encodings -----------------------------------------------------------------------------

@pytest.mark.parametrize('encoding, pixels, expected, tolerance', [
    ('rgb8', solid(RED), RED, 0),
    ('rgb8', solid(ORANGE), ORANGE, 0),
    ('bgr8', solid(RED)[..., ::-1], RED, 0),
    ('bgr8', solid(ORANGE)[..., ::-1], ORANGE, 0),
    ('rgba8', solid(ORANGE, 4), ORANGE, 0),
    ('bgra8', solid(ORANGE[::-1], 4), ORANGE, 0),
    ('mono8', np.full((HEIGHT, WIDTH), 200, np.uint8), (200, 200, 200), 0),
    ('8UC1', np.full((HEIGHT, WIDTH), 7, np.uint8), (7, 7, 7), 0),
    ('rgb16', solid(RED).astype(np.uint16) * 257, RED, 0),
    ('bgr16', solid(ORANGE)[..., ::-1].astype(np.uint16) * 257, ORANGE, 1),
    ('bayer_rggb8', bayer_rggb(RED), RED, 0),
    ('bayer_rggb8', bayer_rggb(BLUE), BLUE, 0),
    ('yuv422', uyvy(76, 85, 255), RED, 3),
    ('yuv422', uyvy(29, 255, 107), BLUE, 3),
    ('yuyv', uyvy(76, 85, 255)[..., ::-1], RED, 3),
])
def test_raw_encodings_come_out_rgb(encoding, pixels, expected, tolerance):
    rgb = image_to_rgb(raw_message(encoding, np.ascontiguousarray(pixels)))
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    assert rgb.flags.c_contiguous
    difference = np.abs(rgb.astype(int) - np.array(expected)).max()
    assert difference <= tolerance, (encoding, rgb[0, 0])


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_is_stretched_to_its_own_range(bigendian):
    values = np.linspace(1000, 4000, HEIGHT * WIDTH).astype(np.uint16).reshape(HEIGHT, WIDTH)
    stored = values.byteswap() if bigendian else values
    rgb = image_to_rgb(raw_message('mono16', stored, bigendian=bigendian))
    assert rgb.shape == (HEIGHT, WIDTH, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    assert np.all(np.diff(rgb[..., 0].ravel().astype(int)) >= 0)


def test_flat_mono16_keeps_its_level():
    rgb = image_to_rgb(raw_message('mono16', np.full((HEIGHT, WIDTH), 0x8000, np.uint16)))
    assert np.all(rgb == 0x80)


@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', solid(ORANGE)),
    ('bgr8', solid(ORANGE)[..., ::-1]),
    ('mono8', np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH)),
])
def test_row_padding_is_skipped(encoding, pixels):
    pixels = np.ascontiguousarray(pixels)
    tight = image_to_rgb(raw_message(encoding, pixels))
    padded = image_to_rgb(raw_message(encoding, pixels, step=pixels[0].nbytes + 5))
    np.testing.assert_array_equal(padded, tight)


def test_result_is_a_writable_copy_of_the_message_data():
    msg = raw_message('rgb8', solid(RED))
    rgb = image_to_rgb(msg)
    rgb[...] = 0
    assert image_to_rgb(msg)[0, 0].tolist() == list(RED)


def test_rosbags_messages_decode_the_same():
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    stamp = types['builtin_interfaces/msg/Time'](sec=12, nanosec=500_000_000)
    header = types['std_msgs/msg/Header'](stamp=stamp, frame_id='cam')
    pixels = solid(ORANGE)[..., ::-1]
    msg = types['sensor_msgs/msg/Image'](
        header=header, height=HEIGHT, width=WIDTH, encoding='bgr8', is_bigendian=0,
        step=WIDTH * 3, data=np.ascontiguousarray(pixels).reshape(-1))
    assert image_to_rgb(msg)[0, 0].tolist() == list(ORANGE)
    assert stamp_seconds(msg.header.stamp) == 12.5


# -- bad raw messages --------------------------------------------------------------------------

def test_unknown_encoding_lists_the_supported_ones():
    msg = raw_message('rgb8', solid(RED))
    msg.encoding = 'weird42'
    with pytest.raises(ImageDecodeError) as raised:
        image_to_rgb(msg)
    message = str(raised.value)
    assert "'weird42'" in message and 'bgr8' in message and 'yuv422' in message


@pytest.mark.parametrize('change, words', [
    ({'height': 0}, ['empty', '6x0']),
    ({'width': 0}, ['empty', '0x4']),
    ({'step': 17}, ['step 17', 'width 6', '18']),
    ({'height': 5}, ['72 bytes', 'height 5', 'step 18', '90']),
    ({'data': b''}, ['0 bytes', '72']),
])
def test_inconsistent_messages_are_refused_with_the_numbers(change, words):
    msg = raw_message('rgb8', solid(RED))
    for field, value in change.items():
        setattr(msg, field, value)
    with pytest.raises(ImageDecodeError) as raised:
        image_to_rgb(msg)
    for word in words:
        assert word in str(raised.value)


def test_odd_step_for_16_bit_samples():
    msg = raw_message('mono16', np.zeros((HEIGHT, WIDTH), np.uint16), step=WIDTH * 2 + 1)
    with pytest.raises(ImageDecodeError, match='multiple'):
        image_to_rgb(msg)


def test_yuv422_needs_an_even_width():
    msg = raw_message('yuv422', np.zeros((HEIGHT, 5, 2), np.uint8))
    with pytest.raises(ImageDecodeError, match='width 5 is odd'):
        image_to_rgb(msg)


# -- compressed images -------------------------------------------------------------------------

def compressed_message(image_format: str, data: bytes) -> CompressedImage:
    msg = CompressedImage(format=image_format)
    msg.data = data
    return msg


def encoded(extension: str, rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(extension, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize('image_format, extension, colour, tolerance', [
    ('jpeg', '.jpg', RED, 12),
    ('rgb8; jpeg compressed bgr8', '.jpg', ORANGE, 12),
    ('png', '.png', RED, 0),
    ('png', '.png', ORANGE, 0),
])
def test_compressed_images_come_out_rgb(image_format, extension, colour, tolerance):
    image = np.empty((16, 16, 3), np.uint8)
    image[...] = colour
    rgb = compressed_to_rgb(compressed_message(image_format, encoded(extension, image)))
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert np.abs(rgb.astype(int) - np.array(colour)).max() <= tolerance


def test_grey_png_becomes_three_channels():
    ok, buffer = cv2.imencode('.png', np.full((5, 7), 90, np.uint8))
    assert ok
    rgb = compressed_to_rgb(compressed_message('png', buffer.tobytes()))
    assert rgb.shape == (5, 7, 3) and np.all(rgb == 90)


@pytest.mark.parametrize('image_format, data, words', [
    ('jpeg', b'\xff\xd8\xff\xe0 this is not a jpeg', ['could not decode', "'jpeg'", '23 bytes']),
    ('jpeg', encoded('.jpg', solid(RED))[:20], ['could not decode', '20 bytes']),
    ('png', b'', ['no data']),
    ('16UC1; compressedDepth png', b'\x00' * 12, ['compressedDepth', 'not supported']),
])
def test_bad_compressed_images_are_refused(image_format, data, words):
    with pytest.raises(ImageDecodeError) as raised:
        compressed_to_rgb(compressed_message(image_format, data))
    for word in words:
        assert word in str(raised.value)


# -- dispatch, stamps, downscaling -------------------------------------------------------------

def test_to_rgb_dispatches_on_the_message_type():
    raw = to_rgb(raw_message('bgr8', np.ascontiguousarray(solid(RED)[..., ::-1])))
    packed = to_rgb(compressed_message('png', encoded('.png', solid(RED))))
    np.testing.assert_array_equal(raw, packed)
    with pytest.raises(TypeError, match='neither'):
        to_rgb(object())


def test_stamp_seconds_of_an_rclpy_stamp():
    stamp = builtin_interfaces.msg.Time(sec=1_700_000_000, nanosec=250_000_000)
    assert stamp_seconds(stamp) == pytest.approx(1_700_000_000.25, abs=1e-6)


@pytest.mark.parametrize('width, height, max_pixels, expected', [
    (1920, 1080, 640 * 360, (640, 360)),
    (1280, 720, 640 * 360, (640, 360)),
    (640, 480, 640 * 360, (554, 415)),
    (4000, 3, 1000, None),
    (3, 4000, 1000, None),
    (1001, 1, 1000, (1000, 1)),
    (97, 89, 50, None),
])
def test_downscale_keeps_aspect_within_the_budget(width, height, max_pixels, expected):
    image = np.full((height, width, 3), 77, np.uint8)
    small = downscale(image, max_pixels)
    small_height, small_width = small.shape[:2]
    assert small_width * small_height <= max_pixels
    if expected is not None:
        assert (small_width, small_height) == expected
    assert np.all(small == 77)
    if min(small_width, small_height) > 10:
        assert small_width / small_height == pytest.approx(width / height, rel=0.02)


@pytest.mark.parametrize('shape', [(360, 640, 3), (10, 10, 3), (10, 10)])
def test_downscale_never_upscales(shape):
    image = np.zeros(shape, np.uint8)
    assert downscale(image, 640 * 360) is image


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8'])
@pytest.mark.parametrize('padding', [0, 5])
@pytest.mark.parametrize('width, height', [(96, 54), (97, 61)])
def test_a_colour_image_downscaled_before_its_channels_swap_has_the_same_pixels(
        encoding, padding, width, height):
    pixels = np.random.default_rng(width + padding).integers(0, 256, (height, width, 3),
                                                             np.uint8)
    msg = raw_message(encoding, pixels, step=width * 3 + padding)
    budget = 32 * 18
    expected = downscale(image_to_rgb(msg), budget)
    small = image_to_rgb(msg, target_pixels=budget)
    np.testing.assert_array_equal(small, expected)
    assert small.flags.c_contiguous and not np.may_share_memory(small, np.frombuffer(msg.data,
                                                                                     np.uint8))
    decoded = decode_image(msg, target_pixels=budget)
    assert decoded.source_size == (width, height) and decoded.image.shape == expected.shape


@pytest.mark.parametrize('encoding', ['rgb8', 'mono8'])
def test_an_image_within_the_budget_or_of_another_encoding_comes_at_full_size(encoding):
    msg = raw_message(encoding, np.zeros((HEIGHT, WIDTH) + ((3,) if encoding == 'rgb8' else ()),
                                         np.uint8))
    budget = HEIGHT * WIDTH if encoding == 'rgb8' else 4
    rgb = image_to_rgb(msg, target_pixels=budget)
    assert rgb.shape == (HEIGHT, WIDTH, 3)
    assert not np.may_share_memory(rgb, np.frombuffer(msg.data, np.uint8))


def test_downscale_needs_a_positive_budget():
    with pytest.raises(ValueError, match='max_pixels'):
        downscale(np.zeros((4, 4, 3), np.uint8), 0)


# -- decompression bombs: the declared size is checked before decoding ------------------------

def with_declared_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) claims another size: a few hundred bytes that would
    decode to width x height pixels.
    """
    start = jpeg.index(b'\xff\xc0')
    return (jpeg[:start + 5] + height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
            + jpeg[start + 9:])


def png_with_declared_size(png: bytes, width: int, height: int) -> bytes:
    return png[:16] + width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + png[24:]


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('cv2.imdecode was called')
    monkeypatch.setattr(cv2, 'imdecode', refuse)


@pytest.mark.parametrize('data', [
    with_declared_size(encoded('.jpg', solid(RED)), 30000, 30000),
    png_with_declared_size(encoded('.png', solid(RED)), 30000, 30000),
], ids=['jpeg', 'png'])
def test_a_bomb_is_refused_from_its_header_before_decoding(data, no_decoding):
    assert len(data) < 2000
    with pytest.raises(ImageTooLargeError) as raised:
        compressed_to_rgb(compressed_message('jpeg', data))
    assert '30000x30000' in str(raised.value) and 'max_source_pixels' in str(raised.value)


def test_the_pixel_cap_is_a_setting():
    data = encoded('.png', np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(ImageTooLargeError, match='50x40 = 2000 pixels'):
        compressed_to_rgb(compressed_message('png', data), max_source_pixels=1999)
    assert compressed_to_rgb(compressed_message('png', data),
                             max_source_pixels=2000).shape == (40, 50, 3)


def test_a_raw_image_above_the_cap_is_refused_before_converting():
    msg = raw_message('rgb8', np.zeros((4, 6, 3), np.uint8))
    msg.width, msg.height, msg.step = 30000, 30000, 90000
    with pytest.raises(ImageTooLargeError, match='30000x30000'):
        image_to_rgb(msg)


@pytest.mark.parametrize('extension, name', [
    ('.jpg', 'JPEG'), ('.png', 'PNG'), ('.bmp', 'BMP'), ('.webp', 'WebP')])
def test_declared_size_reads_each_supported_header(extension, name):
    assert declared_size(encoded(extension, np.zeros((30, 70, 3), np.uint8))) == (name, (70, 30))


def test_a_format_whose_size_cannot_be_read_first_is_refused():
    ok, buffer = cv2.imencode('.ppm', np.zeros((4, 4, 3), np.uint8))
    assert ok
    with pytest.raises(ImageDecodeError, match='not JPEG, PNG, BMP or WebP'):
        compressed_to_rgb(compressed_message('ppm', buffer.tobytes()))


def test_a_jpeg_is_decoded_reduced_for_the_budget_and_keeps_its_source_size(monkeypatch):
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[:, :960] = RED
    flags = []
    real_imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, 'imdecode', lambda data, flag: flags.append(flag) or real_imdecode(
        data, flag))
    decoded = decode_image(compressed_message('jpeg', encoded('.jpg', image)),
                           target_pixels=640 * 360)
    assert flags == [cv2.IMREAD_REDUCED_COLOR_2]
    assert decoded.source_size == (1920, 1080) and decoded.image.shape == (540, 960, 3)
    assert np.abs(decoded.image[270, 200].astype(int) - RED).max() <= 12
    full = decode_image(compressed_message('jpeg', encoded('.jpg', image)))
    assert full.image.shape == (1080, 1920, 3) and full.source_size == (1920, 1080)
