#!/usr/bin/env bash
# Issue 18's determinism check: README's test command RUNS times in a row (default 3) on a fresh
# clone of this repository's HEAD while two busy processes load the machine.
# Usage: bash tools/test_under_load.sh [RUNS] [WORKDIR]   (WORKDIR default /tmp/gradlab-load)
# Prints one line per run (exit code, seconds, pytest's summary); logs in WORKDIR/runN.log.
set -u
runs=${1:-3}
work=${2:-/tmp/gradlab-load}
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && mkdir -p "$work"
git clone -q "$repo" "$work/repo"
cd "$work/repo"
git log --oneline -1
python3 -c "while True: pass" & busy1=$!
python3 -c "while True: pass" & busy2=$!
trap 'kill $busy1 $busy2 2>/dev/null' EXIT
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if [ "$i" = 1 ]; then CI=true bash .ci/run > "$work/run$i.log" 2>&1; else bash tools/test.sh > "$work/run$i.log" 2>&1; fi
  rc=$?
  echo "run $i: exit $rc, $(( $(date +%s) - start )) s, $(tail -1 "$work/run$i.log")"
done
