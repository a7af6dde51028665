"""Throughput of the BUCC/Tatoeba retrieval code: sentence embedding, and exact k-NN search (blocked torch vs
flat faiss) over synthetic vectors.

    python benchmarks/retrieval_search.py [--model_name_or_path M] [--sizes 10000,100000,400000]
        [--dim 768] [--block_size 512] [--max_queries 2048] [--output outputs/benchmarks/retrieval_search.json]

Embedding: the first --num_sentences distinct lines of tests/fixtures/tiny_corpus.txt, encoded with the tiny
offline XLM-R model (built on the fly) unless --model_name_or_path names a real one.

Search, per size n: n random queries against an index of n random vectors, dim --dim (BUCC mines about
400k x 400k). Each backend runs in a fresh process; its peak RSS growth during one search is sampled (this
includes knn's normalised copy of the index, n x dim floats, besides the torch block scratch of block_size x n
floats). When n > --max_queries only the first --max_queries queries are run, and the full n x n time is
extrapolated linearly (every query scans the whole index, so the cost per query does not depend on how many
queries run); the table marks those rows with *.

Times are the fastest of --repeats runs (after one untimed run), since the machine may be shared.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "fixtures" / "tiny_corpus.txt"


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss:
    """Samples RSS every few milliseconds in a thread; `growth` is the peak minus the RSS on entry, in MiB."""

    def __enter__(self):
        self.start = self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())
        self.growth = self.peak - self.start


def best_time(run, repeats: int) -> float:
    """Fastest wall time of `repeats` calls of `run()` (the machine may be shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_embedding(args) -> dict:
    from transformers import AutoModel, AutoTokenizer

    from utils.retrieval import default_layer, embed_sentences
    from utils.tiny_model import build_tiny_model

    model_path = args.model_name_or_path or build_tiny_model(tempfile.mkdtemp(prefix="tiny_model_"))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path)
    lines = list(dict.fromkeys(CORPUS.read_text(encoding="utf-8").splitlines()))[: args.num_sentences]
    layer = default_layer(model.config)
    embed_sentences(model, tokenizer, lines[: args.batch_size], layer)  # warm-up
    seconds = best_time(
        lambda: embed_sentences(model, tokenizer, lines, layer, batch_size=args.batch_size, max_length=args.max_length),
        args.repeats,
    )
    return {
        "model": str(args.model_name_or_path or "tiny XLM-R (2 layers, hidden 32)"),
        "sentences": len(lines),
        "mean_tokens": float(np.mean([len(ids) for ids in tokenizer(lines)["input_ids"]])),
        "layer": layer,
        "batch_size": args.batch_size,
        "seconds": seconds,
        "sentences_per_s": len(lines) / seconds,
    }


def bench_search(size: int, dim: int, k: int, block_size: int, max_queries: int, backend: str, repeats: int) -> dict:
    """Runs in a child process: time knn() for the first max_queries of `size` queries over `size` vectors."""
    from utils.retrieval import knn

    rng = np.random.default_rng(size)
    index = rng.standard_normal((size, dim), dtype=np.float32)
    queries = rng.standard_normal((min(size, max_queries), dim), dtype=np.float32)
    with PeakRss() as rss:
        _, indices = knn(queries, index, k, block_size=block_size, backend=backend)
    seconds = best_time(lambda: knn(queries, index, k, block_size=block_size, backend=backend), repeats)
    return {
        "backend": backend,
        "size": size,
        "timed_queries": len(queries),
        "extrapolated": len(queries) < size,
        "seconds_timed": seconds,
        "queries_per_s": len(queries) / seconds,
        "seconds_full": seconds * size / len(queries),
        "peak_rss_growth_mib": rss.growth,
        "first_neighbours": indices[:, 0].tolist(),
    }


def run_search(args) -> list[dict]:
    rows = []
    spawn = get_context("spawn")  # a fresh process per run: clean peak RSS, no forked OpenMP state
    for size in args.sizes:
        by_backend = {}
        for backend in args.backends:
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                job = pool.submit(
                    bench_search, size, args.dim, args.k, args.block_size, args.max_queries, backend, args.repeats
                )
                by_backend[backend] = job.result()
        if {"torch", "faiss"} <= by_backend.keys():
            a, b = (np.array(by_backend[x].pop("first_neighbours")) for x in ("torch", "faiss"))
            by_backend["torch"]["same_top1_as_faiss"] = float(np.mean(a == b))
            by_backend["torch"]["torch_over_faiss_time"] = (
                by_backend["torch"]["seconds_timed"] / by_backend["faiss"]["seconds_timed"]
            )
        for row in by_backend.values():
            row.pop("first_neighbours", None)
            row["block_scratch_mib"] = args.block_size * size * 4 / 2**20 if row["backend"] == "torch" else None
            row["index_mib"] = size * args.dim * 4 / 2**20
            rows.append(row)
            print(f"  done: {row['backend']} n={size:,} ({row['seconds_timed']:.1f}s timed)", flush=True)
    return rows


def print_table(report: dict) -> None:
    emb = report["embedding"]
    if emb:
        print(f"\nembedding: {emb['model']}, {emb['sentences']} sentences (mean {emb['mean_tokens']:.1f} tokens), "
              f"batch {emb['batch_size']}: {emb['sentences_per_s']:.1f} sentences/s")  # fmt: skip
    print(f"\nsearch: dim {report['dim']}, k {report['k']}, torch block_size {report['block_size']}, "
          f"{report['threads']} threads")  # fmt: skip
    print(f"{'n':>9} {'backend':>7} {'queries/s':>10} {'full n x n (s)':>15} {'torch/faiss':>11} "
          f"{'top1 agree':>10} {'peak RSS +MiB':>13} {'block MiB':>9}")  # fmt: skip
    for row in report["search"]:
        full = f"{row['seconds_full']:.1f}" + ("*" if row["extrapolated"] else "")
        ratio = f"{row['torch_over_faiss_time']:.2f}" if "torch_over_faiss_time" in row else ""
        agree = f"{row['same_top1_as_faiss']:.4f}" if "same_top1_as_faiss" in row else ""
        block = f"{row['block_scratch_mib']:.0f}" if row["block_scratch_mib"] is not None else ""
        print(f"{row['size']:>9,} {row['backend']:>7} {row['queries_per_s']:>10.0f} {full:>15} {ratio:>11} "
              f"{agree:>10} {row['peak_rss_growth_mib']:>13.0f} {block:>9}")  # fmt: skip
    if any(row["extrapolated"] for row in report["search"]):
        print(f"* extrapolated from the first {report['max_queries']} queries (time per query x n)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", default=None, help="default: a tiny XLM-R built offline")
    parser.add_argument("--num_sentences", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--sizes", default="10000,100000,400000", help="comma-separated vector counts; \"\" = none")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=4, help="neighbours (BUCC mining uses 4, Tatoeba 1)")
    parser.add_argument("--block_size", type=int, default=512, help="torch backend: queries scored at a time")
    parser.add_argument("--max_queries", type=int, default=2048, help="queries timed per size (then extrapolated)")
    parser.add_argument("--backends", default="torch,faiss")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement; the fastest counts")
    parser.add_argument("--skip_embedding", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "outputs" / "benchmarks" / "retrieval_search.json"))
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]  # "" skips the search part
    args.backends = args.backends.split(",")

    import torch

    report = {
        "dim": args.dim,
        "k": args.k,
        "block_size": args.block_size,
        "max_queries": args.max_queries,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "torch": torch.__version__,
        "embedding": None if args.skip_embedding else bench_embedding(args),
    }
    if report["embedding"]:
        print(f"embedding: {report['embedding']['sentences_per_s']:.1f} sentences/s", flush=True)
    report["search"] = run_search(args)
    print_table(report)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {output}")


if __name__ == "__main__":
    main()
