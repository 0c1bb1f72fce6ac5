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
  r4) $PY -m idrop "${COMMON[@]}" --alpha-rank 4 --out $OUT/r4 "${@:2}" ;;
  full) $PY -m idrop "${COMMON[@]}" --betas 0.05 0.1 --out $OUT/full "${@:2}" ;;
  # The beta = 0 control of the full alpha conv (no KL pressure), added after the pair above finished:
  # a folder of its own, since --resume refuses another beta grid in a finished folder.
  full-beta0) $PY -m idrop "${COMMON[@]}" --betas 0 --out $OUT/full-beta0 "${@:2}" ;;
  *) echo "usage: $0 r4|full|full-beta0" >&2; exit 2 ;;
esac
