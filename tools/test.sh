#!/usr/bin/env bash
# The test suite: create or reuse .venv, install gradlab with its test extras, type-check
# gradlab/ with mypy (settings in pyproject.toml; a type error fails the script), run pytest.
# Browser tests need Debian's chromium (/usr/bin/chromium); .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
