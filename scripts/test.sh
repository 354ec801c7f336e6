#!/usr/bin/env bash
# Run the test suite on a fresh machine: set up (fast when already done), then pytest. CI runs
# exactly this. Without a sourced ROS it tests two distributions from PyPI's wheels: the whole
# suite on ROS 2 Kilted (the default workspace), then the tests that talk to rclpy (node, client,
# frame filter, lifecycle, goal endings, diagnostics, signals, executor, executables, parameters,
# answers in 3D, live evaluation) on ROS 2 Jazzy, in its own workspace (.venv-jazzy,
# install-jazzy/). With a ROS 2 sourced, the whole suite runs once, on it.
#
# Extra arguments go to pytest, e.g. scripts/test.sh -k parsing -x
# Options (environment): COSMOS_TEST_JAZZY=0 skips the Jazzy run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cosmos_root=$PWD
# shellcheck source=scripts/workspace.sh
source scripts/workspace.sh
# Each test waits on futures with timeouts; --timeout is the last line of defence against a hang.
pytest_args=(-q --timeout=600 -p no:cacheprovider)

if cosmos_sourced_ros; then
  bash scripts/setup.sh
  bash scripts/setup_vllm.sh
  # shellcheck disable=SC1091
  source scripts/env.sh
  exec python -m pytest test/ "${pytest_args[@]}" "$@"
fi

jazzy=${COSMOS_TEST_JAZZY:-1}
# Each distribution in a shell of its own: env.sh refuses to mix two in one.
(unset ROS_DISTRO; bash scripts/setup.sh)
# The remote backend's tests run the node against a real vLLM server from its own venv.
bash scripts/setup_vllm.sh
if [ "$jazzy" = 1 ]; then
  (export ROS_DISTRO=jazzy; bash scripts/setup.sh)
fi

status=0
echo '[test] ROS 2 Kilted: the whole suite' >&2
(unset ROS_DISTRO; source scripts/env.sh; python -m pytest test/ "${pytest_args[@]}" "$@") \
  || status=$?
if [ "$jazzy" = 1 ]; then
  shopt -s nullglob
  files=(test/test_node.py test/test_client*.py test/test_frame_filter.py test/test_lifecycle*.py
         test/test_goal_endings.py test/test_diagnostics.py test/test_process.py
         test/test_executor.py test/test_executables.py test/test_configuration.py
         test/test_node_depth.py test/test_eval_live.py)
  echo "[test] ROS 2 Jazzy: ${files[*]}" >&2
  jazzy_status=0
  (export ROS_DISTRO=jazzy; source scripts/env.sh
   python -m pytest "${files[@]}" "${pytest_args[@]}" "$@") || jazzy_status=$?
  # 5: no test matched the extra arguments (say -k parsing) among the ROS-facing files.
  [ "$jazzy_status" = 5 ] && [ $# -gt 0 ] && jazzy_status=0
  [ "$status" = 0 ] && status=$jazzy_status
fi
exit "$status"
