"""`python -m utils.grid PLAN [--dry-run | --status] [--workers N] [--gpus 0,1,...] [--launcher slurm] ...`"""

from __future__ import annotations

import argparse
import sys

from ..errors import XtremeError
from .checks import check_paths, missing_paths
from .local import LocalPool
from .overview import dry_run, status
from .plan import load_plan
from .process import honour_sigint
from .runner import Grid
from .steps import build_steps, select_steps

DESCRIPTION = """\
The paper's experiment grid from one plan file: phase 1 per intermediate setting, phase 2 per target, phase 3.

    python -m utils.grid plans/paper_xlmr_large.yaml --dry-run    # the exact commands; runs and writes nothing
    python -m utils.grid plans/paper_xlmr_large.yaml              # run (or resume) the whole grid, step by step
    python -m utils.grid plans/paper_xlmr_large.yaml --gpus 0,1,2,3,4,5,6,7   # 8 steps at once, one GPU each
    python -m utils.grid plans/paper_xlmr_large.yaml --launcher slurm         # one Slurm job per step (submitit)
    python -m utils.grid plans/paper_xlmr_large.yaml --status     # a table of every step, from another terminal
    python -m utils.grid PLAN --only intermediate=mnli target=pawsx,xnli
"""


def _gpus(value: str) -> list[str]:
    gpus = [g.strip() for g in value.split(",") if g.strip()]
    if not gpus or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError(f"{value!r}: expected distinct device ids, e.g. 0,1,2,3")
    return gpus


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a positive integer")
    return int(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.grid", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="the plan file (YAML or JSON)")
    p.add_argument("--dry-run", action="store_true", help="print the exact commands, each step's state and how "
                   "many steps can run at once; check every path; run nothing, write nothing")
    p.add_argument("--status", action="store_true", help="print a table of every step (done, running, queued, "
                   "failed, blocked, pending) with times, devices or job ids and logs; run nothing")
    p.add_argument("--workers", type=_positive, help="run up to N steps at once on this machine (default: one per "
                   "--gpus device, else 1)")
    p.add_argument("--gpus", type=_gpus, help="devices to share out, e.g. 0,1,2,3: each step gets its own "
                   "(CUDA_VISIBLE_DEVICES; num_processes of them under accelerate/torchrun)")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: this machine (default); slurm: one job per step through submitit (plan's slurm:)")
    p.add_argument("--only", nargs="+", default=[], metavar="KEY=VALUES",
                   help="run only the steps matching every filter (and the steps they need): backbone=, "
                        "intermediate=, target=, seed=, phase= with comma-separated values")
    p.add_argument("--output-dir", help="override the plan's output_dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one plan value (YAML value; dotted keys, list indices), e.g. "
                        "--set seeds=[1,2,3] --set backbones.0.path=demo_runs/tiny_model")
    return p


def make_pool(args, plan):
    if args.launcher == "local":
        return LocalPool(args.workers, args.gpus)
    if args.workers or args.gpus:
        raise XtremeError("--workers/--gpus share this machine out (--launcher local); Slurm jobs get their GPUs "
                          "from the plan's slurm: gpus_per_step (default: the step's num_processes)")
    try:
        from .slurm import SlurmPool
    except ImportError:
        raise XtremeError("--launcher slurm needs submitit: pip install submitit==1.5.4") from None
    return SlurmPool(plan)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plan = load_plan(args.plan, args.overrides, args.output_dir)
    steps = select_steps(plan, build_steps(plan), args.only)
    if args.status:
        return status(plan, steps)
    if args.dry_run:
        return dry_run(plan, steps, missing_paths(steps))
    honour_sigint()
    pool = make_pool(args, plan)
    pool.check(steps)
    check_paths(plan.path, steps)
    return Grid(plan, steps, pool, sys.argv[1:] if argv is None else argv).run()
