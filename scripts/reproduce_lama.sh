#!/usr/bin/env bash
# The main job: LAMA P@1 with the manual prompt (MP) and with P-tuning on the default backbone, over the
# 41 T-REx relations, then per relation and method: ours now | the committed reference (results/) | the paper.
#
#   bash scripts/reproduce_lama.sh                        # smollm2-135m, CPU preset (2 idle cores, setup included: 8-10 min on an Intel Xeon with AMX, 18 on an AMD EPYC)
#   bash scripts/reproduce_lama.sh --backbone gpt2-medium --preset paper      # the paper's settings (GPU)
#   bash scripts/reproduce_lama.sh --methods mp,ft,mp+ft,ptuning --relations P17,P19 --vocab 34k
#
# It computes into its own folder, runs/reproduce_lama/ (--results DIR for another; the committed results/ only
# as --results results), never reuses the committed results, and resumes only from its own folder: rerunning
# after an interruption continues where it stopped, and any reuse is announced (how many relations, from which
# commit, CPU and date).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

backbone="smollm2-135m"; methods="mp,ptuning"; preset="cpu"; vocab="29k"; relations=""; results="runs/reproduce_lama"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --backbone) backbone="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --preset) preset="$2"; shift 2 ;;
    --vocab) vocab="$2"; shift 2 ;;
    --relations) relations="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

bash scripts/setup.sh
bash scripts/fetch_data.sh --only lama --quiet  # LAMA only: the SuperGLUE files are not read here
python=".venv/bin/python"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}" TOKENIZERS_PARALLELISM=false

IFS=',' read -r -a method_list <<< "$methods"
for method in "${method_list[@]}"; do
  args=(lama --backbone "$backbone" --method "$method" --vocab "$vocab" --preset "$preset" --results "$results")
  [ -n "$relations" ] && args+=(--relations "$relations")
  echo "== LAMA $method on $backbone (vocab $vocab, preset $preset)" >&2
  "$python" -m repro "${args[@]}" ${extra[@]+"${extra[@]}"} > /dev/null
done
echo
"$python" -m repro lama-table --backbone "$(basename "$backbone")" --methods "$methods" --vocab "$vocab" \
  --results "$results" --reference results
