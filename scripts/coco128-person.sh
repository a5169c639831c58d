#!/usr/bin/env bash
# COCO128 person detection (FCOS on the simple feature pyramid): MAE initialisation against the same architecture from scratch,
# same recipe and budget. Train on images/train2017 (128 photos), evaluate on images/val2017 (128 photos), person class only.
# The two arms run side by side, one torch thread each; each arm's wall-clock is printed.
# Usage: scripts/coco128-person.sh MAE_FILE [OUT=runs/coco128-person] [EPOCHS=40]   (MAEML: the CLI binary; DATA: the COCO128 folder)
set -euo pipefail
cd "$(dirname "$0")/.."
MAE=${1:?usage: scripts/coco128-person.sh MAE_FILE [OUT] [EPOCHS]}; OUT=${2:-runs/coco128-person}; EPOCHS=${3:-40}
D=${DATA:-../shared/data/coco128}
M=${MAEML:-src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli}
SIZE=${SIZE:-96}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
arm() { # name, extra args...
  local name=$1; shift
  local t0=$(date +%s)
  "$M" detect-train --weights "$MAE" "$@" --image-size "$SIZE" --scales 2,1,0.5 --pyramid-channels 64 --head-convs 2 \
    --epochs "$EPOCHS" --batch-size 16 --lr 1e-3 --backbone-lr-scale 0.5 --layer-decay 0.75 --drop-path 0.1 \
    --min-scale 0.5 --colour-jitter 0.2 --threads 1 --seed 0 \
    --train "$D/images/train2017" --labels "$D/object_detection/labels/train2017" \
    --val "$D/images/val2017" --val-labels "$D/object_detection/labels/val2017" \
    --names "$D/object_detection/config.yaml" --keep-classes 0 \
    --out "$OUT/$name" --resume auto --picture "$OUT/$name.png" > "$OUT/$name.log" 2>&1
  echo "$(( $(date +%s) - t0 ))" > "$OUT/$name.wall_s"
}
arm mae & arm scratch --scratch & wait
printf '| init | val mAP | AP50 | AP75 | wall-clock |\n|---|---|---|---|---|\n' > "$OUT/table.md"
for init in mae scratch; do
  ap=$(grep -E "^val: " "$OUT/$init.log" | tail -1 | sed -E 's/val: mAP@\[.5:.95\] ([0-9.]+), AP50 ([0-9.]+), AP75 ([0-9.]+).*/\1 | \2 | \3/')
  printf '| %s | %s | %s s |\n' "$init" "$ap" "$(cat "$OUT/$init.wall_s")" >> "$OUT/table.md"
done
cat "$OUT/table.md"
