#!/usr/bin/env bash
# Cluttered MNIST quick setting (torch, CPU): the cheap conv alpha branch (rank 4: the quick widths are 8-64), then the
# official full alpha conv, same seeds and data, side by side.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=results/cheap-alpha/cluttered
$PY -m idrop reproduce cluttered --quick --backend torch --alpha-rank 4 --data-dir /work/shared/data/mnist --out $OUT/r4
$PY -m idrop reproduce cluttered --quick --backend torch --data-dir /work/shared/data/mnist --out $OUT/full
