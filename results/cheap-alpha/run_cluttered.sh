#!/usr/bin/env bash
# Cluttered MNIST quick setting (torch, CPU), same data and seed: the cheap conv alpha branch (rank 4; the quick
# widths are 8-64) over the whole quick beta grid, and the official full alpha conv at the two betas that localise
# (0.05, 0.1: 0 has no KL pressure, 0.5 does not train, see results/cluttered/). Run side by side under nice -n 10:
#   bash results/cheap-alpha/run_cluttered.sh r4 & bash results/cheap-alpha/run_cluttered.sh full &
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=results/cheap-alpha/cluttered
COMMON=(reproduce cluttered --quick --backend torch --data-dir /work/shared/data/mnist)
case "$1" in
  r4) $PY -m idrop "${COMMON[@]}" --alpha-rank 4 --out $OUT/r4 ;;
  full) $PY -m idrop "${COMMON[@]}" --betas 0.05 0.1 --out $OUT/full ;;
  *) echo "usage: $0 r4|full" >&2; exit 2 ;;
esac
