"""Retrieval data: a task's sentence files, found through its registry layouts (`Bitext`) or a spec's files, or its
Hub copy, read into the sentences of both sides and the gold alignment.

Nearest-neighbour tasks (Tatoeba) have a sentence per line: line-aligned files (gold = identity), or an English side
in another order with the alignment in a labels file. Mining tasks (BUCC) have `id<TAB>sentence` lines and gold
`id<TAB>id` pairs, where the split has them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .data.hub import load_hub_dataset, local_alternative, unusable
from .data.load import hub_sources
from .errors import MissingDataError, XtremeError
from .lines import read_lines
from .tasks import Bitext, Task


@dataclass
class PairedSentences:
    """One language pair of a nearest-neighbour task. `gold[i]` is the index in `sentences` of the translation of
    `en_sentences[i]` (None when the English side is in another order and no labels were given: predictions only)."""

    lang: str  # XTREME code
    sentences: list[str]  # non-English side, in file order (the search index)
    en_sentences: list[str]  # English side (the queries)
    gold: list[int] | None
    source: str  # files or Hub config it was read from


@dataclass
class MiningData:
    """One split of a mining task: sentences with their ids on both sides, and the gold (src_id, en_id) pairs if any."""

    lang: str
    split: str
    src_ids: list[str]
    src_sentences: list[str]
    en_ids: list[str]
    en_sentences: list[str]
    gold: set[tuple[str, str]] | None


def read_indices(path: Path) -> list[int]:
    """Nearest-neighbour labels or predictions: one sentence index per line; XTREME's bracketed form "[367]" (what
    its scripts write, `str` of a numpy array) is read as 367."""
    indices = []
    for number, line in enumerate(read_lines(path), 1):
        value = line.strip().removeprefix("[").removesuffix("]").strip()
        if not value.isdigit():
            raise XtremeError(f"{path}:{number}: expected a sentence index (an integer >= 0), got {line!r}")
        indices.append(int(value))
    return indices


# ------------------------------------------------------------------------------------------- finding the files


def _in_folders(layout: Bitext, root: Path, lang: str, code: str) -> tuple[Path, Path, Path | None] | None:
    """The layout's files in the first of its folders holding either of them; an error if only one is there."""
    sentences, english, gold = layout.paths(lang, code)
    for folder in layout.folders:
        base = root / folder
        paths = (base / sentences, base / english)
        present = [p.is_file() for p in paths]
        if all(present):
            return (*paths, base / gold if gold else None)
        if any(present):
            missing = paths[present.index(False)]
            raise XtremeError(f"{missing} not found: expected it next to {paths[present.index(True)].name}")
    return None


def find_bitext(task: Task, split: str, lang: str, data_dir: str | Path | None,
                spec_files: dict | None = None) -> tuple[Bitext, tuple] | None:
    """The layout and files of (split, lang): the spec's files, else the registry's layouts under `data_dir`
    (tried in order); None when neither is given (the Hub)."""
    code2, code3 = task.code(lang)
    if spec_files and split in spec_files:
        root, layouts = Path(""), spec_files[split]
    elif data_dir:
        root, layouts = Path(data_dir), task.local_patterns(split)
    else:
        return None
    for layout in layouts:
        found = _in_folders(layout, root, code2, code3)
        if found:
            return layout, found
    folders = " or ".join(str(root / f) for f in dict.fromkeys(f for layout in layouts for f in layout.folders))
    expected = " or ".join(" + ".join(layout.paths(code2, code3)[:2]) for layout in layouts)
    raise MissingDataError(f"no {task.name} files for {code2} in {folders}: expected {expected}")


# --------------------------------------------------------------------------------------------- nearest neighbour


def _read_labels(path: Path, n_en: int, n_src: int) -> list[int]:
    """Gold labels: for English line i, the index of its translation; each index once."""
    if not path.is_file():
        raise XtremeError(f"labels file {path} not found")
    labels = read_indices(path)
    for number, label in enumerate(labels, 1):
        if label >= n_src:
            raise XtremeError(f"{path}:{number}: label {label} out of range: expected 0..{n_src - 1}")
    if len(labels) != n_en:
        raise XtremeError(f"{path}: {len(labels)} labels, expected one per English sentence ({n_en})")
    repeated = [label for label, count in Counter(labels).items() if count > 1]
    if repeated:
        raise XtremeError(f"{path}: label {repeated[0]} occurs more than once: expected each line index once")
    return labels


def read_paired(task: Task, data_dir: str | Path | None, lang: str, labels_file: str | Path | None = None,
                split: str = "test", spec_files: dict | None = None) -> PairedSentences:
    """One language pair of a nearest-neighbour task from local files (`lang` in XTREME's or the task's own code),
    or from the Hub when no files are given. `labels_file` (one integer per line: for English line i, the index of
    its translation) gives the gold of files whose English side is not aligned, and overrides the gold of aligned
    ones."""
    found = find_bitext(task, split, lang, data_dir, spec_files)
    if found is None:
        return load_hub_paired(task, split, lang)
    layout, (source_path, english_path, _) = found
    sentences, en_sentences = read_lines(source_path), read_lines(english_path)
    if not sentences:
        raise XtremeError(f"{source_path} is empty: expected one sentence per line")
    if len(sentences) != len(en_sentences):
        raise XtremeError(f"{source_path} has {len(sentences)} lines but {english_path} has {len(en_sentences)}: "
                          "expected the same number")
    gold = list(range(len(sentences))) if layout.aligned else None
    if labels_file is not None:
        gold = _read_labels(Path(labels_file), len(en_sentences), len(sentences))
    return PairedSentences(task.code(lang)[0], sentences, en_sentences, gold, f"{source_path} + {english_path}")


def load_hub_paired(task: Task, split: str, lang: str) -> PairedSentences:
    """A language pair from the task's Hub source: its `sentences` and `english` columns, line-aligned (gold =
    identity)."""
    lang = task.code(lang)[0]
    source = hub_sources(task, split, lang)[0]
    rows, name = load_hub_dataset(source, task, split, lang, {})
    columns = {ours: source.columns.get(ours, ours) for ours in ("sentences", "english")}
    missing = set(columns.values()) - set(rows.column_names)
    if missing:
        raise XtremeError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
    sentences = [s.rstrip("\r\n") for s in rows[columns["sentences"]]]
    en_sentences = [s.rstrip("\r\n") for s in rows[columns["english"]]]
    return PairedSentences(lang, sentences, en_sentences, list(range(len(sentences))), name)


# ------------------------------------------------------------------------------------------------------ mining


def _read_id_sentences(path: Path) -> tuple[list[str], list[str]]:
    ids, sentences, seen = [], [], set()
    for number, line in enumerate(read_lines(path), 1):
        sent_id, tab, sentence = line.partition("\t")
        if not tab or not sent_id:
            raise XtremeError(f"{path}:{number}: expected 'id<TAB>sentence', got {line[:60]!r}")
        if sent_id in seen:
            raise XtremeError(f"{path}:{number}: duplicate id {sent_id!r}: expected each id once")
        seen.add(sent_id)
        ids.append(sent_id)
        sentences.append(sentence)
    return ids, sentences


def _read_gold_pairs(path: Path, src_ids: set[str], en_ids: set[str]) -> set[tuple[str, str]]:
    gold = set()
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise XtremeError(f"{path}:{number}: expected 'src_id<TAB>en_id', got {line[:60]!r}")
        for sent_id, known, side in ((fields[0], src_ids, "source"), (fields[1], en_ids, "English")):
            if sent_id not in known:
                raise XtremeError(f"{path}:{number}: unknown {side} id {sent_id!r}: expected an id of the {side} file")
        gold.add((fields[0], fields[1]))
    return gold


def read_mining(task: Task, data_dir: str | Path | None, lang: str, split: str,
                spec_files: dict | None = None) -> MiningData:
    """One split of a mining task: `id<TAB>sentence` files of both sides and, when present, the gold pairs
    (`src_id<TAB>en_id`). BUCC in XTREME's layout: split "dev" = the BUCC sample (with gold), "test" = the BUCC
    training data (gold removed). Mining needs the non-parallel sentences too, so it reads local files only."""
    found = find_bitext(task, split, lang, data_dir, spec_files)
    if found is None:
        refused = [source for source in task.hub_sources(split, lang) if source.unusable]
        if refused:
            raise unusable(refused[0], task, split, lang)
        raise MissingDataError(f"task {task.name}: mining reads local files only; pass "
                               f"{local_alternative(task, split, lang)}")
    _, (source_path, english_path, gold_path) = found
    src_ids, src_sentences = _read_id_sentences(source_path)
    en_ids, en_sentences = _read_id_sentences(english_path)
    has_gold = gold_path is not None and gold_path.is_file()
    gold = _read_gold_pairs(gold_path, set(src_ids), set(en_ids)) if has_gold else None
    return MiningData(lang, split, src_ids, src_sentences, en_ids, en_sentences, gold)
