#!/usr/bin/env bash
# The end-to-end MAPL demo, at toy scale, offline, on the embedded SmolLM2-135M-Instruct (about 20 minutes
# on 2 CPU cores):
#
#     bash examples/demo.sh [DIR]            # or: make demo      (DIR defaults to demo/)
#
# 1. synthesize MAPL pairs (standard, intra, inter) from the 80 preference rows in examples/prefs.jsonl;
# 2. train two LoRA DPO policies from smollm2-135m-instruct with the same steps, data and seed:
#    standard DPO (--lambda-intra 0 --lambda-inter 0) and MAPL (the default lambdas, 1 and 1);
# 3. evaluate both policies and the base model on the first MAPL_DEMO_PROMPTS prompts of
#    examples/eval_benchmark.jsonl (1 to 6 instructions per prompt), print the comparison table with each
#    model's difference from standard DPO (95% paired bootstrap intervals, McNemar p-values), and write
#    DIR/eval/report.md (also: accuracy on instruction types seen and not seen in training).
#
# This shows the pipeline working; a few LoRA steps on 80 pairs do not measure MAPL's effect. The knobs
# below size it; for real scale see docs/evaluation.md ("Real scale").
set -euo pipefail

DIR="${1:-demo}"
STEPS="${MAPL_DEMO_STEPS:-24}"                    # optimizer steps per policy
BATCH="${MAPL_DEMO_BATCH:-4}"                     # pairs per step
MAX_LENGTH="${MAPL_DEMO_MAX_LENGTH:-320}"         # prompt + response tokens in training
LORA_R="${MAPL_DEMO_LORA_R:-16}"
LR="${MAPL_DEMO_LR:-5e-4}"                        # LoRA on a handful of steps needs a large step
PROMPTS="${MAPL_DEMO_PROMPTS:-120}"               # benchmark prompts evaluated per model (all 120)
MAX_NEW_TOKENS="${MAPL_DEMO_MAX_NEW_TOKENS:-128}"
GEN_BATCH="${MAPL_DEMO_GEN_BATCH:-24}"
SEED="${MAPL_DEMO_SEED:-0}"
MODEL="${MAPL_DEMO_MODEL:-smollm2-135m-instruct}"
HERE="$(cd "$(dirname "$0")" && pwd)"

started=$(date +%s)
stage() { echo "== [$(( $(date +%s) - started ))s] $*" >&2; }

stage "synthesize MAPL pairs from examples/prefs.jsonl"
mapl synthesize "$HERE/prefs.jsonl" --output "$DIR/pairs" --seed "$SEED" --force

# --no-precompute-ref: with LoRA the reference is the base model with the adapter switched off, computed
# only for the rows a step uses; a dozen steps touch a fraction of the table, so precomputing all is slower.

for run in standard mapl; do
  if [ "$run" = standard ]; then lambdas=(--lambda-intra 0 --lambda-inter 0); else lambdas=(); fi
  stage "train-dpo ($run): $STEPS LoRA steps of $BATCH pairs"
  mapl train-dpo "$DIR/pairs" --model "$MODEL" --output "$DIR/dpo-$run" "${lambdas[@]}" \
    --max-steps "$STEPS" --batch-size "$BATCH" --lora-r "$LORA_R" --lr "$LR" --warmup-steps 1 \
    --max-length "$MAX_LENGTH" --seed "$SEED" --save-every 0 --no-precompute-ref --force
done

# standard DPO first: it is the baseline every other row is compared with
stage "evaluate DPO, MAPL and the base model on $PROMPTS benchmark prompts ($MAX_NEW_TOKENS new tokens, greedy)"
mapl evaluate --benchmark "$HERE/eval_benchmark.jsonl" --limit "$PROMPTS" \
  --model "$DIR/dpo-standard" --model "$DIR/dpo-mapl" --model "$MODEL" \
  --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$GEN_BATCH" --backend hf --seed "$SEED" \
  --output "$DIR/eval" --force

stage "done: $DIR/eval/report.md"
