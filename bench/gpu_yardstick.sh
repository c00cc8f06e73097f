#!/usr/bin/env bash
# The yardstick study of issue 13 (item 2) on a lent GPU, in one call of under 10 minutes:
# a quick run on the GPU, then bench_yardstick on it under several fine-tuning protocols at once,
# each with twice the CPU study's points (K=32), so the intervals are narrower than 16 points give.
#
#   bash bench/gpu_yardstick.sh                                   # on the GPU machine, repository root
#   DEVICE=cpu BUDGET=micro K=2 AVG=1,2 LONG_STEPS=4 LONG_AVG=2,4 bash bench/gpu_yardstick.sh   # a CPU dry run
#
# Protocols (each its own --out folder, all from the same run and the same drawn points):
#   base   the run's fine-tune (100 steps, lr 0.01, batch 8), tails of 25/50/75/100 steps
#   lr005  half the learning rate
#   b16    batch 16 (half the gradient noise, twice the images)
#   s200   twice the steps
# Everything lands in $OUT (default /tmp/gpu_yardstick): one log per job and, every 30 s, a
# tarball of the per-fine-tune CSVs, so a call stopped at its limit still returns what was measured.
#
# Sizing, measured on an H200 on 2026-12-04 (docs/results.md, "The quick run on a GPU"): the quick
# run alone took 457 s, and with the four protocols sharing the GPU each fine-tune took ~16 s (six
# endings scored on 320 images each), so K=32 under two seeds needs ~17 minutes. That does not fit
# one 10-minute call, nor a 15-minute device session after the run: there, use one call for the
# run and a second at once (the workdir survives while the machine is warm; the run then resumes
# in seconds) with K=8-12, or fewer protocols.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-quick}
K=${K:-32}
AVG=${AVG:-25,50,75,100}
LONG_STEPS=${LONG_STEPS:-200}   # twice the quick budget's 100 fine-tuning steps
LONG_AVG=${LONG_AVG:-100,200}
OUT=${OUT:-/tmp/gpu_yardstick}
W=${W:-/tmp/gpu_yardstick_work}
mkdir -p "$OUT" "$W"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

$PY - <<'EOF' | tee "$OUT/versions.txt"
import torch, optuna, pandas, numpy
print("torch", torch.__version__, "cuda", torch.version.cuda, "optuna", optuna.__version__,
      "pandas", pandas.__version__, "numpy", numpy.__version__)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
EOF

stamp "quick run on $DEVICE"
start=$(date +%s)
$PY -m ffnet_nas run --budget "$BUDGET" --device "$DEVICE" --workdir "$W/run" --no-progress > "$OUT/run.log" 2>&1
rc=$?
stamp "run exit $rc after $(( $(date +%s) - start )) s"
tail -25 "$OUT/run.log"
[ $rc -eq 0 ] || exit $rc

( while sleep 30; do tar czf "$OUT/csvs.tgz.part" -C "$W" $(cd "$W" && ls -d y_*/yardstick.csv 2>/dev/null) 2>/dev/null \
    && mv "$OUT/csvs.tgz.part" "$OUT/csvs.tgz"; done ) &
saver=$!

bench() {  # name, then bench_yardstick's extra flags
  local name=$1; shift
  OMP_NUM_THREADS=2 $PY -m bench.bench_yardstick --workdir "$W/run" --out "$W/y_$name" --k "$K" --device "$DEVICE" "$@" \
    > "$OUT/y_$name.log" 2>&1
  stamp "$name exit $?"
}
stamp "yardstick protocols, K=$K"
bench base --average "$AVG" &
pids=$!
bench lr005 --lr 0.005 --average "$AVG" &
pids="$pids $!"
bench b16 --batch-size 16 --average "$AVG" &
pids="$pids $!"
bench s200 --steps "$LONG_STEPS" --average "$LONG_AVG" &
pids="$pids $!"
wait $pids
kill $saver 2>/dev/null
tar czf "$OUT/csvs.tgz" -C "$W" $(cd "$W" && ls -d y_*/yardstick.csv)
for f in "$OUT"/y_*.log; do echo "== $f"; grep -v "fine-tunes:" "$f" | tail -22; done
stamp "done"
