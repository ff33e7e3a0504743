#!/usr/bin/env bash
# Create or reuse .venv and install gradlab with what it needs.
# Torch: a torch the base Python can already import is kept (the venv sees it);
# otherwise torch==2.13.0 (a CPU build) is installed, never an open range.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
extras=${GRADLAB_EXTRAS:-test}
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
