#!/usr/bin/env bash
# Create build/bench-venv with datatrove, used by bench/bench_dedup.py to time datatrove's MinHash
# signatures on the same documents. datatrove stays out of the project environment (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${BENCH_VENV:-build/bench-venv}
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -r bench/requirements-datatrove.txt
"$VENV/bin/python" -c "import datatrove; from datatrove.pipeline.dedup.minhash import MinhashDedupSignature; print('datatrove', datatrove.__version__ if hasattr(datatrove, '__version__') else 'ok')"
