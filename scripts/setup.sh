#!/usr/bin/env bash
# Create .venv with the project installed (idempotent: a second call only checks it).
#   bash scripts/setup.sh          CPU TensorFlow (the `cpu` extra: tensorflow-cpu)
#   bash scripts/setup.sh --gpu    TensorFlow with CUDA for NVIDIA GPUs (the `gpu` extra: tensorflow[and-cuda])
# The two builds install the same `tensorflow` module, so switching removes the other one first.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") BUILD=cpu; WANTED=tensorflow-cpu; OTHER=tensorflow ;;
  --gpu) BUILD=gpu; WANTED=tensorflow; OTHER=tensorflow-cpu ;;
  *) echo "usage: bash scripts/setup.sh [--gpu]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
installed() { .venv/bin/python -m pip show -q "$1" >/dev/null 2>&1; }
if installed "$OTHER"; then
  echo "replacing $OTHER with $WANTED in .venv"
  # Both own the module's files: the one wanted goes too, so that it is installed again whole below.
  .venv/bin/python -m pip uninstall -q -y "$OTHER" "$WANTED"
fi
if ! installed "$WANTED" || ! .venv/bin/python -c "import gz_experiments, tensorflow, mlflow, optuna, pytest, xdist" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$BUILD,test]"
fi
