#!/usr/bin/env bash
# The CIFAR-10 protocol of docs/finetuning.md: fine-tune mae_vit_tiny_patch4_img32 for 3 epochs from an MAE-pretrained
# checkpoint and from scratch with the same recipe, and linear-probe the pretrained encoder; 1 torch thread.
#   usage: samples/cifar10-finetune-protocol.sh PRETRAINED.maeml [DATA=../shared/data/cifar10] [OUT=runs/cifar10-protocol]
# Subset: 400 training images per class (4,000) and 200 test images per class (2,000), evenly spaced in file order.
# Drop --limit-per-class / --val-limit-per-class (and raise --epochs) for the full-data version.
set -euo pipefail
PRETRAINED=${1:?pretrained checkpoint (.maeml, .pth or safetensors)}
DATA=${2:-../shared/data/cifar10}
OUT=${3:-runs/cifar10-protocol}
MAEML=${MAEML:-dotnet run -c Release --project src/MaeMl.Cli --}
SUBSET=(--limit-per-class 400 --val-limit-per-class 200)
RECIPE=(--recipe small --epochs 3 --warmup-epochs 0.5 --batch-size 64 --blr 2e-3 --mixup 0 --cutmix 0 --randaug none --reprob 0
        --min-crop-scale 0.35 --threads 1 --seed 0)

time $MAEML finetune --train "$DATA/train" --val "$DATA/test" --out "$OUT/mae" --weights "$PRETRAINED" "${SUBSET[@]}" "${RECIPE[@]}"
time $MAEML finetune --train "$DATA/train" --val "$DATA/test" --out "$OUT/scratch" --model mae_vit_tiny_patch4_img32 "${SUBSET[@]}" "${RECIPE[@]}"
time $MAEML linprobe --train "$DATA/train" --val "$DATA/test" --out "$OUT/linprobe" --weights "$PRETRAINED" "${SUBSET[@]}" \
  --epochs 90 --warmup-epochs 10 --batch-size 256 --blr 0.1 --eval-crop-pct 1 --threads 1 --seed 0
$MAEML eval --weights "$OUT/mae/checkpoint-last.maeml" --val "$DATA/test" --val-limit-per-class 200 --out "$OUT/mae/test-metrics.json" --threads 1
