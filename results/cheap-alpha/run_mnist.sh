#!/usr/bin/env bash
# MNIST quick protocol (torch, CPU): full alpha vs the cheap alpha branch (alpha_rank r), binary and no dropout.
# One variant per call; the four were run side by side under `nice -n 10`:
#   for v in full r8 r32 r128; do bash results/cheap-alpha/run_mnist.sh $v & done
# r = 128 runs at 512 hidden units only: at 32 and 128 units an in -> 128 -> out map is no cheaper than the full one.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=results/cheap-alpha/mnist
COMMON=(reproduce mnist --quick --backend torch --seeds 3 --data-dir /work/shared/data/mnist --no-progress)
case "$1" in
  full) $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods none,binary,information --out $OUT/full "${@:2}" ;;
  r8) $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods information --alpha-rank 8 --out $OUT/r8 "${@:2}" ;;
  r32) $PY -m idrop "${COMMON[@]}" --widths 32,128,512 --methods information --alpha-rank 32 --out $OUT/r32 "${@:2}" ;;
  r128) $PY -m idrop "${COMMON[@]}" --widths 512 --methods information --alpha-rank 128 --out $OUT/r128 "${@:2}" ;;
  *) echo "usage: $0 full|r8|r32|r128" >&2; exit 2 ;;
esac
