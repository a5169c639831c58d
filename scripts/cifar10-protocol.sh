#!/usr/bin/env bash
# One CIFAR-10 transfer protocol, one table: what a MAE model file is worth against the peer a user would pick instead.
#
#   usage: scripts/cifar10-protocol.sh MAE_MODEL_FILE [DATA=../shared/data/cifar10] [OUT=runs/cifar10-protocol]
#
# Rows (each: test top-1, wall-clock, image passes and images/s):
#   (a) ML.NET ResNet18 featurizer (ImageNet-supervised; ResizeImages 224 + ExtractPixels + DnnFeaturizeImage)
#       + NormalizeMinMax + LbfgsMaximumEntropy                                          bench/MaeMl.Transfer
#   (b) MAE encoder featurizer (ApplyMaeEncoder on the ONNX encoder exported from MAE_MODEL_FILE, mean pooling)
#       + the same NormalizeMinMax + LbfgsMaximumEntropy                                  bench/MaeMl.Transfer (same process, same split)
#   (c) linear probe of the frozen MAE encoder: BatchNorm + linear head (main_linprobe.py recipe)   maeml linprobe
#   (d) full fine-tune from the MAE                                                       maeml finetune --weights
#   (e) the same architecture from scratch, same recipe and budget                        maeml finetune --model
#   (f) (d) and (e) with 10% of the labels (500 per class)                                maeml finetune --limit-per-class 500
# (a)-(c) train on the same images (PROBE_TRAIN_PER_CLASS per class); every row is scored on the same test images
# (TEST_PER_CLASS per class, evenly spaced in file order: the images of maeml's --val-limit-per-class).
#
# Budgets are environment variables; the defaults are sized for a 2-core CPU (about an hour there, most of it in (d)/(e)).
# The full-budget run (all 50,000 training and 10,000 test images, 50 fine-tuning epochs) is:
#   PROBE_TRAIN_PER_CLASS=500 TEST_PER_CLASS=0 FT_EPOCHS=50 FT_WARMUP=5 FT_BATCH=128 FT_BLR=1e-3 FT_AUG=full FT_PRECISION=Auto \
#     scripts/cifar10-protocol.sh pretrained/cifar10-vit-tiny.maeml ../shared/data/cifar10 runs/cifar10-protocol-full
# (LP_* already default to the official 90 epochs / 10 warmup / blr 0.1; 0 per class = all images.)
#
# Long budgets span sessions. Every row is resumable: a row already in OUT (OUT/<row>.row.tsv) is not run again, and a
# fine-tuning row stopped by TIME_LIMIT (or a kill) continues from its checkpoint at the next invocation (--resume auto),
# its wall-clock summed over the invocations (OUT/<dir>.wall). ROWS picks the rows of one invocation, so two run side by
# side (THREADS=1 each):   ROWS=d ... &  ROWS=e ... &  wait; then any invocation prints the table of the rows done so far.
#   scripts/cifar10-protocol.sh --save OUT KEEP   copies what a fresh machine needs into KEEP (every row's small files; the
#                                                 checkpoint of each unfinished fine-tuning row without its AdamW moments)
# and KEEP=DIR restores it into an OUT that lacks it before running.
#   scripts/cifar10-protocol.sh --ship OUT [DATA]   row (d), once finished, becomes pretrained/cifar10-vit-tiny-finetuned.maeml (last weights,
#                                                 no optimizer state) its history stays in the row's metrics.jsonl (--save), and it is scored again by maeml eval
#
# Commands: $MAEML (default: the built CLI src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli, else
# `dotnet run --project src/MaeMl.Cli -c Release --`) and $TRANSFER (default: bench/MaeMl.Transfer's Release build, else
# `dotnet run --project bench/MaeMl.Transfer -c Release --`). Run from the repository root.
# Output: OUT/<dir>/ (each command's files), OUT/<dir>.log, OUT/table.md (also printed at the end).
set -euo pipefail

FT_DIRS=(d-finetune-mae e-finetune-scratch f-finetune-mae-10pct f-finetune-scratch-10pct)
if [[ -n "${MAEML:-}" ]]; then read -ra MAEML_CMD <<< "$MAEML"
elif [[ -x src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli ]]; then MAEML_CMD=(src/MaeMl.Cli/bin/Release/net10.0/linux-x64/MaeMl.Cli)
else MAEML_CMD=(dotnet run --project src/MaeMl.Cli -c Release --); fi
if [[ "${1:-}" == "--save" ]]; then
  OUT=${2:?usage: scripts/cifar10-protocol.sh --save OUT KEEP}; KEEP=${3:?usage: scripts/cifar10-protocol.sh --save OUT KEEP}
  mkdir -p "$KEEP"
  cp "$OUT"/*.row.tsv "$OUT"/*.wall "$OUT"/*.args "$OUT"/*.log "$OUT"/table.md "$KEEP"/ 2> /dev/null || true
  for dir in ab-transfer c-linprobe "${FT_DIRS[@]}"; do
    [[ -d "$OUT/$dir" ]] || continue
    mkdir -p "$KEEP/$dir"
    find "$OUT/$dir" -maxdepth 1 -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.png' -o -name '*.md' \) -exec cp {} "$KEEP/$dir"/ \;
    rm -f "$KEEP/$dir/checkpoint-last.maeml"
    # an unfinished fine-tuning row: its weights and schedule position (AdamW moments restart from zero on resume)
    if [[ -f "$OUT/$dir/checkpoint-last.maeml" && ! -f "$OUT/$dir.row.tsv" ]]; then
      python3 scripts/strip-optimizer.py "$OUT/$dir/checkpoint-last.maeml" "$KEEP/$dir/checkpoint-last.maeml"
    fi
  done
  du -sh "$KEEP"; exit 0
fi

if [[ "${1:-}" == "--ship" ]]; then
  # row (d), finished, becomes the shipped classifier: its last weights (the end of the schedule; never the epoch that scored best on the
  # test images) without the AdamW moments, its per-epoch metrics as the training history, and its own test score checked again
  OUT=${2:?usage: scripts/cifar10-protocol.sh --ship OUT [DATA]}; DATA=${3:-../shared/data/cifar10}
  [[ -f "$OUT/d-finetune-mae.row.tsv" ]] || { echo "cifar10-protocol: row (d) in $OUT is not finished; run it to its last epoch first" >&2; exit 2; }
  python3 scripts/strip-optimizer.py "$OUT/d-finetune-mae/checkpoint-last.maeml" pretrained/cifar10-vit-tiny-finetuned.maeml
  # its history is the row's own metrics.jsonl, kept by --save in pretrained/training/cifar10-protocol/ (not copied a second time)
  "${MAEML_CMD[@]}" eval --weights pretrained/cifar10-vit-tiny-finetuned.maeml --val "$DATA/test" --eval-crop-pct 1
  du -h pretrained/cifar10-vit-tiny-finetuned.maeml; exit 0
fi

MAE=${1:?usage: scripts/cifar10-protocol.sh MAE_MODEL_FILE [DATA] [OUT]}
DATA=${2:-../shared/data/cifar10}
OUT=${3:-runs/cifar10-protocol}

# ---- budgets (full-budget values in brackets) ----
SEED=${SEED:-0}
THREADS=${THREADS:-0}                                    # torch threads of (c)-(f) (0 = torch's default); (a)/(b) use ONNX Runtime's default
PROBE_TRAIN_PER_CLASS=${PROBE_TRAIN_PER_CLASS:-500}      # train images per class of (a), (b), (c) [500: (a) featurizes at 18 images/s]
TEST_PER_CLASS=${TEST_PER_CLASS:-200}                    # test images per class of every row [0 = all 1,000]
POOLING=${POOLING:-mean}                                 # MAE embedding of (b)
LP_EPOCHS=${LP_EPOCHS:-90}                               # (c), main_linprobe.py: 90 epochs, 10 warmup, batch 256 (lr = blr x batch / 256)
LP_WARMUP=${LP_WARMUP:-10}
LP_BATCH=${LP_BATCH:-256}
LP_BLR=${LP_BLR:-0.1}
FT_LABELS_PER_CLASS=${FT_LABELS_PER_CLASS:-0}            # train images per class of (d), (e) [0 = all labels]
FT_LOW_PER_CLASS=${FT_LOW_PER_CLASS:-500}                # train images per class of (f): 10% of CIFAR-10's 5,000
FT_LOW_EVAL_EVERY=${FT_LOW_EVAL_EVERY:-5}                # (f) validates every this many epochs and after the last ((d), (e): every epoch); with
                                                         # 5,000 training images a validation on 10,000 test images costs as much as the epoch
FT_EPOCHS=${FT_EPOCHS:-1}                                # (d)-(f) [50]
FT_WARMUP=${FT_WARMUP:-0.2}                              # [5]
FT_BATCH=${FT_BATCH:-64}                                 # [128]
FT_BLR=${FT_BLR:-2e-3}                                   # [1e-3]
FT_AUG=${FT_AUG:-light}                                  # light: docs/finetuning.md's short-budget recipe (no mixup/cutmix/
                                                         # RandAugment/erasing, crop scale 0.35-1); full: --recipe small's defaults [full]
SCRATCH_MODEL=${SCRATCH_MODEL:-mae_vit_tiny_patch4_img32} # (e): the preset of MAE_MODEL_FILE's architecture
SCRATCH_LAYER_DECAY=${SCRATCH_LAYER_DECAY:-1}            # (e): layer-wise lr decay from scratch; 1 = every layer at the full lr (DeiT and the
                                                         # paper's scratch baselines: the decay protects pretrained lower layers, which scratch has not)
FT_PRECISION=${FT_PRECISION:-Float32}                    # (d)-(f): Float32, BFloat16 or Auto (the faster here, measured) [Auto]
ROWS=${ROWS:-ab c d e fd fe}                             # rows this invocation runs: ab = (a)+(b), c, d, e, fd, fe = (f) from the MAE / scratch
TIME_LIMIT=${TIME_LIMIT:-}                               # each fine-tuning row of this invocation stops cleanly after this long (e.g. 150m)
KEEP=${KEEP:-}                                           # state saved by --save on an earlier machine, restored into OUT where OUT lacks it

if [[ -n "${TRANSFER:-}" ]]; then read -ra TRANSFER_CMD <<< "$TRANSFER"
elif [[ -x bench/MaeMl.Transfer/bin/Release/net10.0/linux-x64/MaeMl.Transfer ]]; then TRANSFER_CMD=(bench/MaeMl.Transfer/bin/Release/net10.0/linux-x64/MaeMl.Transfer)
else TRANSFER_CMD=(dotnet run --project bench/MaeMl.Transfer -c Release --); fi
command -v jq > /dev/null || { echo "cifar10-protocol: needs jq" >&2; exit 2; }
[[ -f "$MAE" ]] || { echo "cifar10-protocol: '$MAE' does not exist" >&2; exit 2; }
[[ -d "$DATA/train" && -d "$DATA/test" ]] || { echo "cifar10-protocol: '$DATA' has no train/ and test/ class folders" >&2; exit 2; }

mkdir -p "$OUT"
if [[ -n "$KEEP" && -d "$KEEP" ]]; then
  for f in "$KEEP"/*; do
    [[ -e "$OUT/$(basename "$f")" ]] || { cp -r "$f" "$OUT"/; echo "restored $(basename "$f") from $KEEP"; }
  done
fi
wants() { [[ " $ROWS " == *" $1 "* ]]; }
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

now() { date +%s.%N; }
# DIR, then row id, method, train images, test images, top-1 (fraction), wall seconds, image passes: written once the row is done
add_row() { local dir=$1; shift; printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$OUT/$dir.row.tsv"; }
done_row() { [[ -f "$OUT/$1.row.tsv" ]]; }
fresh() { rm -rf "$OUT/$1" "$OUT/$1.row.tsv" "$OUT/$1.wall"; mkdir -p "$OUT/$1"; }

if wants ab && ! done_row ab-transfer; then
echo "== (a) + (b): ML.NET ResNet18 featurizer and MAE encoder featurizer (bench/MaeMl.Transfer)"
fresh ab-transfer
"${TRANSFER_CMD[@]}" --mae "$MAE" --train "$DATA/train" --test "$DATA/test" --train-per-class "$PROBE_TRAIN_PER_CLASS" --train-limit 0 \
  --test-per-class "$TEST_PER_CLASS" --test-limit 0 --seed "$SEED" --pooling "$POOLING" --out "$OUT/ab-transfer" 2>&1 | tee "$OUT/ab-transfer.log"
jq -r '.rows[] | [.row, .method, .train_images, .test_images, .top1, .wall_s, .image_passes] | @tsv' "$OUT/ab-transfer/transfer.json" > "$OUT/ab-transfer.row.tsv"
fi

if wants c && ! done_row c-linprobe; then
echo "== (c): linear probe (maeml linprobe)"
fresh c-linprobe
t0=$(now)
"${MAEML_CMD[@]}" linprobe --train "$DATA/train" --val "$DATA/test" --out "$OUT/c-linprobe" --weights "$MAE" \
  --limit-per-class "$PROBE_TRAIN_PER_CLASS" --val-limit-per-class "$TEST_PER_CLASS" \
  --epochs "$LP_EPOCHS" --warmup-epochs "$LP_WARMUP" --batch-size "$LP_BATCH" --blr "$LP_BLR" --eval-crop-pct 1 \
  --threads "$THREADS" --seed "$SEED" 2>&1 | tee "$OUT/c-linprobe.log"
wall=$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
# "features of N training and M validation images in S s": the encoder sees each image once (cached features; the head's epochs run on them)
read -r n m < <(sed -nE 's/.*features of ([0-9]+) training and ([0-9]+) validation images.*/\1 \2/p' "$OUT/c-linprobe.log" | tail -1)
add_row c-linprobe c "linear probe of the MAE encoder (maeml linprobe: BatchNorm + linear, SGD, $LP_EPOCHS epochs, cls token)" \
  "$n" "$(jq -r .count "$OUT/c-linprobe/eval.json")" "$(jq -r .top1 "$OUT/c-linprobe/eval.json")" "$wall" "$((n + m))"
fi

case "$FT_AUG" in
  light) AUG=(--mixup 0 --cutmix 0 --randaug none --reprob 0 --min-crop-scale 0.35) ;;
  full) AUG=() ;;
  *) echo "cifar10-protocol: FT_AUG must be light or full" >&2; exit 2 ;;
esac
RECIPE=(--recipe small --epochs "$FT_EPOCHS" --warmup-epochs "$FT_WARMUP" --batch-size "$FT_BATCH" --blr "$FT_BLR" "${AUG[@]}"
        --eval-crop-pct 1 --precision "$FT_PRECISION" --threads "$THREADS" --seed "$SEED")

# finetune KEY ROW DIR PER_CLASS METHOD INIT_ARGS...: runs (or continues) one fine-tuning row of this invocation's ROWS
finetune() {
  local key=$1 row=$2 dir=$3 per_class=$4 method=$5; shift 5
  wants "$key" && ! done_row "$dir" || return 0
  local args="$* --limit-per-class $per_class --val-limit-per-class $TEST_PER_CLASS ${RECIPE[*]}"
  if [[ -f "$OUT/$dir/checkpoint-last.maeml" ]]; then
    [[ "$(cat "$OUT/$dir.args" 2> /dev/null)" == "$args" ]] || {
      echo "cifar10-protocol: $OUT/$dir was started with other settings ($(cat "$OUT/$dir.args" 2> /dev/null || echo unknown)); delete it to start over" >&2; exit 2; }
    echo "== ($row): $method (maeml finetune, continuing $OUT/$dir)"
  else
    echo "== ($row): $method (maeml finetune)"
    fresh "$dir"
    echo "$args" > "$OUT/$dir.args"
  fi
  local t0; t0=$(now)
  "${MAEML_CMD[@]}" finetune --train "$DATA/train" --val "$DATA/test" --out "$OUT/$dir" "$@" \
    --limit-per-class "$per_class" --val-limit-per-class "$TEST_PER_CLASS" "${RECIPE[@]}" --resume auto \
    ${TIME_LIMIT:+--time-limit "$TIME_LIMIT"} 2>&1 | tee -a "$OUT/$dir.log"
  awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.2f\n", a - b }' >> "$OUT/$dir.wall"
  local epochs; epochs=$(jq -s '[.[] | select(.type == "epoch")] | length' "$OUT/$dir/metrics.jsonl")
  if (( epochs < FT_EPOCHS )); then echo "== ($row): $epochs of $FT_EPOCHS epochs so far; run again to continue"; return 0; fi
  local wall; wall=$(awk '{ s += $1 } END { printf "%.2f", s }' "$OUT/$dir.wall")
  # "fine-tuning on N images of C classes ..., validating on M: S steps/epoch, batch B x accum A": each epoch trains on the full
  # batches (drop last); each validation (every epoch, or every FT_LOW_EVAL_EVERY-th and the last) scores the M test images
  local n m steps batch accum
  read -r n m steps batch accum < <(sed -nE 's/.*fine-tuning on ([0-9]+) images of .*validating on ([0-9]+): ([0-9]+) steps\/epoch, batch ([0-9]+) x accum ([0-9]+).*/\1 \2 \3 \4 \5/p' "$OUT/$dir.log" | tail -1)
  local evals; evals=$(jq -s '[.[] | select(.type == "epoch" and .val_top1 != null)] | length' "$OUT/$dir/metrics.jsonl")
  add_row "$dir" "$row" "$method" "$n" "$(jq -r .count "$OUT/$dir/eval.json")" "$(jq -r .top1 "$OUT/$dir/eval.json")" "$wall" \
    "$((epochs * (steps - steps % accum) * batch + evals * m))"
}

labels_all=$([[ "$FT_LABELS_PER_CLASS" == 0 ]] && echo "all labels" || echo "$FT_LABELS_PER_CLASS labels per class")
finetune d d d-finetune-mae "$FT_LABELS_PER_CLASS" "fine-tune from the MAE, $labels_all, $FT_EPOCHS epoch(s)" --weights "$MAE"
finetune e e e-finetune-scratch "$FT_LABELS_PER_CLASS" "$SCRATCH_MODEL from scratch, $labels_all, $FT_EPOCHS epoch(s)" --model "$SCRATCH_MODEL" --layer-decay "$SCRATCH_LAYER_DECAY"
finetune fd "f, d" f-finetune-mae-10pct "$FT_LOW_PER_CLASS" "fine-tune from the MAE, $FT_LOW_PER_CLASS labels per class, $FT_EPOCHS epoch(s)" --weights "$MAE" --eval-every "$FT_LOW_EVAL_EVERY"
finetune fe "f, e" f-finetune-scratch-10pct "$FT_LOW_PER_CLASS" "$SCRATCH_MODEL from scratch, $FT_LOW_PER_CLASS labels per class, $FT_EPOCHS epoch(s)" --model "$SCRATCH_MODEL" --layer-decay "$SCRATCH_LAYER_DECAY" --eval-every "$FT_LOW_EVAL_EVERY"

{
  echo "# CIFAR-10 transfer protocol"
  echo
  echo "MAE model \`$MAE\`, data \`$DATA\`; started $STARTED, finished $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
  echo "$(nproc) cores, load average at start $LOAD_START."
  echo
  echo "| row | method | train images | test images | top-1 | wall-clock | image passes | images/s |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  while IFS=$'\t' read -r id method train test top1 wall passes; do
    awk -v id="$id" -v method="$method" -v train="$train" -v test="$test" -v top1="$top1" -v wall="$wall" -v passes="$passes" \
      'BEGIN { printf "| (%s) | %s | %d | %d | %.2f%% | %.1f s | %d | %.1f |\n", id, method, train, test, top1 * 100, wall, passes, passes / wall }'
  done < <(for dir in ab-transfer c-linprobe "${FT_DIRS[@]}"; do [[ -f "$OUT/$dir.row.tsv" ]] && cat "$OUT/$dir.row.tsv"; done)
  for dir in "${FT_DIRS[@]}"; do
    if [[ ! -f "$OUT/$dir.row.tsv" && -f "$OUT/$dir/metrics.jsonl" ]]; then
      echo "| | $dir: in progress, $(jq -s '[.[] | select(.type == "epoch")] | length' "$OUT/$dir/metrics.jsonl") of $FT_EPOCHS epochs | | | | | | |"
    fi
  done
  echo
  echo "- a row that spans sessions sums its invocations' wall-clock; its commands continued the schedule from the checkpoint (weights and position;"
  echo "  across machines without the AdamW moments)."
  echo "- top-1 on the test images after the last epoch (no model selection on them); (a)/(b) from ML.NET's evaluator, (c)-(f) from each command's eval.json."
  echo "- wall-clock: the whole row. (a)/(b): measured inside bench/MaeMl.Transfer (for (b) including loading the MAE file and exporting the"
  echo "  ONNX encoder), fit (featurize the training images once, NormalizeMinMax, L-BFGS) + evaluation; (c)-(f): the whole maeml process."
  echo "- image passes: images the network ran on. (a)-(c): train + test images once each ((c) caches the frozen features; its $LP_EPOCHS head"
  echo "  epochs run on them); (d)-(f): epochs x training images in full batches + validations x test images ((f) validates after every ${FT_LOW_EVAL_EVERY} epochs and the last)."
  echo "  images/s = image passes / wall-clock. A fine-tuning pass also runs the backward pass; a ResNet18 pass is at 224 px."
  echo "- budgets: probe train $PROBE_TRAIN_PER_CLASS/class, test $TEST_PER_CLASS/class (0 = all), seed $SEED, torch threads $THREADS;"
  echo "  linprobe ${LP_EPOCHS} epochs (warmup $LP_WARMUP, batch $LP_BATCH, blr $LP_BLR); fine-tune ${FT_EPOCHS} epoch(s) (warmup $FT_WARMUP, batch $FT_BATCH,"
  echo "  blr $FT_BLR, augmentation $FT_AUG, precision $FT_PRECISION, layer decay / drop path / smoothing of --recipe small;"
  echo "  from scratch layer decay $SCRATCH_LAYER_DECAY)."
} > "$OUT/table.md.tmp"
mv "$OUT/table.md.tmp" "$OUT/table.md"
echo
cat "$OUT/table.md"
