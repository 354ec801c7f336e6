"""package.xml declares every ROS package and rosdep key that the ROS layer and launch files
import, so that rosdep installs them on a robot.
"""

import ast
import pathlib
import sys
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROSDEP_KEYS = {'cv2': 'python3-opencv', 'numpy': 'python3-numpy', 'yaml': 'python3-yaml'}
"""Python modules whose rosdep key is not their name."""
EXECUTABLES = ('reason_node', 'ask', 'sample_stream', 'live_eval', 'cosmos-reason')


def declared() -> set[str]:
    """Run-time dependencies of package.xml."""
    tags = ('depend', 'exec_depend')
    return {element.text.strip() for element in ElementTree.parse(ROOT / 'package.xml').iter()
            if element.tag in tags}


def imported_modules() -> set[str]:
    """Top-level modules the ROS layer, the launch files and the executables import."""
    files = sorted((ROOT / 'cosmos_reason_ros' / 'ros').glob('*.py'))
    files += sorted((ROOT / 'launch').glob('*.py'))
    files += [ROOT / 'scripts' / name for name in EXECUTABLES]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split('.')[0])
    return {name for name in modules
            if name not in sys.stdlib_module_names and name != 'cosmos_reason_ros'}


def test_every_ros_package_the_ros_layer_imports_is_an_exec_depend():
    missing = {ROSDEP_KEYS.get(name, name) for name in imported_modules()} - declared()
    assert not missing, f'add <exec_depend> for {sorted(missing)} to package.xml'


def test_the_launch_file_dependencies_are_declared():
    assert {'launch', 'launch_ros', 'ament_index_python'} <= declared()


def _wheels(distro: str) -> set[str]:
    lines = (ROOT / 'requirements' / f'ros-{distro}-wheels.txt').read_text().splitlines()
    return {line.split('[')[0].replace(f'ros-{distro}-', 'ros-DISTRO-') for line in lines
            if line and not line.startswith('#')}


def test_the_jazzy_wheels_hold_every_package_of_the_kilted_wheels():
    # Kilted's ament_cmake_ros_core does not exist for Jazzy (its ament_cmake_ros needs gmock,
    # gtest and pytest instead).
    missing = _wheels('kilted') - {'ros-DISTRO-ament-cmake-ros-core'} - _wheels('jazzy')
    assert not missing, f'add to requirements/ros-jazzy-wheels.txt: {sorted(missing)}'
