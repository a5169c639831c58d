#!/usr/bin/env bash
# Short MAE pretraining pilots on CIFAR-10, compared side by side (issue: compute-efficient small-image recipe).
# Each pilot: the same 10,000 training images, 4 epochs (1 warmup), batch 128, fp32; then a linear probe
# (frozen mean-pooled features, ML.NET LbfgsMaximumEntropy, 500 train / 200 test images a class, evenly spaced;
# the summary.txt lines written before this spelling used a seeded random 5,000 / 2,000).
# Usage: scripts/recipe-pilots.sh [DATA=../shared/data/cifar10] [OUT=runs/pilots]
set -euo pipefail
D=${1:-../shared/data/cifar10}; OUT=${2:-runs/pilots}
M=${MAEML:-src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
run() { # name, extra pretrain args...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$M" pretrain --data "$D/train" --out "$OUT/$name" --limit 10000 --epochs 4 --warmup-epochs 1 --batch-size 128 \
      --precision Float32 --threads 2 --resume auto "$@" > "$OUT/$name.log" 2>&1
  local t1=$(date +%s.%N)
  "$M" linprobe --trainer mlnet --weights "$OUT/$name/checkpoint-last.maeml" --train "$D/train" --val "$D/test" \
      --limit-per-class 500 --val-limit-per-class 200 --pooling mean --featurizer batched > "$OUT/$name.probe.log" 2>&1
  local acc=$(grep -oE 'val accuracy [0-9.]+ ?%' "$OUT/$name.probe.log" | tail -1)
  local loss=$(grep -oE 'last epoch loss [0-9.]+' "$OUT/$name.log" | tail -1)
  printf '%-28s %-44s pretrain %6.0f s  %s  probe: %s\n' "$name" "$*" "$(echo "$t1 - $t0" | bc)" "$loss" "$acc" | tee -a "$OUT/summary.txt"
}
run a-enc192x6-dec128x2-blr1.5e-3 --blr 1.5e-3
run b-enc192x12-dec128x2-blr1.5e-3 --blr 1.5e-3 --depth 12
run c-enc192x6-dec128x4-blr1.5e-3 --blr 1.5e-3 --decoder-depth 4
run d-enc192x6-dec128x2-blr1.5e-4 --blr 1.5e-4
run e-enc192x6-dec128x2-mask0.5 --blr 1.5e-3 --mask-ratio 0.5
