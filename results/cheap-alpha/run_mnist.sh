#!/usr/bin/env bash
# MNIST quick protocol (torch, CPU): full alpha vs the cheap alpha branch (alpha_rank r), binary and no dropout.
# Two chains, run side by side on 2 cores:  bash results/cheap-alpha/run_mnist.sh a & bash results/cheap-alpha/run_mnist.sh b
# r = 128 runs at 512 hidden units only: at 32 and 128 units an in -> 128 -> out map is no cheaper than the full one.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=results/cheap-alpha/mnist
COMMON=(reproduce mnist --quick --backend torch --seeds 3 --data-dir /work/shared/data/mnist --no-progress)
case "$1" in
  a)
    $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods none,binary,information --out $OUT/full
    ;;
  b)
    $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods information --alpha-rank 8 --out $OUT/r8
    $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods information --alpha-rank 32 --out $OUT/r32
    $PY -m idrop "${COMMON[@]}" --widths 512 --methods information --alpha-rank 128 --out $OUT/r128
    ;;
esac
