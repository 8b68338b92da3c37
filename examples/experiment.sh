#!/usr/bin/env bash
# The lambda ablation, with evidence: does each MAPL objective change instruction following, and is the
# change larger than run-to-run noise?
#
#     bash examples/experiment.sh [DIR]       # DIR defaults to experiment/; under 40 minutes on 2 CPU cores
#
# 1. synthesize MAPL pairs once from MAPL_EXP_PREFS (default examples/prefs.jsonl);
# 2. for each seed in MAPL_EXP_SEEDS, train four LoRA DPO policies from MAPL_EXP_MODEL at equal steps, data
#    and seed, differing only in the lambdas:
#       plain (0, 0)   intra (1, 0)   inter (0, 1)   both (1, 1)        (--lambda-intra, --lambda-inter)
# 3. for each seed, evaluate the four policies on the first MAPL_EXP_PROMPTS prompts of MAPL_EXP_BENCHMARK:
#    mapl evaluate compares intra, inter and both with plain DPO of the same seed, prompt by prompt (95%
#    paired bootstrap intervals, exact McNemar p-values), and splits accuracy by instruction types seen and
#    not seen in training;
# 4. print one table over all seeds: each configuration's difference from plain DPO per seed, with its
#    interval, and the mean over seeds. A difference that keeps its sign across seeds and whose intervals
#    exclude 0 is evidence; anything else is noise at this scale.
#
# The defaults are sized for a CPU demonstration (a 135M model, a dozen LoRA steps): expect differences
# within noise. docs/evaluation.md ("The lambda ablation") gives GPU-scale settings.
set -euo pipefail

DIR="${1:-experiment}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFS="${MAPL_EXP_PREFS:-$HERE/prefs.jsonl}"
BENCHMARK="${MAPL_EXP_BENCHMARK:-$HERE/eval_benchmark.jsonl}"
MODEL="${MAPL_EXP_MODEL:-smollm2-135m-instruct}"
SEEDS="${MAPL_EXP_SEEDS:-0 1 2}"
STEPS="${MAPL_EXP_STEPS:-8}"                     # optimizer steps per policy (equal for every configuration)
BATCH="${MAPL_EXP_BATCH:-4}"                      # pairs per step
MAX_LENGTH="${MAPL_EXP_MAX_LENGTH:-256}"          # prompt + response tokens in training
LORA_R="${MAPL_EXP_LORA_R:-16}"                   # 0: full fine-tune
LR="${MAPL_EXP_LR:-5e-4}"
PROMPTS="${MAPL_EXP_PROMPTS:-48}"                 # benchmark prompts per policy
MAX_NEW_TOKENS="${MAPL_EXP_MAX_NEW_TOKENS:-64}"
GEN_BATCH="${MAPL_EXP_GEN_BATCH:-24}"
BOOTSTRAP="${MAPL_EXP_BOOTSTRAP:-10000}"
BACKEND="${MAPL_EXP_BACKEND:-hf}"                 # vllm on a GPU
EXTRA_TRAIN="${MAPL_EXP_TRAIN_ARGS:-}"            # more train-dpo options, e.g. "--fsdp" or "--epochs 1"

started=$(date +%s)
stage() { echo "== [$(( $(date +%s) - started ))s] $*" >&2; }
lora=()
if [ "$LORA_R" != 0 ]; then lora=(--lora-r "$LORA_R"); fi

stage "synthesize MAPL pairs from $PREFS"
mapl synthesize "$PREFS" --output "$DIR/pairs" --seed 0 --force --no-progress

declare -A LAMBDAS=([plain]="0 0" [intra]="1 0" [inter]="0 1" [both]="1 1")
for seed in $SEEDS; do
  for config in plain intra inter both; do
    read -r li le <<< "${LAMBDAS[$config]}"
    stage "seed $seed, $config (lambda-intra $li, lambda-inter $le): $STEPS steps of $BATCH pairs"
    # shellcheck disable=SC2086  # EXTRA_TRAIN is a list of options
    mapl train-dpo "$DIR/pairs" --model "$MODEL" --output "$DIR/seed$seed/$config" \
      --lambda-intra "$li" --lambda-inter "$le" --max-steps "$STEPS" --batch-size "$BATCH" "${lora[@]}" \
      --lr "$LR" --warmup-steps 1 --max-length "$MAX_LENGTH" --seed "$seed" --save-every 0 \
      --no-precompute-ref --no-progress --force $EXTRA_TRAIN
  done
  stage "seed $seed: evaluate the four policies on $PROMPTS prompts (plain DPO is the baseline)"
  # the pairs' synthesize manifest names the types the MAPL objectives trained on (plain DPO saw none)
  mapl evaluate --benchmark "$BENCHMARK" --limit "$PROMPTS" \
    --model "$DIR/seed$seed/plain" --model "$DIR/seed$seed/intra" --model "$DIR/seed$seed/inter" \
    --model "$DIR/seed$seed/both" --train-manifest "$DIR/pairs/manifest.json" \
    --max-new-tokens "$MAX_NEW_TOKENS" --batch-size "$GEN_BATCH" --backend "$BACKEND" --seed "$seed" \
    --bootstrap "$BOOTSTRAP" --output "$DIR/seed$seed/eval" --force > /dev/null
done

stage "all seeds: differences from plain DPO"
python - "$DIR" $SEEDS <<'PY' | tee "$DIR/ablation.md"
import json, sys
from pathlib import Path

out, seeds = Path(sys.argv[1]), sys.argv[2:]
metrics = ("prompt_level_strict_acc", "inst_level_strict_acc")
print("Difference from plain DPO of the same seed, in points, with the 95% paired bootstrap interval "
      "(* excludes 0), per seed and averaged over seeds.\n")
print("| configuration | metric | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | intervals excluding 0 |")
print("|" + " --- |" * (len(seeds) + 4))
for config in ("intra", "inter", "both"):
    for metric in metrics:
        cells, diffs, hits = [], [], 0
        for seed in seeds:
            c = json.loads((out / f"seed{seed}" / "eval" / "summary.json").read_text())["comparisons"][config][metric]
            diffs.append(100 * c["diff"])
            hits += c["significant"]
            star = " *" if c["significant"] else ""
            cells.append(f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}]{star}")
        print(f"| {config} | {metric} | " + " | ".join(cells) + f" | {sum(diffs) / len(diffs):+.1f} | {hits} of {len(seeds)} |")
PY
stage "done: $DIR/ablation.md and $DIR/seed*/eval/report.md"
