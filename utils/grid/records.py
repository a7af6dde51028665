"""What the grid writes about its steps: each step's `step.json` and the grid's `grid_state.json`.

Only the driver's main thread writes them, each write atomic (a reader sees the old or the new file, never half).
"""

from __future__ import annotations

import os
import shlex
import time

from ..files import atomic_write_json, peek_json
from .plan import Plan
from .steps import LOG_FILE, SCRIPTS, STEP_FILE, Step

STATE_FILE, LOCK_FILE = "grid_state.json", ".grid.lock"
# Fields of step.json that always describe the plan's step as it is now (recomputed on every write).
RECOMPUTED = {"phase", "script", "label", "backbone", "intermediate", "intermediate_tasks", "seed", "target",
              "task", "languages", "split", "model", "output_dir", "command", "command_line", "cwd", "deps",
              "upstream", "log"}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value) -> float | None:
    """A time written by `now()` as seconds since the epoch (None if it is not one)."""
    try:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return None


def _upstream(step: Step) -> list[dict]:
    chain = []
    pending = list(step.deps)
    while pending:
        dep = pending.pop(0)
        rec = dep.record() or {}
        chain.append({"id": dep.id, "phase": dep.phase, "command": rec.get("command_line", shlex.join(dep.argv)),
                      "output_dir": str(dep.output_dir), "wall_s": rec.get("wall_s"),
                      "run_id": rec.get("run_id"), "fingerprint": dep.fingerprint()})
        pending.extend(dep.deps)
    return chain


def step_record(step: Step, command: list[str]) -> dict:
    return {
        "id": step.id, "phase": step.phase, "script": SCRIPTS[step.phase], "label": step.label,
        "backbone": step.backbone.record(), "intermediate": step.intermediate.name,
        "intermediate_tasks": step.intermediate.task_names, "seed": step.seed,
        "target": step.target.name if step.target else None, "task": step.task,
        "languages": step.languages, "split": step.split if step.phase == 3 else None,
        "model": step.model, "output_dir": str(step.output_dir),
        "command": command, "command_line": shlex.join(command), "cwd": os.getcwd(),
        "deps": step.dep_fingerprints(), "upstream": _upstream(step), "log": LOG_FILE}


def write_record(step: Step, *records: dict, **fields) -> None:
    """step.json: the plan's description of the step (with the command as launched), then `records` (later wins),
    then `fields`."""
    step.dir.mkdir(parents=True, exist_ok=True)
    merged = {}
    for record in records:
        merged.update(record)
    merged.update(fields)
    merged.pop("id", None)
    base = step_record(step, merged.get("launched") or step.argv)
    atomic_write_json(step.dir / STEP_FILE, {**base, **{k: v for k, v in merged.items() if k not in RECOMPUTED}})


def _step_state(step: Step, live: dict) -> dict:
    rec = step.record() or {}
    return {"label": step.label, "phase": step.phase, "backbone": step.backbone.name,
            "intermediate": step.intermediate.name, "seed": step.seed,
            "target": step.target.name if step.target else None, "dir": str(step.dir),
            "status": live.get(step.id, {}).get("status", step.status),
            "last_outcome": step.outcome, "wall_s": rec.get("wall_s"), "finished": rec.get("finished"),
            "error": rec.get("error"), "command": shlex.join(rec.get("launched") or step.argv),
            "log": str(step.log), **{k: v for k, v in live.get(step.id, {}).items() if k != "status"}}


def write_state(plan: Plan, steps: list[Step], invocation: dict, live: dict | None = None) -> None:
    """grid_state.json: the plan as run, every step's status (`live`: step id -> devices, job id, queued), and
    the last 50 invocations. Steps of the plan outside this invocation's selection keep their last entry."""
    path = plan.output_dir / STATE_FILE
    previous = peek_json(path) or {}
    entries = previous.get("steps", {}) if isinstance(previous.get("steps"), dict) else {}
    entries.update({step.id: _step_state(step, live or {}) for step in steps})
    invocations = [i for i in previous.get("invocations") or [] if isinstance(i, dict) and i.get("id") !=
                   invocation["id"]][-49:] + [invocation]
    atomic_write_json(path, {
        "plan": plan.path, "plan_resolved": plan.raw, "output_dir": str(plan.output_dir),
        "backbones": [b.record() for b in plan.backbones],
        "intermediate": [x.name for x in plan.intermediates],
        "targets": [{"name": t.name, "task": t.task} for t in plan.targets],
        "seeds": plan.seeds, "updated": now(), "invocations": invocations, "steps": entries})
