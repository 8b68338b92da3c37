#!/usr/bin/env bash
# Iterated on-policy MAPL, offline, on the embedded SmolLM2-135M-Instruct:
#
#     bash examples/iterate.sh [DIR]          # DIR defaults to iterate/; about 30 min on 2 CPU cores
#
# Two chains of policies start from the same model: `mapl` (MAPL's lambdas, 1 and 1) and `standard`
# (plain DPO, --lambda-intra 0 --lambda-inter 0). In round r each chain
#   1. samples MAPL_ITER_N responses per prompt from its own policy r (`mapl sample`) on the prompts of
#      examples/prefs.jsonl, with 1 to MAPL_ITER_K_MAX instructions drawn per prompt, and labels them with
#      the instruction registry: the most against the fewest satisfied instructions become preference pairs;
#   2. builds MAPL pairs around those (`mapl synthesize`; new instructions never repeat or contradict the
#      ones the prompt carries);
#   3. trains policy r+1 from policy r with LoRA (same steps, data size and seed for both chains; merged
#      into full weights so the next round samples from it);
# then both chains' policies r+1 are evaluated on the held-out examples/eval_benchmark.jsonl (its base
# prompts are not the ones sampled from), with paired intervals against the standard chain.
# Every knob below is an environment variable; docs/sampling.md gives GPU-scale command lines.
set -euo pipefail

DIR="${1:-iterate}"
ROUNDS="${MAPL_ITER_ROUNDS:-2}"
MODEL="${MAPL_ITER_MODEL:-smollm2-135m-instruct}"
SAMPLE_PROMPTS="${MAPL_ITER_SAMPLE_PROMPTS:-40}"   # prompts sampled per round (from examples/prefs.jsonl)
N="${MAPL_ITER_N:-4}"                              # responses sampled per prompt
K_MAX="${MAPL_ITER_K_MAX:-3}"                      # instructions drawn per sampled prompt: 1..K_MAX
SAMPLE_TOKENS="${MAPL_ITER_SAMPLE_TOKENS:-96}"
STEPS="${MAPL_ITER_STEPS:-16}"                     # optimizer steps per policy per round
BATCH="${MAPL_ITER_BATCH:-4}"
MAX_LENGTH="${MAPL_ITER_MAX_LENGTH:-320}"
LORA_R="${MAPL_ITER_LORA_R:-16}"
LR="${MAPL_ITER_LR:-5e-4}"
EVAL_PROMPTS="${MAPL_ITER_EVAL_PROMPTS:-60}"
EVAL_TOKENS="${MAPL_ITER_EVAL_TOKENS:-128}"
GEN_BATCH="${MAPL_ITER_GEN_BATCH:-16}"
SEED="${MAPL_ITER_SEED:-0}"
HERE="$(cd "$(dirname "$0")" && pwd)"

started=$(date +%s)
stage() { echo "== [$(( $(date +%s) - started ))s] $*" >&2; }

declare -A policy=([standard]="$MODEL" [mapl]="$MODEL")
for round in $(seq 1 "$ROUNDS"); do
  for chain in standard mapl; do
    out="$DIR/round$round/$chain"
    if [ "$chain" = standard ]; then lambdas=(--lambda-intra 0 --lambda-inter 0); else lambdas=(); fi
    if [ "$round" = 1 ] && [ "$chain" = mapl ]; then
      out="$DIR/round1/standard"  # round 1: both chains start from the same model, so share its samples
    else
      stage "round $round, $chain: sample $N responses for $SAMPLE_PROMPTS prompts from ${policy[$chain]}"
      mapl sample "$HERE/prefs.jsonl" --model "${policy[$chain]}" --output "$out/samples" --n "$N" \
        --k-min 1 --k-max "$K_MAX" --limit "$SAMPLE_PROMPTS" --max-new-tokens "$SAMPLE_TOKENS" \
        --batch-size "$GEN_BATCH" --backend hf --seed "$((SEED + round))" --force
      stage "round $round, $chain: synthesize MAPL pairs"
      mapl synthesize "$out/samples/prefs.parquet" --output "$out/pairs" --seed "$((SEED + round))" --force
    fi
    stage "round $round, $chain: train-dpo ($STEPS LoRA steps of $BATCH pairs)"
    mapl train-dpo "$out/pairs" --model "${policy[$chain]}" --output "$DIR/round$round/dpo-$chain" "${lambdas[@]}" \
      --max-steps "$STEPS" --batch-size "$BATCH" --lora-r "$LORA_R" --lr "$LR" --warmup-steps 1 \
      --max-length "$MAX_LENGTH" --seed "$SEED" --save-every 0 --no-precompute-ref --merge-lora --force
    policy[$chain]="$DIR/round$round/dpo-$chain/model"  # merged full weights: the next round samples from it
  done
  stage "round $round: evaluate both policies on $EVAL_PROMPTS held-out benchmark prompts"
  mapl evaluate --benchmark "$HERE/eval_benchmark.jsonl" --limit "$EVAL_PROMPTS" \
    --model "$DIR/round$round/dpo-standard" --model "$DIR/round$round/dpo-mapl" \
    --max-new-tokens "$EVAL_TOKENS" --batch-size "$GEN_BATCH" --backend hf --seed "$SEED" \
    --output "$DIR/round$round/eval" --force
done
stage "done: $DIR/round$ROUNDS/eval/report.md"
