"""(a) Preprocessing throughput: tokenising XNLI-format pairs into classification features.

    python benchmarks/preprocessing_throughput.py [--model_name_or_path M] [--num_examples 50000]

Rows, on the same examples and tokenizer (the model's fast tokenizer), max_seq_length 128:
  per-example map      `datasets.map(batched=False)`: one tokenizer call per pair (per-example feature code)
  batched map (cold)   the project's path (`utils.kinds` -> `utils.cache.cached_map`), nothing cached yet:
                       batched fast-tokenizer calls, result written to the cross-run cache
  cached (2nd run)     the same call again with freshly loaded data and tokenizer, as a second run would:
                       the content hash finds the cached Arrow file, nothing is tokenised
  batched, num_proc=N  the cold path with --num_proc worker processes (if > 1)

The examples are the XNLI-format sample (`../shared/data/xnli/dev-en.tsv`, else the test fixture) repeated to
--num_examples, each copy with a numbered prefix so that no two are identical. Every round uses a fresh, empty
cache dir (HF_DATASETS_CACHE in a temp dir): the user's cache is left alone.
"""

import os
import shutil
import tempfile
import time
from contextlib import contextmanager

from common import (data_arguments, load_pairs, median, parse, parser, preprocessing_arguments, print_table,
                    write_report, xnli)


def make_examples(path, num: int):
    from datasets import Dataset

    base = load_pairs(path).to_dict()
    n = len(base["label"])
    return Dataset.from_dict({
        "sentence1": [f"{i // n} {base['sentence1'][i % n]}" for i in range(num)],
        "sentence2": [base["sentence2"][i % n] for i in range(num)],
        "label": [base["label"][i % n] for i in range(num)],
    })


def per_example(dataset, tokenizer, max_seq_length: int):
    def encode(example):
        features = tokenizer(example["sentence1"], example["sentence2"], truncation=True, max_length=max_seq_length)
        features["length"] = len(features["input_ids"])
        features["labels"] = example["label"]
        return features

    return dataset.map(encode, remove_columns=dataset.column_names, keep_in_memory=True)


def parse_args():
    p = parser(__doc__, "preprocessing_throughput")
    p.add_argument("--num_examples", type=int, default=50_000)
    data_arguments(p)
    p.add_argument("--num_proc", type=int, default=min(4, os.cpu_count() or 1), help="processes for the last row")
    return parse(p)


@contextmanager
def fresh_datasets_cache():
    """HF_DATASETS_CACHE set to a new empty temp dir for the block; the dir removed and the setting restored
    after."""
    original = os.environ.get("HF_DATASETS_CACHE")
    cache_root = tempfile.mkdtemp(prefix="bench_hf_datasets_")
    os.environ["HF_DATASETS_CACHE"] = cache_root
    try:
        yield
    finally:
        if original is None:
            os.environ.pop("HF_DATASETS_CACHE", None)
        else:
            os.environ["HF_DATASETS_CACHE"] = original
        shutil.rmtree(cache_root, ignore_errors=True)


def timed(seconds: list, function, *args):
    """`function(*args)`, its wall time appended to `seconds`."""
    start = time.perf_counter()
    result = function(*args)
    seconds.append(time.perf_counter() - start)
    return result


def one_round(args, kind, times: dict) -> float:
    """Times each method once, in a fresh cache, into `times`; returns the size of the cache entry in MiB."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    examples = make_examples(args.train_file, args.num_examples)
    settings = preprocessing_arguments(args)
    timed(times["per_example"], per_example, examples, tokenizer, args.max_seq_length)
    cold = timed(times["batched_cold"], kind.features, examples, tokenizer, settings, "cold")
    # a second run: data and tokenizer loaded again, then the same call
    examples_again = make_examples(args.train_file, args.num_examples)
    tokenizer_again = AutoTokenizer.from_pretrained(args.model_name_or_path)
    warm = timed(times["cached"], kind.features, examples_again, tokenizer_again, settings, "warm")
    assert warm.cache_files == cold.cache_files, "the second run must load the first run's cache file"
    cache_mib = sum(os.path.getsize(f["filename"]) for f in cold.cache_files) / 2**20
    if args.num_proc > 1:
        timed(times["num_proc"], kind.features, examples, tokenizer, preprocessing_arguments(
            args, preprocessing_num_workers=args.num_proc, overwrite_cache=True), "num_proc")
    return cache_mib


def summary_rows(args, times: dict) -> list[dict]:
    """Per method timed: median seconds, examples/s and the speedup over the per-example map."""
    labels = {"per_example": "per-example map (batched=False)", "batched_cold": "batched map, cold (project path)",
              "cached": "cached (2nd run, project path)", "num_proc": f"batched map, num_proc={args.num_proc}"}
    baseline = median(times["per_example"])
    rows = []
    for key, values in times.items():
        if not values:
            continue
        seconds = median(values)
        rows.append({"method": labels[key], "key": key, "seconds": seconds,
                     "examples_per_s": args.num_examples / seconds, "speedup": baseline / seconds,
                     "seconds_per_round": values})
    return rows


def main():
    args = parse_args()
    _, kind = xnli()
    times = {"per_example": [], "batched_cold": [], "cached": [], "num_proc": []}
    cache_mib = None
    for _ in range(args.rounds):
        with fresh_datasets_cache():
            cache_mib = one_round(args, kind, times)
    rows = summary_rows(args, times)
    print_table(f"(a) preprocessing: {args.num_examples:,} XNLI-format pairs, max_seq_length {args.max_seq_length}, "
                f"{args.model_label}; median of {args.rounds} round(s)",
                [("method", "method", ""), ("seconds", "seconds", ".2f"), ("examples/s", "examples_per_s", ",.0f"),
                 ("x per-example", "speedup", ".1f")], rows)
    print(f"cache entry: {cache_mib:.1f} MiB")
    cold = median(times["batched_cold"])
    write_report(args, "preprocessing_throughput", {
        "num_examples": args.num_examples, "train_file": str(args.train_file), "max_seq_length": args.max_seq_length,
        "cache_entry_mib": cache_mib, "rows": rows,
        "ratios": {"batched_over_per_example": median(times["per_example"]) / cold,
                   "cached_over_batched_cold": cold / median(times["cached"])}})


if __name__ == "__main__":
    main()
