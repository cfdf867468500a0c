#!/usr/bin/env bash
# Every SGM quality run behind benchmarks/results/sgm.md, one after another (about 1.5 h on 2 cores).
# Logs go to benchmarks/runs/logs/. Usage: bash benchmarks/run_sgm_all.sh [reuters|goemotions|loss]...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/runs/logs
run() { echo "== $*"; "$PY" benchmarks/sgm_quality.py "$@" > "benchmarks/runs/logs/$(echo "$*" | tr ' =/' '___').log" 2>&1; }
for part in "${@:-reuters goemotions loss}"; do
  for p in $part; do
    case "$p" in
      reuters)    run --dataset reuters21578 --model sgm; run --dataset reuters21578 --model sgm_ge ;;
      goemotions) run --dataset goemotions --model sgm; run --dataset goemotions --model sgm_ge ;;
      loss)       run --dataset reuters21578 --model sgm --tag ce+bce --set train.loss=ce+bce ;;
    esac
  done
done
