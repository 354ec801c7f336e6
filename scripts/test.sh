#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up (fast when already done), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k parsing -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The remote backend's tests run the node against a real vLLM server from its own venv.
bash scripts/setup_vllm.sh
# shellcheck disable=SC1091
source scripts/env.sh
# Each test waits on futures with timeouts; --timeout is the last line of defence against a hang.
exec python -m pytest test/ -q --timeout=600 -p no:cacheprovider "$@"
