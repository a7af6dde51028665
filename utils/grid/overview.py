"""What the grid shows without running anything: `--dry-run` (the commands, each step's state, how many steps can
run at once) and `--status` (a table of every step: done, running, queued, failed, blocked, pending)."""

from __future__ import annotations

import shlex
import time

from ..files import peek_json
from .plan import Plan
from .process import STEP_LOCK, held_elsewhere
from .progress import fmt_seconds
from .records import LOCK_FILE, STATE_FILE, parse_time
from .steps import Step

NOT_DONE = ("failed", "incomplete", "blocked", "interrupted")


def levels(steps: list[Step]) -> dict[int, list[Step]]:
    """Steps by dependency level: level 1 needs nothing, level k+1 needs steps of level k at most. All steps of a
    level can run at the same time once the levels before them are done."""
    depth: dict[str, int] = {}
    for step in steps:  # plan order: the steps a step needs come before it
        depth[step.id] = 1 + max((depth.get(d.id, 0) for d in step.deps), default=0)
    out: dict[int, list[Step]] = {}
    for step in steps:
        out.setdefault(depth[step.id], []).append(step)
    return out


def concurrency_lines(steps: list[Step]) -> list[str]:
    lines = ["# steps that can run at once (a level starts when the levels before it are done):"]
    for level, members in levels(steps).items():
        phases = {p: sum(s.phase == p for s in members) for p in (1, 2, 3)}
        lines.append(f"#   level {level}: {len(members):>3} step(s) (" + ", ".join(
            f"phase {p}: {n}" for p, n in phases.items() if n) + ")")
    phases = {p: sum(s.phase == p for s in steps) for p in (1, 2, 3)}
    lines.append("#   by phase: " + ", ".join(f"{n} phase-{p}" for p, n in phases.items() if n) +
                 "; the steps of one phase never wait for each other")
    return lines


def dry_run(plan: Plan, steps: list[Step], problems: list[str]) -> int:
    n, width = len(steps), len(str(len(steps)))
    print(f"# grid {plan.path}: {n} step(s) under {plan.output_dir} (dry run: nothing is run)")
    if problems:
        print(f"# warning: {len(problems)} path(s) the plan names do not exist here (a run stops before starting):")
        print("\n".join(f"#   {p}" for p in problems))
    for i, step in enumerate(steps, 1):
        stale = step.stale(step.record())
        state = ("complete, would be skipped" if step.complete() and not stale else
                 "stale (an input changed), would run again" if stale else "would run")
        print(f"# [{i:>{width}}/{n}] {step.label}: {state}")
        command = shlex.join(step.argv)
        print(f"mkdir -p {shlex.quote(str(step.output_dir))} && {command}" if step.phase == 3 else command)
    print("\n".join(concurrency_lines(steps)))
    return 0


def _observed(step: Step, entry: dict, driver_alive: bool, statuses: dict) -> tuple[str, str]:
    """(status, where) of a step, from its files, its lock, its job and the running driver's state entry."""
    record = step.record() or {}
    if step.complete() and not step.stale(record):
        return "done", ""
    if record.get("status") == "running" and record.get("job_id"):
        from .slurm import job_status

        alive, where = job_status(step.dir, record)
        if alive:
            return ("queued" if "PENDING" in where else "running"), where
    if held_elsewhere(step.dir / STEP_LOCK):
        devices = record.get("devices")
        return "running", f"GPU {','.join(devices)}" if devices else f"pid {record.get('pid', '?')}"
    if any(statuses.get(d.id) in NOT_DONE for d in step.deps):
        return "blocked", ""
    if record.get("status") in ("failed", "incomplete", "interrupted"):
        return record["status"], ""
    if record.get("status") == "running":
        return "interrupted", ""  # its driver and its process are gone
    return ("queued" if driver_alive and entry.get("status") == "queued" else "pending"), ""


def _duration(step: Step, status: str) -> str:
    record = step.record() or {}
    if status == "running":
        started = parse_time(record.get("started"))
        return fmt_seconds(time.time() - started) if started else ""
    wall = record.get("wall_s")
    return fmt_seconds(wall) if isinstance(wall, (int, float)) and status != "pending" else ""


def status(plan: Plan, steps: list[Step]) -> int:
    """Print the table of every step; run and change nothing."""
    state = peek_json(plan.output_dir / STATE_FILE) or {}
    entries = state.get("steps") if isinstance(state.get("steps"), dict) else {}
    driver_alive = held_elsewhere(plan.output_dir / LOCK_FILE)
    statuses, rows = {}, []
    for step in steps:
        status, where = _observed(step, entries.get(step.id) or {}, driver_alive, statuses)
        statuses[step.id] = status
        rows.append([status, step.label, _duration(step, status), where, str(step.log) if step.log.exists() else ""])
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    print(f"grid {plan.path}: {len(steps)} step(s) under {plan.output_dir}: " +
          ", ".join(f"{n} {s}" for s, n in counts.items()) +
          ("" if driver_alive else "; no driver is running"))
    header = ["status", "step", "time", "where", "log"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0
