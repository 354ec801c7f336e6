"""Which imports are ROS 2's and which tests make them: the test run's one definition of both.

test/conftest.py marks and skips tests by it, test/hide_ros.py hides by it. Stdlib only: it is read
before anything else is imported, on machines without ROS too.
"""

import ast
from dataclasses import dataclass
import importlib.util
from pathlib import Path

ROS_PACKAGES = ('rclpy', 'rpyutils', 'ament_index_python', 'launch', 'launch_ros', 'rosbag2_py',
                'message_filters', 'cv_bridge', 'tf2_ros', 'tf2_py')
"""Top-level modules of ROS 2 itself (besides rosidl_* and the message packages)."""
ROS_INTERFACE_SUFFIXES = ('_msgs', '_interfaces')
"""Message packages: sensor_msgs, action_msgs, builtin_interfaces, rcl_interfaces..."""
OWN_ROS_MODULES = ('cosmos_reason_ros.ros', 'cosmos_reason_ros.msg', 'cosmos_reason_ros.action')
"""This package's ROS layer and the interfaces scripts/setup.sh generates into install/."""
ROS_MISSING = 'needs rclpy (ROS 2): source a ROS 2 or run scripts/setup.sh'
INTERFACES_MISSING = ('needs the interfaces scripts/setup.sh generates (cosmos_reason_ros.action):'
                      ' run scripts/setup.sh, then source scripts/env.sh')


def is_ros_module(name: str) -> bool:
    """Whether importing `name` needs ROS 2.

    Args:
        name: a dotted module name, e.g. 'sensor_msgs.msg'.

    Returns:
        True for ROS 2's own modules, message packages and this package's ROS layer.
    """
    top = name.partition('.')[0]
    return (top in ROS_PACKAGES or top.startswith('rosidl') or top.endswith(ROS_INTERFACE_SUFFIXES)
            or any(name == own or name.startswith(own + '.') for own in OWN_ROS_MODULES))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent that fails, or sys.modules[name] = None
        return False


def ros_missing_reason() -> str | None:
    """Why the tests that need ROS cannot run here, or None when they can.

    Looks the modules up without importing them: the core's tests run without rclpy loaded.
    """
    if not _importable('rclpy'):
        return ROS_MISSING
    if not _importable('cosmos_reason_ros.action'):
        return INTERFACES_MISSING
    return None


@dataclass(frozen=True)
class ImportScan:
    """What one test file imports, and where that needs ROS."""

    module_imports: frozenset[str] = frozenset()
    """Modules imported at module level (for `from a import b`, both a and a.b)."""
    needs_ros: bool = False
    """A module-level import needs ROS: without it the file does not even import."""
    functions_needing_ros: frozenset[str] = frozenset()
    """Functions (tests, fixtures, methods) that import ROS in their body."""


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement imports (for `from a import b`, both a and a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        return []  # relative imports stay inside the test folder's own modules
    # `from cosmos_reason_ros import ros` imports cosmos_reason_ros.ros.
    return [node.module] + [f'{node.module}.{alias.name}' for alias in node.names]


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported (not those inside function bodies)."""
    found = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                pending.append(child)
    return found


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level functions and the methods of module-level classes."""
    functions = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append(node)
        elif isinstance(node, ast.ClassDef):
            functions += [item for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return functions


_scanned: dict[Path, ImportScan] = {}


def scan_imports(path: Path) -> ImportScan:
    """What the test module (or test helper) at `path` imports and where it needs ROS.

    A static scan: nothing is imported.

    An import needs ROS when it names a ROS module (is_ros_module) or a helper module of the
    same folder (ros_graph, bag_player...) that needs ROS when imported.

    Args:
        path: a Python file in the test folder.

    Returns:
        Its module-level imports, whether the whole file needs ROS, and which functions do.
    """
    path = path.resolve()
    if path in _scanned:
        return _scanned[path]
    _scanned[path] = ImportScan()  # while it is scanned: helpers that import each other end here
    tree = ast.parse(path.read_text(), filename=str(path))

    def needs_ros(node: ast.Import | ast.ImportFrom) -> bool:
        for name in imported_names(node):
            helper = path.parent / f'{name.partition(".")[0]}.py'
            if is_ros_module(name) or (helper.is_file() and helper != path
                                       and scan_imports(helper).needs_ros):
                return True
        return False

    module_level = module_level_imports(tree)
    functions = frozenset(
        function.name for function in _functions(tree)
        if any(needs_ros(node) for node in ast.walk(function)
               if isinstance(node, (ast.Import, ast.ImportFrom))))
    _scanned[path] = ImportScan(
        module_imports=frozenset(name for node in module_level for name in imported_names(node)),
        needs_ros=any(needs_ros(node) for node in module_level), functions_needing_ros=functions)
    return _scanned[path]
