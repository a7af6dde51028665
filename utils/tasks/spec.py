"""A user's own task, declared in a YAML or JSON spec (`--task_spec`): any kind, local files per language."""

from __future__ import annotations

from pathlib import Path

from ..errors import XtremeError
from ..files import load_json
from .task import (KINDS, METRICS, MULTIPLE_CHOICE, NEAREST, QA, RETRIEVAL, SEARCH_METRIC, SPLITS, SQUAD_V2, TASKS,
                   Bitext, Task)

_SPEC_KEYS = {"name", "kind", "metric", "languages", "labels", "train_language", "files", "columns", "search"}
# The columns a spec may rename, per kind (QA files are SQuAD JSON, retrieval files plain lines).
SPEC_COLUMNS = {"classification": ("sentence1", "sentence2", "label"), "tagging": ("tokens", "tags"),
                MULTIPLE_CHOICE: ("context", "choices", "label"), QA: (), RETRIEVAL: ()}
_BITEXT_KEYS = ("sentences", "english", "gold")


def _read_spec(path: str) -> dict:
    spec_path = Path(path)
    if not spec_path.is_file():
        raise XtremeError(f"task spec {path}: file not found")
    if spec_path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise XtremeError(f"task spec {path}: not valid YAML ({err})".replace("\n", " ")) from None
    else:
        spec = load_json(spec_path)
    if not isinstance(spec, dict):
        raise XtremeError(f"task spec {path}: expected a mapping with keys {', '.join(sorted(_SPEC_KEYS))}")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise XtremeError(f"task spec {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"expected {', '.join(sorted(_SPEC_KEYS))}")
    for key in ("name", "kind", "files"):
        if key not in spec:
            raise XtremeError(f"task spec {path}: missing required key '{key}'")
    if spec["kind"] not in KINDS:
        raise XtremeError(f"task spec {path}: kind {spec['kind']!r} is not supported; expected one of "
                          f"{', '.join(KINDS)}")
    return spec


def _check_files(path: str, kind: str, files) -> None:
    if not isinstance(files, dict) or not set(files) <= set(SPLITS):
        what = ("a mapping of " + ", ".join(_BITEXT_KEYS) + " paths (with {lang})" if kind == RETRIEVAL
                else "a path, a path with {lang}, or a {language: path} mapping")
        raise XtremeError(f"task spec {path}: 'files' must map splits ({', '.join(SPLITS)}) to {what}")
    if kind == RETRIEVAL:
        for split, entry in files.items():
            if not isinstance(entry, dict) or not {"sentences", "english"} <= set(entry) <= set(_BITEXT_KEYS):
                raise XtremeError(f"task spec {path}: files.{split} must map sentences and english (and, for "
                                  "mining, gold) to paths that may hold {lang}")


def _columns(path: str, kind: str, spec: dict) -> dict:
    columns = dict(spec.get("columns") or {})
    unknown = set(columns) - set(SPEC_COLUMNS[kind])
    if unknown:
        expected = ", ".join(SPEC_COLUMNS[kind]) or "none"
        raise XtremeError(f"task spec {path}: columns {', '.join(sorted(unknown))} are not {kind} columns; "
                          f"expected {expected}")
    return columns


def _labels(path: str, kind: str, spec: dict, columns: dict) -> tuple | None:
    if spec.get("labels"):
        return tuple(str(x) for x in spec["labels"])
    if kind == MULTIPLE_CHOICE:  # the choices' names: their positions when the spec lists the choice fields
        if isinstance(columns.get("choices"), list):
            return tuple(str(i) for i in range(len(columns["choices"])))
        raise XtremeError(f"task spec {path}: a multiple_choice task needs 'labels', the names of its choices "
                          "(e.g. [0, 1, 2, 3]), or 'columns: {choices: [field, ...]}'")
    return None


def _metric(path: str, kind: str, spec: dict) -> tuple[str, str | None]:
    """The spec's metric (the kind's default when not given) and, for retrieval, its search."""
    search = spec.get("search", NEAREST) if kind == RETRIEVAL else None
    if search is not None and search not in SEARCH_METRIC:
        raise XtremeError(f"task spec {path}: search {search!r} unknown; expected {' or '.join(SEARCH_METRIC)}")
    metric = spec.get("metric", SEARCH_METRIC[search] if search else METRICS[kind][0])
    allowed = (SEARCH_METRIC[search],) if search else METRICS[kind]
    if metric not in allowed:
        raise XtremeError(f"task spec {path}: metric {metric!r} unknown for {kind} tasks; expected "
                          f"{' or '.join(allowed)}")
    return metric, search


def _languages(spec: dict, files: dict, train_language: str) -> tuple:
    return tuple(spec.get("languages") or sorted(
        {lang for split_files in files.values() if isinstance(split_files, dict) for lang in split_files}
        | {train_language}))


def load_task_spec(path: str) -> tuple[Task, dict]:
    """Read a user task spec (YAML or JSON). Returns the task and its `files`: split -> path or {lang: path}
    (retrieval: split -> a tuple holding the `Bitext` of its files)."""
    spec = _read_spec(path)
    kind, files = spec["kind"], spec["files"]
    _check_files(path, kind, files)
    columns = _columns(path, kind, spec)
    metric, search = _metric(path, kind, spec)
    train_language = spec.get("train_language", "en")
    if kind == RETRIEVAL:
        files = {split: (Bitext(entry["sentences"], entry["english"], entry.get("gold")),)
                 for split, entry in files.items()}
    task = Task(
        name=str(spec["name"]), kind=kind, metric=metric, languages=_languages(spec, spec["files"], train_language),
        labels=_labels(path, kind, spec, columns), train_language=train_language, columns=columns,
        version_2_with_negative=metric == SQUAD_V2, search=search, description=f"user task from {path}")
    return task, files


def get_task(name: str | None, spec_path: str | None = None) -> tuple[Task, dict]:
    """The task named `name`, or the one a spec file declares. Returns (task, files from the spec or {})."""
    if spec_path:
        return load_task_spec(spec_path)
    if not name:
        raise XtremeError("no task given: pass --task NAME (one of " + ", ".join(TASKS) + ") or --task_spec FILE")
    if name not in TASKS:
        raise XtremeError(f"unknown task {name!r}; expected one of: {', '.join(TASKS)} (or --task_spec FILE)")
    return TASKS[name], {}
