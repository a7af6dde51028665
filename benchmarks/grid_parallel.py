"""(e) The grid with N workers against one: the tiny demo grid (plans/tiny_demo.yaml, a tiny model built offline)
run step by step and with `--workers N`, the two reports compared, the wall-time ratio printed; then how many steps
of the paper's plan can run at once, level by level.

    python benchmarks/grid_parallel.py [--workers 2] [--threads T] [--plan plans/paper_xlmr_large.yaml]

Each run gets its own output dir (and an empty tokenisation cache), so both train and evaluate every step. On a
CPU, steps of the tiny model spend much of their time starting Python and loading libraries, which runs well in
parallel; `--threads` sets the torch threads of every step (default: torch's, the same in both runs, so the
numbers of both runs are computed identically and the reports must match exactly).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_grid(model: Path, out: Path, workers: int, env: dict) -> float:
    command = [sys.executable, "-m", "utils.grid", "plans/tiny_demo.yaml", "--output-dir", str(out / "grid"),
               "--set", f"backbones.0.path={model}", "--workers", str(workers)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"error: the grid with --workers {workers} failed (exit {result.returncode}):\n{result.stdout[-3000:]}"
                 f"{result.stderr[-2000:]}")
    return wall


def report_tables(out: Path, env: dict) -> str:
    """report.md of a run, its output dir written as RUN (the two runs differ only there)."""
    subprocess.run([sys.executable, "-m", "utils.report", str(out / "grid"), "--out", str(out / "report")], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    return (out / "report" / "report.md").read_text(encoding="utf-8").replace(str(out), "RUN")


def plan_arithmetic(plan_path: str, gpus: int) -> list[str]:
    from utils.grid import build_steps, load_plan
    from utils.grid.overview import concurrency_lines, levels

    steps = build_steps(load_plan(plan_path))
    lines = [f"{plan_path}: {len(steps)} steps"] + [line.lstrip("# ") for line in concurrency_lines(steps)]
    lines += [f"with {gpus} GPUs (one step each): level {level} fills them {len(members) / gpus:.1f} times over"
              for level, members in levels(steps).items()]
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads of every step")
    p.add_argument("--plan", default="plans/paper_xlmr_large.yaml", help="plan whose concurrency is counted")
    p.add_argument("--gpus", type=int, default=8, help="GPUs of the box the arithmetic is for")
    p.add_argument("--output", default=str(ROOT / "outputs" / "benchmarks" / "grid_parallel.json"))
    args = p.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    tmp = Path(tempfile.mkdtemp(prefix="bench_grid_"))
    try:
        from utils.tiny_model import build_tiny_model

        model = build_tiny_model(tmp / "tiny_model")
        walls, tables = {}, {}
        for workers in (1, args.workers):
            env["HF_DATASETS_CACHE"] = str(tmp / f"cache{workers}")
            walls[workers] = run_grid(model, tmp / f"w{workers}", workers, env)
            tables[workers] = report_tables(tmp / f"w{workers}", env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = tables[1] == tables[args.workers]
    ratio = walls[1] / walls[args.workers]
    print(f"tiny demo grid (9 steps) on {os.cpu_count()} CPU cores: 1 worker {walls[1]:.1f} s, {args.workers} workers "
          f"{walls[args.workers]:.1f} s: {ratio:.2f}x faster; report tables identical: {'yes' if same else 'NO'}")
    arithmetic = plan_arithmetic(args.plan, args.gpus)
    print("\n".join(arithmetic))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({
        "benchmark": "grid_parallel", "cpu_count": os.cpu_count(), "threads": args.threads, "wall_s": walls,
        "speedup": ratio, "reports_identical": same, "plan_arithmetic": arithmetic,
        "load_average": os.getloadavg()}, indent=2) + "\n", encoding="utf-8")
    if not same:
        sys.exit("error: the reports of the two runs differ")


if __name__ == "__main__":
    main()
