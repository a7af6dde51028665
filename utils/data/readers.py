"""Generic file readers: path -> list of row dicts with string labels and the line (`_line`) they came from.

Sentence-pair tsv (XTREME's and GLUE's), `token<TAB>tag` CoNLL, JSON lines (or a JSON list) and csv records. A
task's own formats (CCGbank, a dataset's record schema) live with its registry entry; CoNLL-U in `conllu.py`.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..errors import XtremeError
from ..files import load_json
from ..lines import tab_fields

csv.field_size_limit(sys.maxsize)

# Column names seen in the original formats (GLUE tsv, MNLI/SNLI/ANLI jsonl, Hub parquet), first match wins.
COLUMN_ALIASES = {
    "sentence1": ("sentence1", "premise", "context", "question1", "s1", "text"),
    "sentence2": ("sentence2", "hypothesis", "question2", "s2"),
    "label": ("label", "gold_label", "is_duplicate"),
    "tokens": ("tokens", "words"),
    "tags": ("tags", "ner_tags", "pos_tags", "labels"),
}


def candidates(column: str, renames: dict) -> tuple:
    """The names a column may have in a file: the task's own name for it first, then the known aliases."""
    return ((renames[column],) if column in renames else ()) + COLUMN_ALIASES[column]


def read_pair_tsv(path: Path, renames: dict) -> list[dict]:
    """XTREME's `s1<TAB>s2<TAB>label` (no header; 2 columns = unlabelled) or a headed tsv (GLUE, PAWS-X x-final)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not lines:
        raise XtremeError(f"{path}: empty file; expected sentence1<TAB>sentence2<TAB>label rows")
    positions = _header_columns(lines[0], renames)
    start = 1 if positions else 0
    width = len(lines[0])
    if not positions:
        if width not in (2, 3):
            raise XtremeError(f"{path}:1: expected 3 tab-separated columns (sentence1, sentence2, label) or 2 "
                              f"(unlabelled), found {width}")
        positions = {"sentence1": 0, "sentence2": 1, "label": 2 if width == 3 else None}
    rows = []
    for number, parts in enumerate(lines[start:], start + 1):
        if not parts:
            continue
        if len(parts) != width:
            raise XtremeError(f"{path}:{number}: expected {width} tab-separated columns, found {len(parts)}")
        row = {"sentence1": parts[positions["sentence1"]], "sentence2": parts[positions["sentence2"]],
               "_line": number}
        if positions.get("label") is not None:
            row["label"] = parts[positions["label"]]
        rows.append(row)
    return rows


def _header_columns(first: list[str], renames: dict) -> dict | None:
    """Column positions if the first row is a header naming the text columns, else None."""
    names = {c: i for i, c in enumerate(first)}
    found = {ours: next((names[c] for c in candidates(ours, renames) if c in names), None)
             for ours in ("sentence1", "sentence2", "label")}
    if found["sentence1"] is None or found["sentence2"] is None:
        return None
    return found


def read_conll_tsv(path: Path) -> list[dict]:
    """`token<TAB>tag` per line, blank line between sentences (PAN-X, UD-POS); token-only lines = unlabelled."""
    rows, sentence = [], []
    for number, parts in tab_fields(path, "'token<TAB>tag' (or a token alone in unlabelled files)"):
        if parts is None:
            rows += [_tagged_row(sentence)] if sentence else []
            sentence = []
        else:
            sentence.append((number, parts))
    return rows + ([_tagged_row(sentence)] if sentence else [])


def _tagged_row(sentence: list[tuple[int, list[str]]]) -> dict:
    """A tagging row from (line number, [token, tag?]) pairs; `_lines` keeps each token's line for errors."""
    row = {"tokens": [parts[0] for _, parts in sentence], "_line": sentence[0][0],
           "_lines": [number for number, _ in sentence]}
    if len(sentence[0][1]) == 2:
        row["tags"] = [parts[1] for _, parts in sentence]
    return row


def read_json_records(path: Path) -> list[tuple[int, object]]:
    """(line number, record) of a JSON lines file, or (index from 1, record) of a file holding one JSON list."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records = list(enumerate(load_json(path), 1))
    else:
        records = [(n, _json_line(path, n, line)) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not records:
        raise XtremeError(f"{path}: empty file; expected one JSON object per line")
    return records


def _json_line(path: Path, number: int, line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise XtremeError(f"{path}:{number}:{err.colno}: not valid JSON lines ({err.msg})") from None


def read_csv_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) of a csv file with a header."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [(reader.line_num, record) for record in reader]


def read_json_rows(path: Path, columns: tuple, optional: str, renames: dict) -> list[dict]:
    """JSON lines (or a JSON list) in the Hub's / original dataset's schema, `columns` found by name (the task's
    own name for a column first, then the known aliases); `optional` (the label) may be absent."""
    rows = []
    for number, record in read_json_records(path):
        if not isinstance(record, dict):
            raise XtremeError(f"{path}:{number}: expected a JSON object with fields {', '.join(columns)}")
        row = {"_line": number}
        for ours in columns:
            names = candidates(ours, renames)
            key = next((c for c in names if c in record), None)
            if key is not None:
                row[ours] = record[key]
            elif ours != optional:
                raise XtremeError(f"{path}:{number}: missing field {ours!r} (tried {', '.join(names)})")
        rows.append(row)
    return rows
