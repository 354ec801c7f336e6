#!/usr/bin/env bash
# The main job on this machine: the reasoning node with the embedded tiny test model (built here,
# nothing downloaded) on the generated sample camera stream at 30 fps; a client sends a
# trajectory goal and prints the streamed feedback and the typed result (a parsed trajectory).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
source scripts/env.sh
# Keep the demo's DDS traffic on this machine and off other ROS graphs.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}
lib=install/cosmos_reason_ros/lib/cosmos_reason_ros
model=$PWD/.cache/tiny-qwen3-vl

python -m cosmos_reason_ros.core.tiny_model "$model" >&2
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
"$lib/sample_stream" --ros-args -p rate:=30.0 -r image:=/camera/image_raw &
pids+=($!)
"$lib/reason_node" --ros-args --params-file config/cpu_test_model.yaml -p "model:=$model" \
  -r image:=/camera/image_raw &
pids+=($!)
# The answer is decoded under the trajectory format after the reasoning (structured_output), so
# even the random-weight model returns a parsed trajectory: its points are random, its form is
# not. The node draws it on /cosmos_reason/debug_image for any subscriber.
"$lib/ask" 'Move the red marker into the grey basket.' --mode trajectory --reasoning \
  --max-new-tokens 400 --wait-for-model 120 --timeout 120
