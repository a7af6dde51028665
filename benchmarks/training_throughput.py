"""(b) Training throughput: the project's training path against the pad-to-max_seq_length baseline.

    python benchmarks/training_throughput.py [--model_name_or_path M] [--num_samples 640] [--rounds 3]

Same model, data (a seeded random subset of the XNLI-format English sample), hyperparameters (the project's
defaults: lr 1e-5, 10% warmup, AdamW, weight decay 0.01, grad-norm clipping 1.0), batch 32, one epoch, and the
same `XtremeTrainer`:
  pad-to-128    what XTREME's and jiant's scripts do: every pair tokenised with padding="max_length" to
                max_seq_length (128), random batches
  project path  `run_target.py`'s path: features from `utils.kinds` (cached), length-grouped batches from the
                precomputed `length` column, dynamic padding per batch (to a multiple of 8 under bf16/fp16)

Reported per path (medians over rounds; each round starts from the same initial weights and alternates the order):
samples/s, real tokens/s (non-pad tokens), processed tokens/s (including pad), padding ratio = real / processed
tokens, the loss curve's first and last values, and MFU = 6 * params * real tokens/s / peak FLOP/s (params without
the embeddings; needs a GPU peak, or --peak_tflops). Both paths compute the same loss: the check feeds the same
examples padded both ways through the model in eval mode and reports the largest loss difference.

The speedup is the median of per-round ratios, by wall time and by this process's CPU time (on a CPU shared with
other jobs the CPU time a run needs varies much less than its wall time; use --threads 1 there). Also printed:
the ratio of processed tokens per sample (the speedup if time were proportional to tokens), and how well the
sampler groups lengths on this run, on the whole file and on a large training set (mega-batches of 50 batches):
the sampler groups within min(n // (4 x batch), 50) batches, so a small benchmark run groups less well than
training on a real training set.
"""

import shutil
import tempfile

from common import (classifier, compute_params, cpu_now, data_arguments, load_pairs, median, mfu, now,
                    padding_ratio, parse, parser, preprocessing_arguments, print_table, round_order, run_label,
                    training_arguments, write_report, xnli)


class RecordingCollator:
    """Wraps a collator; records each batch's samples, real (attention) tokens and processed (padded) tokens."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, features):
        batch = self.collator(features)
        self.batches.append((int(batch["input_ids"].shape[0]), int(batch["attention_mask"].sum()),
                             int(batch["input_ids"].numel())))
        return batch


def timer_callback(device):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self):
            self.start, self.step_ends, self.losses = None, [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = (now(device), cpu_now())

        def on_step_end(self, args, state, control, **kwargs):
            self.step_ends.append((now(device), cpu_now()))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return Timer()


def pad_to_max(dataset, tokenizer, max_seq_length: int):
    """The baseline's features: every pair padded to max_seq_length, as XTREME's run_classify.py does."""
    def encode(batch):
        features = tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_seq_length,
                             padding="max_length")
        features["labels"] = batch["label"]
        return features

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, keep_in_memory=True)


def grouped_padding_ratio(lengths, batch_size: int, mega_batch_mult=None, seed: int = 0) -> float:
    """Real / processed tokens of the batches `LengthGroupedSampler` forms from these lengths (no training)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = list(lengths)
    order = get_length_grouped_indices(lengths, batch_size, mega_batch_mult=mega_batch_mult,
                                       generator=torch.Generator().manual_seed(seed))
    return padding_ratio([lengths[i] for i in order], batch_size)


def train_once(args, model, initial, features, tokenizer, collator, overrides: dict) -> dict:
    from transformers.trainer_callback import PrinterCallback

    from utils.training import XtremeTrainer

    model.load_state_dict(initial)
    output_dir = tempfile.mkdtemp(prefix="bench_train_")
    training_args = training_arguments(args, output_dir, per_device_train_batch_size=args.batch_size,
                                       num_train_epochs=1, logging_strategy="steps", logging_steps=1, **overrides)
    recorder = RecordingCollator(collator)
    timer = timer_callback(args.device)
    trainer = XtremeTrainer(model=model, args=training_args, train_dataset=features, processing_class=tokenizer,
                            data_collator=recorder, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    shutil.rmtree(output_dir, ignore_errors=True)
    seconds = timer.step_ends[-1][0] - timer.start[0]
    cpu_seconds = timer.step_ends[-1][1] - timer.start[1]
    samples, real, processed = (sum(b[i] for b in recorder.batches) for i in range(3))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "steps": len(timer.step_ends), "samples": samples,
            "real_tokens": real,
            "processed_tokens": processed, "losses": timer.losses}


def loss_equivalence(args, model, initial, dynamic, padded, collator, batches: int) -> float:
    """Largest |loss(padded to 128) - loss(dynamically padded)| over the first `batches` batches, eval mode."""
    import torch

    model.load_state_dict(initial)
    model.to(args.device).eval()
    worst = 0.0
    keep = ["input_ids", "attention_mask", "token_type_ids", "labels"]
    with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        for start in range(0, min(len(dynamic), batches * args.batch_size), args.batch_size):
            rows = range(start, min(start + args.batch_size, len(dynamic)))
            losses = []
            for dataset in (dynamic, padded):
                features = [{k: v for k, v in dataset[i].items() if k in keep} for i in rows]
                batch = {k: v.to(args.device) for k, v in collator(features).items()}
                losses.append(float(model(**batch).loss))
            worst = max(worst, abs(losses[0] - losses[1]))
    return worst


def parse_args():
    p = parser(__doc__, "training_throughput")
    p.add_argument("--num_samples", type=int, default=640, help="training examples per run (one epoch)")
    data_arguments(p, batch_size=32)
    p.add_argument("--baseline_steps", type=int, default=None,
                   help="time only this many pad-to-128 steps (all have the same shape, so a few give its rate; "
                        "default: the whole epoch)")
    p.add_argument("--warmup_steps", type=int, default=1, help="untimed steps of each path before the rounds")
    p.add_argument("--equivalence_batches", type=int, default=2)
    return parse(p)


def training_paths(args, train, tokenizer, kind) -> dict:
    """Per path: its features and its training-argument overrides."""
    baseline = {"train_sampling_strategy": "random",
                **({"max_steps": args.baseline_steps} if args.baseline_steps else {})}
    return {"pad128": (pad_to_max(train, tokenizer, args.max_seq_length), baseline),
            "project": (kind.features(train, tokenizer, preprocessing_arguments(args), "Tokenising"), {})}


def grouping_ratios(args, kind, tokenizer, run_lengths) -> dict:
    """The sampler sorts within megabatches of min(n // (4 * batch), 50) batches: a small run groups less well than
    a full-size one. Real / processed tokens on this run, on the whole file and on a large training set (50
    batches)."""
    whole = kind.features(load_pairs(args.train_file), tokenizer, preprocessing_arguments(args),
                          "Tokenising")["length"]
    return {"this_run": grouped_padding_ratio(run_lengths, args.batch_size),
            f"whole_file_{len(whole)}": grouped_padding_ratio(whole, args.batch_size),
            "large_training_set_50_batches": grouped_padding_ratio(whole, args.batch_size, 50)}


def measure(args, model, initial, paths, tokenizer, collator) -> dict:
    """Untimed warm-up steps of each path, then --rounds epochs of each in alternating order: per path, its runs."""
    if args.warmup_steps:
        for features, overrides in paths.values():
            train_once(args, model, initial, features, tokenizer, collator,
                       {**overrides, "max_steps": args.warmup_steps})
    runs = {name: [] for name in paths}
    for round_ in range(args.rounds):
        for name in round_order(paths, round_):
            features, overrides = paths[name]
            runs[name].append(train_once(args, model, initial, features, tokenizer, collator, overrides))
            r = runs[name][-1]
            print(f"  round {round_ + 1} {name}: {r['samples'] / r['seconds']:.2f} samples/s ({r['seconds']:.1f} s, "
                  f"{r['samples'] / r['cpu_seconds']:.2f} samples per CPU-second)", flush=True)
    return runs


def summary_row(args, label: str, name: str, r: list, params: int) -> dict:
    """One path's table row and report entry from its runs `r`: medians, and the first run's loss curve."""
    real_per_s = median([x["real_tokens"] / x["seconds"] for x in r])
    losses = r[0]["losses"]
    return {
        "path": label, "key": name, "samples_per_s": median([x["samples"] / x["seconds"] for x in r]),
        "samples_per_cpu_s": median([x["samples"] / x["cpu_seconds"] for x in r]), "real_tokens_per_s": real_per_s,
        "processed_tokens_per_s": median([x["processed_tokens"] / x["seconds"] for x in r]),
        "padding_ratio": r[0]["real_tokens"] / r[0]["processed_tokens"], "steps": r[0]["steps"],
        "seconds": median([x["seconds"] for x in r]), "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None, "mfu": mfu(real_per_s, params, args.peak_tflops),
        "same_loss_curve_every_round": all(x["losses"] == losses for x in r), "loss_curve": losses,
        "runs": [{k: v for k, v in x.items() if k != "losses"} for x in r]}


def speedups(runs, seconds_key: str) -> list[float]:
    """Per round: the project path's samples per `seconds_key` over the baseline's."""
    return [b["samples"] / b[seconds_key] / (a["samples"] / a[seconds_key])
            for a, b in zip(runs["pad128"], runs["project"])]


def print_summary(args, rows, per_round, per_round_cpu, per_sample, equivalence, grouping) -> None:
    print_table(f"(b) training: {args.num_samples} XNLI-format English pairs ({args.train_file.name}), batch "
                f"{args.batch_size}, {run_label(args)}",
                [("path", "path", ""), ("samples/s", "samples_per_s", ".2f"),
                 ("samples/CPU-s", "samples_per_cpu_s", ".2f"), ("real tok/s", "real_tokens_per_s", ",.0f"),
                 ("processed tok/s", "processed_tokens_per_s", ",.0f"), ("real/processed", "padding_ratio", ".2f"),
                 ("loss first", "loss_first", ".4f"), ("loss last", "loss_last", ".4f"), ("MFU", "mfu", ".1%")],
                rows)
    print(f"project path / pad-to-{args.max_seq_length}: {median(per_round):.2f}x samples/s (median of per-round "
          f"ratios {', '.join(f'{x:.2f}' for x in per_round)}); by CPU time {median(per_round_cpu):.2f}x (per round "
          f"{', '.join(f'{x:.2f}' for x in per_round_cpu)})")
    print(f"processed tokens per sample: pad-to-{args.max_seq_length} {per_sample['pad128']:.1f}, project "
          f"{per_sample['project']:.1f}: {per_sample['pad128'] / per_sample['project']:.2f}x fewer (the speedup if "
          "time were proportional to tokens; per-step costs that do not shrink with length, e.g. the optimizer step, "
          "keep the real one below it)")
    if equivalence is not None:
        print(f"same examples padded both ways, eval mode: max |loss difference| {equivalence:.2e}")
    print("length grouping, real/processed tokens: " + ", ".join(f"{k} {v:.3f}" for k, v in grouping.items()))


def main():
    args = parse_args()
    from transformers import AutoTokenizer

    train = load_pairs(args.train_file, args.num_samples, seed=args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    _, kind = xnli()
    paths = training_paths(args, train, tokenizer, kind)
    grouping = grouping_ratios(args, kind, tokenizer, paths["project"][0]["length"])
    model = classifier(args.model_name_or_path)
    params = compute_params(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    collator = kind.collator(tokenizer, training_arguments(args, tempfile.gettempdir()))

    runs = measure(args, model, initial, paths, tokenizer, collator)
    equivalence = loss_equivalence(args, model, initial, paths["project"][0], paths["pad128"][0], collator,
                                   args.equivalence_batches) if args.equivalence_batches else None
    rows = [summary_row(args, f"pad to {args.max_seq_length}, random batches", "pad128", runs["pad128"], params),
            summary_row(args, "project: length-grouped, dynamic padding", "project", runs["project"], params)]
    per_round, per_round_cpu = speedups(runs, "seconds"), speedups(runs, "cpu_seconds")
    per_sample = {name: runs[name][0]["processed_tokens"] / runs[name][0]["samples"] for name in runs}
    print_summary(args, rows, per_round, per_round_cpu, per_sample, equivalence, grouping)
    write_report(args, "training_throughput", {
        "train_file": str(args.train_file), "num_samples": args.num_samples, "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length, "compute_params": params, "rows": rows,
        "speedup_samples_per_s": median(per_round), "speedup_per_round": per_round,
        "speedup_cpu_time": median(per_round_cpu), "speedup_cpu_time_per_round": per_round_cpu,
        "processed_tokens_per_sample": per_sample,
        "processed_token_ratio": per_sample["pad128"] / per_sample["project"],
        "max_abs_loss_difference_padded_vs_dynamic": equivalence, "grouping_padding_ratio": grouping})


if __name__ == "__main__":
    main()
