"""The package runs on Python 3.10 (ROS 2 Humble): no newer syntax, no newer standard library.

The suite itself runs on 3.11 or 3.12 (the ROS wheels need them), so a newer feature would pass
every other test and break on a Humble robot. This parses every module as Python 3.10 does and
looks for standard-library names added in 3.11 and later.
"""

import ast
from collections.abc import Iterator
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXECUTABLES = ('reason_node', 'ask', 'sample_stream', 'live_eval')

NEWER_NAMES = {
    'typing': {'Self', 'LiteralString', 'Never', 'assert_never', 'assert_type', 'reveal_type',
               'Required', 'NotRequired', 'Unpack', 'TypeVarTuple', 'dataclass_transform',
               'override', 'TypeAliasType', 'get_overloads', 'clear_overloads', 'ReadOnly',
               'TypeIs', 'NoDefault', 'get_protocol_members', 'is_protocol'},
    'enum': {'StrEnum', 'ReprEnum', 'verify', 'EnumCheck', 'FlagBoundary', 'global_enum',
             'member', 'nonmember', 'show_flag_values', 'EnumType'},
    'datetime': {'UTC'},
    'asyncio': {'TaskGroup', 'timeout', 'timeout_at', 'Timeout', 'Runner', 'Barrier'},
    'contextlib': {'chdir'},
    'hashlib': {'file_digest'},
    'operator': {'call'},
    'itertools': {'batched'},
    'inspect': {'markcoroutinefunction', 'getmembers_static'},
    'logging': {'getLevelNamesMapping', 'getHandlerByName', 'getHandlerNames'},
    'math': {'cbrt', 'exp2', 'sumprod', 'fma'},
    'functools': {'Placeholder'},
    'warnings': {'deprecated'},
}
NEWER_MODULES = {'tomllib', 'wsgiref.types'}
NEWER_BUILTINS = {'ExceptionGroup', 'BaseExceptionGroup'}


def python_sources() -> list[pathlib.Path]:
    """Every module that ships: the package, the launch files, the executables."""
    files = sorted((ROOT / 'cosmos_reason_ros').rglob('*.py'))
    files += sorted((ROOT / 'launch').glob('*.py'))
    files += [ROOT / 'scripts' / name for name in EXECUTABLES]
    return files


def newer_than_310(source: str, filename: str = '<source>') -> list[str]:
    """What in `source` Python 3.10 cannot run: a syntax error or a 3.11+ name, one per line."""
    try:
        tree = ast.parse(source, filename, feature_version=(3, 10))
    except SyntaxError as error:
        return [f'{filename}:{error.lineno}: {error.msg}']
    return [f'{filename}:{node.lineno}: {what}' for node, what in _newer_names(tree)]


def _newer_names(tree: ast.AST) -> Iterator:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in NEWER_MODULES:
                    yield node, f'module {alias.name} (3.11+)'
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                yield node, f'module {node.module} (3.11+)'
            for alias in node.names:
                if alias.name in NEWER_NAMES.get(node.module, ()):
                    yield node, f'{node.module}.{alias.name} (3.11+)'
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in NEWER_NAMES.get(node.value.id, ()):
                yield node, f'{node.value.id}.{node.attr} (3.11+)'
        elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
            yield node, f'builtin {node.id} (3.11+)'
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if getattr(node, 'type_params', None):  # class A[T] (3.12); older parsers lack it
                yield node, 'type parameter syntax (3.12+)'
        elif type(node).__name__ == 'TypeAlias':  # `type X = ...` (3.12)
            yield node, 'type statement (3.12+)'


def test_the_package_launch_files_and_executables_are_python_310():
    sources = python_sources()
    problems = [problem for path in sources
                for problem in newer_than_310(path.read_text(), str(path.relative_to(ROOT)))]

    assert not problems, '\n'.join(problems)
    assert len(sources) > 40


@pytest.mark.parametrize('snippet', [
    'try:\n    pass\nexcept* ValueError:\n    pass\n',
    'from typing import Self\n',
    'import typing\nx: typing.Self\n',
    'import tomllib\n',
    'from enum import StrEnum\n',
    'import datetime\nnow = datetime.datetime.now(datetime.UTC)\n',
    'raise ExceptionGroup("x", [ValueError()])\n',
    'import asyncio\nasync def f():\n    async with asyncio.TaskGroup() as group:\n        pass\n',
])
def test_the_check_catches_what_310_lacks(snippet):
    assert newer_than_310(snippet)


@pytest.mark.parametrize('snippet', [
    'match x:\n    case 1:\n        pass\n',
    'from typing import Optional, TypeAlias\nX: TypeAlias = Optional[int]\n',
    'with (open("a") as a, open("b") as b):\n    pass\n',
    'def f(x: int | None) -> list[int]:\n    return []\n',
])
def test_the_check_lets_310_code_pass(snippet):
    assert newer_than_310(snippet) == []
