#!/usr/bin/env bash
# Run the test suite in the project's own environment (created on first use). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPRO_EXTRAS=test bash "$root/scripts/setup.sh"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$root/.venv/bin/python" -m pytest -q "$@"
