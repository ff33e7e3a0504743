#!/usr/bin/env bash
# The main job: create or reuse .venv, install gradlab, run the demo sweep into ./runs
# (skipping runs already done) and serve the dashboard on http://127.0.0.1:8050.
set -euo pipefail
cd "$(dirname "$0")/.."
GRADLAB_EXTRAS=${GRADLAB_EXTRAS:-dask} bash tools/bootstrap.sh
exec .venv/bin/gradlab demo "$@"
