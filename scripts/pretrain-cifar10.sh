#!/usr/bin/env bash
# The long CIFAR-10 MAE pretraining run behind pretrained/ (issue: reproduce the paper's claims at CPU scale).
# It spans sessions: each session runs it with a time limit, then `scripts/pretrain-cifar10.sh --save` copies the
# run's checkpoint-last (weights + schedule position; the AdamW moments are dropped to keep the file at 12.5 MB, so a
# resume across sessions restarts them from zero: not bit-exact) and metrics over the committed
# files in pretrained/training/, replacing them in place. A fresh machine resumes from those files.
# Recipe chosen by the pilots in scripts/recipe-pilots.sh (see pretrained/README.md).
# Usage: scripts/pretrain-cifar10.sh [TIME_LIMIT=150m]      run (or resume) in the foreground
#        scripts/pretrain-cifar10.sh --save                  copy the run's state into pretrained/training/
set -euo pipefail
cd "$(dirname "$0")/.."
D=${MAEML_DATA:-../shared/data}/cifar10/train
RUN=runs/cifar10-mae-tiny-100ep
KEEP=pretrained/training
M=${MAEML:-src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli}
if [ "${1:-}" = "--save" ]; then
  mkdir -p "$KEEP"
  # weights + schedule position only (12.5 MB): the AdamW moments would triple it; they restart from zero on resume
  python3 scripts/strip-optimizer.py "$RUN/checkpoint-last.maeml" "$KEEP/cifar10-mae-tiny-100ep.checkpoint.maeml"
  cp "$RUN/metrics.jsonl" "$KEEP/cifar10-mae-tiny-100ep.metrics.jsonl"
  [ -f "$RUN/loss-curve.png" ] && cp "$RUN/loss-curve.png" "$KEEP/cifar10-mae-tiny-100ep.loss-curve.png"
  ls -la "$KEEP"; exit 0
fi
mkdir -p "$RUN"
if [ ! -f "$RUN/checkpoint-last.maeml" ] && [ -f "$KEEP/cifar10-mae-tiny-100ep.checkpoint.maeml" ]; then
  cp "$KEEP/cifar10-mae-tiny-100ep.checkpoint.maeml" "$RUN/checkpoint-last.maeml"
  cp "$KEEP/cifar10-mae-tiny-100ep.metrics.jsonl" "$RUN/metrics.jsonl"
fi
[ -x "$M" ] || dotnet build src/MaeMl.Cli -c Release -v q
# run from a private copy of the binaries: a rebuild rewrites the DLLs of the build folder in place under a running process
BIN=runs/.bin-pretrain-cifar10
mkdir -p "$BIN" && cp -r "$(dirname "$M")/." "$BIN/"
# no OMP_WAIT_POLICY=PASSIVE: sleeping OpenMP workers between the many small ops of a step cost 1.45x in bfloat16 here
# (maeml bench, batch 128, 2 threads: MAE bf16 305.8 img/s with the default policy, 211.5 with PASSIVE; fp32 211.3 vs 184.2)
exec "$BIN/$(basename "$M")" pretrain --data "$D" --out "$RUN" --model mae_vit_tiny_patch4_img32 \
  --epochs 100 --warmup-epochs 5 --batch-size 128 --blr 1.5e-3 --weight-decay 0.05 \
  --precision Auto --threads 2 --checkpoint-minutes 5 --resume auto --time-limit "${1:-150m}"
