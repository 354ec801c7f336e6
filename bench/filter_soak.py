"""Does the camera survive the node's DDS stamp filter? window.dds_filter on vs off, side by side.

Each run starts the sample camera (`sample_stream`, 640x480 bgr8 + aligned depth + CameraInfo
at 30 fps, as the demo does) and the node with the tiny model (config/cpu_test_model.yaml,
depth on) on a DDS domain of its own, and watches the camera's process for --seconds. Runs
with the filter on and off go at the same time, --runs of each. Fast DDS applies a reader's
content filter in the writer's process, so a crash there is the camera's, not the node's.

Run: python -m bench.filter_soak [--seconds 300] [--runs 2]
"""

import argparse
from collections.abc import Sequence
import subprocess
import sys
import tempfile
import threading
import time

from bench import common


def watch(camera_command: list[str], dds_filter: bool, seconds: float, results: list[str]) -> None:
    """One camera and one node; appends what became of the camera."""
    env = common.ros_environment(common.ros_domain())
    log = tempfile.TemporaryFile(mode='w+')
    camera = subprocess.Popen(camera_command, env=env,
                              stdout=subprocess.DEVNULL, stderr=log, **common.own_process_group())
    node = subprocess.Popen(common.demo_node_command(dds_filter), cwd=common.ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **common.own_process_group())
    started = time.monotonic()
    while time.monotonic() - started < seconds and camera.poll() is None:
        time.sleep(0.5)
    lived = time.monotonic() - started
    name = 'on ' if dds_filter else 'off'
    if camera.poll() is None:
        results.append(f'  filter {name}: camera alive after {lived:.0f} s')
    else:
        log.seek(0)
        last = ' / '.join(log.read().strip().splitlines()[-2:])
        results.append(f'  filter {name}: camera died ({camera.returncode}) after {lived:.0f} s'
                       + (f': {last}' if last else ''))
    for process in (node, camera):
        common.stop_process(process)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; prints one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=300.0)
    parser.add_argument('--runs', type=int, default=2, help='runs with the filter on, and off')
    args = parser.parse_args(argv)
    camera_command = common.demo_camera_command()
    common.print_machine()
    results: list[str] = []
    threads = [threading.Thread(target=watch,
                                args=(camera_command, dds_filter, args.seconds, results))
               for _ in range(args.runs) for dds_filter in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f'\n{args.runs} run(s) each of the camera beside the node, window.dds_filter on and '
          f'off at the same time, up to {args.seconds:g} s')
    print('\n'.join(sorted(results)))
    common.print_machine()
    return 0


if __name__ == '__main__':
    sys.exit(main())
