"""The layers import one way: ros -> core, demo -> core; the core imports neither, nor any ROS.

Offline users install the core (and the cosmos-reason CLI) without ROS, and robots run it without
the demo's test scaffolding.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'cosmos_reason_ros'


def module_names(room: str) -> list[str]:
    return sorted('.'.join(path.relative_to(ROOT).with_suffix('').parts)
                  for path in (PACKAGE / room).rglob('*.py') if path.name != '__init__.py')


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_importing_every_core_and_demo_module_loads_no_rclpy():
    modules = module_names('core') + module_names('demo') + ['cosmos_reason_ros.cli']
    script = ('import importlib, sys\n'
              f'for name in {modules!r}:\n'
              '    importlib.import_module(name)\n'
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('rclpy', 'rosidl_runtime_py', 'launch')))\n")
    completed = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == '[]'
    assert len(modules) > 15


def test_the_core_imports_neither_the_ros_layer_nor_the_demo():
    upward = {}
    for path in (PACKAGE / 'core').rglob('*.py'):
        bad = sorted(name for name in imported_modules(path)
                     if name.startswith(('cosmos_reason_ros.ros', 'cosmos_reason_ros.demo',
                                         'cosmos_reason_ros.msg', 'cosmos_reason_ros.action')))
        if bad:
            upward[str(path.relative_to(ROOT))] = bad

    assert upward == {}
    assert len(list((PACKAGE / 'core').rglob('*.py'))) > 15
