"""Labels: names -> ids in the task's label list, matched by NAME (Hub ClassLabel orders differ from XTREME's)."""

from __future__ import annotations

import logging
from collections import Counter

from ..errors import XtremeError
from ..tasks import CLASSIFICATION, TAGGING

logger = logging.getLogger(__name__)

TEXT_COLUMNS = {CLASSIFICATION: ("sentence1", "sentence2"), TAGGING: ("tokens",)}
LABEL_COLUMN = {CLASSIFICATION: "label", TAGGING: "tags"}
LABEL_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction", "contradictory": "contradiction"}
NO_LABEL = ("-1", "-", "")  # SNLI without gold label, PAWS-X's -1: dropped from training data


def has_gold(value) -> bool:
    return value is not None and str(value) not in NO_LABEL


class LabelEncoder:
    """A label value -> its id in `labels`. Tried in order: an integer with `class_names` (a Hub ClassLabel's
    names), the name itself, a known alias ("e" -> "entailment"), an integer index into `int_names` (the order of
    a Hub-schema file's integer labels)."""

    def __init__(self, labels: list[str], int_names: tuple | None = None, class_names: list | None = None):
        self.labels, self.int_names, self.class_names = list(labels), int_names, class_names
        self.ids = {name: i for i, name in enumerate(labels)}

    def __call__(self, value, where: str) -> int:
        if self.class_names is not None and isinstance(value, int) and value >= 0:
            value = self.class_names[value]
        text = str(value)
        name = text if text in self.ids else LABEL_ALIASES.get(text)
        if name not in self.ids and self.int_names and text.isdigit() and int(text) < len(self.int_names):
            name = self.int_names[int(text)]
        if name not in self.ids:
            raise XtremeError(f"{where}: unknown label {text!r}; expected one of: {', '.join(self.labels)}")
        return self.ids[name]

    def row(self, row: dict, kind: str, source: str) -> dict:
        """A row with its label (classification) or tags (tagging) encoded; errors name the file and line."""
        column = LABEL_COLUMN[kind]
        value = row.get(column)
        if value is None:
            raise XtremeError(f"{source}:{row['_line']}: missing {column}; expected every example to be labelled")
        if kind != TAGGING:
            return {**row, column: self(value, f"{source}:{row['_line']}")}
        if len(value) != len(row["tokens"]):
            raise XtremeError(f"{source}:{row['_line']}: {len(row['tokens'])} tokens but {len(value)} tags")
        lines = row.get("_lines", [row["_line"]] * len(value))
        return {**row, column: [self(v, f"{source}:{line}") for v, line in zip(value, lines)]}


def label_names_from_rows(rows: list[dict], kind: str) -> list[str]:
    """A label list built from data (tasks without a fixed list, e.g. CCG supertags), sorted."""
    column = LABEL_COLUMN[kind]
    values = Counter()
    for row in rows:
        value = row.get(column)
        values.update(value if isinstance(value, list) else [value] if value is not None else [])
    return sorted(str(v) for v in values if str(v) not in NO_LABEL)


def encode_labels(rows: list[dict], labels: list[str], source: str, kind: str,
                  int_names: tuple | None = None) -> list[dict]:
    """Replace label names by ids (matched by name); drop rows without a gold label, counted in one warning.
    Rows of an unlabelled file (no label anywhere) are returned as they are."""
    column = LABEL_COLUMN[kind]
    if not any(column in row for row in rows):
        return rows
    encoder = LabelEncoder(labels, int_names)
    kept = [row for row in rows if kind != CLASSIFICATION or has_gold(row.get(column))]
    if len(kept) < len(rows):
        logger.warning("%s: dropped %d example(s) without a gold label", source, len(rows) - len(kept))
    if not kept:
        raise XtremeError(f"{source}: no labelled examples")
    return [encoder.row(row, kind, source) for row in kept]
