"""The code style ROS Python packages check as a test (ament_flake8, ament_pep257), with ruff.

ruff.toml holds the rules: pycodestyle and pyflakes at 99 columns, single quotes, imports grouped
stdlib / third party / local, PEP 604 and 585 annotations, and Google-style docstrings.
"""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXECUTABLES = ['scripts/reason_node', 'scripts/ask', 'scripts/sample_stream', 'scripts/live_eval',
               'scripts/cosmos-reason']


def test_ruff_finds_nothing_to_fix():
    ruff = shutil.which('ruff') or str(pathlib.Path(sys.executable).with_name('ruff'))
    completed = subprocess.run(
        [ruff, 'check', '--no-cache', 'cosmos_reason_ros', 'bench', 'test', 'launch',
         'setup.py', *EXECUTABLES],
        cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert 'All checks passed' in completed.stdout
