#!/usr/bin/env bash
# Run the test suite on a fresh machine: set up (fast when already done), then pytest. CI runs
# exactly this. Without a sourced ROS it tests two distributions from PyPI's wheels: the whole
# suite on ROS 2 Kilted (the default workspace), then the tests marked ros (those that talk to
# rclpy: node, client, frame filter, lifecycle, executables, ...; test/conftest.py marks them
# from their imports) but not slow (no vLLM server, no bench script) on ROS 2 Jazzy, in its own
# workspace (.venv-jazzy, install-jazzy/). With a ROS 2 sourced, the whole suite runs once, on it.
#
# Extra arguments go to pytest, e.g. scripts/test.sh -k parsing -x
# Subsets by marker (registered and applied in test/conftest.py):
#   scripts/test.sh -m 'not ros'     the core's tests (the Jazzy pass then has nothing to run)
#   scripts/test.sh -m ros           the ROS tests, on Kilted and on Jazzy
#   scripts/test.sh -m 'not slow'    without the vLLM servers and the bench scripts
#   scripts/test.sh -m 'not vllm'    without a real vLLM server
# A -m expression narrows the Jazzy pass too (joined with its own 'ros and not slow'), as do test
# paths given (else it runs over test/).
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
  # pytest keeps only the last -m: join the caller's expression to the pass's own instead.
  marks='ros and not slow'
  jazzy_args=()
  targets=(test/)
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
      -m) marks="($marks) and (${args[i + 1]-})"; i=$((i + 1)) ;;
      -m?*) marks="($marks) and (${args[i]#-m})" ;;
      *) jazzy_args+=("${args[i]}")
         # A test path (test/test_node.py, or with ::name) replaces test/.
         if [ -e "${args[i]%%::*}" ]; then targets=(); fi ;;
    esac
  done
  echo "[test] ROS 2 Jazzy: -m '$marks'" >&2
  jazzy_status=0
  (export ROS_DISTRO=jazzy; source scripts/env.sh
   python -m pytest ${targets[@]+"${targets[@]}"} -m "$marks" "${pytest_args[@]}" \
     ${jazzy_args[@]+"${jazzy_args[@]}"}) || jazzy_status=$?
  # 5: no test matched the extra arguments (say -k parsing, or -m 'not ros') among the ROS tests.
  [ "$jazzy_status" = 5 ] && [ $# -gt 0 ] && jazzy_status=0
  [ "$status" = 0 ] && status=$jazzy_status
fi
exit "$status"
