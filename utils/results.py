"""Results and predictions on disk, written atomically: an interrupted run loses nothing already computed.

`{output_dir}/results/{task}.json` holds, per language, the metrics and example counts, plus the task average
over the languages evaluated so far (XTREME's averages and task score, `utils.score`); it is rewritten after
every language. Predictions follow XTREME's
submission layout: `{output_dir}/predictions/{task}/{split}-{lang}.tsv` (`.json` for QA).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from .score import average, task_score

RUN_INFO = "xtreme_inter_run.json"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk: name the file in the error
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class ResultsFile:
    """The results JSON of one task and split, updated (atomically) after each language."""

    def __init__(self, output_dir: str | Path, task: str, split: str, meta: dict, resume: bool = False):
        self.path = Path(output_dir) / "results" / f"{task}.json"
        previous = read_json(self.path) if resume else None
        same_run = previous is not None and previous.get("split") == split
        self.data = {"task": task, "split": split, **meta,
                     "languages": previous["languages"] if same_run else {},
                     "skipped": previous.get("skipped", {}) if same_run else {}}

    def done(self, lang: str) -> bool:
        return lang in self.data["languages"]

    def add(self, lang: str, metrics: dict) -> None:
        self.data["languages"][lang] = metrics
        self.data["skipped"].pop(lang, None)
        self._write()

    def skip(self, lang: str, reason: str) -> None:
        self.data["skipped"][lang] = reason
        self._write()

    def _write(self) -> None:
        self.data["average"] = average(self.data["task"], self.data["languages"])
        self.data["score"] = task_score(self.data["task"], self.data["average"])
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write_json(self.path, self.data)


def format_table(data: dict) -> str:
    """A markdown table of one results file (a row per language evaluated, the average, the examples), then a
    line per skipped language with its reason and a line naming the languages the split does not have."""
    rows = {lang: m for lang, m in data["languages"].items() if isinstance(m, dict)}
    if rows:
        rows["avg"] = {**data["average"], "num_examples": sum(m.get("num_examples", 0) for m in rows.values())}
    keys = [k for k in ("score", "accuracy", "f1", "exact_match", "precision", "recall", "num_examples")
            if any(k in m for m in rows.values())]
    lines = [f"| {data['task']} ({data['split']}) | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {lang} | " + " | ".join(_cell(m.get(k)) for k in keys) + " |" for lang, m in rows.items()]
    lines += [f"skipped {lang}: {reason}" for lang, reason in data.get("skipped", {}).items()]
    if data.get("not_in_split"):
        lines.append(f"not in the {data['split']} split: {', '.join(data['not_in_split'])}")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None else str(value) if isinstance(value, int) else f"{value:.2f}"


def write_predictions(output_dir: str | Path, task: str, filename: str, text: str) -> Path:
    path = Path(output_dir) / "predictions" / task / filename
    atomic_write_text(path, text)
    return path


def environment_info() -> dict:
    """What produced a result: library versions and the project's git commit."""
    import datasets
    import torch
    import transformers

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "datasets": datasets.__version__, "git_commit": commit}
