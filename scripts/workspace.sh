# Sourced by setup.sh, env.sh and test.sh: which ROS 2 distribution a shell uses and where its
# workspace lives, so that a Kilted and a Jazzy workspace coexist in one checkout.
#
# The distribution is $ROS_DISTRO, else Kilted (the default: the newest wheels, with the
# middleware frame filter and rclpy's action-client fixes). Kilted keeps the plain names (.venv,
# build/, install/, log/); any other distribution gets its own (.venv-jazzy, build-jazzy/, ...).
# Sets cosmos_distro, cosmos_venv, cosmos_build, cosmos_install and cosmos_log; needs cosmos_root.
# Runs no program: env.sh sources it in the user's shell.

COSMOS_DEFAULT_DISTRO=kilted
COSMOS_WHEEL_DISTROS='kilted jazzy'
cosmos_distro=${ROS_DISTRO:-$COSMOS_DEFAULT_DISTRO}
if [ "$cosmos_distro" = "$COSMOS_DEFAULT_DISTRO" ]; then
  _cosmos_suffix=
else
  _cosmos_suffix=-$cosmos_distro
fi
cosmos_venv=$cosmos_root/.venv$_cosmos_suffix
cosmos_build=$cosmos_root/build$_cosmos_suffix
cosmos_install=$cosmos_root/install$_cosmos_suffix
cosmos_log=$cosmos_root/log$_cosmos_suffix
unset _cosmos_suffix

# Another of our workspaces is active in this shell (a different distribution's env.sh was
# sourced): mixing two distributions' paths in one shell breaks imports in confusing ways.
cosmos_other_workspace=
if [ -n "${VIRTUAL_ENV:-}" ] && [ -f "$VIRTUAL_ENV/.ros-mode" ] \
    && [ "$(cd -P "$VIRTUAL_ENV" 2>/dev/null && pwd)" \
         != "$(cd -P "$cosmos_venv" 2>/dev/null && pwd)" ]; then
  cosmos_other_workspace=$VIRTUAL_ENV
fi

# True when a ROS 2 installation is sourced (ROS_DISTRO set and its rclpy importable). A shell
# that sourced env.sh has both as well, but its rclpy comes from one of our wheel venvs
# (marked .ros-mode=wheels), which is not a sourced ROS.
cosmos_sourced_ros() {
  [ -n "${ROS_DISTRO:-}" ] || return 1
  local prefix
  prefix=$(python3 -c 'import rclpy, sys; print(sys.prefix)' 2>/dev/null) || return 1
  [ "$(cat "$prefix/.ros-mode" 2>/dev/null)" != wheels ]
}
