# Source this file (`source scripts/env.sh`) to use the workspace that scripts/setup.sh built: the
# virtual environment, the ROS 2 wheels' paths when no ROS is installed, the install/, and the
# package's executables (reason_node, ask, sample_stream, live_eval) on the PATH.
# The workspace is that of $ROS_DISTRO (Kilted when unset): `ROS_DISTRO=jazzy source
# scripts/env.sh` uses the Jazzy one (.venv-jazzy, install-jazzy/). One distribution per shell.
cosmos_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/workspace.sh
source "$cosmos_root/scripts/workspace.sh"
if [ -n "$cosmos_other_workspace" ]; then
  echo "scripts/env.sh: this shell already uses $cosmos_other_workspace; open a new shell for" \
    "$cosmos_venv (ROS_DISTRO=$cosmos_distro)" >&2
  return 1 2>/dev/null || exit 1
fi
if [ ! -x "$cosmos_venv/bin/python" ]; then
  if [ "$cosmos_distro" = "$COSMOS_DEFAULT_DISTRO" ]; then
    echo "scripts/env.sh: run scripts/setup.sh first" >&2
  else
    echo "scripts/env.sh: run ROS_DISTRO=$cosmos_distro bash scripts/setup.sh first" >&2
  fi
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$cosmos_venv/bin/activate"
if [ "$(cat "$cosmos_venv/.ros-mode" 2>/dev/null)" = wheels ]; then
  export CMAKE_PREFIX_PATH=$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  # The wheels do not set it; tools (and set-up run again from this shell) read it.
  export ROS_DISTRO=$cosmos_distro
fi
if [ -f "$cosmos_install/setup.bash" ]; then
  # ROS setup scripts read unset variables; do not let a caller's `set -u` trip them.
  case $- in *u*) _cosmos_nounset=1; set +u ;; *) _cosmos_nounset= ;; esac
  # shellcheck disable=SC1091
  source "$cosmos_install/setup.bash"
  [ -n "$_cosmos_nounset" ] && set -u
  unset _cosmos_nounset
  # `ros2 run cosmos_reason_ros X` needs ros2cli, which the wheels lack: put X on the PATH.
  export PATH=$cosmos_install/cosmos_reason_ros/lib/cosmos_reason_ros:$PATH
  # Raw camera frames above 512 KiB (640x480 bgr8 is 900 KiB) do not fit Fast DDS's default
  # shared-memory segments and are lost as UDP fragments: give every process started from this
  # shell (the camera stand-in, the node, the demo) the large-frames profile, unless one is set.
  # Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted on)
  # FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name.
  case $cosmos_distro in
    humble|iron|jazzy) _cosmos_profile_variable=FASTRTPS_DEFAULT_PROFILES_FILE ;;
    *) _cosmos_profile_variable=FASTDDS_DEFAULT_PROFILES_FILE ;;
  esac
  if [ -z "${!_cosmos_profile_variable:-}" ]; then
    export "$_cosmos_profile_variable=$cosmos_install/cosmos_reason_ros/share/cosmos_reason_ros/config/fastdds_large_frames.xml"
  fi
  unset _cosmos_profile_variable
fi
unset cosmos_root cosmos_distro cosmos_venv cosmos_build cosmos_install cosmos_log \
  cosmos_other_workspace COSMOS_DEFAULT_DISTRO COSMOS_WHEEL_DISTROS
unset -f cosmos_sourced_ros
