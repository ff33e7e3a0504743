#!/usr/bin/env bash
# The test suite: create or reuse .venv, install gradlab with its test extras, run pytest.
# Browser tests need Debian's chromium (/usr/bin/chromium); .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
