#!/usr/bin/env bash
# The reward-model demo, at toy scale, offline, on the embedded SmolLM2-135M-Instruct:
#
#     bash examples/demo_rm.sh [DIR]         # or: make demo-rm   (DIR defaults to demo/)
#
# 1. split examples/prefs.jsonl into training rows and held-out rows (the last MAPL_DEMO_RM_HELDOUT rows);
# 2. synthesize MAPL pairs from each part;
# 3. train two LoRA reward models with the same steps, data and seed: Bradley-Terry (--lambda-intra 0
#    --lambda-inter 0) and MAPL (the default lambdas);
# 4. evaluate both on the held-out pairs: accuracy and mean margin by kind (standard, intra, inter) and by
#    condition, and MAPL's accuracy difference from BT with 95% paired bootstrap intervals and McNemar
#    p-values; prints the tables and writes DIR/eval-rm/report.md.
#
# A demonstration of the pipeline, not a measurement of MAPL's effect (see docs/evaluation.md, "Real scale").
set -euo pipefail

DIR="${1:-demo}"
STEPS="${MAPL_DEMO_RM_STEPS:-16}"
BATCH="${MAPL_DEMO_BATCH:-4}"
MAX_LENGTH="${MAPL_DEMO_MAX_LENGTH:-320}"
LORA_R="${MAPL_DEMO_LORA_R:-16}"
LR="${MAPL_DEMO_RM_LR:-2e-4}"
HELDOUT="${MAPL_DEMO_RM_HELDOUT:-16}"
SEED="${MAPL_DEMO_SEED:-0}"
MODEL="${MAPL_DEMO_MODEL:-smollm2-135m-instruct}"
HERE="$(cd "$(dirname "$0")" && pwd)"

started=$(date +%s)
stage() { echo "== [$(( $(date +%s) - started ))s] $*" >&2; }

mkdir -p "$DIR/rm-data"
total=$(wc -l < "$HERE/prefs.jsonl")
head -n $(( total - HELDOUT )) "$HERE/prefs.jsonl" > "$DIR/rm-data/train.jsonl"
tail -n "$HELDOUT" "$HERE/prefs.jsonl" > "$DIR/rm-data/heldout.jsonl"

stage "synthesize pairs: $(( total - HELDOUT )) training rows, $HELDOUT held-out rows"
mapl synthesize "$DIR/rm-data/train.jsonl" --output "$DIR/rm-pairs-train" --seed "$SEED" --force
mapl synthesize "$DIR/rm-data/heldout.jsonl" --output "$DIR/rm-pairs-heldout" --seed "$SEED" --force

for run in bt mapl; do
  if [ "$run" = bt ]; then lambdas=(--lambda-intra 0 --lambda-inter 0); else lambdas=(); fi
  stage "train-rm ($run): $STEPS LoRA steps of $BATCH pairs"
  mapl train-rm "$DIR/rm-pairs-train" --model "$MODEL" --output "$DIR/rm-$run" "${lambdas[@]}" \
    --max-steps "$STEPS" --batch-size "$BATCH" --lora-r "$LORA_R" --lr "$LR" --warmup-steps 1 \
    --max-length "$MAX_LENGTH" --seed "$SEED" --save-every 0 --force
done

stage "evaluate both reward models on the held-out pairs"
mapl evaluate --reward-model "$DIR/rm-bt" --reward-model "$DIR/rm-mapl" --pairs "$DIR/rm-pairs-heldout" \
  --max-length "$MAX_LENGTH" --output "$DIR/eval-rm" --force

stage "done: $DIR/eval-rm/report.md"
