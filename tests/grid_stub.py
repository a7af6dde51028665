"""Stands in for the three scripts in grid tests: writes what each script writes when it finishes, fast.

    python tests/grid_stub.py [--fail SCRIPT] [--incomplete TASK] [--seconds S] [--events FILE] SCRIPT ARGS...

Phases 1 and 2 write a finished run marker in --output_dir, phase 3 a results file with every --languages (but
the last for --incomplete TASK). --fail SCRIPT exits 2 with a one-line error instead. With --seconds, the work
takes S seconds in ten slices, each recorded in a progress file as a checkpoint: a step stopped and started again
resumes from its last slice. Every start and finish is appended to --events as one line (pid, parent pid,
CUDA_VISIBLE_DEVICES, rendezvous port, slice resumed from), so a test can tell what ran where and how often.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.results import RUN_INFO, results_path  # noqa: E402
from utils.tasks import TASKS  # noqa: E402

SLICES = 10


def event(path, *fields):
    if path:
        with open(path, "a", encoding="utf-8") as f:  # one short append: atomic among processes
            f.write(" ".join(str(x) for x in fields) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fail", action="append", default=[])
    p.add_argument("--incomplete")
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--events")
    p.add_argument("script")
    stub, args = p.parse_known_args()
    script = Path(stub.script).name
    get = lambda name, default=None: args[args.index(name) + 1] if name in args else default  # noqa: E731
    out = Path(get("--output_dir"))
    out.mkdir(parents=True, exist_ok=True)
    progress = out / ".stub_progress"
    start = int(progress.read_text()) if progress.is_file() else 0
    event(stub.events, "start", out, os.getpid(), os.getppid(), os.environ.get("CUDA_VISIBLE_DEVICES") or "-",
          os.environ.get("STUB_PORT") or "-", start)
    print(f"{script}: working in {out}", flush=True)
    if script in stub.fail:
        print("loading", file=sys.stderr)
        print("error: cannot load the model: no such dir", file=sys.stderr)
        sys.exit(2)
    for i in range(start, SLICES):
        time.sleep(stub.seconds / SLICES)
        progress.write_text(str(i + 1))
    if script in ("run_intermediate.py", "run_target.py"):
        (out / RUN_INFO).write_text(json.dumps({"finished": True, "task": get("--task") or get("--tasks"),
                                                "model": get("--model_name_or_path")}))
    else:
        task, split, languages = get("--task"), get("--split", "test"), get("--languages").split(",")
        languages = list(TASKS[task].languages) if languages == ["all"] else languages
        done = languages[:-1] if task == stub.incomplete else languages
        data = {"task": task, "split": split, "languages": {lang: {"score": 50.0 + i} for i, lang in enumerate(done)},
                "skipped": {lang: "file not found" for lang in languages if lang not in done}}
        results_path(out, task, split).parent.mkdir(parents=True, exist_ok=True)
        results_path(out, task, split).write_text(json.dumps(data))
    event(stub.events, "done", out)


if __name__ == "__main__":
    main()
