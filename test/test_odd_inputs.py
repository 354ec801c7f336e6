"""Inputs that are valid by size or type but not by shape or definition: images the processor
refuses, stamps ROS does not define, tasks with nothing visible, numbers that are not numbers.
No ROS graph: the node's own tests send the same inputs through a running node.
"""

import math

from builtin_interfaces.msg import Time
import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from cosmos_reason_ros.action import Reason
from cosmos_reason_ros.core.answers.families import FAMILY_SPECS, image_shape
from cosmos_reason_ros.core.answers.modes import Mode, ModelFamily
from cosmos_reason_ros.core.answers.prompts import build_prompt
from cosmos_reason_ros.core.camera.images import (
    check_image_shape,
    decode_image,
    downscale,
    downscaled_size,
    ImageShapeError,
)
from cosmos_reason_ros.core.config import WindowConfig
from cosmos_reason_ros.core.errors import InvalidRequestError
from cosmos_reason_ros.ros.client import make_goal
from cosmos_reason_ros.ros.conversions import GOAL_NUMBERS, goal_to_request, header_from_cdr
from cosmos_reason_ros.ros.image_input import read_image

WINDOW = WindowConfig(max_pixels=160 * 120)
SHAPE = image_shape(ModelFamily.QWEN3_VL)


def jpeg(width: int, height: int) -> bytes:
    return cv2.imencode('.jpg', np.zeros((height, width, 3), np.uint8))[1].tobytes()


# Shape -------------------------------------------------------------------------------------

def test_every_family_takes_the_200_to_1_its_processor_checks():
    assert {spec.image_shape.max_aspect_ratio for spec in FAMILY_SPECS.values()} == {200.0}
    assert image_shape(None).max_aspect_ratio == 200.0


@pytest.mark.parametrize('width, height', [(20000, 99), (99, 20000), (201, 1)])
def test_an_image_out_of_shape_is_refused_naming_the_limit(width, height):
    with pytest.raises(ImageShapeError, match=r'above the 200:1 that the Qwen3-VL video'):
        check_image_shape(width, height, SHAPE, 'goal image 0')


@pytest.mark.parametrize('width, height', [(200, 1), (640, 480), (1, 1), (20000, 100)])
def test_an_image_within_the_shape_passes(width, height):
    check_image_shape(width, height, SHAPE, 'goal image 0')


@pytest.mark.parametrize('width, height', [(20000, 100), (100, 20000)])
def test_a_shape_that_downscaling_pushes_past_the_limit_is_refused(width, height):
    # 20000x100 is 200:1, which the processor takes; downscaled to 160x120 = 19200 px it
    # becomes 1960x9 (217.8:1), which it refuses.
    assert sorted(downscaled_size(width, height, 19200)) == [9, 1960]
    check_image_shape(width, height, SHAPE, 'frame')
    with pytest.raises(ImageShapeError, match=f'{width}x{height} px: its aspect ratio after '
                                              'downscaling to the frame budget is 217.8:1'):
        check_image_shape(width, height, SHAPE, 'frame', target_pixels=19200)


def test_downscale_gives_the_size_downscaled_size_says():
    image = np.zeros((480, 640, 3), np.uint8)
    assert downscale(image, 19200).shape[1::-1] == downscaled_size(640, 480, 19200)
    assert downscale(image, 10 ** 6) is image


@pytest.mark.parametrize('message', [
    CompressedImage(format='jpeg', data=jpeg(20000, 100)),
    CompressedImage(format='jpeg', data=jpeg(100, 20000)),
    Image(width=20000, height=100, encoding='mono8', step=20000, data=bytes(20000 * 100)),
], ids=['jpeg 20000x100', 'jpeg 100x20000', 'mono8 20000x100'])
def test_decoding_checks_the_shape_before_any_pixel(message, monkeypatch):
    monkeypatch.setattr(cv2, 'imdecode', pytest.fail)
    monkeypatch.setattr('cosmos_reason_ros.core.camera.images.image_to_rgb', pytest.fail)
    with pytest.raises(ImageShapeError, match='200:1'):
        decode_image(message, target_pixels=19200, shape=SHAPE)


# Kept frames read from their CDR bytes ------------------------------------------------------

def _frame_bytes(kind: type) -> bytes:
    header = Header(stamp=Time(sec=100, nanosec=5), frame_id='camera')
    if kind is Image:
        return bytes(serialize_message(Image(header=header, width=4, height=2, encoding='bgr8',
                                             step=12, data=bytes(range(24)))))
    return bytes(serialize_message(CompressedImage(header=header, format='jpeg',
                                                   data=jpeg(32, 24))))


def _not_utf8(data: bytes) -> bytes:
    index = data.index(b'camera')
    return data[:index] + b'\xff' + data[index + 1:]


def _unterminated(data: bytes) -> bytes:
    index = data.index(b'camera') + len('camera')
    return data[:index] + b'x' + data[index + 1:]


@pytest.mark.parametrize('kind', [Image, CompressedImage])
@pytest.mark.parametrize('change', [
    lambda data: data, _not_utf8, _unterminated, lambda data: data + bytes(8),
], ids=['as sent', 'frame_id not UTF-8', 'frame_id unterminated', 'bytes after the message'])
def test_a_kept_frame_reads_as_rclpy_reads_it(kind, change):
    # rosbags is stricter than rclpy; where it refuses, rclpy's reader decides as before.
    data = change(_frame_bytes(kind))
    expected = deserialize_message(data, kind)
    message = read_image(data, kind)
    assert message.header.frame_id == expected.header.frame_id
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (100, 5)
    assert bytes(message.data) == bytes(expected.data)
    assert (decode_image(message).image == decode_image(expected).image).all()


@pytest.mark.parametrize('kind', [Image, CompressedImage])
def test_a_kept_frame_s_pixels_are_read_without_a_copy(kind):
    data = _frame_bytes(kind)
    pixels = read_image(data, kind).data
    assert np.shares_memory(np.asarray(pixels), np.frombuffer(data, np.uint8))


@pytest.mark.parametrize('kind', [Image, CompressedImage])
def test_a_kept_frame_cut_short_is_an_error_to_drop(kind):
    data = _frame_bytes(kind)
    for length in (3, 20, len(data) - 10):
        with pytest.raises(Exception) as error:
            read_image(data[:length], kind)
        with pytest.raises(type(error.value)):
            deserialize_message(data[:length], kind)


# Stamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize('nanosec', [10 ** 9, 2 ** 32 - 1])
def test_a_camera_stamp_with_nanosec_out_of_range_is_no_time(nanosec):
    message = Image(header=Header(stamp=Time(sec=100, nanosec=nanosec), frame_id='camera'))
    stamp, frame_id = header_from_cdr(serialize_message(message))
    assert math.isnan(stamp) and frame_id == 'camera'


def test_the_largest_valid_nanosec_is_a_time():
    message = Image(header=Header(stamp=Time(sec=100, nanosec=10 ** 9 - 1)))
    assert header_from_cdr(serialize_message(message))[0] == pytest.approx(101.0)


@pytest.mark.parametrize('nanosec', [10 ** 9, 2 ** 32 - 1])
def test_goal_stamps_with_nanosec_out_of_range_are_invalid_goals(nanosec):
    with pytest.raises(InvalidRequestError, match=f'window_end has nanosec {nanosec}'):
        goal_to_request(make_goal('Is it safe?', window_end=Time(sec=1, nanosec=nanosec)),
                        WINDOW)
    image = CompressedImage(header=Header(stamp=Time(sec=1, nanosec=nanosec)), format='jpeg',
                            data=jpeg(64, 48))
    with pytest.raises(InvalidRequestError, match='goal image 0 header.stamp has nanosec'):
        goal_to_request(make_goal('Is it safe?', compressed_images=[image]), WINDOW)


# Goal fields -------------------------------------------------------------------------------

INVISIBLE = ['\u3000\u00a0\u200b', '\u200b', ' \t\n', '\u2060\ufeff', '']


@pytest.mark.parametrize('task', INVISIBLE)
@pytest.mark.parametrize('mode', [Mode.QUESTION, Mode.TRAJECTORY, Mode.MULTIPLE_CHOICE])
def test_a_task_with_no_visible_character_is_refused_where_the_mode_needs_one(mode, task):
    with pytest.raises(InvalidRequestError, match='task field'):
        build_prompt(mode, family=ModelFamily.QWEN3_VL, task=task, choices=('a', 'b'))


@pytest.mark.parametrize('name', INVISIBLE)
def test_an_object_name_or_choice_with_no_visible_character_is_refused(name):
    with pytest.raises(InvalidRequestError, match='object_name'):
        build_prompt(Mode.GROUNDING, family=ModelFamily.QWEN3_VL, object_name=name)
    with pytest.raises(InvalidRequestError, match='empty choice'):
        build_prompt(Mode.MULTIPLE_CHOICE, family=ModelFamily.QWEN3_VL, task='Which?',
                     choices=('a', name))


def test_invisible_context_is_left_out_where_the_task_is_optional():
    prompt = build_prompt(Mode.CAPTION, family=ModelFamily.QWEN3_VL, task='\u200b')
    assert prompt.user == 'Caption the video in detail.'


def test_visible_text_around_invisible_characters_is_kept():
    prompt = build_prompt(Mode.QUESTION, family=ModelFamily.QWEN3_VL, task='\u200bIs it red?')
    assert prompt.user == '\u200bIs it red?'


REFUSED = 'refused'
DEFAULT = 'default'
# field -> [(goal value, what the request holds: a value, DEFAULT or REFUSED)]. Every numeric
# field of the goal, each with NaN, the infinities, a negative value and zero where its type can
# hold them: NaN and infinities are refused, zero and negative values take the default
# (temperature 0 is greedy decoding), anything else is used as given. priority is the exception:
# any integer is used as given (below 0 is background work, as monitor ticks).
NUMBER_TABLE = {
    'window_duration': [(math.nan, REFUSED), (math.inf, REFUSED), (-math.inf, REFUSED),
                        (-5.0, DEFAULT), (0.0, DEFAULT), (1.5, 1.5)],
    'max_frames': [(0, DEFAULT), (6, 6)],
    'window_end': [(Time(sec=-5), DEFAULT), (Time(), DEFAULT), (Time(sec=7, nanosec=5 * 10 ** 8),
                                                                7.5),
                   (Time(sec=7, nanosec=10 ** 9), REFUSED)],
    'max_new_tokens': [(0, DEFAULT), (64, 64)],
    'temperature': [(math.nan, REFUSED), (math.inf, REFUSED), (-math.inf, REFUSED),
                    (-5.0, DEFAULT), (0.0, 0.0), (0.5, 0.5)],
    'top_p': [(math.nan, REFUSED), (math.inf, REFUSED), (-math.inf, REFUSED), (-5.0, DEFAULT),
              (0.0, DEFAULT), (0.5, 0.5)],
    'top_k': [(-5, DEFAULT), (0, DEFAULT), (20, 20)],
    'seed': [(-5, DEFAULT), (0, 0), (7, 7)],
    'priority': [(-2 ** 31, -2 ** 31), (-5, -5), (0, 0), (2 ** 31 - 1, 2 ** 31 - 1)],
}
_DEFAULTS = {'window_duration': 0.0, 'max_frames': 0, 'window_end': None, 'max_new_tokens': 0,
             'temperature': None, 'top_p': None, 'top_k': None, 'seed': None, 'priority': 0}


def test_the_table_covers_every_numeric_field_of_the_goal():
    types = Reason.Goal.get_fields_and_field_types()
    numeric = {name for name, kind in types.items()
               if kind.startswith(('float', 'double', 'int', 'uint')) or kind.endswith('/Time')}
    assert numeric == set(GOAL_NUMBERS) == set(NUMBER_TABLE)


@pytest.mark.parametrize('name, value, expected', [
    (name, value, expected) for name, rows in NUMBER_TABLE.items() for value, expected in rows])
def test_each_numeric_goal_field_follows_one_rule(name, value, expected):
    goal = make_goal('Is it safe?', **{name: value})
    if expected == REFUSED:
        with pytest.raises(InvalidRequestError, match=name):
            goal_to_request(goal, WINDOW)
        return
    held = getattr(goal_to_request(goal, WINDOW), name)
    assert held == (_DEFAULTS[name] if expected == DEFAULT else pytest.approx(expected))
