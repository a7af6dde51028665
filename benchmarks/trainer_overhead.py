"""(d) Framework overhead: a training step of the project's Trainer path against a bare PyTorch step (the compute
floor) on identical batches.

    python benchmarks/trainer_overhead.py [--model_name_or_path M] [--steps 16] [--rounds 3]

The Trainer path is `run_target.py`'s: `XtremeTrainer` with the project's defaults (length-grouped batches from the
cached features, dynamic padding, fused AdamW, linear warmup/decay, grad-norm clipping at 1.0, bf16 autocast on a
GPU that has it). Right after each of its steps, outside the Trainer's timed span, a bare PyTorch loop on a copy
of the same initial model takes one step on exactly the batch the Trainer just trained on (`common.BareLoop`:
forward, backward, clip, the Trainer's own optimizer class and hyperparameters, the same schedule, zero_grad).
Interleaving step by step makes both see the same machine load, which on a shared CPU changes within seconds.

A Trainer step is timed from the end of the previous step (or of the interleaved bare step) to the end of this
one, so data loading, collation, callbacks and bookkeeping count against it. The first step of each (optimizer
state allocation) is left out. Overhead = Trainer time / bare time - 1 over the same steps; the median of rounds.
A third estimate needs no second loop: hooks inside the Trainer's own steps time the model's forward, the backward,
the clipping and the optimizer step; "in-run" overhead = the Trainer's step time / that time - 1.
"""

import copy
import shutil
import tempfile

from common import (BareLoop, classifier, compute_params, data_arguments, interleaving_timer, load_pairs, median, mfu,
                    now, parse, parser, preprocessing_arguments, print_table, run_label, training_arguments,
                    write_report, xnli)


class CopyingCollator:
    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, features):
        batch = self.collator(features)
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch


class ComputeClock:
    """Seconds of one step spent in forward, backward, clipping and optimizer.step (the bare loop's work)."""

    def __init__(self, device):
        self.device, self.current, self.started, self.per_step = device, 0.0, None, []

    def start(self, *a, **k):
        self.started = now(self.device)

    def stop(self, *a, **k):
        self.current += now(self.device) - self.started

    def wrap(self, function):
        def timed(*a, **k):
            self.start()
            try:
                return function(*a, **k)
            finally:
                self.stop()
        return timed

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Marks(TrainerCallback):
            def on_pre_optimizer_step(self, *a, **k):
                clock.start()

            def on_optimizer_step(self, *a, **k):
                clock.stop()

            def on_step_end(self, *a, **k):
                clock.per_step.append(clock.current)
                clock.current = 0.0

        return Marks()


def one_round(args, model, bare_model, initial, features, tokenizer, kind) -> dict:
    from transformers.trainer_callback import PrinterCallback

    from utils.training import XtremeTrainer

    model.load_state_dict(initial)
    bare_model.load_state_dict(initial)
    output_dir = tempfile.mkdtemp(prefix="bench_overhead_")
    training_args = training_arguments(args, output_dir, per_device_train_batch_size=args.batch_size,
                                       max_steps=args.steps)
    collator = CopyingCollator(kind.collator(tokenizer, training_args))
    state = {}

    def bare_step(step: int) -> None:
        if "bare" not in state:
            state["bare"] = BareLoop(args, bare_model, training_args, args.steps,
                                     state["trainer"].get_decay_parameter_names(model))
        state["bare"].step(collator.batches[step - 1])

    clock = ComputeClock(args.device)
    timer = interleaving_timer(args.device, every=1, work=bare_step)
    trainer = XtremeTrainer(model=model, args=training_args, train_dataset=features, processing_class=tokenizer,
                            data_collator=collator, callbacks=[clock.callback(), timer])
    state["trainer"] = trainer
    trainer.remove_callback(PrinterCallback)
    hooks = [model.register_forward_pre_hook(clock.start), model.register_forward_hook(clock.stop)]
    trainer.accelerator.backward = clock.wrap(trainer.accelerator.backward)
    trainer._clip_grad_norm = clock.wrap(trainer._clip_grad_norm)
    trainer.train()
    for hook in hooks:
        hook.remove()
    shutil.rmtree(output_dir, ignore_errors=True)
    bare = state["bare"]
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    timed = slice(1, None)
    result = {
        "trainer_seconds": sum(timer.seconds[timed]), "bare_seconds": sum(bare.seconds[timed]),
        "trainer_cpu_seconds": sum(timer.cpu_seconds[timed]), "bare_cpu_seconds": sum(bare.cpu_seconds[timed]),
        "trainer_compute_seconds": sum(clock.per_step[timed]),
        "tokens": sum(int(b["attention_mask"].sum()) for b in collator.batches[:args.steps][timed]),
        "trainer_step_seconds": timer.seconds, "bare_step_seconds": bare.seconds, "bare_losses": bare.losses,
        "same_optimizer": type(optimizer) is type(bare.optimizer) and optimizer.defaults == bare.optimizer.defaults,
        "optimizer": {"class": type(optimizer).__name__,
                      "fused": optimizer.defaults.get("fused"), "param_groups": [
                          {"params": len(g["params"]), "weight_decay": g["weight_decay"]}
                          for g in optimizer.param_groups]}}
    result["overhead"] = result["trainer_seconds"] / result["bare_seconds"] - 1
    result["overhead_cpu_time"] = result["trainer_cpu_seconds"] / result["bare_cpu_seconds"] - 1
    result["overhead_in_run"] = result["trainer_seconds"] / result["trainer_compute_seconds"] - 1
    return result


def main():
    p = parser(__doc__, "trainer_overhead")
    p.add_argument("--steps", type=int, default=16, help="training steps per round (the first is untimed)")
    data_arguments(p, batch_size=32)
    args = parse(p)
    from transformers import AutoTokenizer

    train = load_pairs(args.train_file, seed=args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    _, kind = xnli()
    features = kind.features(train, tokenizer, preprocessing_arguments(args), "Tokenising")
    model = classifier(args.model_name_or_path)
    params = compute_params(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bare_model = copy.deepcopy(model)  # the Trainer may patch its model's forward (autocast): keep one untouched

    rounds = []
    for round_ in range(args.rounds):
        r = one_round(args, model, bare_model, initial, features, tokenizer, kind)
        rounds.append(r)
        print(f"  round {round_ + 1}: Trainer {r['trainer_seconds']:.2f} s, bare {r['bare_seconds']:.2f} s over "
              f"{args.steps - 1} steps: overhead {r['overhead']:+.1%}; by CPU time {r['overhead_cpu_time']:+.1%}; "
              f"in-run {r['overhead_in_run']:+.1%}", flush=True)

    timed = args.steps - 1
    rows = []
    for key, label in (("trainer", "XtremeTrainer (project path)"), ("bare", "bare PyTorch loop")):
        seconds = median([r[f"{key}_seconds"] for r in rounds])
        tokens_per_s = median([r["tokens"] / r[f"{key}_seconds"] for r in rounds])
        rows.append({"loop": label, "key": key, "ms_per_step": 1000 * seconds / timed,
                     "samples_per_s": timed * args.batch_size / seconds, "real_tokens_per_s": tokens_per_s,
                     "mfu": mfu(tokens_per_s, params, args.peak_tflops)})
    overhead = median([r["overhead"] for r in rounds])
    by_cpu = median([r["overhead_cpu_time"] for r in rounds])
    in_run = median([r["overhead_in_run"] for r in rounds])
    print_table(f"(d) framework overhead: {timed} timed steps of batch {args.batch_size}, identical batches, "
                f"interleaved step by step; {run_label(args)}",
                [("loop", "loop", ""), ("ms/step", "ms_per_step", ".1f"), ("samples/s", "samples_per_s", ".2f"),
                 ("real tok/s", "real_tokens_per_s", ",.0f"), ("MFU", "mfu", ".1%")], rows)
    per_round = ", ".join(f"{r['overhead']:+.1%}" for r in rounds)
    print(f"Trainer overhead over the bare loop: {overhead:+.1%} (per round: {per_round}); by CPU time {by_cpu:+.1%}; "
          f"in-run (Trainer step / its own forward+backward+clip+optimizer step - 1): {in_run:+.1%}; same optimizer "
          f"class and settings: {all(r['same_optimizer'] for r in rounds)}")
    write_report(args, "trainer_overhead", {
        "train_file": str(args.train_file), "steps": args.steps, "timed_steps": timed, "batch_size": args.batch_size,
        "compute_params": params, "rows": rows, "overhead": overhead, "overhead_cpu_time": by_cpu,
        "overhead_in_run": in_run, "per_round": rounds})


if __name__ == "__main__":
    main()
