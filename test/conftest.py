"""Shared pytest set-up: the markers that say what a test needs, and a tiny checkpoint of each
supported family, built once per session.

Markers (select with -m, e.g. `scripts/test.sh -m 'not ros'`), applied here, from the tests'
imports, so that no test file repeats them:

- ros: needs ROS 2 (rclpy, message packages, this package's ROS layer or its interfaces). A
  whole file when a module-level import needs ROS, directly or through a helper of this folder
  (ros_graph, bag_player, slow_load_node); else the tests and fixtures that import ROS in their
  body. A test whose ROS runs in a child process says so itself with @pytest.mark.ros. Where
  ROS is missing, such files collect as one skipped item each and such tests are skipped, with
  the reason: the core's tests still run.
- vllm: starts a real vLLM server (.venv-vllm, scripts/setup_vllm.sh): test_vllm_server.py and
  every file that imports its server.
- slow: runs a separate program end to end, by file: the vLLM files (the server takes 30-100 s
  to start) and test_bench_scripts.py (a bench script each: 0.3-180 s, about 6 min together on
  the 2-core test machine, --durations). Files that take long over many quick tests are not
  (test_node: 51 tests in 70 s, the slowest 14 s as it starts the shared node).

No ROS imports here: the core's tests must run without a ROS installation.
"""

from pathlib import Path

import pytest
from ros_modules import ROS_MISSING, ros_missing_reason, scan_imports

MARKERS = (
    'ros: needs ROS 2 (rclpy and the interfaces scripts/setup.sh builds); skipped without it',
    'vllm: starts a real vLLM server (needs .venv-vllm from scripts/setup_vllm.sh)',
    'slow: runs a separate program end to end (a vLLM server, a bench script)',
)
VLLM_MODULE = 'test_vllm_server'
"""The module that starts the vLLM server; files that import it start one too."""
SLOW_FILES = ('test_bench_scripts.py',)
"""Slow besides the vLLM files."""
_ROS_MISSING = pytest.StashKey[str | None]()
"""Why the ROS tests cannot run here (ros_missing_reason), or None."""


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line('markers', line)
    config.stash[_ROS_MISSING] = ros_missing_reason()


class _RosFile(pytest.File):
    """A test file that cannot be imported without ROS: one item, skipped with the reason."""

    def collect(self):
        item = _RosFileSkipped.from_parent(self, name=self.path.name)
        item.add_marker(pytest.mark.ros)
        item.add_marker(pytest.mark.skip(reason=self.config.stash[_ROS_MISSING] or ROS_MISSING))
        yield item


class _RosFileSkipped(pytest.Item):
    def runtest(self) -> None:
        pytest.skip(self.config.stash[_ROS_MISSING] or ROS_MISSING)  # the skip mark comes first

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name  # a skip's report needs a line: the file's first


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if parent.config.stash[_ROS_MISSING] and scan_imports(module_path).needs_ros:
        return _RosFile.from_parent(parent, path=module_path)
    return None  # pytest's own Module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = config.stash[_ROS_MISSING]
    for item in items:
        if item.path.suffix != '.py':
            continue
        scan = scan_imports(item.path)
        function = getattr(item, 'originalname', item.name)  # without the parameters
        uses = {function, *getattr(item, 'fixturenames', ())}
        if scan.needs_ros or uses & scan.functions_needing_ros:
            item.add_marker(pytest.mark.ros)
        vllm = item.path.stem == VLLM_MODULE or VLLM_MODULE in scan.module_imports
        if vllm:
            item.add_marker(pytest.mark.vllm)
        if vllm or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if missing and item.get_closest_marker('ros'):
            item.add_marker(pytest.mark.skip(reason=missing))


def _tiny_checkpoint(factory: pytest.TempPathFactory, family_name: str) -> Path:
    from cosmos_reason_ros.core.answers.modes import ModelFamily
    from cosmos_reason_ros.demo.tiny_model import build_tiny_checkpoint

    return build_tiny_checkpoint(factory.mktemp('tiny_models') / family_name,
                                 ModelFamily(family_name))


@pytest.fixture(scope='session')
def tiny_qwen3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen3-VL (Cosmos-Reason2 layout) checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'qwen3_vl')


@pytest.fixture(scope='session')
def tiny_qwen25_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Qwen2.5-VL (Cosmos-Reason1 layout) checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'qwen2_5_vl')


@pytest.fixture(scope='session')
def tiny_edge_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Cosmos3-Edge reasoner checkpoint (Nemotron-style tokenizer)."""
    return _tiny_checkpoint(tmp_path_factory, 'cosmos3_edge')


@pytest.fixture(scope='session')
def tiny_omni_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random Cosmos3-Omni (Nano/Super layout) reasoner checkpoint."""
    return _tiny_checkpoint(tmp_path_factory, 'cosmos3_omni')


def _loaded(checkpoint: Path):
    from cosmos_reason_ros.core.backends.transformers_backend import TransformersBackend
    from cosmos_reason_ros.core.config import ModelConfig

    backend = TransformersBackend(ModelConfig(model=str(checkpoint), device='cpu'))
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope='module')
def qwen3(tiny_qwen3_checkpoint: Path):
    """The tiny Qwen3-VL loaded on the CPU by the local backend (one per test module)."""
    yield from _loaded(tiny_qwen3_checkpoint)


@pytest.fixture(scope='module')
def qwen25(tiny_qwen25_checkpoint: Path):
    """The tiny Qwen2.5-VL loaded on the CPU by the local backend."""
    yield from _loaded(tiny_qwen25_checkpoint)


@pytest.fixture(scope='module')
def edge(tiny_edge_checkpoint: Path):
    """The tiny Cosmos3-Edge reasoner loaded on the CPU by the local backend."""
    yield from _loaded(tiny_edge_checkpoint)


@pytest.fixture(scope='module')
def omni(tiny_omni_checkpoint: Path):
    """The tiny Cosmos3-Omni (Nano/Super) reasoner loaded on the CPU by the local backend."""
    yield from _loaded(tiny_omni_checkpoint)


@pytest.fixture(params=['qwen3', 'qwen25', 'edge', 'omni'])
def backend(request: pytest.FixtureRequest):
    """Each family's tiny model, loaded (tests that use it run once per family)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def servers():
    """Scripted OpenAI-compatible servers on loopback, closed after the test.

    The fixture is a function: called with one script per server (keyword arguments go to each
    ScriptedServer), it returns the servers it started.
    """
    from test_openai_backend import ScriptedServer

    started = []

    def start(*scripts, **kwargs):
        for script in scripts:
            started.append(ScriptedServer(script, **kwargs))
        return started[-len(scripts):]

    yield start
    for server in started:
        server.close()
