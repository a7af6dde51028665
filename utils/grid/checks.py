"""Before anything trains: every local path the plan's commands name must exist (tasks, languages and the rest of
the plan are checked when it is read)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import XtremeError
from .steps import Step


def missing_paths(steps: list[Step]) -> list[str]:
    """`path (argument of step)` for every file or dir the steps' commands name that does not exist, and the
    interpreter or launcher if it cannot be found."""
    problems, seen = [], set()
    for step in steps:
        program = step.argv[0]
        if program not in seen and shutil.which(program) is None:
            problems.append(f"{program} (the plan's {'python' if step.launcher == 'python' else 'launcher'}): "
                            "not found")
        seen.add(program)
        for key, path in step.files():
            if (key, path) in seen:
                continue
            seen.add((key, path))
            if not (Path(path).is_dir() if key == "data_dir" else Path(path).exists()):
                problems.append(f"{path} ({key} of {step.label}): not found")
    return problems


def check_paths(plan_path: str, steps: list[Step]) -> None:
    """Refuse to start when a step that still has to run names a path that does not exist."""
    problems = missing_paths([s for s in steps if not s.complete()])
    if problems:
        more = f"; and {len(problems) - 3} more (--dry-run lists them)" if len(problems) > 3 else ""
        raise XtremeError(f"{plan_path}: {len(problems)} path(s) the plan names do not exist: "
                          + "; ".join(problems[:3]) + more)
