#!/usr/bin/env bash
# CamVid (11 classes, 160x120; ../shared/data/camvid_160x120, train 367 / val 101) semantic segmentation: MAE initialisation
# against the same architecture from scratch, with the same recipe and budget, for the UperNet and the linear head.
# The two arms of a head run side by side, one torch thread each, so they share the machine equally; each arm's wall-clock is
# printed. Input 112x84 (the data's 4:3 aspect, a 28x21 grid with patch 4); the final mIoU is also scored against the masks at
# their own 160x120 (logits resized, mmseg's protocol): that is the figure reported.
# Usage: scripts/camvid.sh MAE_FILE [OUT=runs/camvid] [EPOCHS=20]      (MAEML: the CLI binary; DATA: the CamVid folder)
set -euo pipefail
cd "$(dirname "$0")/.."
MAE=${1:?usage: scripts/camvid.sh MAE_FILE [OUT] [EPOCHS]}; OUT=${2:-runs/camvid}; EPOCHS=${3:-20}
C=${DATA:-../shared/data/camvid_160x120}
M=${MAEML:-src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli}
NAMES=Sky,Building,Pole,Road,Pavement,Tree,SignSymbol,Fence,Car,Pedestrian,Bicyclist
SIZE=${SIZE:-112x84}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
arm() { # name, head, extra args...
  local name=$1 head=$2; shift 2
  local t0=$(date +%s)
  "$M" segment-train --weights "$MAE" "$@" --image-size "$SIZE" --head "$head" --scales 2,1,0.5 --pyramid-channels 64 \
    --epochs "$EPOCHS" --batch-size 8 --lr 1e-3 --backbone-lr-scale 0.5 --layer-decay 0.75 --drop-path 0.1 \
    --min-scale 0.5 --colour-jitter 0.2 --threads 1 --seed 0 --classes 11 --ignore-value 11 --names "$NAMES" \
    --train "$C/train" --masks "$C/trainannot" --val "$C/val" --val-masks "$C/valannot" \
    --out "$OUT/$name" --resume auto --picture "$OUT/$name.png" > "$OUT/$name.log" 2>&1
  echo "$(( $(date +%s) - t0 ))" > "$OUT/$name.wall_s"
}
for head in ${HEADS:-upernet linear}; do
  arm "$head-mae" "$head" & arm "$head-scratch" "$head" --scratch & wait
done
printf '| head | init | val mIoU (160x120) | pixel acc | wall-clock |\n|---|---|---|---|---|\n' > "$OUT/table.md"
for head in ${HEADS:-upernet linear}; do for init in mae scratch; do
  line=$(grep "val at the masks' own size" "$OUT/$head-$init.log" | tail -1)
  miou=$(sed -E 's/.*mIoU ([0-9.]+ %).*/\1/' <<< "$line"); acc=$(sed -E 's/.*pixel accuracy ([0-9.]+ %).*/\1/' <<< "$line")
  printf '| %s | %s | %s | %s | %s s |\n' "$head" "$init" "$miou" "$acc" "$(cat "$OUT/$head-$init.wall_s")" >> "$OUT/table.md"
done; done
cat "$OUT/table.md"
