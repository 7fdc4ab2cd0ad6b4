#!/usr/bin/env bash
# The pack on a CUDA GPU in one command (see bench/gpu_check.py): every family in fp32 / fp16 / bf16
# against the CPU's fp32 alpha, latency and peak VRAM at 1024², ComfyUI's model manager in its default
# and --lowvram modes, then the authors' golden fixtures on CUDA (tests/test_models_gpu.py).
# On a machine without CUDA: one line "no CUDA device: ..." and exit status 0.
#
#   bench/gpu_check.sh [--families mam sim] [--dtypes fp16] [--size 1024] [--skip-manager]
#
# Python: $PROMPTMATTE_PYTHON, else the repository's .venv, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PROMPTMATTE_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
exec "$python" "$here/gpu_check.py" "$@"
