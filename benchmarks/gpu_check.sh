#!/usr/bin/env bash
# The one-GPU ready check (benchmarks/gpu_check.py): offline, stopped after 8 minutes.
#   benchmarks/gpu_check.sh                # on a GPU machine: XLM-R large and Qwen2.5-0.5B shapes, bf16
#   benchmarks/gpu_check.sh --cpu --tiny   # smoke test of the same path on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout --signal=INT --kill-after=30 480 "$PYTHON" benchmarks/gpu_check.py "$@"
