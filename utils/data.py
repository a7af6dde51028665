"""Load any task's split from local files (XTREME's layout and the datasets' original formats) or the Hub.

Every loader returns a `datasets.Dataset` with the standard columns of the task's kind:
classification `sentence1`, `sentence2` (pairs only), `label`; tagging `tokens`, `tags`; multiple choice `context`,
`choices` (list of str), `label` (the index of the right choice); QA the SQuAD schema. Labels are ids in the task's
label list, matched by NAME (the Hub's ClassLabel orders differ from XTREME's). Unlabelled files (XTREME's
test files) give datasets without the label column. Bad input raises `XtremeError` naming file, line and field.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path

from .errors import MissingDataError, XtremeError
from .tasks import CLASSIFICATION, LANG_NAMES, MULTIPLE_CHOICE, QA, TAGGING, HubSource, Task

logger = logging.getLogger(__name__)
csv.field_size_limit(sys.maxsize)

# Column names seen in the original formats (GLUE tsv, MNLI/SNLI/ANLI jsonl, Hub parquet), first match wins.
COLUMN_ALIASES = {
    "sentence1": ("sentence1", "premise", "context", "question1", "s1", "text"),
    "sentence2": ("sentence2", "hypothesis", "question2", "s2"),
    "label": ("label", "gold_label", "is_duplicate"),
    "tokens": ("tokens", "words"),
    "tags": ("tags", "ner_tags", "pos_tags", "labels"),
}
LABEL_ALIASES = {"e": "entailment", "n": "neutral", "c": "contradiction", "contradictory": "contradiction"}
NO_LABEL = ("-1", "-", "")  # SNLI without gold label, PAWS-X's -1: dropped from training data
TEXT_COLUMNS = {CLASSIFICATION: ("sentence1", "sentence2"), TAGGING: ("tokens",)}
LABEL_COLUMN = {CLASSIFICATION: "label", TAGGING: "tags"}


# --- readers: path -> list of row dicts with string labels and the line number they came from -------------------

def read_pair_tsv(path: Path, task: Task) -> list[dict]:
    """XTREME's `s1<TAB>s2<TAB>label` (no header; 2 columns = unlabelled) or a headed tsv (GLUE, PAWS-X x-final)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not lines:
        raise XtremeError(f"{path}: empty file; expected sentence1<TAB>sentence2<TAB>label rows")
    header = _header_columns(lines[0], task)
    if header:
        positions, start = header, 1
    else:
        width = len(lines[0])
        if width not in (2, 3):
            raise XtremeError(f"{path}:1: expected 3 tab-separated columns (sentence1, sentence2, label) or 2 "
                              f"(unlabelled), found {width}")
        positions, start = {"sentence1": 0, "sentence2": 1, "label": 2 if width == 3 else None}, 0
    width = len(lines[start - 1]) if header else len(lines[0])
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


def _header_columns(first: list[str], task: Task) -> dict | None:
    """Column positions if the first row is a header naming the text columns, else None."""
    names = {c: i for i, c in enumerate(first)}
    found = {}
    for ours in ("sentence1", "sentence2", "label"):
        candidates = (task.columns[ours],) if ours in task.columns else COLUMN_ALIASES[ours]
        found[ours] = next((names[c] for c in candidates if c in names), None)
    if found["sentence1"] is None or found["sentence2"] is None:
        return None
    return found


def read_conll_tsv(path: Path) -> list[dict]:
    """`token<TAB>tag` per line, blank line between sentences (PAN-X, UD-POS); token-only lines = unlabelled."""
    rows, sentence, width = [], [], None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                rows += [_tagged_row(sentence)] if sentence else []
                sentence = []
                continue
            parts = line.split("\t")
            width = width or len(parts)
            if len(parts) != width or width > 2:
                raise XtremeError(f"{path}:{number}: expected 'token<TAB>tag' (or a token alone in unlabelled "
                                  f"files) like the lines before, found {len(parts)} columns")
            sentence.append((number, parts))
    return rows + ([_tagged_row(sentence)] if sentence else [])


def _tagged_row(sentence: list[tuple[int, list[str]]]) -> dict:
    """A tagging row from (line number, [token, tag?]) pairs; `_lines` keeps each token's line for errors."""
    row = {"tokens": [parts[0] for _, parts in sentence], "_line": sentence[0][0],
           "_lines": [number for number, _ in sentence]}
    if len(sentence[0][1]) == 2:
        row["tags"] = [parts[1] for _, parts in sentence]
    return row


# ud-conversion-tools' POS precedence lists (conllu_to_conll.py), by the language prefix of the file name: the
# head of a multiword token, among its words nearest the root, is the one whose UPOS comes first. The default
# list lacks SYM (and ends with an empty entry, as its split of a trailing space gives).
UD_POS_PRECEDENCE = {
    "default": "VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT ".split(" "),
    "es": "VERB AUX PRON ADP DET".split(),
    "fr": "VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ".split(),
    "it": "VERB AUX ADV PRON ADP DET INTJ".split(),
}


def read_conllu(path: Path) -> list[dict]:
    """Raw CoNLL-U -> (FORM, UPOS) sentences, as XTREME's UD-POS files are made from it.

    XTREME converts each treebank file with ud-conversion-tools (`conllu_to_conll.py --lang {file prefix}
    --replace_subtokens_with_fused_forms`) and reads the result with `utils_preprocess.py::udpos_preprocess`:
    - a multiword token becomes its fused surface form with the UPOS of its head word (`_multiword_head`);
    - a sentence is dropped when all its forms, or all but one, are `_`;
    - spaces inside a form (Vietnamese UD has them) and U+200C are removed; forms are stripped.
    """
    rows, sentence = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                rows += [_conllu_sentence(path, sentence)] if sentence else []
                sentence = []
            elif not line.startswith("#"):
                parts = line.split("\t")
                if len(parts) != 10:
                    raise XtremeError(f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, "
                                      f"found {len(parts)}")
                sentence.append((number, parts))
    rows += [_conllu_sentence(path, sentence)] if sentence else []
    return [row for row in rows if row is not None]


def _conllu_sentence(path: Path, lines: list) -> dict | None:
    words, parents, spans = {}, {}, []
    for number, (ident, form, _, upos, _, _, head, _, deps, _) in lines:
        try:
            if "." in ident:  # an empty node of the enhanced graph: not a word
                continue
            if "-" in ident:
                first, last = (int(x) for x in ident.split("-"))
                spans.append((number, form, range(first, last + 1)))
                continue
            index = int(ident)
            # the dependency graph of ud-conversion-tools: basic HEAD plus the enhanced DEPS heads that are words
            parents[index] = {int(head)} | {int(h) for h, *_ in (d.split(":") for d in deps.split("|"))
                                            if deps != "_" and h.isdigit()}
        except ValueError:
            raise XtremeError(f"{path}:{number}: expected integer ID and HEAD, found {ident!r}, {head!r}") from None
        words[index] = (number, form, upos)
    forms = {i: form for i, (_, form, _) in words.items()}
    for number, form, span in spans:
        if any(i not in words for i in span):
            raise XtremeError(f"{path}:{number}: multiword token {form!r} spans words that are not in the sentence")
        head = _multiword_head(path, number, form, span, words, parents)
        forms.update({i: None for i in span})
        forms[head] = form
    kept = [i for i in sorted(words) if forms[i] is not None]
    tokens = [forms[i].strip() for i in kept]
    n_empty = tokens.count("_")
    if n_empty and n_empty >= len(tokens) - 1:
        return None
    return {"tokens": ["".join(t.replace("\u200c", "").split(" ")) for t in tokens],
            "tags": [words[i][2].strip() for i in kept], "_line": lines[0][0], "_lines": [words[i][0] for i in kept]}


def _multiword_head(path: Path, line: int, form: str, span: range, words: dict, parents: dict) -> int:
    """The word of a multiword token that keeps its UPOS, as ud-conversion-tools chooses it: the word with the
    fewest ancestors in the dependency graph (basic and enhanced edges); among several, the first whose UPOS comes
    earliest in the language's precedence list (a UPOS missing from the list stops XTREME's conversion)."""
    def ancestors(index: int) -> int:
        seen, todo = set(), [index]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen and parent != index:
                    seen.add(parent)
                    todo.append(parent)
        return len(seen)

    depth = {i: ancestors(i) for i in span}
    highest = [i for i in span if depth[i] == min(depth.values())]
    if len(highest) == 1:
        return highest[0]
    prefix = Path(path).name.split("_")[0]
    precedence = UD_POS_PRECEDENCE.get(prefix, UD_POS_PRECEDENCE["default"])
    missing = [words[i][2] for i in highest if words[i][2] not in precedence]
    if missing:
        raise XtremeError(f"{path}:{line}: cannot choose the head of multiword token {form!r}: its words "
                          f"{', '.join(words[i][1] for i in highest)} are equally near the root and UPOS "
                          f"{missing[0]} is not in the {prefix if prefix in UD_POS_PRECEDENCE else 'default'} "
                          "precedence list of ud-conversion-tools (XTREME's conversion stops on this file)")
    return min(highest, key=lambda i: precedence.index(words[i][2]))


def read_json_records(path: Path) -> list[tuple[int, object]]:
    """(line number, record) of a JSON lines file, or (index from 1, record) of a file holding one JSON list."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), 1))
        except json.JSONDecodeError as err:
            raise XtremeError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
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


def read_json_rows(path: Path, task: Task) -> list[dict]:
    """JSON lines (or a JSON list) in the Hub's / original dataset's schema, columns found by name."""
    records = read_json_records(path)
    rows = []
    wanted = TEXT_COLUMNS[task.kind] + (LABEL_COLUMN[task.kind],)
    for number, record in records:
        if not isinstance(record, dict):
            raise XtremeError(f"{path}:{number}: expected a JSON object with fields {', '.join(wanted)}")
        row = {"_line": number}
        for ours in wanted:  # the task's own column name first, then the Hub's / original names
            candidates = ((task.columns[ours],) if ours in task.columns else ()) + COLUMN_ALIASES[ours]
            key = next((c for c in candidates if c in record), None)
            if key is not None:
                row[ours] = record[key]
            elif ours != LABEL_COLUMN[task.kind]:
                raise XtremeError(f"{path}:{number}: missing field {ours!r} (tried {', '.join(candidates)})")
        rows.append(row)
    return rows


# --- CCG supertagging (CCGbank) ----------------------------------------------------------------------------------

_CCG_LEAF = re.compile(r"\(<L (.*?)>\)")


def read_ccg(path: Path) -> list[dict]:
    """CCGbank supertags: `AUTO` derivation files (a `.auto` file, or a dir of them, e.g. AUTO/00) or the
    `tokens<TAB>tags` one-sentence-per-line file of jiant's conversion (space-separated tokens and tags)."""
    if path.is_dir():
        files = sorted(path.rglob("*.auto"))
        if not files:
            raise MissingDataError(f"{path}: directory holds no CCGbank *.auto files")
        return [row for file in files for row in read_ccg_auto(file)]
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    return read_ccg_auto(path) if path.suffix == ".auto" or first.startswith("ID=") else read_ccg_tsv(path)


def read_ccg_auto(path: Path) -> list[dict]:
    """CCGbank `AUTO` format: an `ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1` line, then the derivation on one line whose
    leaves `(<L N/N NNP NNP Pierre N_73/N_73>)` give the supertag (1st field) and the token (4th field)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("ID="):
            if line.startswith("ID=") and (number == len(lines) or "(<" not in lines[number]):
                raise XtremeError(f"{path}:{number + 1}: expected the derivation of {line.split()[0]} after its "
                                  "ID line (CCGbank AUTO format)")
            continue
        tokens, tags = [], []
        for leaf in _CCG_LEAF.findall(line):
            fields = leaf.split(" ")
            if len(fields) != 5:
                raise XtremeError(f"{path}:{number}: leaf '(<L {leaf}>)' has {len(fields)} fields; expected 5 "
                                  "(<L category POS POS token predicate-argument-category>)")
            tags.append(fields[0])
            tokens.append(fields[3])
        if not tokens:
            raise XtremeError(f"{path}:{number}: no '(<L ...>)' leaves in this line; expected a CCGbank AUTO "
                              "derivation (or 'tokens<TAB>tags' lines)")
        rows.append({"tokens": tokens, "tags": tags, "_line": number})
    return rows


def read_ccg_tsv(path: Path) -> list[dict]:
    """One sentence per line: space-separated tokens, a tab, space-separated supertags (tokens alone: unlabelled)."""
    rows, width = [], None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            width = width or len(parts)
            if len(parts) != width or width > 2:
                raise XtremeError(f"{path}:{number}: expected 'tokens<TAB>tags' (or tokens alone in unlabelled "
                                  f"files) like the lines before, found {len(parts)} tab-separated columns")
            row = {"tokens": parts[0].split(), "_line": number}
            if width == 2:
                row["tags"] = parts[1].split()
                if len(row["tags"]) != len(row["tokens"]):
                    raise XtremeError(f"{path}:{number}: {len(row['tokens'])} tokens but {len(row['tags'])} tags; "
                                      "expected one supertag per token")
            rows.append(row)
    return rows


# --- multiple choice: each dataset's schema -> context, choices, label -----------------------------------------

def _text(value, where: str, what: str) -> str:
    if not isinstance(value, str):
        raise XtremeError(f"{where}: {what} is {'missing' if value is None else type(value).__name__}; expected text")
    return value


def _hellaswag(record: dict, where: str) -> tuple:
    """HellaSwag (Hub and original jsonl): context = ctx_a, choice i = ctx_b + " " + endings[i], as jiant does."""
    endings = record.get("endings")
    if not isinstance(endings, list):
        raise XtremeError(f"{where}: no 'endings' list")
    ctx_b = _text(record.get("ctx_b", ""), where, "ctx_b")
    choices = [(ctx_b + " " + _text(e, where, f"ending {i}")).strip() if e else e for i, e in enumerate(endings)]
    return _text(record.get("ctx_a"), where, "ctx_a"), choices, record.get("label")


def _commonsenseqa(record: dict, where: str) -> tuple:
    """CommonsenseQA: the Hub's question/choices{label,text}/answerKey, or the original question{stem,choices}."""
    question = record.get("question")
    if isinstance(question, dict):  # original jsonl: {"answerKey", "question": {"stem", "choices": [{label, text}]}}
        options = question.get("choices")
        if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
            raise XtremeError(f"{where}: question.choices must be a list of {{label, text}} objects")
        keys, texts = [o.get("label") for o in options], [o.get("text") for o in options]
        question = question.get("stem")
    else:
        options = record.get("choices")
        if not isinstance(options, dict) or not isinstance(options.get("label"), list):
            raise XtremeError(f"{where}: 'choices' must be an object with 'label' and 'text' lists")
        keys, texts = options["label"], options.get("text") or []
    if len(keys) != len(texts) or len(set(keys)) != len(keys):
        raise XtremeError(f"{where}: choices have labels {keys} for {len(texts)} texts; expected one text per label")
    return _text(question, where, "question"), dict(zip(keys, texts)), record.get("answerKey")


def _cosmosqa(record: dict, where: str) -> tuple:
    """Cosmos QA: context = context + " " + question (jiant's input), choices answer0..answer3."""
    context = _text(record.get("context"), where, "context") + " " + _text(record.get("question"), where, "question")
    choices = [record.get(f"answer{i}") for i in range(10) if f"answer{i}" in record]
    return context, choices, record.get("label")


def _standard_choices(record: dict, where: str) -> tuple:
    return _text(record.get("context"), where, "context"), record.get("choices"), record.get("label")


MC_SCHEMAS = {"hellaswag": _hellaswag, "commonsenseqa": _commonsenseqa, "cosmosqa": _cosmosqa}
SCHEMAS = (*MC_SCHEMAS, "ccg")


def multiple_choice_row(record, task: Task, where: str) -> dict:
    """One record of the task's schema (or the standard `context`/`choices`/`label` one) as a checked row.

    Exactly `len(task.labels)` non-empty choices; the label is a choice name (`task.labels`: "0".."3", "A".."E")
    or its index, and is left out when it is absent, "" or -1 (unlabelled test data).
    """
    if not isinstance(record, dict):
        raise XtremeError(f"{where}: expected a JSON object")
    standard = "context" in record and isinstance(record.get("choices"), list)
    context, choices, label = (_standard_choices if standard or task.schema not in MC_SCHEMAS
                               else MC_SCHEMAS[task.schema])(record, where)
    names = list(task.labels)
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
    row = {"context": context, "choices": choices}
    text = "" if label is None else str(label)
    if text not in ("", "-1"):
        if text in names:
            row["label"] = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            row["label"] = int(text)
        else:
            raise XtremeError(f"{where}: label {text!r} out of range; expected one of {', '.join(names)}")
    return row


def _checked_labels(rows: list[dict], wheres: list[str]) -> list[dict]:
    """All rows labelled, or none (a test file): a file mixing both has a gap to report."""
    labelled = ["label" in row for row in rows]
    if any(labelled) and not all(labelled):
        raise XtremeError(f"{wheres[labelled.index(False)]}: no label, though other examples have one")
    return rows


def read_multiple_choice(path: Path, task: Task) -> list[dict]:
    """JSON lines (or a JSON list, or a csv with a header) in the dataset's own schema -> standard rows."""
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            records = []
            for record in reader:
                records.append((reader.line_num, record))
    else:
        records = read_json_records(path)
    wheres = [f"{path}:{number}" for number, _ in records]
    rows = [multiple_choice_row(record, task, where) for (_, record), where in zip(records, wheres)]
    return _checked_labels(rows, wheres)


def read_rows(path: str | Path, task: Task) -> list[dict]:
    path = Path(path)
    if task.schema == "ccg":
        rows = read_ccg(path)
        if not rows:
            raise XtremeError(f"{path}: no sentences found")
        return rows
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise XtremeError(f"{path}: empty file")
    suffix = path.suffix.lower()
    if task.kind == MULTIPLE_CHOICE:
        rows = read_multiple_choice(path, task)
    elif suffix in (".jsonl", ".json"):
        rows = read_json_rows(path, task)
    elif suffix == ".conllu":
        if task.kind != TAGGING:
            raise XtremeError(f"{path}: CoNLL-U files are for tagging tasks, not {task.name} ({task.kind})")
        rows = read_conllu(path)
    elif task.kind == CLASSIFICATION:
        rows = read_pair_tsv(path, task)
    elif task.kind == TAGGING:
        rows = read_conll_tsv(path)
    else:
        raise XtremeError(f"{path}: no reader for {task.kind} files with suffix {suffix!r}")
    if not rows:
        raise XtremeError(f"{path}: no examples found")
    return rows


# --- labels ---------------------------------------------------------------------------------------------------

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
    """Replace label names by ids (matched by name); drop rows without a gold label, counted in one warning."""
    column = LABEL_COLUMN[kind]
    label2id = {name: i for i, name in enumerate(labels)}

    def encode(value, line):
        text = str(value)
        if text in label2id:
            return label2id[text]
        alias = LABEL_ALIASES.get(text)
        if alias in label2id:
            return label2id[alias]
        if int_names and text.isdigit():
            index = int(text)
            if 0 <= index < len(int_names) and int_names[index] in label2id:
                return label2id[int_names[index]]
        raise XtremeError(f"{source}:{line}: unknown label {text!r}; expected one of: {', '.join(labels)}")

    if not any(column in row for row in rows):
        return rows
    out, dropped = [], 0
    for row in rows:
        value = row.get(column)
        if kind == CLASSIFICATION and (value is None or str(value) in NO_LABEL):
            dropped += 1
            continue
        if value is None:
            raise XtremeError(f"{source}:{row['_line']}: missing {column}; expected every example to be labelled")
        if kind == TAGGING:
            if len(value) != len(row["tokens"]):
                raise XtremeError(f"{source}:{row['_line']}: {len(row['tokens'])} tokens but {len(value)} tags")
            value = [encode(v, line) for v, line in zip(value, row.get("_lines", [row["_line"]] * len(value)))]
        else:
            value = encode(value, row["_line"])
        out.append({**row, column: value})
    if dropped:
        logger.warning("%s: dropped %d example(s) without a gold label", source, dropped)
    if not out:
        raise XtremeError(f"{source}: no labelled examples")
    return out


def rows_to_dataset(rows: list[dict], kind: str):
    from datasets import Dataset

    columns = [c for c in TEXT_COLUMNS[kind] + (LABEL_COLUMN[kind],) if c in rows[0]]
    return Dataset.from_dict({c: [row[c] for row in rows] for c in columns})


# --- the Hub --------------------------------------------------------------------------------------------------

def local_alternative(task: Task, split: str, lang: str) -> str:
    """How to give a task's split as local files instead of loading it from the Hub (named in Hub errors)."""
    flag = "--train_file FILE" if split == "train" else "--validation_file FILE (--eval_file in run_xtreme_eval.py)"
    layout = task.local.get(split)
    return (f"--data_dir DIR holding DIR/{layout.format(lang=lang)}, or " if layout else "") + flag


def load_hub_dataset(source: HubSource, lang: str, hub_kwargs: dict, local: str):
    """One Hub split as a Dataset (and its name for messages). When it cannot be loaded (a dataset that is only a
    loading script, which datasets >= 4 cannot run; a missing revision, config or split; no network) the error
    names the dataset, config and split, the cause, and `local`: the local files that would replace it."""
    from datasets import load_dataset

    name_of_lang = LANG_NAMES.get(lang, lang)
    config = source.config.format(lang=lang, lang_name=name_of_lang) if source.config else None
    revision = f" (revision {source.revision})" if source.revision else ""
    name = f"{source.path}" + (f" config {config}" if config else "") + f" split {source.split}"
    if source.revision:
        hub_kwargs = {**hub_kwargs, "revision": source.revision}
    try:
        dataset = load_dataset(source.path, config, split=source.split, **hub_kwargs)
    except Exception as err:  # a script, a missing revision/config/split, the network: all end the same way
        cause = " ".join(str(err).split())[:300]
        raise XtremeError(f"could not load {name}{revision} from the Hub ({type(err).__name__}: {cause}); use "
                          f"local files instead: {local}") from None
    if source.id_prefix:
        prefix = source.id_prefix.format(lang_name=name_of_lang.lower())
        dataset = dataset.filter(lambda b: [i.startswith(prefix) for i in b["id"]], batched=True,
                                 desc=f"Keeping ids {prefix}*")
    return dataset, name


def load_hub(source: HubSource, split: str, lang: str, task: Task, labels: list[str], hub_kwargs: dict):
    """One Hub split in our columns, labels mapped by name (ClassLabel names, or `source.label_names`)."""
    from datasets import ClassLabel, Sequence

    dataset, name = load_hub_dataset(source, lang, hub_kwargs, local_alternative(task, split, lang))
    label_col = LABEL_COLUMN[task.kind]
    hub_label = source.columns.get(label_col, label_col)
    renames = {hub: ours for ours, hub in source.columns.items() if hub != ours and hub in dataset.column_names}
    dataset = dataset.rename_columns(renames)
    keep = [c for c in TEXT_COLUMNS[task.kind] + (label_col,) if c in dataset.column_names]
    if label_col not in dataset.column_names:
        raise XtremeError(f"{name}: no label column {hub_label!r}; columns are {', '.join(dataset.column_names)}")
    feature = dataset.features[label_col]
    inner = feature.feature if isinstance(feature, Sequence) else feature[0] if isinstance(feature, list) else feature
    names = inner.names if isinstance(inner, ClassLabel) else source.label_names
    label2id = {n: i for i, n in enumerate(labels)}

    def to_id(value):
        text = names[value] if names is not None and isinstance(value, int) and value >= 0 else str(value)
        text = LABEL_ALIASES.get(text, text)
        if text not in label2id:
            raise XtremeError(f"{name}: unknown label {text!r}; expected one of: {', '.join(labels)}")
        return label2id[text]

    before = len(dataset)
    if task.kind == CLASSIFICATION:
        dataset = dataset.filter(lambda b: [v is not None and str(v) not in NO_LABEL for v in b[label_col]],
                                 batched=True, desc="Dropping examples without gold label")
    if len(dataset) < before:
        logger.warning("%s: dropped %d example(s) without a gold label", name, before - len(dataset))
    encode = (lambda b: {label_col: [[to_id(v) for v in seq] for seq in b[label_col]]}) if task.kind == TAGGING \
        else (lambda b: {label_col: [to_id(v) for v in b[label_col]]})
    dataset = dataset.select_columns(keep).map(encode, batched=True, desc="Mapping labels by name")
    return dataset


def load_qa(task: Task, split: str, lang: str, paths: list[str] | None, hub_kwargs: dict,
            skip_misaligned_answers: bool):
    """SQuAD-format QA rows (id, title, context, question, answers) from JSON files or the Hub, answers checked."""
    from datasets import Dataset

    from .qa import read_squad_json, validate_answers

    strict = not skip_misaligned_answers
    if paths is not None:
        for path in paths:
            if not Path(path).is_file():
                raise MissingDataError(f"{path}: file not found")
        return Dataset.from_list([row for path in paths for row in read_squad_json(path, strict)])
    rows = []
    for source in task.hub_sources(split):
        if "{lang" not in f"{source.config}{source.id_prefix}" and lang != task.train_language:
            raise MissingDataError(f"task {task.name}: no {split} data for {lang} ({source.path} is English only)")
        dataset, name = load_hub_dataset(source, lang, hub_kwargs, local_alternative(task, split, lang))
        rows += validate_answers(dataset.select_columns(["id", "context", "question", "answers"]), name, strict)
    if not rows:
        raise MissingDataError(f"task {task.name}: no Hub source for the {split} split of {lang}")
    return Dataset.from_list(rows)


def load_multiple_choice(task: Task, split: str, lang: str, paths: list[str] | None, hub_kwargs: dict):
    """Multiple-choice rows (context, choices, label) from local files or the Hub, in the task's schema."""
    from datasets import Dataset

    if paths is not None:
        rows = [row for path in paths for row in read_rows(path, task)]
    else:
        rows = []
        for source in task.hub_sources(split):
            if lang != task.train_language:
                raise MissingDataError(f"task {task.name}: no {split} data for {lang} ({source.path} is English only)")
            dataset, name = load_hub_dataset(source, lang, hub_kwargs, local_alternative(task, split, lang))
            wheres = [f"{name} row {i}" for i in range(len(dataset))]
            rows += _checked_labels([multiple_choice_row(r, task, w) for r, w in zip(dataset, wheres)], wheres)
        if not rows:
            raise MissingDataError(f"task {task.name}: no Hub source for the {split} split of {lang}")
    if any("label" in row for row in rows) and not all("label" in row for row in rows):
        raise XtremeError(f"task {task.name} {split}: some files are labelled and some are not; pool only labelled "
                          "files for training and evaluation")
    return Dataset.from_list([{k: v for k, v in row.items() if k != "_line"} for row in rows])


# --- one entry point --------------------------------------------------------------------------------------------

def resolve_files(task: Task, split: str, lang: str, files: list[str] | None, spec_files: dict,
                  data_dir: str | None) -> list[str] | None:
    """Local files for (split, lang): explicit files, then the spec's, then `data_dir`'s layout; None = the Hub."""
    if files:
        return [f.format(lang=lang) for f in files]

    def per_language(pattern: str) -> str:
        if "{lang}" not in pattern and lang != task.train_language:
            raise MissingDataError(f"task {task.name}: no {split} file for {lang} ({pattern} is {task.train_language} "
                                   "only)")
        return pattern.format(lang=lang)

    entry = spec_files.get(split)
    if isinstance(entry, dict):
        if lang not in entry:
            raise XtremeError(f"task {task.name}: its spec names no {split} file for language {lang!r} "
                              f"(has {', '.join(entry)})")
        return [entry[lang]]
    if entry:
        return [per_language(str(entry))]
    if data_dir:
        if split not in task.local:
            raise XtremeError(f"task {task.name}: no {split} file layout under --data_dir; pass the file explicitly")
        return [str(Path(data_dir) / per_language(task.local[split]))]
    return None


def load_split(task: Task, split: str, lang: str, labels: list[str] | None, *, files: list[str] | None = None,
               spec_files: dict | None = None, data_dir: str | None = None, hub_kwargs: dict | None = None,
               max_samples: int | None = None, skip_misaligned_answers: bool = False):
    """A task's split for one language as a Dataset in the standard columns, from local files or the Hub.

    Several files (or Hub sources, e.g. ANLI+'s five) are pooled. `labels=None` builds the label list from
    this data (training split of a task without a fixed list); the list used is returned alongside.
    """
    from datasets import concatenate_datasets

    paths = resolve_files(task, split, lang, files, spec_files or {}, data_dir)
    if task.kind == QA:
        parts = [load_qa(task, split, lang, paths, hub_kwargs or {}, skip_misaligned_answers)]
    elif task.kind == MULTIPLE_CHOICE:
        parts = [load_multiple_choice(task, split, lang, paths, hub_kwargs or {})]
    elif paths is not None:
        per_file = [(path, read_rows(path, task)) for path in paths]
        if labels is None:
            labels = label_names_from_rows([r for _, rows in per_file for r in rows], task.kind)
        parts = [rows_to_dataset(encode_labels(rows, labels, path, task.kind, task.int_labels or task.labels), task.kind)
                 for path, rows in per_file]
    else:
        sources = task.hub_sources(split)
        if not sources:
            raise XtremeError(f"task {task.name}: no Hub source for the {split} split; pass local files")
        if labels is None:
            raise XtremeError(f"task {task.name}: no fixed label list, so its data must come from local files")
        parts = [load_hub(source, split, lang, task, labels, hub_kwargs or {}) for source in sources]
    columns = set.intersection(*(set(p.column_names) for p in parts))
    dataset = concatenate_datasets([p.select_columns(sorted(columns)) for p in parts]) if len(parts) > 1 else parts[0]
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset, labels


def label_names_from_files(task: Task, split_files: list[tuple[str, list[str] | None]]) -> list[str] | None:
    """The label list of a task without a fixed one, from every tag in its local train and dev files (jiant's
    `ccg_to_num` maps the tags of all splits, so a tag seen only in dev is a wrong prediction, not a crash).
    None when the training data is not local. Dev files that do not exist are left to the dev loading."""
    rows = []
    for split, paths in split_files:
        if paths is None:
            if split == "train":
                return None
            continue
        for path in paths:
            try:
                rows += read_rows(path, task)
            except MissingDataError:
                if split == "train":
                    raise
    return label_names_from_rows(rows, task.kind)


def load_train_and_dev(task: Task, data_args, model_args, spec_files: dict):
    """The English training and dev sets of a task (or the user's files), with the label list they use.

    A task without a fixed label list (CCG, a spec without `labels`) gets the sorted tags of its train and dev files.
    """
    common = {"spec_files": spec_files, "data_dir": data_args.data_dir,
              "hub_kwargs": {"cache_dir": model_args.cache_dir, "token": model_args.token},
              "skip_misaligned_answers": data_args.skip_misaligned_answers}
    labels = list(task.labels) if task.labels else None
    if labels is None and task.kind in LABEL_COLUMN:
        split_files = [("train", resolve_files(task, "train", task.train_language, data_args.train_file, spec_files,
                                               data_args.data_dir))]
        try:
            split_files.append(("dev", resolve_files(task, "dev", task.train_language, data_args.validation_file,
                                                     spec_files, data_args.data_dir)))
        except XtremeError:  # no dev layout: the dev loading below says so
            pass
        labels = label_names_from_files(task, split_files)
    train, labels = load_split(task, "train", task.train_language, labels,
                               files=data_args.train_file, max_samples=data_args.max_train_samples, **common)
    try:
        dev, _ = load_split(task, "dev", task.train_language, labels, files=data_args.validation_file,
                            max_samples=data_args.max_eval_samples, **common)
    except MissingDataError:
        if data_args.validation_file:
            raise
        logger.warning("No %s dev set found: training without model selection", task.name)
        dev = None
    return train, dev, labels
