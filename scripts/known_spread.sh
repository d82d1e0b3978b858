#!/usr/bin/env bash
# Reruns of the committed LAMA runs with one thing changed, written under results/spread/<variant>/; the report's
# "Known spread" section (REPRODUCING.md) compares each with the committed file it reruns.
#   bash scripts/known_spread.sh [--data-root DIR]      # about 25 minutes on 2 idle cores
# rerun: MP again, same settings (a control); threads1: MP with 1 thread; avx512-bf16: MP and P-tuning with oneDNN
# held to the AVX512-BF16 kernels of CPUs without AMX (a no-op on CPUs that have no AMX).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
common=(lama --backbone smollm2-135m --vocab 29k --preset cpu --quiet "$@")
py=.venv/bin/python
$py -m repro "${common[@]}" --method mp --results results/spread/rerun
$py -m repro "${common[@]}" --method mp --threads 1 --results results/spread/threads1
ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 $py -m repro "${common[@]}" --method mp --results results/spread/avx512-bf16
ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 $py -m repro "${common[@]}" --method ptuning --results results/spread/avx512-bf16
