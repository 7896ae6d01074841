#!/usr/bin/env bash
# rnnlab's check on a CUDA GPU (or --dry-run on the CPU): steps, options and outputs in benchmarks/gpu_check.py.
# PYTHON picks the interpreter (default: python on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
