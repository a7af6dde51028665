"""Results and predictions on disk, written atomically: an interrupted run loses nothing already computed.

`results_path(output_dir, task, split)`, `{output_dir}/results/{task}.{split}.json`, holds per language the metrics
and example counts, the task average over the languages evaluated so far (XTREME's averages and task score,
`utils.score`) and, under `evaluation`, what produced the numbers (the model's path and weights fingerprint, the
arguments that change them); it is rewritten after every language. `read_results` checks a file against that
layout. Predictions follow XTREME's submission layout: `{output_dir}/predictions/{task}/{split}-{lang}.tsv`
(`.json` for QA).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import time
from pathlib import Path

from .errors import XtremeError
from .files import atomic_write_json, atomic_write_text
from .score import average, task_score

RUN_INFO = "xtreme_inter_run.json"
SPLITS = ("dev", "test")
METRIC_KEYS = ("score", "accuracy", "f1", "exact_match", "precision", "recall")
NUMBER_KEYS = (*METRIC_KEYS, "num_examples")  # what a results file must hold as numbers where present


def results_path(output_dir: str | Path, task: str, split: str) -> Path:
    """Where phase 3 writes the results of one task and split."""
    return Path(output_dir) / "results" / f"{task}.{split}.json"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def results_problem(path: Path, data) -> str | None:
    """What makes `data`, read from `path`, not a results file as phase 3 writes it (None: nothing)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    task, split = data.get("task"), data.get("split")
    if not isinstance(task, str) or split not in SPLITS:
        return f"task {json.dumps(task)}, split {json.dumps(split)}: expected a task name and dev or test"
    expected = results_path(path.parent.parent, task, split)
    if path != expected:
        return f"holds the {split} results of {task}: expected the path {expected}"
    languages, skipped = data.get("languages"), data.get("skipped", {})
    if not isinstance(languages, dict) or not all(isinstance(m, dict) for m in languages.values()):
        return "'languages' is not an object of per-language metrics"
    if not isinstance(skipped, dict) or not all(isinstance(why, str) for why in skipped.values()):
        return "'skipped' is not an object of per-language reasons"
    for lang, metrics in languages.items():
        for key in NUMBER_KEYS:
            if key in metrics and not is_number(metrics[key]):
                return f"languages.{lang}.{key} is {json.dumps(metrics[key])}: expected a number"
    if data.get("score") is not None and not is_number(data["score"]):
        return f"score is {json.dumps(data['score'])}: expected a number"
    return None


def read_results(path: str | Path) -> dict:
    """A results file, checked: an `XtremeError` names the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise XtremeError(f"{path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise XtremeError(f"{path}: cannot be read ({err.strerror})") from None
    if not text.strip():
        raise XtremeError(f"{path}: empty file")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise XtremeError(f"{path}: not valid JSON ({err})") from None
    problem = results_problem(path, data)
    if problem:
        raise XtremeError(f"{path}: {problem}")
    return data


def weights_fingerprint(directory: str | Path) -> str:
    """sha256 over every byte of a model dir's config.json and weight files. Fine-tunings of one architecture have
    the same file sizes and safetensors headers, so nothing cheaper tells them apart; the files were just loaded
    (page cache), and hashing costs about 2 s per GB on one slow CPU core."""
    from .modeling import checkpoint_files

    directory = Path(directory)
    digest = hashlib.sha256()
    for path in [directory / "config.json", *checkpoint_files(directory)]:
        with open(path, "rb") as f:
            digest.update(path.name.encode() + b"\0" + hashlib.file_digest(f, "sha256").digest())
    return f"sha256:{digest.hexdigest()}"


def differences(recorded, now: dict) -> str:
    """`key recorded (now value)` for each entry of an evaluation record that differs, `; `-separated."""
    if not isinstance(recorded, dict):
        return "it does not record what produced it"

    def show(value):
        text = value if isinstance(value, str) else json.dumps(value)
        return text[:19] + "…" if text.startswith("sha256:") else text

    keys = [k for k in now if k not in recorded or recorded[k] != now[k]] + [k for k in recorded if k not in now]
    return "; ".join(f"{k} {show(recorded.get(k))} (now {show(now.get(k))})" for k in keys)


class ResultsFile:
    """The results JSON of one task and split, updated (atomically) after each language.

    `evaluation` records what produces the numbers. With `resume`, the languages of an existing file are kept only
    when it records the same evaluation; a file of another one is refused, naming the file and what differs."""

    def __init__(self, output_dir: str | Path, task: str, split: str, meta: dict, evaluation: dict,
                 resume: bool = False):
        self.path = results_path(output_dir, task, split)
        self.data = {"task": task, "split": split, **meta, "evaluation": evaluation, "languages": {}, "skipped": {}}
        if resume and self.path.exists():
            try:
                previous = read_results(self.path)
            except XtremeError as err:
                raise XtremeError(f"{err}; fix or remove it, or drop --resume") from None
            changed = differences(previous.get("evaluation"), evaluation)
            if changed:
                raise XtremeError(f"{self.path}: holds the results of another evaluation ({changed}); choose "
                                  "another --output_dir, or drop --resume to evaluate every language again (replacing "
                                  "it)")
            self.data["languages"], self.data["skipped"] = previous["languages"], previous.get("skipped", {})

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
    keys = [k for k in NUMBER_KEYS if any(k in m for m in rows.values())]
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


PROVENANCE_PACKAGES = ("torch", "transformers", "datasets", "accelerate", "deepspeed", "peft")


def environment_info() -> dict:
    """What produced a result: the Python version, the versions of the libraries installed among
    `PROVENANCE_PACKAGES`, the project's git commit and whether tracked files differ from it (`git_dirty`)."""
    from importlib import metadata

    info = {"python": platform.python_version()}
    for package in PROVENANCE_PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {**info, **_git_state()}


def _git_state() -> dict:
    """`git_commit` and `git_dirty` of the project's checkout (None when it is not a git checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD") or None
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit = dirty = None
    return {"git_commit": commit, "git_dirty": dirty}
