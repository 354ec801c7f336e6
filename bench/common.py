"""Shared pieces of the benchmarks: process CPU and memory from /proc, the node as a process.

Linux only (/proc); everything else is the project's own code and the ROS 2 wheels.
"""

from collections.abc import Iterator, Sequence
import contextlib
import json
import os
from pathlib import Path
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""Repository root: benchmarks run the node from the source tree here."""
CACHE = ROOT / '.cache' / 'bench'
"""Checkpoints the benchmarks build (git-ignored); reused between runs."""
FASTDDS_PROFILE = ROOT / 'config' / 'fastdds_large_frames.xml'
"""Shared-memory segments large enough for 1080p raw frames (see the file's comment)."""

CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by all threads of a process."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    # Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


THREAD_GROUPS = ('middleware', 'spin', 'callbacks', 'other')
"""Thread groups of thread_cpu_seconds(): Fast DDS's threads (it names them dds.*: receive,
shared memory, events, async send), the executor's spin thread, its callback pool, the rest
(the main thread, torch's threads)."""
THREAD_NAMING = 'from bench.common import name_threads; name_threads()'
"""Node prelude: Python threads carry their name into the kernel's (see name_threads)."""


def name_threads() -> None:
    """Give each Python thread started from now on its name in /proc (py.<name>, 15 bytes).

    CPython leaves a thread's kernel name at the process's ('python'), so the spin thread and
    the callback pool cannot be told apart in /proc/<pid>/task; this sets it once, as the thread
    starts (prctl PR_SET_NAME), and costs nothing after.
    """
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    run = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def named(self: threading.Thread) -> None:
        libc.prctl(15, f'py.{self.name}'[:15].encode(), 0, 0, 0)  # PR_SET_NAME
        run(self)

    threading.Thread._bootstrap_inner = named  # type: ignore[attr-defined]


CALLBACK_TIMING = 'from bench.common import time_image_callbacks; time_image_callbacks()'
"""Node prelude: the CPU of the node's camera callbacks, read with callback_cpu_seconds()."""
CALLBACK_FILE = 'COSMOS_BENCH_CALLBACKS'
"""Environment variable: the file where the node's prelude keeps its camera callbacks' CPU."""


def time_image_callbacks() -> None:
    """Count the CPU of each call of the node's camera callback (ImageInput._on_image: header
    read, deserialize, conversion, filter update, bookkeeping; not rclpy's take or dispatch)
    in the file $COSMOS_BENCH_CALLBACKS: seconds and calls, two doubles written in place
    (two clock reads and a 16-byte write a call).
    """
    import mmap
    import struct
    import threading

    from cosmos_reason_ros.ros.image_input import ImageInput

    with open(os.environ[CALLBACK_FILE], 'r+b') as file:
        shared = mmap.mmap(file.fileno(), 16)
    lock = threading.Lock()
    totals = [0.0, 0.0]
    on_image = ImageInput._on_image

    def timed(self: ImageInput, raw: bytes) -> None:
        start = time.thread_time()
        try:
            on_image(self, raw)
        finally:
            spent = time.thread_time() - start
            with lock:
                totals[0] += spent
                totals[1] += 1
                struct.pack_into('dd', shared, 0, *totals)

    ImageInput._on_image = timed  # type: ignore[method-assign]


def callback_file() -> Path:
    """A fresh file for time_image_callbacks() (16 zero bytes); the caller removes it."""
    handle, name = tempfile.mkstemp(prefix='cosmos-callbacks-')
    os.write(handle, bytes(16))
    os.close(handle)
    return Path(name)


def callback_cpu_seconds(path: Path) -> float:
    """CPU seconds the node's camera callbacks took so far (see time_image_callbacks)."""
    import struct

    while True:
        data = path.read_bytes()
        if data == path.read_bytes():  # not torn by a write between the two doubles
            return struct.unpack_from('dd', data)[0]


def thread_group(name: str) -> str:
    """The group of THREAD_GROUPS a thread with this kernel name belongs to."""
    if name.startswith('dds.'):
        return 'middleware'
    if name == 'py.executor':  # cosmos_reason_ros.ros.spinning's thread
        return 'spin'
    if name.startswith('py.ThreadPool'):  # rclpy MultiThreadedExecutor's pool
        return 'callbacks'
    return 'other'


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU seconds so far of the live threads of a process, per thread group.

    Threads that ended are not counted (the process's own figure, cpu_seconds(), keeps them).
    """
    totals = dict.fromkeys(THREAD_GROUPS, 0.0)
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            name = (task / 'comm').read_text().strip()
            fields = (task / 'stat').read_text().rsplit(')', 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        totals[thread_group(name)] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


def thread_counts(pid: int) -> dict[str, int]:
    """Live threads of a process per thread group (see thread_group)."""
    counts = dict.fromkeys(THREAD_GROUPS, 0)
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            counts[thread_group((task / 'comm').read_text().strip())] += 1
        except (FileNotFoundError, ProcessLookupError):
            continue
    return counts


def minor_faults(pid: int) -> int:
    """Minor page faults so far of all threads of a process (fresh pages the kernel zeroed)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return int(fields[7])  # minflt, field 10


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process in MiB: now (VmRSS) and at its peak (VmHWM)."""
    values = {}
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        key, _, rest = line.partition(':')
        if key in ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile'):
            values[key] = int(rest.split()[0]) / 1024
    return values


def process_figures(pid: int) -> dict[str, float]:
    """RSS and peak RSS (MiB), threads and open file descriptors of a process."""
    status = Path(f'/proc/{pid}/status').read_text()
    threads = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith('Threads:')))
    memory = memory_mb(pid)
    return {'rss': memory['VmRSS'], 'peak': memory['VmHWM'], 'threads': threads,
            'fds': len(os.listdir(f'/proc/{pid}/fd'))}


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model, cores, memory, load, software."""
    cpu = 'unknown'
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            cpu = line.split(':', 1)[1].strip()
            break
    total_kb = int(Path('/proc/meminfo').read_text().split()[1])
    return {
        'cpu': cpu, 'cores': os.cpu_count(), 'memory_gb': round(total_kb / 2**20, 1),
        'load_1_5_15': [round(value, 2) for value in load_average()],
        'python': platform.python_version(), 'kernel': platform.release(),
    }


def print_machine() -> None:
    """Print the machine line every benchmark starts with."""
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; "
          f"load {info['load_1_5_15']}; Python {info['python']}")


def ros_domain() -> int:
    """A DDS domain unlikely to meet the test suite's (1-101) or another benchmark run's."""
    return random.SystemRandom().randint(102, 232)


def ros_environment(domain: int) -> dict[str, str]:
    """Environment for ROS processes of one benchmark run: its own domain, localhost only."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_PROFILE), PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH', '')]))
    return env


def use_benchmark_transport() -> None:
    """Give this process's own DDS participants the large-frame profile (set before rclpy.init)."""
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(FASTDDS_PROFILE)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


def own_process_group() -> dict[str, Any]:
    """Popen arguments that start a child in a process group of its own (so that os.killpg
    stops it and its children, and a terminal's Ctrl-C does not reach it) but in this session.

    Not a session of its own (start_new_session): Linux's scheduler autogroups share the CPU
    per session, and a busy vLLM server in its own session starved the test process for up to
    14 s on two cores (no camera frame for 13.7 s, against 0.04 s in one session).
    """
    if sys.version_info >= (3, 11):
        return {'process_group': 0}
    return {'preexec_fn': os.setpgrp}  # Python 3.10 (Humble)


def node_command(parameters: dict[str, Any], fixes: bool = True, prelude: str = '') -> list[str]:
    """Command line that runs the reasoning node from the source tree with these parameters.

    The node's main() is the one `ros2 run cosmos_reason_ros reason_node` calls; running it from
    the source tree measures the code as it is here, without a rebuild of install/.
    fixes=False runs it as before the ingest fixes (rclpy's stock MultiThreadedExecutor, no
    reuse_large_buffers()), for before/after figures from the same script; `prelude` is Python
    run before the node starts (another before/after switch).
    """
    code = 'from cosmos_reason_ros.ros import node; node.main()'
    if not fixes:
        code = ('from rclpy.executors import MultiThreadedExecutor; '
                'from cosmos_reason_ros.ros import node; '
                'node.ReasonExecutor = MultiThreadedExecutor; '
                'node.reuse_large_buffers = lambda: False; node.main()')
    if prelude:
        code = f'{prelude}; {code}'
    command = [sys.executable, '-c', code, '--ros-args', '--log-level', 'warn']
    for name, value in parameters.items():
        if isinstance(value, bool):
            value = str(value).lower()
        command += ['-p', f'{name}:={value}']
    return command


class NodeProcess:
    """The reasoning node in its own process (same PID after the wheels' re-exec)."""

    def __init__(self, parameters: dict[str, Any], env: dict[str, str], fixes: bool = True,
                 prelude: str = ''):
        self.process = subprocess.Popen(
            node_command(parameters, fixes, prelude), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, **own_process_group())
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def thread_cpu_seconds(self) -> dict[str, float]:
        return thread_cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (the node shuts down in order), then SIGKILL if it hangs."""
        stop_process(self.process, timeout)
        self._reader.join(timeout=2.0)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = '\n'.join(self.log[-20:])
            raise RuntimeError(f'the node exited with {self.process.returncode}:\n{tail}')


@contextlib.contextmanager
def node_process(parameters: dict[str, Any], env: dict[str, str], fixes: bool = True,
                 prelude: str = '') -> Iterator[NodeProcess]:
    """Run the node for the duration of a with-block."""
    node = NodeProcess(parameters, env, fixes, prelude)
    try:
        yield node
    finally:
        node.stop()


class Diagnostics:
    """Follows the node's /diagnostics from a small rclpy node in this process."""

    def __init__(self, domain: int):
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy

        from cosmos_reason_ros.ros.spinning import spinning

        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        self._node = rclpy.create_node('bench_diagnostics', context=context)
        self._lock = threading.Lock()
        self._history: list[tuple[float, dict[str, str]]] = []
        self._node.create_subscription(DiagnosticArray, '/diagnostics', self._on_message, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(self._node)
        self._teardown = contextlib.ExitStack()
        self._teardown.enter_context(spinning(executor, destroy=(self._node.destroy_node,),
                                              context=context))

    def _on_message(self, array: Any) -> None:
        values = {kv.key: kv.value for status in array.status for kv in status.values}
        with self._lock:
            self._history.append((time.monotonic(), values))

    @property
    def latest(self) -> dict[str, str]:
        with self._lock:
            return dict(self._history[-1][1]) if self._history else {}

    def history_since(self, since: float) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, values) for t, values in self._history if t >= since]

    def wait_for(self, key: str, value: str, timeout: float,
                 node: NodeProcess | None = None) -> dict[str, str]:
        """Wait until the latest status has key == value; fail after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node is not None:
                node.check_alive()
            latest = self.latest
            if latest.get(key) == value:
                return latest
            time.sleep(0.1)
        raise TimeoutError(f'/diagnostics never reported {key}={value} (last: {self.latest})')

    def close(self) -> None:
        self._teardown.close()


def camera_command(encoding: str, width: int, height: int, rate: float,
                   duration: float) -> list[str]:
    """Command line of the benchmark camera (bench/camera.py) in its own process."""
    return [sys.executable, '-m', 'bench.camera', '--encoding', encoding, '--width', str(width),
            '--height', str(height), '--rate', str(rate), '--duration', str(duration)]


def wait_for_frames(diagnostics: 'Diagnostics', camera: subprocess.Popen,
                    timeout: float = 30.0) -> None:
    """Wait until /diagnostics shows the node receiving the camera's frames.

    Raises:
        RuntimeError: none within timeout, or the camera process ended (its stderr attached).
    """
    deadline = time.monotonic() + timeout
    while float(diagnostics.latest.get('input_rate_hz', 0)) < 1.0:
        if time.monotonic() > deadline or camera.poll() is not None:
            raise RuntimeError('the node receives no frames: '
                               + (camera.stderr.read() if camera.stderr else ''))
        time.sleep(0.1)


DEMO_TOPICS = ['-r', 'image:=/camera/image_raw',
               '-r', 'depth:=/camera/aligned_depth_to_color/image_raw',
               '-r', 'camera_info:=/camera/camera_info']
"""The remappings of scripts/demo.sh: the sample camera's topics as a RealSense names them."""


def demo_camera_command() -> list[str]:
    """The demo's camera: the installed `sample_stream`, 30 fps RGB-D.

    Raises:
        SystemExit: it is not on the PATH (scripts/env.sh puts it there).
    """
    stream = shutil.which('sample_stream')
    if stream is None:
        raise SystemExit('sample_stream is not on the PATH: source scripts/env.sh first')
    return [stream, '--ros-args', '-p', 'rate:=30.0', '-p', 'depth:=true', *DEMO_TOPICS]


def demo_node_command(dds_filter: bool) -> list[str]:
    """The demo's node (config/cpu_test_model.yaml, depth on) from the source tree, with
    window.dds_filter stated so that checkouts from before and after its default agree.
    """
    return [sys.executable, '-c', 'from cosmos_reason_ros.ros import node; node.main()',
            '--ros-args', '--params-file', str(ROOT / 'config' / 'cpu_test_model.yaml'),
            '-p', 'depth.enabled:=true', '-p', f'window.dds_filter:={str(dds_filter).lower()}',
            *DEMO_TOPICS, '--log-level', 'warn']


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT (a ROS process shuts down in order), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_json(command: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a helper process that prints one JSON object as its last stdout line."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f'{command[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """'median (min-max)' of a few repeated measurements."""
    if len(values) == 1:
        return f'{values[0]:.4g}'
    return f'{median(values):.4g} ({min(values):.4g}-{max(values):.4g})'
