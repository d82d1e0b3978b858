#!/usr/bin/env bash
# Fill the data root (default data/, or $REPRO_DATA, or --root DIR) with the benchmark files.
# Arguments go to `python -m repro data fetch` (--root DIR, --mirror DIR, --only lama,fewglue,superglue, --force).
# Mirror choice: --mirror DIR if given; else $REPRO_DATA_MIRROR if set; else ../shared/data beside the project
# when it holds a MANIFEST.tsv (this machine, CI); else the official URLs (needs network).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"

args=("$@")
has_mirror=0
for arg in "$@"; do
  case "$arg" in --mirror|--mirror=*) has_mirror=1 ;; esac
done
shared="$root/../shared/data"
if [ "$has_mirror" = 0 ] && [ -z "${REPRO_DATA_MIRROR:-}" ] && [ -f "$shared/MANIFEST.tsv" ]; then
  args+=(--mirror "$(cd "$shared" && pwd)")
fi
exec "$root/.venv/bin/python" -m repro data fetch ${args[@]+"${args[@]}"}
