#!/usr/bin/env bash
# The main job on this machine: the reasoning node with the embedded tiny test model (built by
# set-up, nothing downloaded) on the generated sample RGB-D stream (640x480 bgr8, aligned 16UC1
# depth and CameraInfo at 30 fps); a client sends a trajectory goal and prints the streamed
# feedback and the typed result (a parsed trajectory, and the same path lifted into metres). ROS_DISTRO=jazzy runs it on the Jazzy workspace (after ROS_DISTRO=jazzy bash
# scripts/setup.sh). With --two-cameras it runs the sample's two cameras instead (head, as above,
# and side, the same scene from a second viewpoint at 480x360 with its own depth and CameraInfo),
# and the goal asks about both: the result lists both views and says which one each point is in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# env.sh also gives every process here the Fast DDS large-frames profile: a 900 KiB raw frame
# does not fit the default 512 KiB shared-memory segment, and most would be lost.
# shellcheck disable=SC1091
source scripts/env.sh
# Keep the demo's DDS traffic on this machine and off other ROS graphs.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
if [ "${1:-}" = --two-cameras ]; then
  # Camera N publishes N/image, N/depth and N/camera_info; the node with the same cameras
  # subscribes them, so no remapping is needed.
  cameras=(-p 'cameras:=[head, side]')
  sample_stream --ros-args -p rate:=15.0 -p depth:=true "${cameras[@]}" &
  pids+=($!)
  reason_node --ros-args --params-file config/cpu_test_model.yaml -p depth.enabled:=true \
    "${cameras[@]}" &
  pids+=($!)
  exec_ask=(ask 'Move the red marker into the grey basket.' --camera head --camera side)
else
  topics=(-r image:=/camera/image_raw -r depth:=/camera/aligned_depth_to_color/image_raw
          -r camera_info:=/camera/camera_info)
  sample_stream --ros-args -p rate:=30.0 -p depth:=true "${topics[@]}" &
  pids+=($!)
  reason_node --ros-args --params-file config/cpu_test_model.yaml -p depth.enabled:=true \
    "${topics[@]}" &
  pids+=($!)
  exec_ask=(ask 'Move the red marker into the grey basket.')
fi
# The answer is decoded under the trajectory format after the reasoning (structured_output), so
# even the random-weight model returns a parsed trajectory: its points are random, its form is
# not. The node draws it on /cosmos_reason/debug_image for any subscriber. The node subscribes to
# the camera once its model is loaded, so the goal's window ends 2 s after it is sent: the goal
# then sees the 8 frames (4 fps) of a full window.
"${exec_ask[@]}" --mode trajectory --reasoning \
  --max-new-tokens 400 --window-end-in 2.0 --wait-for-model 120 --timeout 120
