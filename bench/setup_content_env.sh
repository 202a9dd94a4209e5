#!/usr/bin/env bash
# Create build/bench-content-venv with trafilatura, used by bench/bench_content.py to score and time it on the
# same pages in the same run. trafilatura stays out of the project environment (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${BENCH_CONTENT_VENV:-build/bench-content-venv}
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -r bench/requirements-content.txt
"$VENV/bin/python" -c "import trafilatura; print('trafilatura', trafilatura.__version__)"
