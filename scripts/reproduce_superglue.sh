#!/usr/bin/env bash
# SuperGLUE with the manual pattern (MP, zero-shot) and P-tuning (encoder + LM) on the default backbone, for
# every task whose adapter and data are available, then a table in the paper's Table 5 layout (Avg as the
# paper computes it; AX-b and AX-g come with RTE).
#
#   bash scripts/reproduce_superglue.sh                          # few-shot, smollm2-135m, CPU preset, 3 seeds
#   bash scripts/reproduce_superglue.sh --setting supervised --backbone bert-base-cased --preset paper
#   bash scripts/reproduce_superglue.sh --methods mp,mp-ft,ptuning --tasks cb,rte --seeds 1
#
# Flags: --setting, --backbone, --methods, --tasks, --preset, --seeds, --data-root, --results (default runs/;
# the committed results/ only as --results results); anything else
# (e.g. --threads 1 on a machine shared with other jobs) goes to every `python -m repro superglue` call.
# Finished seeds are kept: rerunning after an interruption resumes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

setting="fewshot"; backbone="smollm2-135m"; methods="mp,ptuning"; tasks=""; preset="cpu"; seeds="3"
data_args=(); results_args=(--results runs); extra=()  # a user's runs: git-ignored runs/
while [ $# -gt 0 ]; do
  case "$1" in
    --setting) setting="$2"; shift 2 ;;
    --backbone) backbone="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --tasks) tasks="$2"; shift 2 ;;
    --preset) preset="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --data-root) data_args=(--data-root "$2"); shift 2 ;;
    --results) results_args=(--results "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

bash scripts/setup.sh
if [ ${#data_args[@]} -eq 0 ]; then
  bash scripts/fetch_data.sh --only fewglue,superglue --quiet
fi
python=".venv/bin/python"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}" TOKENIZERS_PARALLELISM=false

if [ -z "$tasks" ]; then
  # every registered task; AX-b and AX-g are written by the RTE run
  tasks="$("$python" -c 'from repro.tasks.registry import trainable_task_names
print(",".join(trainable_task_names()))')"
fi

IFS=',' read -r -a method_list <<< "$methods"
IFS=',' read -r -a task_list <<< "$tasks"
failed=()
for method in "${method_list[@]}"; do
  for task in "${task_list[@]}"; do
    echo "== SuperGLUE $setting: $task, $method on $backbone (preset $preset, seeds $seeds)" >&2
    if ! "$python" -m repro superglue --task "$task" --setting "$setting" --backbone "$backbone" --method "$method" \
        --preset "$preset" --seeds "$seeds" ${data_args[@]+"${data_args[@]}"} ${results_args[@]+"${results_args[@]}"} \
        ${extra[@]+"${extra[@]}"}; then
      failed+=("$task/$method")
    fi
  done
done
echo
"$python" -m repro superglue-table --setting "$setting" --backbone "$(basename "$backbone")" --methods "$methods" \
  --tasks "$tasks,axb,axg" ${results_args[@]+"${results_args[@]}"}
if [ ${#failed[@]} -gt 0 ]; then
  echo >&2
  echo "not run (see the messages above; a missing file names its fetch command): ${failed[*]}" >&2
  exit 1
fi
