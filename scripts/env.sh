# Source this file (`source scripts/env.sh`) to use the workspace that scripts/setup.sh built:
# the virtual environment, the ROS 2 wheels' paths when no ROS is installed, and the install/.
_cosmos_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -x "$_cosmos_root/.venv/bin/python" ]; then
  echo "scripts/env.sh: run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_cosmos_root/.venv/bin/activate"
if [ "$(cat "$_cosmos_root/.venv/.ros-mode" 2>/dev/null)" = wheels ]; then
  export CMAKE_PREFIX_PATH=$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
fi
if [ -f "$_cosmos_root/install/setup.bash" ]; then
  # ROS setup scripts read unset variables; do not let a caller's `set -u` trip them.
  case $- in *u*) _cosmos_nounset=1; set +u ;; *) _cosmos_nounset= ;; esac
  # shellcheck disable=SC1091
  source "$_cosmos_root/install/setup.bash"
  [ -n "$_cosmos_nounset" ] && set -u
  unset _cosmos_nounset
fi
unset _cosmos_root
