"""A pytest plugin that hides ROS 2, to run the tests as on a machine without it.

`PYTHONPATH=test python -m pytest -p hide_ros test/`: every import that needs ROS (by
ros_modules.is_ros_module) fails as if the module were not installed.
"""

from collections.abc import Sequence
import importlib.abc
import importlib.machinery
import sys
import types

from ros_modules import is_ros_module


class _RosHidden(importlib.abc.MetaPathFinder):
    """Finds every ROS module missing, ahead of the finders that would find it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if is_ros_module(fullname):
            raise ModuleNotFoundError(f'No module named {fullname!r} (hidden by hide_ros)',
                                      name=fullname)
        return None


if any(is_ros_module(name) for name in sys.modules):
    raise RuntimeError('hide_ros: ROS was imported before the plugin; load it first (-p hide_ros)')
sys.meta_path.insert(0, _RosHidden())
