"""The core (and the cosmos-reason CLI) import no ROS: offline users install it without ROS."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_importing_every_core_module_loads_no_rclpy():
    modules = sorted(
        '.'.join(path.relative_to(ROOT).with_suffix('').parts)
        for path in (ROOT / 'cosmos_reason_ros' / 'core').rglob('*.py')
        if path.name != '__init__.py')
    modules.append('cosmos_reason_ros.cli')
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
