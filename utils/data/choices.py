"""Multiple-choice records (a dataset's own schema, a spec's columns, or the standard one) -> checked rows."""

from __future__ import annotations

from pathlib import Path

from ..errors import XtremeError
from ..tasks import Task, text_field
from .readers import read_csv_records, read_json_records


def standard_record(record: dict, where: str) -> tuple:
    """The standard schema: {"context": ..., "choices": [...], "label": i or a choice name}."""
    return text_field(record.get("context"), where, "context"), record.get("choices"), record.get("label")


def column_record(columns: dict):
    """The adapter of a spec's `columns`: context, label, and choices (one field holding a list, or a list of
    fields, e.g. [choice1, choice2])."""
    def adapter(record: dict, where: str) -> tuple:
        context = text_field(record.get(columns.get("context", "context")), where, columns.get("context", "context"))
        fields = columns.get("choices", "choices")
        choices = [record.get(f) for f in fields] if isinstance(fields, list) else record.get(fields)
        return context, choices, record.get(columns.get("label", "label"))
    return adapter


def _adapter(record: dict, task: Task):
    if "context" in record and isinstance(record.get("choices"), list):
        return standard_record
    if task.record is not None:
        return task.record
    return column_record(task.columns) if task.columns else standard_record


def _ordered(choices, names: list[str], where: str, task: Task) -> list:
    if isinstance(choices, dict):  # named choices (CommonsenseQA's A-E)
        missing = [n for n in names if n not in choices]
        if missing or len(choices) != len(names):
            raise XtremeError(f"{where}: choices {', '.join(map(str, choices))}; expected exactly "
                              f"{', '.join(names)}")
        choices = [choices[n] for n in names]
    if not isinstance(choices, list) or len(choices) != len(names):
        found = len(choices) if isinstance(choices, list) else "no"
        raise XtremeError(f"{where}: {found} choices; expected {len(names)} ({task.name})")
    for i, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            raise XtremeError(f"{where}: choice {names[i]} is missing or empty")
    return choices


def multiple_choice_row(record, task: Task, where: str) -> dict:
    """One record of the task's schema (its `record` adapter, its spec's `columns`, or the standard schema) as a
    checked row: exactly `len(task.labels)` non-empty choices; the label is a choice name (`task.labels`:
    "0".."3", "A".."E") or its index, and is left out when it is absent, "" or -1 (unlabelled test data)."""
    if not isinstance(record, dict):
        raise XtremeError(f"{where}: expected a JSON object")
    context, choices, label = _adapter(record, task)(record, where)
    names = list(task.labels)
    row = {"context": context, "choices": _ordered(choices, names, where, task)}
    text = "" if label is None else str(label)
    if text not in ("", "-1"):
        if text in names:
            row["label"] = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            row["label"] = int(text)
        else:
            raise XtremeError(f"{where}: label {text!r} out of range; expected one of {', '.join(names)}")
    return row


def checked_rows(records: list, task: Task, wheres: list[str]) -> list[dict]:
    """Every record as a row; all labelled, or none (a test file): a file mixing both has a gap to report."""
    rows = [multiple_choice_row(record, task, where) for record, where in zip(records, wheres)]
    labelled = ["label" in row for row in rows]
    if any(labelled) and not all(labelled):
        raise XtremeError(f"{wheres[labelled.index(False)]}: no label, though other examples have one")
    return rows


def read_multiple_choice(path: Path, task: Task) -> list[dict]:
    """JSON lines (or a JSON list, or a csv with a header) in the dataset's own schema -> standard rows."""
    records = read_csv_records(path) if path.suffix.lower() == ".csv" else read_json_records(path)
    return checked_rows([record for _, record in records], task, [f"{path}:{number}" for number, _ in records])
