"""Results and predictions on disk, written atomically: an interrupted run loses nothing already computed.

`{output_dir}/results/{task}.json` holds, per language, the metrics and example counts, plus the task average
over the languages evaluated so far; it is rewritten after every language. Predictions follow XTREME's
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

RUN_INFO = "xtreme_inter_run.json"


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    from .files import file_mode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())  # mkstemp's file is private (0600); the result is readable like any other file
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


def task_average(languages: dict) -> dict:
    """Plain mean of each metric over the evaluated languages (XTREME's per-task average)."""
    keys = sorted({k for m in languages.values() for k, v in m.items() if isinstance(v, (int, float))
                   and not k.startswith("num_")})
    return {k: sum(m[k] for m in languages.values()) / len(languages) for k in keys
            if all(k in m for m in languages.values())}


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
        self.data["average"] = task_average(self.data["languages"]) if self.data["languages"] else {}
        self.data["score"] = self.data["average"].get("score")
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write_json(self.path, self.data)


def format_table(data: dict) -> str:
    """A markdown table of one results file: a row per language and the average."""
    rows = dict(data["languages"])
    if rows:
        rows["avg"] = data["average"]
    keys = [k for k in ("score", "accuracy", "f1", "exact_match", "precision", "recall")
            if any(k in m for m in rows.values())]
    lines = [f"| {data['task']} ({data['split']}) | " + " | ".join(keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {lang} | " + " | ".join(f"{m[k]:.2f}" if k in m else "-" for k in keys) + " |"
              for lang, m in rows.items()]
    lines += [f"| {lang} | skipped: {reason} |" for lang, reason in data["skipped"].items()]
    return "\n".join(lines)


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
