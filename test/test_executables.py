"""The package's executables as a user runs them after `source scripts/env.sh`: by name, from any
directory, without `ros2 run` (the wheels have no ros2 command).
"""

from collections.abc import Iterator
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

from ament_index_python.packages import get_package_share_directory
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from ros_graph import next_domain, TIMEOUT
from sensor_msgs.msg import Image

from cosmos_reason_ros.ros.spinning import spinning

EXECUTABLES = ('reason_node', 'ask', 'sample_stream', 'live_eval', 'cosmos-reason')
SHARE = pathlib.Path(get_package_share_directory('cosmos_reason_ros'))


@pytest.fixture
def ros_env() -> dict[str, str]:
    """The shell's environment (env.sh sourced) on a DDS domain of this test's own."""
    return {**os.environ, 'ROS_DOMAIN_ID': str(next_domain()),
            'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST', 'PYTHONUNBUFFERED': '1'}


@pytest.fixture
def started(tmp_path: pathlib.Path) -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts (in tmp_path, not the checkout); interrupted at the end."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize('name', EXECUTABLES)
def test_every_executable_is_on_the_path_after_env_sh(name):
    path = shutil.which(name)
    assert path is not None, f'{name} is not on the PATH: source scripts/env.sh'
    assert pathlib.Path(path).parent.name == 'cosmos_reason_ros'


def test_ask_with_a_missing_image_says_so_without_a_traceback(tmp_path, ros_env):
    completed = subprocess.run(['ask', 'What is this?', '--image', 'missing.png'], cwd=tmp_path,
                               env=ros_env, capture_output=True, text=True, timeout=120)

    assert completed.returncode != 0
    assert 'Traceback' not in completed.stderr
    assert completed.stderr.strip() == (
        'ask: cannot read --image missing.png: No such file or directory')


def test_the_demo_stream_arrives_whole_with_the_scripts_environment(ros_env, started, tmp_path):
    """640x480 bgr8 frames (900 KiB) exceed Fast DDS's default 512 KiB shared-memory segments;
    without the profile env.sh sets, most are lost (measured: 3-19 of 40-60).
    """
    # Fast DDS 3 (Kilted) reads the first, Fast DDS 2 (Jazzy) the second.
    assert any(ros_env.get(variable, '').endswith('fastdds_large_frames.xml') for variable in
               ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'))
    rate = 10.0
    started.append(subprocess.Popen(['sample_stream', '--ros-args', '-p', f'rate:={rate}'],
                                    cwd=tmp_path, env=ros_env))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_env['ROS_DOMAIN_ID']))
    node = Node('frame_counter', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stamps: list[float] = []
    node.create_subscription(
        Image, 'image', lambda msg: stamps.append(msg.header.stamp.sec
                                                  + msg.header.stamp.nanosec * 1e-9),
        qos_profile_sensor_data)
    with spinning(executor, destroy=(node.destroy_node,), context=context):
        deadline = time.monotonic() + TIMEOUT
        while not stamps and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stamps, 'no frame from sample_stream'
        first = len(stamps)
        while stamps[-1] - stamps[first - 1] < 4.0 and time.monotonic() < deadline:
            time.sleep(0.1)

    received = len(stamps) - first
    span = stamps[-1] - stamps[first - 1]
    # All arrive (40 of 40 in 4 s here); a loaded machine may publish some late. Without the
    # profile 3-13 of 40 arrived.
    assert received >= 0.7 * span * rate, (received, span)


def test_the_cpu_preset_answers_from_another_directory(ros_env, started, tmp_path):
    """The demo's commands, run from a directory that holds no checkpoint."""
    preset = SHARE / 'config' / 'cpu_test_model.yaml'
    camera = ['-r', 'image:=/camera/image_raw']
    started.append(subprocess.Popen(['sample_stream', '--ros-args', *camera], cwd=tmp_path,
                                    env=ros_env))
    started.append(subprocess.Popen(['reason_node', '--ros-args', '--params-file', str(preset),
                                     *camera], cwd=tmp_path, env=ros_env))

    completed = subprocess.run(
        ['ask', 'Move the red marker into the grey basket.', '--mode', 'trajectory', '--quiet',
         '--max-new-tokens', '400', '--window-end-in', '2.0', '--wait-for-model', '120',
         '--timeout', '120'],
        cwd=tmp_path, env=ros_env, capture_output=True, text=True, timeout=300)

    assert completed.returncode == 0, completed.stdout + completed.stderr  # 0: it succeeded
    result = json.loads(completed.stdout)
    assert result['output']['model_id'].endswith('models/tiny-qwen3-vl')
    # A window ending 2 s after the goal: 8 frames at 4 fps from the 30 fps stream (7 when a
    # loaded machine publishes late).
    assert len(result['output']['frame_stamps']) >= 7, result['output']['frame_stamps']
