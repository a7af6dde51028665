"""A ready check for one GPU, offline: every phase kind through the project's scripts on models of the paper's
shapes, in bf16. Run it through benchmarks/gpu_check.sh (which bounds it to 8 minutes).

    benchmarks/gpu_check.sh                 # XLM-R large and Qwen2.5-0.5B shapes, random weights, on the GPU
    benchmarks/gpu_check.sh --cpu --tiny    # the same code path on a CPU with 2-layer models: a smoke test

1. Builds random-initialised models from configs (no download): XLM-R large (24 layers, hidden 1024, vocabulary
   250002) and Qwen2.5-0.5B (24 layers, hidden 896, GQA 14/2 heads, vocabulary 151936), with the project's small
   offline tokenizer (its ids are a subset of the vocabulary: the shapes, and so the cost, are the real ones).
2. Per model, one run per kind on the bundled fixtures (repeated to fill the batches): classification (PAWS-X),
   tagging (UD-POS), QA (XQuAD windows of 384), multiple choice (Cosmos QA, 4 choices), each `--max_steps` steps
   of `run_target.py` / `run_intermediate.py`, and retrieval (Tatoeba, de/fr/zh, `run_xtreme_eval.py`). Prints
   samples/s (retrieval: sentences embedded per second of the whole run), MFU of training (6 x non-embedding
   parameters x tokens/s over the GPU's dense bf16 peak; the Trainer's token count includes the padding, which
   length-grouped batches keep small) and the peak GPU memory of each run.
3. bf16 against fp32: the same classification run (same seed, same batches) in both precisions; the per-step
   losses must agree within 2% (relative).
4. With 2 GPUs (with --cpu: 2 workers), a 2-step grid (`python -m utils.grid --gpus 0,1`): both phase-2 steps run
   at once, each on its own GPU.

Exit status 0 when every run finished and the checks held. Not a test: the numbers are for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import PEAK_TFLOPS, print_table  # noqa: E402

FIX = ROOT / "tests" / "fixtures"
XTREME = FIX / "xtreme"


def build_models(out: Path, tiny: bool) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config, XLMRobertaConfig, XLMRobertaForMaskedLM

    from utils.tiny_model import build_tiny_model, build_tokenizer

    if tiny:
        return {"xlmr (tiny)": build_tiny_model(out / "xlmr"),
                "qwen2 (tiny)": build_tiny_model(out / "qwen2", architecture="qwen2")}
    models = {}
    for name, config in (
            ("xlm-roberta-large", XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                                   num_attention_heads=16, intermediate_size=4096,
                                                   max_position_embeddings=514, type_vocab_size=1)),
            ("qwen2.5-0.5b", Qwen2Config(vocab_size=151936, hidden_size=896, num_hidden_layers=24,
                                         num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864,
                                         max_position_embeddings=32768, rope_theta=1000000.0,
                                         tie_word_embeddings=True))):
        path = out / name
        tokenizer = build_tokenizer(FIX / "tiny_corpus.txt", path)
        config.pad_token_id, config.bos_token_id, config.eos_token_id = (
            tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # random init is faster there
            if name.startswith("qwen"):
                config.pad_token_id = None
                AutoModelForCausalLM.from_config(config).save_pretrained(path)
                tokenizer.pad_token = None  # as Qwen base checkpoints come
                tokenizer.save_pretrained(path)
            else:
                XLMRobertaForMaskedLM(config).save_pretrained(path)
        models[name] = path
    return models


def repeated(path: Path, times: int, out: Path) -> Path:
    """A JSON-lines fixture repeated `times` times (the multiple-choice samples are a few examples only)."""
    target = out / f"{path.parent.name}-{path.name}"
    target.write_text(path.read_text(encoding="utf-8") * times, encoding="utf-8")
    return target


def kinds(data: Path) -> dict[str, tuple[str, list]]:
    """kind -> (script, its task arguments)."""
    squad = XTREME / "xquad/xquad.en.json"
    cosmos = repeated(FIX / "intermediate/cosmosqa/train.jsonl", 100, data)
    return {
        "classification": ("run_target", ["--task", "pawsx", "--data_dir", XTREME, "--max_seq_length", 128]),
        "tagging": ("run_target", ["--task", "udpos", "--train_file", XTREME / "udpos/en_ewt-ud-dev.conllu",
                                   "--validation_file", XTREME / "udpos/dev-en.tsv", "--max_seq_length", 128]),
        "qa": ("run_target", ["--task", "xquad", "--train_file", squad, "--validation_file", squad,
                              "--max_seq_length", 384]),
        "multiple choice": ("run_intermediate", ["--task", "cosmosqa", "--train_file", cosmos, "--validation_file",
                                                 FIX / "intermediate/cosmosqa/valid.jsonl", "--max_seq_length", 128]),
    }


def run_script(script: str, args: list) -> None:
    """`python {script}.py args` in this process (one interpreter for every run: no import cost per run)."""
    import importlib

    from utils.errors import run_main

    module = importlib.import_module(script)
    with mock.patch.object(sys, "argv", [f"{script}.py", *map(str, args)]):
        run_main(module.main)


def non_embedding_params(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        for key in f.keys():
            if "embed" not in key and "lm_head" not in key:
                n = 1
                for size in f.get_slice(key).get_shape():
                    n *= size
                total += n
    return total


class Device:
    def __init__(self, cpu: bool):
        import torch

        self.torch, self.cuda = torch, not cpu and torch.cuda.is_available()
        if not cpu and not self.cuda:
            sys.exit("error: no GPU found; run with --cpu --tiny for the CPU smoke test")
        self.name = torch.cuda.get_device_name() if self.cuda else f"CPU ({os.cpu_count()} cores)"
        self.peak = next((v for k, v in PEAK_TFLOPS.items() if k in self.name), None) if self.cuda else None
        self.count = torch.cuda.device_count() if self.cuda else 0

    def reset(self) -> None:
        if self.cuda:
            import gc

            gc.collect()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None


def common_args(args, precision: str, out: Path, steps: int, batch: int) -> list:
    return ["--do_train", "--output_dir", out, "--max_steps", steps, "--per_device_train_batch_size", batch,
            "--per_device_eval_batch_size", batch, "--eval_strategy", "no", "--save_strategy", "no",
            "--load_best_model_at_end", "false", "--logging_steps", 1, "--disable_tqdm", "true", "--seed", 1,
            "--include_num_input_tokens_seen", "true", "--learning_rate", 1e-5,
            *(["--bf16", "true"] if precision == "bf16" else []), *(["--use_cpu"] if args.cpu else [])]


def train_run(args, device: Device, model: Path, script: str, task_args: list, out: Path, precision: str,
              steps: int) -> dict:
    device.reset()
    run_script(script, ["--model_name_or_path", model, *task_args, *common_args(args, precision, out, steps,
                                                                                  args.batch_size)])
    metrics = json.loads((out / "train_results.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    tokens = next((h["num_input_tokens_seen"] for h in reversed(history) if "num_input_tokens_seen" in h), None)
    row = {"samples/s": metrics["train_samples_per_second"], "peak GiB": device.peak_gib(),
           "losses": [h["loss"] for h in history if "loss" in h]}
    if tokens and device.peak:
        row["MFU"] = 6 * non_embedding_params(model) * tokens / metrics["train_runtime"] / (device.peak * 1e12)
    shutil.rmtree(out, ignore_errors=True)
    return row


def retrieval_run(args, device: Device, model: Path, out: Path, decoder: bool) -> dict:
    device.reset()
    start = time.perf_counter()
    run_script("run_xtreme_eval", ["--model_name_or_path", model, "--task", "tatoeba", "--languages", "de,fr,zh",
                                   "--data_dir", XTREME, "--output_dir", out, "--per_device_eval_batch_size",
                                   args.batch_size, *(["--pooling", "last"] if decoder else []),
                                   *(["--bf16", "true"] if not args.cpu else ["--use_cpu"])])
    wall = time.perf_counter() - start
    results = next((out / "results").glob("tatoeba*.json"))
    sentences = 2 * sum(m["num_examples"] for m in json.loads(results.read_text())["languages"].values())
    shutil.rmtree(out, ignore_errors=True)
    return {"samples/s": sentences / wall, "peak GiB": device.peak_gib()}


def loss_agreement(args, device: Device, model: Path, work: Path) -> float:
    script, task_args = kinds(work)["classification"]
    losses = {p: train_run(args, device, model, script, task_args, work / f"loss-{p}", p, args.loss_steps)["losses"]
              for p in ("bf16", "fp32")}
    pairs = list(zip(losses["bf16"], losses["fp32"]))
    if not pairs:
        sys.exit("error: no losses logged")
    return max(abs(b - f) / abs(f) for b, f in pairs)


def grid_check(args, model: Path, work: Path, device: Device) -> str:
    """Two independent phase-2 steps of a grid at once, on GPUs 0 and 1 (or 2 CPU workers)."""
    import yaml

    plan = {"output_dir": str(work / "grid"), "backbones": [{"name": "m", "path": str(model)}], "seeds": [1],
            "intermediate": ["none"], "targets": [{"name": "pawsx", "languages": ["de"]},
                                                  {"name": "xnli", "languages": ["de"]}],
            "args": {"target": {"data_dir": str(XTREME), "max_steps": args.steps, "eval_strategy": "no",
                                "save_strategy": "no", "load_best_model_at_end": False, "disable_tqdm": True,
                                **({"use_cpu": True} if args.cpu else {"bf16": True})}}}
    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.yaml").write_text(yaml.safe_dump(plan))
    where = ["--workers", "2"] if args.cpu else ["--gpus", "0,1"]
    result = subprocess.run([sys.executable, "-m", "utils.grid", str(work / "plan.yaml"), "--only", "phase=2",
                             *where], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: the 2-step grid failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in sorted((work / "grid").rglob("phase2/step.json"))]
    devices = [r.get("devices") for r in records]
    overlap = max(r["started"] for r in records) < min(r["finished"] for r in records)
    if not args.cpu and (sorted(map(tuple, devices)) != [("0",), ("1",)] or not overlap):
        sys.exit(f"error: the 2 grid steps did not run at once on GPUs 0 and 1: {devices}")
    return f"2 steps, {'2 workers' if args.cpu else 'GPUs 0 and 1'}, ran at once: {overlap}; " + result.stdout.strip(
        ).splitlines()[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="run on the CPU (smoke test; no MFU or GPU memory)")
    p.add_argument("--tiny", action="store_true", help="2-layer models instead of the real shapes")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default 40; --tiny: 3)")
    p.add_argument("--batch_size", type=int, default=None, help="default 32 (--tiny: 8)")
    p.add_argument("--loss_steps", type=int, default=None, help="steps compared in bf16 and fp32 (default 10)")
    p.add_argument("--output", default=str(ROOT / "outputs" / "benchmarks" / "gpu_check.json"))
    args = p.parse_args()
    args.steps = args.steps or (3 if args.tiny else 40)
    args.batch_size = args.batch_size or (8 if args.tiny else 32)
    args.loss_steps = args.loss_steps or (4 if args.tiny else 10)
    device = Device(args.cpu)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        report = check(args, device, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nreport: {args.output}")
    if report["failures"]:
        sys.exit("error: " + "; ".join(report["failures"]))


def check(args, device: Device, work: Path) -> dict:
    started = time.perf_counter()
    models = build_models(work / "models", args.tiny)
    rows, agreement, failures = [], {}, []
    for name, model in models.items():
        decoder = "qwen" in name
        for kind, (script, task_args) in kinds(work).items():
            row = train_run(args, device, model, script, task_args, work / "run", "bf16", args.steps)
            rows.append({"model": name, "kind": kind, **row})
        rows.append({"model": name, "kind": "retrieval", **retrieval_run(args, device, model, work / "run", decoder)})
        agreement[name] = loss_agreement(args, device, model, work)
        if agreement[name] > 0.02:
            failures.append(f"{name}: bf16 and fp32 losses differ by {agreement[name]:.1%}")
    print_table(f"every phase kind in bf16 on {device.name} ({args.steps} steps, batch {args.batch_size}; MFU "
                f"against {device.peak or '?'} TFLOP/s)",
                [("model", "model", ""), ("kind", "kind", ""), ("samples/s", "samples/s", ".1f"),
                 ("MFU", "MFU", ".1%"), ("peak GiB", "peak GiB", ".1f")], rows)
    for name, value in agreement.items():
        print(f"bf16 vs fp32, {args.loss_steps} steps of classification on {name}: max relative loss difference "
              f"{value:.2%} ({'ok' if value <= 0.02 else 'TOO LARGE'})")
    grid = None
    if args.cpu or device.count >= 2:
        grid = grid_check(args, next(iter(models.values())), work / "grid_check", device)
        print(f"grid: {grid}")
    else:
        print("grid: skipped (one GPU: the 2-step grid needs 2)")
    wall = time.perf_counter() - started
    print(f"gpu_check: {wall:.0f} s in all")
    return {"device": device.name, "peak_tflops": device.peak, "steps": args.steps, "batch_size": args.batch_size,
            "runs": [{k: v for k, v in r.items() if k != "losses"} for r in rows], "bf16_vs_fp32": agreement,
            "grid": grid, "wall_s": wall, "failures": failures}


if __name__ == "__main__":
    main()
