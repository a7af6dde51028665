"""Progress lines: one when a step starts and one when it ends, with done/total, the elapsed time and an ETA."""

from __future__ import annotations

import time

from .steps import Step

TERMINAL = ("done", "failed", "incomplete", "blocked")


def fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def recorded_seconds(step: Step) -> float | None:
    """How long the step's last complete run took, from its step.json (None for outputs made elsewhere)."""
    record = step.record() or {}
    wall = record.get("wall_s")
    if record.get("status") == "done" and not record.get("adopted") and isinstance(wall, (int, float)):
        return float(wall)
    return None


class Progress:
    """Counts and times of the steps of one invocation. The ETA is the estimated time of the steps left (the mean
    duration of finished steps of the same phase and task, else of the same phase; runs of earlier invocations
    count) spread over the steps that run at once: rough, it assumes the slots stay busy."""

    def __init__(self, steps: list[Step], slots: int | None):
        self.steps, self.slots = steps, slots
        self.started = time.time()
        self.width = len(str(len(steps)))
        self.durations: dict[tuple, list[float]] = {}
        for step in steps:
            seconds = recorded_seconds(step)
            if seconds is not None:
                self.add(step, seconds)

    def add(self, step: Step, seconds: float) -> None:
        self.durations.setdefault((step.phase, step.task), []).append(seconds)

    def estimate(self, step: Step) -> float | None:
        same = self.durations.get((step.phase, step.task))
        if not same:
            same = [s for (phase, _), values in self.durations.items() if phase == step.phase for s in values]
        return sum(same) / len(same) if same else None

    def eta(self, running: dict) -> str:
        """`running`: step id -> start time (time.time()) of the steps running now."""
        left = [s for s in self.steps if s.status not in TERMINAL and not (s.status == "pending" and s.complete())]
        if not left:
            return ""
        total, unknown = 0.0, 0
        for step in left:
            estimate = self.estimate(step)
            if estimate is None:
                unknown += 1
            else:
                total += max(0.0, estimate - (time.time() - running[step.id])) if step.id in running else estimate
        if not total:
            return " ETA ?"
        at_once = min(self.slots or len(left), len(left))
        return f" ETA {fmt_seconds(total / at_once)}{'+' if unknown else ''}"

    def prefix(self, running: dict | None = None) -> str:
        done = sum(s.status in TERMINAL for s in self.steps)
        eta = self.eta(running) if running is not None else ""
        return f"[{done:>{self.width}}/{len(self.steps)} {fmt_seconds(time.time() - self.started)}{eta}]"

    def line(self, text: str, running: dict | None = None) -> None:
        print(f"{self.prefix(running)} {text}", flush=True)
