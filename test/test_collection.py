"""The suite says what each test needs: where ROS 2 is missing, the core's tests run and the
ROS ones are skipped with the reason (hide_ros stands in for a machine without ROS).
"""

import os
from pathlib import Path
import re
import subprocess
import sys

from ros_modules import ROS_MISSING, scan_imports

TEST_DIR = Path(__file__).resolve().parent
ROOT = TEST_DIR.parent


def run_pytest(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(TEST_DIR), os.environ.get('PYTHONPATH', '')])))
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q', *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def pytest_without_ros(*args: str) -> subprocess.CompletedProcess:
    return run_pytest('-p', 'hide_ros', *args)


def test_the_ros_marker_selects_the_files_that_import_ros():
    done = run_pytest('--collect-only', '-m', 'ros', 'test/test_rates.py',
                      'test/test_vocabulary.py')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    items = [line for line in done.stdout.splitlines() if '::' in line]
    assert items and all(item.startswith('test/test_vocabulary.py::') for item in items), items


def test_without_ros_the_whole_suite_collects_with_each_ros_file_as_one_item():
    done = pytest_without_ros('--collect-only', 'test/')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    items = done.stdout.splitlines()
    assert 'test/test_node.py::test_node.py' in items
    assert 'test/test_executables.py::test_executables.py' in items
    assert [item for item in items if item.startswith('test/test_node.py::')] == [
        'test/test_node.py::test_node.py']
    assert any(item.startswith('test/test_parsing.py::test_') for item in items)


def test_without_ros_the_core_tests_pass_and_the_ros_files_are_skipped_with_the_reason():
    done = pytest_without_ros('-rs', 'test/test_rates.py', 'test/test_vocabulary.py',
                              'test/test_process.py')
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ('test_vocabulary.py', 'test_process.py'):
        assert f'SKIPPED [1] test/{name}: {ROS_MISSING}' in done.stdout, done.stdout
    counts = re.search(r'(\d+) passed, 2 skipped in', done.stdout)
    assert counts and int(counts.group(1)) > 0, done.stdout


def test_the_scan_finds_ros_at_module_level_in_bodies_and_through_helpers(tmp_path):
    (tmp_path / 'graph_helper.py').write_text('import rclpy\n')
    (tmp_path / 'core_helper.py').write_text('import numpy\nfrom rosbags.typesys import Stores\n')
    (tmp_path / 'test_direct.py').write_text('from sensor_msgs.msg import Image\n')
    (tmp_path / 'test_helper.py').write_text('from graph_helper import Graph\n')
    (tmp_path / 'test_layer.py').write_text('from cosmos_reason_ros import ros\n')
    (tmp_path / 'test_core.py').write_text(
        'import core_helper\nfrom cosmos_reason_ros.core import config\n\n'
        'def graph():\n    from graph_helper import Graph\n\n'
        'def test_plain():\n    import json\n\n'
        'class TestNode:\n    def test_goal(self):\n        import rosidl_runtime_py\n')
    for ros_file in ('test_direct.py', 'test_helper.py', 'test_layer.py'):
        assert scan_imports(tmp_path / ros_file).needs_ros, ros_file
    core = scan_imports(tmp_path / 'test_core.py')
    assert not core.needs_ros and not scan_imports(tmp_path / 'core_helper.py').needs_ros
    assert core.functions_needing_ros == {'graph', 'test_goal'}
    assert {'core_helper', 'cosmos_reason_ros.core.config'} <= core.module_imports
