"""The driver: brings every step of a plan up to date, as many at once as its pool allows.

A step is settled when the steps it needs have ended: skipped when its outputs are complete and its inputs
unchanged, blocked when an input failed, else run (after its stale outputs are removed). Ready steps start as soon
as the pool has room for them: with one slot in plan order, one after another; with more, the steps that most
others wait for first. Only this
module's thread writes step records and the state file. Ctrl-C (or SIGTERM) stops the running steps and records
them as interrupted; the next invocation resumes them.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Protocol
from pathlib import Path

from .local import Handle
from .process import Lock, output_lock, step_lock
from .progress import TERMINAL, Progress, fmt_seconds
from ..results import environment_info
from .records import LOCK_FILE, STATE_FILE, now, parse_time, write_record, write_state
from .steps import Step

NOT_DONE = ("failed", "incomplete", "blocked")


class Pool(Protocol):
    """Where steps run: `LocalPool` (this machine) or `SlurmPool` (Slurm jobs through submitit)."""
    slots: int | None  # steps at once (None: no limit)
    poll_seconds: float
    keeps_running_on_interrupt: bool  # Ctrl-C of the driver leaves the steps running (jobs)

    def describe(self) -> str: ...
    def check(self, steps: list[Step]) -> None: ...
    def full(self) -> bool: ...
    def fits(self, step: Step) -> bool: ...
    def attach(self, step: Step, record: dict) -> Handle | None: ...
    def start(self, step: Step, lock: Lock) -> Handle: ...
    def poll(self, handle: Handle) -> tuple[int, str] | None: ...
    def release(self, handle: Handle) -> None: ...
    def stop(self, handles: list[Handle]) -> None: ...


@dataclass
class Run:
    step: Step
    handle: Handle
    started: float
    base: dict
    note: str = ""
    lock: Lock | None = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def script_args(argv: list) -> list:
    """A command from its script on: the interpreter or launcher may differ between machines."""
    i = next((i for i, a in enumerate(argv) if str(a).endswith(".py")), 0)
    return [Path(argv[i]).name, *argv[i + 1:]] if argv else []


def clear_outputs(step: Step) -> None:
    """Remove a stale step's outputs (its inputs were produced again): only what the grid itself created."""
    if step.trains:
        shutil.rmtree(step.output_dir, ignore_errors=True)
    else:
        step.completion_file.unlink(missing_ok=True)
        shutil.rmtree(step.output_dir / "predictions" / step.task, ignore_errors=True)


def root_cause(step: Step) -> Step:
    """The failed step that blocked `step` (through blocked steps)."""
    blocker = next((d for d in step.deps if d.status in NOT_DONE), step)
    return root_cause(blocker) if blocker is not step and blocker.status == "blocked" else blocker


def run_order(steps: list[Step], slots: int | None) -> list[Step]:
    """Plan order for one step at a time; with more, the steps most others wait for first (the phase-1 runs)."""
    if slots == 1:
        return list(steps)
    waiting = {step.id: 0 for step in steps}
    for step in reversed(steps):  # a step comes after the steps it needs
        for dep in step.deps:
            waiting[dep.id] += 1 + waiting[step.id]
    return sorted(steps, key=lambda step: -waiting[step.id])  # stable: plan order among equals


class Grid:
    def __init__(self, plan, steps: list[Step], pool: Pool, argv: list[str] | None = None):
        self.plan, self.steps, self.pool, self.argv = plan, steps, pool, argv
        self.pending: list[Step] = []
        self.running: dict[str, Run] = {}
        self.waiting: set[str] = set()
        self.env = None
        self.progress = Progress(steps, pool.slots)
        self.invocation: dict = {}

    # -- the whole grid -----------------------------------------------------------------------------------------
    def run(self) -> int:
        self.plan.output_dir.mkdir(parents=True, exist_ok=True)
        lock = output_lock(self.plan.output_dir, LOCK_FILE)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.invocation = {"id": uuid.uuid4().hex[:12], "started": now(), "argv": self.argv, "cwd": os.getcwd(),
                               "host": os.uname().nodename, "pid": os.getpid(), "runs": self.pool.describe()}
            self.pending = run_order(self.steps, self.pool.slots)
            print(f"grid {self.plan.path}: {len(self.steps)} step(s) under {self.plan.output_dir}, "
                  f"{self.pool.describe()}", flush=True)
            try:
                self.loop()
            except KeyboardInterrupt:
                self.interrupt()
                return 130
            return self.end()
        finally:
            signal.signal(signal.SIGTERM, previous)
            lock.release()

    def loop(self) -> None:
        while self.pending or self.running:
            changed = self.schedule()
            for run in list(self.running.values()):
                result = self.pool.poll(run.handle)
                if result is not None:
                    self.finish(run, result)
                    changed = True
            if changed:
                self.save()
            else:
                time.sleep(self.pool.poll_seconds)

    def schedule(self) -> bool:
        """Settle and start what can go now, in run order; True when something changed."""
        changed = False
        for step in list(self.pending):
            if self.pool.full():
                break
            if any(d.status not in TERMINAL for d in step.deps):
                continue
            if step.status != "queued":
                outcome = self.settle(step)
                if outcome is not None:
                    self.pending.remove(step)
                    self.ended(step, outcome)
                    changed = True
                    continue
                handle = self.pool.attach(step, step.record() or {})
                if handle is not None:
                    self.reattach(step, handle)
                    changed = True
                    continue
                step.status = "queued"
            if self.pool.fits(step):
                changed = self.launch(step) or changed
        return changed

    # -- one step -----------------------------------------------------------------------------------------------
    def settle(self, step: Step) -> str | None:
        """The outcome of a step that need not run (blocked, or complete with unchanged inputs), else None."""
        blocker = next((d for d in step.deps if d.status != "done"), None)
        if blocker is not None:
            step.status = "blocked"
            why = {"failed": "failed", "blocked": "was skipped"}.get(blocker.status, "is not complete")
            return f"skipped ({blocker.label} {why})"
        record = step.record()
        if not step.complete() or step.stale(record):
            return None
        step.status = "done"
        fingerprint = step.fingerprint()
        if record is None:  # outputs made outside the grid (e.g. a command of --dry-run): adopt them
            write_record(step, status="done", adopted=True, run_id=uuid.uuid4().hex[:12], fingerprint=fingerprint)
            return "skipped (complete; outputs found without a step record, adopted)"
        if record.get("status") == "running":  # its process outlived the driver that started it, and finished
            started = parse_time(record.get("started"))
            wall = step.completion_file.stat().st_mtime - started if started else None
            write_record(step, record, status="done", fingerprint=fingerprint, finished=now(),
                         wall_s=round(wall, 1) if wall else None)
            if wall:
                self.progress.add(step, wall)
            return "done (finished by the run an earlier driver started)"
        if record.get("status") != "done":
            write_record(step, record, status="done", fingerprint=fingerprint)
        if script_args(record.get("command") or []) != script_args(step.argv):
            return (f"skipped (done, but with another command than the plan's now: delete {step.output_dir} "
                    "to run it again)")
        return "skipped (done)"

    def launch(self, step: Step) -> bool:
        """Start `step` if no other process writes its dir; its settlement is checked again under the lock."""
        lock = step_lock(step.dir)
        if not lock.acquire():
            step.status = "pending"  # settled again once the other process let go
            if step.id not in self.waiting:
                self.waiting.add(step.id)
                self.progress.line(f"{step.label} waits: another process writes {step.dir} (a step left running "
                                   "by an earlier driver?)")
            return False
        self.waiting.discard(step.id)
        self.pending.remove(step)
        outcome = self.settle(step)
        if outcome is not None:
            lock.release()
            self.ended(step, outcome)
            return True
        note = self.clear_if_stale(step)
        self.env = self.env or environment_info()
        base = {"status": "running", "run_id": uuid.uuid4().hex[:12], "started": now(), "environment": self.env}
        handle = self.pool.start(step, lock)
        base.update(handle.info)
        write_record(step, base)
        step.status = "running"
        self.running[step.id] = Run(step, handle, time.time(), base, note, lock)
        self.progress.line(f"{step.label} started{' on ' + handle.where if handle.where else ''}", self.starts())
        return True

    def clear_if_stale(self, step: Step) -> str:
        record = step.record()
        if not step.stale(record) or not step.output_dir.exists():
            return ""
        now_deps = step.dep_fingerprints()
        changed = [d.label for d in step.deps if (record.get("deps") or {}).get(d.id) != now_deps.get(d.id)]
        clear_outputs(step)
        return f"input changed ({', '.join(changed)}): old outputs removed; "

    def reattach(self, step: Step, handle: Handle) -> None:
        """Follow a step an earlier driver submitted and that still runs, instead of starting it again."""
        self.pending.remove(step)
        record = step.record() or {}
        started = parse_time(record.get("started")) or time.time()
        step.status = "running"
        self.running[step.id] = Run(step, handle, started, record)
        self.progress.line(f"{step.label} re-attached to {handle.where} (submitted by an earlier driver)",
                           self.starts())

    def finish(self, run: Run, result: tuple[int, str]) -> None:
        code, error = result
        step, wall = run.step, time.time() - run.started
        done = {**run.base, "finished": now(), "wall_s": round(wall, 1), "exit_code": code}
        if code != 0:
            step.status = "failed"
            write_record(step, done, status="failed", error=error)
            outcome = f"FAILED (exit {code}: {error}) after {fmt_seconds(wall)}; log: {step.log}"
        elif step.complete():
            step.status = "done"
            write_record(step, done, status="done", fingerprint=step.fingerprint())
            self.progress.add(step, wall)
            outcome = f"done in {fmt_seconds(wall)}"
        else:
            outcome = self.unfinished(step, done, wall)
        self.pool.release(run.handle)
        if run.lock is not None:
            run.lock.release()
        del self.running[step.id]
        self.ended(step, run.note + outcome)

    def unfinished(self, step: Step, done: dict, wall: float) -> str:
        """Exit 0 without complete outputs: a training step failed; an evaluation is missing languages."""
        if step.trains:
            step.status = "failed"
            error = f"exit 0 but {step.completion_file} does not say finished"
            write_record(step, done, status="failed", error=error)
            return f"FAILED ({error}); log: {step.log}"
        step.status = "incomplete"
        missing = step.missing_languages()
        error = (f"no {step.split} results in {step.completion_file}" if missing is None else
                 f"{len(missing)} language(s) missing: {', '.join(missing)} (see 'skipped' in "
                 f"{step.completion_file})")
        write_record(step, done, status="incomplete", error=error, fingerprint=step.fingerprint())
        return f"INCOMPLETE after {fmt_seconds(wall)}: {error}"

    def ended(self, step: Step, outcome: str) -> None:
        step.outcome = outcome
        self.progress.line(f"{step.label} ... {outcome}", self.starts())

    def starts(self) -> dict:
        return {run.step.id: run.started for run in self.running.values()}

    # -- interruption, state and summary ------------------------------------------------------------------------
    def interrupt(self) -> None:
        runs = list(self.running.values())
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            if self.pool.keeps_running_on_interrupt:
                where = ", ".join(run.handle.where for run in runs)
                print(f"interrupted: {len(runs)} step(s) keep running ({where}); run the grid again to follow "
                      "them (it re-attaches) or cancel them", flush=True)
            else:
                print(f"interrupted: stopping {len(runs)} running step(s)", flush=True)
                self.pool.stop([run.handle for run in runs])
                for run in runs:
                    run.step.status = "interrupted"
                    write_record(run.step, run.base, status="interrupted",
                                 wall_s=round(time.time() - run.started, 1))
                    self.pool.release(run.handle)
                    run.lock.release()
            self.save(interrupted=True)
        finally:
            signal.signal(signal.SIGINT, previous)

    def save(self, **invocation) -> None:
        live = {step.id: {"status": "queued"} for step in self.pending  # ready, waiting for room
                if step.status == "queued" or (all(d.status == "done" for d in step.deps) and not step.complete())}
        for run in self.running.values():
            live[run.step.id] = {"status": "running", **{k: v for k, v in run.handle.info.items() if k != "launched"}}
        running = {"running": True} if not invocation else {}
        write_state(self.plan, self.steps, {**self.invocation, **running, **invocation}, live)

    def end(self) -> int:
        counts = {}
        for step in self.steps:
            kind = "skipped" if step.status == "done" and step.outcome.startswith("skipped (") else step.status
            counts[kind] = counts.get(kind, 0) + 1
        wall = time.time() - self.progress.started
        self.save(finished=now(), wall_s=round(wall, 1), counts=counts)
        order = ("done", "skipped", "failed", "blocked", "incomplete")
        names = {"done": "ran", "skipped": "already done", "blocked": "skipped after a failure"}
        print(f"{len(self.steps)} step(s) in {fmt_seconds(wall)}: " + ", ".join(
            f"{counts[k]} {names.get(k, k)}" for k in order if counts.get(k)) +
            f"; state: {self.plan.output_dir / STATE_FILE}", flush=True)
        for step in self.steps:
            if step.status in ("failed", "incomplete"):
                print(f"  {step.status}: {step.label}: {(step.record() or {}).get('error')} (log: {step.log})")
            elif step.status == "blocked":
                cause = root_cause(step)
                print(f"  blocked: {step.label} (by {cause.label}; log: {cause.log})")
        return 1 if any(counts.get(k) for k in NOT_DONE) else 0
