"""(c) Evaluation: length-sorted against file-order prediction, and all languages of a task in one process against
one process per language.

    python benchmarks/evaluation_throughput.py [--model_name_or_path M] [--max_eval_samples N] [--rounds 3]

Data: the XNLI-format dev files of every language found (`../shared/data/xnli/dev-{lang}.tsv`, else the test
fixtures), a classification head on the model (random: predictions are not the point), batch 64.

1. In one process, with phase 3's `XtremeTrainer` and collator: `predict_in_order` (the project's path: batches
   sorted longest first, dynamic padding, predictions put back in file order) against `Trainer.predict` in file
   order (dynamic padding too); the predictions of both are compared.
2. `run_xtreme_eval.py --languages de,en,...` once (one model load, the project's way) against the same script
   run once per language (the per-language loop of scripts that take one eval file per run). Each process gets a
   fresh empty tokenisation cache, so both tokenise every language once. The difference, divided by the number of
   languages minus one, is the cost of starting one more process (imports, model and tokenizer loads).
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (ROOT, classifier, cpu_now, data_arguments, default_data_dir, median, now, padding_ratio, parse,
                    parser, preprocessing_arguments, print_table, round_order, run_label, training_arguments,
                    write_report, xnli)


def eval_trainer(args, model_dir, task, kind):
    """Phase 3's `XtremeTrainer` (its collator and logits preprocessing) on the saved model, and its tokenizer."""
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from utils.modeling import load_model
    from utils.training import ModelArguments, XtremeTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(ModelArguments(model_name_or_path=model_dir), task.kind, fresh_head=False)
    training_args = training_arguments(args, tempfile.mkdtemp(prefix="bench_eval_"),
                                       per_device_eval_batch_size=args.batch_size)
    trainer = XtremeTrainer(model=model, args=training_args, processing_class=tokenizer,
                            data_collator=kind.collator(tokenizer, training_args),
                            preprocess_logits_for_metrics=kind.preprocess_logits)
    trainer.remove_callback(PrinterCallback)
    return trainer, tokenizer


def dev_features(args, task, kind, tokenizer, languages, data_dir, max_samples) -> dict:
    """Per language: the dev file's features (its first `max_samples` examples, if given)."""
    from utils.data import load_split

    features = {}
    for lang in languages:
        examples, _ = load_split(task, "dev", lang, list(task.labels), data_dir=str(data_dir), max_samples=max_samples)
        features[lang] = kind.features(examples, tokenizer, preprocessing_arguments(args), lang)
    return features


def padding_ratios(args, features, multiple) -> dict:
    """Real / processed tokens, the mean over languages, of batches in file order and sorted longest first."""
    import numpy as np

    def mean_ratio(order):
        return float(np.mean([padding_ratio(order(f["length"]), args.batch_size, multiple)
                              for f in features.values()]))

    return {"file_order": mean_ratio(list), "sorted": mean_ratio(lambda lengths: sorted(lengths, reverse=True))}


def time_predictions(args, trainer, features):
    """--rounds of predicting every language sorted (`predict_in_order`) and in file order (`Trainer.predict`),
    alternating which goes first: wall and CPU seconds per round and way, and the share of equal predictions."""
    import numpy as np

    from utils.training import predict_in_order

    predict = {"sorted": lambda f: predict_in_order(trainer, f), "file_order": lambda f: trainer.predict(f).predictions}
    times, cpu_times = {"sorted": [], "file_order": []}, {"sorted": [], "file_order": []}
    agree = None
    for round_ in range(args.rounds):
        predictions = {}
        for which in round_order(("sorted", "file_order"), round_):
            start, cpu_start = now(args.device), cpu_now()
            predictions[which] = {lang: predict[which](f) for lang, f in features.items()}
            times[which].append(now(args.device) - start)
            cpu_times[which].append(cpu_now() - cpu_start)
        agree = float(np.mean(np.concatenate([predictions["sorted"][l] == predictions["file_order"][l]
                                              for l in features])))
        print(f"  round {round_ + 1}: sorted {times['sorted'][-1]:.2f} s, file order {times['file_order'][-1]:.2f} s",
              flush=True)
    return times, cpu_times, agree


def in_process(args, model_dir, languages, data_dir):
    """Part 1: padding ratios, then sorted against file-order prediction timed over --rounds."""
    import numpy as np

    from utils.kinds import pad_multiple

    task, kind = xnli()
    trainer, tokenizer = eval_trainer(args, model_dir, task, kind)
    features = dev_features(args, task, kind, tokenizer, languages, data_dir, args.max_eval_samples)
    multiple = pad_multiple(trainer.args)
    lengths = [length for lang in languages for length in features[lang]["length"]]
    ratios = padding_ratios(args, features, multiple)
    if args.max_eval_samples:  # the same ratios on the whole files (no model needed)
        ratios["whole_files"] = padding_ratios(
            args, dev_features(args, task, kind, tokenizer, languages, data_dir, None), multiple)
    first = features[languages[0]]
    trainer.predict(first.select(range(min(args.batch_size, len(first)))))  # warm-up
    times, cpu_times, agree = time_predictions(args, trainer, features)
    return {"examples": len(lengths), "mean_length": float(np.mean(lengths)), "padding_ratio": ratios,
            "seconds": times, "cpu_seconds": cpu_times, "same_predictions": agree}


def run_eval(args, model_dir, languages, data_dir, output_dir) -> tuple[float, float]:
    command = [sys.executable, str(ROOT / "run_xtreme_eval.py"), "--model_name_or_path", model_dir, "--task", "xnli",
               "--languages", ",".join(languages), "--data_dir", str(data_dir), "--split", "dev",
               "--output_dir", output_dir, "--per_device_eval_batch_size", str(args.batch_size),
               "--max_seq_length", str(args.max_seq_length), "--disable_tqdm", "true", "--report_to", "none"]
    if args.max_eval_samples:
        command += ["--max_eval_samples", str(args.max_eval_samples)]
    command += ["--use_cpu"] if args.device == "cpu" else ["--bf16"] if args.precision == "bf16" else \
        ["--fp16"] if args.precision == "fp16" else []
    env = {**os.environ, "HF_DATASETS_CACHE": tempfile.mkdtemp(prefix="bench_eval_cache_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"run_xtreme_eval.py failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def processes(args, model_dir, languages, data_dir):
    import json

    from utils.results import results_path

    times = {"one_process": [], "per_language": []}
    cpu_times = {"one_process": [], "per_language": []}
    scores = {}
    for round_ in range(args.process_rounds):
        for which in round_order(("one_process", "per_language"), round_):
            out = tempfile.mkdtemp(prefix=f"bench_eval_{which}_")
            if which == "one_process":
                seconds, cpu_seconds = run_eval(args, model_dir, languages, data_dir, out)
                times[which].append(seconds)
                cpu_times[which].append(cpu_seconds)
                results = json.loads(results_path(out, "xnli", "dev").read_text())
                scores[which] = {l: m["accuracy"] for l, m in results["languages"].items()}
            else:
                total, cpu_total, scores[which] = 0.0, 0.0, {}
                for lang in languages:
                    lang_out = os.path.join(out, lang)
                    seconds, cpu_seconds = run_eval(args, model_dir, [lang], data_dir, lang_out)
                    total, cpu_total = total + seconds, cpu_total + cpu_seconds
                    results = json.loads(results_path(lang_out, "xnli", "dev").read_text())
                    scores[which][lang] = results["languages"][lang]["accuracy"]
                times[which].append(total)
                cpu_times[which].append(cpu_total)
        print(f"  round {round_ + 1}: one process {times['one_process'][-1]:.1f} s, one per language "
              f"{times['per_language'][-1]:.1f} s", flush=True)
    return {"seconds": times, "cpu_seconds": cpu_times, "same_scores": scores["one_process"] == scores["per_language"],
            "accuracy": scores["one_process"]}


def main():
    p = parser(__doc__, "evaluation_throughput")
    p.add_argument("--data_dir", default=None, help="dir with xnli/dev-{lang}.tsv (default: shared sample/fixtures)")
    p.add_argument("--languages", default=None, help="comma-separated (default: every dev file found)")
    p.add_argument("--max_eval_samples", type=int, default=None, help="first N examples per language")
    data_arguments(p, batch_size=64, train_file=False)
    p.add_argument("--process_rounds", type=int, default=None, help="rounds of part 2 (default: --rounds)")
    p.add_argument("--skip_processes", action="store_true", help="only part 1")
    args = parse(p)
    args.process_rounds = args.process_rounds or args.rounds
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    languages = args.languages.split(",") if args.languages else sorted(
        f.stem.split("-", 1)[1] for f in (data_dir / "xnli").glob("dev-*.tsv"))

    work = tempfile.mkdtemp(prefix="bench_eval_")
    tempfile.tempdir = work  # the model copy, caches and outputs below all go here, and are removed at the end
    try:
        evaluate_all(args, data_dir, languages)
    finally:
        tempfile.tempdir = None
        shutil.rmtree(work, ignore_errors=True)


def evaluate_all(args, data_dir, languages):
    model_dir = tempfile.mkdtemp(prefix="bench_eval_model_")
    from transformers import AutoTokenizer

    classifier(args.model_name_or_path).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(args.model_name_or_path).save_pretrained(model_dir)

    part1 = in_process(args, model_dir, languages, data_dir)
    sorted_s, file_s = median(part1["seconds"]["sorted"]), median(part1["seconds"]["file_order"])
    rows = [{"path": "file order (dynamic padding)", "seconds": file_s, "examples_per_s": part1["examples"] / file_s,
             "padding_ratio": part1["padding_ratio"]["file_order"], "speedup": 1.0},
            {"path": "length-sorted (project path)", "seconds": sorted_s,
             "examples_per_s": part1["examples"] / sorted_s, "padding_ratio": part1["padding_ratio"]["sorted"],
             "speedup": file_s / sorted_s}]
    print_table(f"(c1) evaluation in one process: {', '.join(languages)} x "
                f"{part1['examples'] // len(languages)} XNLI-format dev pairs (mean {part1['mean_length']:.1f} "
                f"tokens), batch {args.batch_size}, {run_label(args)}",
                [("order", "path", ""), ("seconds", "seconds", ".2f"), ("examples/s", "examples_per_s", ",.1f"),
                 ("real/processed", "padding_ratio", ".2f"), ("speedup", "speedup", ".2f")], rows)
    cpu_ratio = median([f / s for f, s in zip(part1["cpu_seconds"]["file_order"], part1["cpu_seconds"]["sorted"])])
    print(f"by CPU time: sorted {cpu_ratio:.2f}x file order; same predictions: {part1['same_predictions']:.2%}")
    if "whole_files" in part1["padding_ratio"]:
        whole = part1["padding_ratio"]["whole_files"]
        print(f"real/processed tokens on the whole files: file order {whole['file_order']:.2f}, sorted "
              f"{whole['sorted']:.2f} ({whole['sorted'] / whole['file_order']:.2f}x fewer processed tokens)")
    report = {"data_dir": str(data_dir), "languages": languages, "max_eval_samples": args.max_eval_samples,
              "batch_size": args.batch_size, "sorted_vs_file_order": {**part1, "rows": rows,
                                                                       "speedup": file_s / sorted_s,
                                                                       "speedup_cpu_time": cpu_ratio}}
    if not args.skip_processes:
        part2 = processes(args, model_dir, languages, data_dir)
        one, loop = median(part2["seconds"]["one_process"]), median(part2["seconds"]["per_language"])
        startup = (loop - one) / (len(languages) - 1) if len(languages) > 1 else None
        rows2 = [{"path": f"one process per language ({len(languages)} runs)", "seconds": loop, "speedup": 1.0},
                 {"path": "all languages in one process (project)", "seconds": one, "speedup": loop / one}]
        print_table(f"(c2) run_xtreme_eval.py, {len(languages)} languages; median of {args.process_rounds} round(s)",
                    [("runs", "path", ""), ("seconds", "seconds", ".1f"), ("speedup", "speedup", ".2f")], rows2)
        cpu_ratio2 = median([loop_cpu / one_cpu for one_cpu, loop_cpu in zip(part2["cpu_seconds"]["one_process"],
                                                                            part2["cpu_seconds"]["per_language"])])
        print(f"by CPU time: {cpu_ratio2:.2f}x; cost of one more process: {startup:.1f} s; same per-language scores "
              f"both ways: {part2['same_scores']}")
        report["one_process_vs_per_language"] = {**part2, "rows": rows2, "speedup": loop / one,
                                                 "speedup_cpu_time": cpu_ratio2,
                                                 "seconds_per_extra_process": startup}
    write_report(args, "evaluation_throughput", report)


if __name__ == "__main__":
    main()
