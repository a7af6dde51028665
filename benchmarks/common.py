"""What the speed benchmarks share: arguments, the model (a tiny one built on the fly by default), the XNLI-format
data, Trainer settings, timing, MFU, tables and the JSON report.

Not a test: nothing here asserts a speed. Every benchmark runs unchanged on a CPU (the tiny model, or the
real_model encoder) and on a GPU (e.g. `--model_name_or_path FacebookAI/xlm-roberta-large`, bf16 by default
there, MFU reported against `--peak_tflops` or the known peak of the GPU).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_XNLI = ROOT.parent / "shared" / "data" / "xnli"
FIXTURE_XNLI = ROOT / "tests" / "fixtures" / "xtreme" / "xnli"
XNLI_LABELS = ("contradiction", "entailment", "neutral")
# Dense bf16/fp16 peak of common GPUs (TFLOP/s, no sparsity): used for MFU when --peak_tflops is not given.
# First match in this order wins (PCIe/NVL parts before the SXM default).
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
               "L4": 121.0, "A10": 125.0, "V100": 125.0, "T4": 65.0}


def default_train_file() -> Path:
    shared = SHARED_XNLI / "dev-en.tsv"
    return shared if shared.is_file() else FIXTURE_XNLI / "train-en.tsv"


def default_data_dir() -> Path:
    """A dir holding `xnli/dev-{lang}.tsv`: the shared XNLI sample if present, else the test fixtures."""
    return SHARED_XNLI.parent if (SHARED_XNLI / "dev-en.tsv").is_file() else FIXTURE_XNLI.parent


def parser(description: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name_or_path", default=None,
                   help="model dir or Hub id (default: a tiny random XLM-R built offline, in a temp dir)")
    p.add_argument("--output", default=str(ROOT / "outputs" / "benchmarks" / f"{name}.json"), help="JSON report")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the table shows medians")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on a GPU that has it, else fp32")
    p.add_argument("--peak_tflops", type=float, default=None,
                   help="the accelerator's peak TFLOP/s at this precision, for MFU (known GPUs: looked up)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None,
                   help="torch/OpenMP threads (also for child processes); default: torch's. On a CPU shared with "
                        "other jobs, --threads 1 makes the CPU-time ratios robust (no threads spinning at barriers)")
    return p


def data_arguments(p: argparse.ArgumentParser, batch_size: int | None = None, train_file: bool = True) -> None:
    """Adds --batch_size (if a default is given), --max_seq_length and --train_file (if asked for)."""
    if batch_size is not None:
        p.add_argument("--batch_size", type=int, default=batch_size)
    p.add_argument("--max_seq_length", type=int, default=128)
    if train_file:
        p.add_argument("--train_file", type=Path, default=default_train_file(),
                       help="XNLI-format tsv (default: the shared sample or fixture)")


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments, completed by `resolve`, with transformers' and datasets' logging quietened."""
    args = p.parse_args()
    resolve(args)
    quiet_transformers()
    return args


def resolve(args) -> None:
    """Fills args.device, args.precision, args.peak_tflops and builds the tiny model if no model was given."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.precision == "auto":
        args.precision = "bf16" if args.device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if args.peak_tflops is None and args.device == "cuda":
        name = torch.cuda.get_device_name()
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        if args.precision == "fp32" and args.peak_tflops:
            args.peak_tflops = None  # the table holds 16-bit peaks
    args.model_label = args.model_name_or_path or "tiny random XLM-R (2 layers, hidden 32)"
    if args.model_name_or_path is None:
        from utils.tiny_model import build_tiny_model

        tiny = tempfile.mkdtemp(prefix="bench_tiny_model_")
        atexit.register(shutil.rmtree, tiny, ignore_errors=True)
        args.model_name_or_path = str(build_tiny_model(tiny))


def device_name(args) -> str:
    import torch

    if args.device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def now(device: str) -> float:
    sync(device)
    return time.perf_counter()


def cpu_now() -> float:
    """CPU seconds used by this process (all threads). On a shared CPU, other processes' load changes wall times
    from run to run much more than the CPU time a run needs: the benchmarks report ratios of both."""
    return time.process_time()


def round_order(names, round_: int) -> list:
    """`names` in order on even rounds, reversed on odd ones: alternating evens out drifts in machine load."""
    return list(names) if round_ % 2 == 0 else list(reversed(names))


def run_label(args) -> str:
    """The model, device, precision and rounds, as table titles end."""
    return f"{args.model_label}, {args.device} {args.precision}; median of {args.rounds} round(s)"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_pairs(path, num: int | None = None, seed: int = 0):
    """XNLI-format pairs (sentence1, sentence2, label) read by the project's loader; a seeded random subset."""
    from utils.data import load_split
    from utils.tasks import get_task

    task, _ = get_task("xnli")
    dataset, _ = load_split(task, "train", "en", list(task.labels), files=[str(path)])
    if num is not None and num < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(num)).flatten_indices()
    return dataset


def xnli():
    """The XNLI task and its kind adapter (features, collator) from the project's registry."""
    from utils.kinds import get_kind
    from utils.tasks import get_task

    task, _ = get_task("xnli")
    return task, get_kind(task)


def preprocessing_arguments(args, **overrides):
    """The project's `PreprocessingArguments` at --max_seq_length."""
    from utils.training import PreprocessingArguments

    return PreprocessingArguments(max_seq_length=args.max_seq_length, **overrides)


def padding_ratio(lengths, batch_size: int, multiple: int | None = None) -> float:
    """Real / processed tokens of consecutive batches of these lengths, each padded to its longest (rounded up to
    `multiple`)."""
    real = processed = 0
    for start in range(0, len(lengths), batch_size):
        batch = lengths[start:start + batch_size]
        longest = max(batch)
        if multiple:
            longest = -(-longest // multiple) * multiple
        real += sum(batch)
        processed += longest * len(batch)
    return real / processed


def classifier(model_dir: str, num_labels: int = 3):
    from transformers import AutoModelForSequenceClassification

    labels = list(XNLI_LABELS)[:num_labels]
    return AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=num_labels, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})


def training_arguments(args, output_dir: str, **overrides):
    """The project's `XtremeTrainingArguments` (its defaults: the fast path) with benchmark housekeeping off."""
    from utils.training import XtremeTrainingArguments

    settings = dict(output_dir=output_dir, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                    report_to=[], disable_tqdm=True, logging_strategy="no", seed=args.seed,
                    use_cpu=args.device == "cpu", bf16=args.precision == "bf16", fp16=args.precision == "fp16")
    settings.update(overrides)
    return XtremeTrainingArguments(**settings)


def quiet_transformers() -> None:
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def compute_params(model) -> int:
    """Parameters that cost 2 FLOPs per token forward (embedding lookups excluded), for 6*N*tokens."""
    return model.num_parameters(exclude_embeddings=True)


def mfu(tokens_per_s: float, params: int, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: 6 * params * tokens/s (forward + backward) over the peak."""
    if not peak_tflops:
        return None
    return 6 * params * tokens_per_s / (peak_tflops * 1e12)


def fmt(value, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def print_table(title: str, columns: list[tuple[str, str, str]], rows: list[dict]) -> None:
    """columns: (header, key, format spec)."""
    cells = [[fmt(row.get(key), spec) for _, key, spec in columns] for row in rows]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, (header, _, _) in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w) in enumerate(zip(columns, widths))))
    for c in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))


def write_report(args, name: str, report: dict) -> None:
    from utils.results import environment_info

    payload = {"benchmark": name, "model": args.model_label, "device": device_name(args),
               "precision": args.precision, "peak_tflops": args.peak_tflops, "rounds": args.rounds,
               **report, "environment": environment_info(),
               # other processes on the machine make CPU timings noisy: the 1/5/15-minute load at the end
               "load_average": os.getloadavg()}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nreport: {path}")


class BareLoop:
    """A training step written out in plain PyTorch, the compute floor of a Trainer step:

        with autocast: loss = model(**batch).loss
        loss.backward(); clip_grad_norm_(params, max_grad_norm); optimizer.step(); scheduler.step(); zero_grad()

    with the Trainer's own optimizer class and hyperparameters (`Trainer.get_optimizer_cls_and_kwargs`: fused AdamW
    by default), its weight-decay parameter groups, and the same linear warmup/decay schedule.
    """

    def __init__(self, args, model, training_args, num_steps: int, decay_names):
        import torch
        from transformers import Trainer, get_linear_schedule_with_warmup

        self.device, self.model = args.device, model.to(args.device).train()
        decay = set(decay_names)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in named if n in decay], "weight_decay": training_args.weight_decay},
                  {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, training_args.get_warmup_steps(num_steps),
                                                         num_steps)
        self.max_grad_norm = training_args.max_grad_norm
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
        self.autocast = torch.autocast(args.device, dtype=dtype, enabled=args.precision in ("bf16", "fp16"))
        self.scaler = torch.amp.GradScaler(args.device) if args.precision == "fp16" else None
        self.seconds, self.cpu_seconds, self.losses = [], [], []

    def step(self, batch) -> None:
        import torch

        start, cpu_start = now(self.device), cpu_now()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self.autocast:
            loss = self.model(**batch).loss
        if self.scaler is None:
            loss.backward()
            if self.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.seconds.append(now(self.device) - start)
        self.cpu_seconds.append(cpu_now() - cpu_start)
        self.losses.append(float(loss.detach()))


def interleaving_timer(device, every: int = 0, work=None):
    """A TrainerCallback timing each Trainer step (wall and CPU seconds, from the end of the previous step or of
    the interleaved work) and, after every `every`-th step, calling `work(step)` outside the timed span: work
    interleaved step by step sees the same machine load as the Trainer's steps."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self):
            self.mark, self.seconds, self.cpu_seconds, self.losses = None, [], [], []

        def on_train_begin(self, *a, **k):
            self.mark = (now(device), cpu_now())

        def on_step_end(self, args, state, control, **k):
            self.seconds.append(now(device) - self.mark[0])
            self.cpu_seconds.append(cpu_now() - self.mark[1])
            if work is not None and every and state.global_step % every == 0:
                work(state.global_step)
            self.mark = (now(device), cpu_now())

        def on_log(self, args, state, control, logs=None, **k):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return Timer()
