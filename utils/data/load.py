"""Load any task's split for one language, from local files (explicit, a spec's, or the registry's layout under
`--data_dir`) or from the task's Hub sources, as a Dataset in the standard columns of its kind."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import MissingDataError, XtremeError
from ..tasks import CLASSIFICATION, MULTIPLE_CHOICE, QA, TAGGING, Task
from .choices import checked_rows, read_multiple_choice
from .conllu import read_conllu
from .hub import load_hub_dataset, load_labelled_hub
from .labels import LABEL_COLUMN, TEXT_COLUMNS, encode_labels, label_names_from_rows
from .readers import read_conll_tsv, read_json_rows, read_pair_tsv

logger = logging.getLogger(__name__)


def _read_by_suffix(path: Path, task: Task) -> list[dict]:
    suffix = path.suffix.lower()
    if task.kind == MULTIPLE_CHOICE:
        return read_multiple_choice(path, task)
    if suffix in (".jsonl", ".json"):
        return read_json_rows(path, TEXT_COLUMNS[task.kind] + (LABEL_COLUMN[task.kind],), LABEL_COLUMN[task.kind],
                              task.columns)
    if suffix == ".conllu":
        if task.kind != TAGGING:
            raise XtremeError(f"{path}: CoNLL-U files are for tagging tasks, not {task.name} ({task.kind})")
        return read_conllu(path)
    if task.kind == CLASSIFICATION:
        return read_pair_tsv(path, task.columns)
    if task.kind == TAGGING:
        return read_conll_tsv(path)
    raise XtremeError(f"{path}: no reader for {task.kind} files with suffix {suffix!r}")


def read_rows(path: str | Path, task: Task) -> list[dict]:
    """The rows of one local file: the task's own reader, else the kind's reader for the file's suffix."""
    path = Path(path)
    if task.reader is not None:
        return task.reader(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise XtremeError(f"{path}: empty file")
    rows = _read_by_suffix(path, task)
    if not rows:
        raise XtremeError(f"{path}: no examples found")
    return rows


def _layout_path(task: Task, split: str, lang: str, data_dir: str) -> str:
    """The file of (split, lang) under `data_dir`: the first of the split's layouts that exists (else the first)."""
    patterns = task.local_patterns(split)
    if not patterns:
        raise XtremeError(f"task {task.name}: no {split} file layout under --data_dir; pass the file explicitly")
    usable = [p for p in patterns if "{lang}" in p or lang == task.train_language]
    if not usable:
        raise MissingDataError(f"task {task.name}: no {split} file for {lang} ({' or '.join(patterns)} is "
                               f"{task.train_language} only)")
    paths = [Path(data_dir) / p.format(lang=lang) for p in usable]
    return str(next((path for path in paths if path.exists()), paths[0]))


def resolve_files(task: Task, split: str, lang: str, files: list[str] | None, spec_files: dict,
                  data_dir: str | None) -> list[str] | None:
    """Local files for (split, lang): explicit files, then the spec's, then `data_dir`'s layout; None = the Hub."""
    if files:
        return [f.format(lang=lang) for f in files]
    entry = spec_files.get(split)
    if isinstance(entry, dict):
        if lang not in entry:
            raise XtremeError(f"task {task.name}: its spec names no {split} file for language {lang!r} "
                              f"(has {', '.join(entry)})")
        return [entry[lang]]
    if entry:
        if "{lang}" not in str(entry) and lang != task.train_language:
            raise MissingDataError(f"task {task.name}: no {split} file for {lang} ({entry} is {task.train_language} "
                                   "only)")
        return [str(entry).format(lang=lang)]
    if data_dir:
        return [_layout_path(task, split, lang, data_dir)]
    return None


def hub_sources(task: Task, split: str, lang: str) -> tuple:
    """The task's Hub sources of a split that hold `lang` (an error naming what there is, when none does)."""
    sources = task.hub_sources(split)
    if not sources:
        raise MissingDataError(f"task {task.name}: no Hub source for the {split} split; pass local files")
    serving = task.hub_sources(split, lang)
    if not serving:
        raise MissingDataError(f"task {task.name}: no {split} data for {lang} on the Hub "
                               f"({', '.join(s.path for s in sources)}: {task.train_language} only)")
    return serving


def load_qa(task: Task, split: str, lang: str, paths: list[str] | None, hub_kwargs: dict,
            skip_misaligned_answers: bool):
    """SQuAD-format QA rows (id, title, context, question, answers) from JSON files or the Hub, answers checked."""
    from datasets import Dataset

    from ..qa import read_squad_json, validate_answers

    strict = not skip_misaligned_answers
    if paths is not None:
        for path in paths:
            if not Path(path).is_file():
                raise MissingDataError(f"{path}: file not found")
        return Dataset.from_list([row for path in paths for row in read_squad_json(path, strict)])
    rows = []
    for source in hub_sources(task, split, lang):
        dataset, name = load_hub_dataset(source, task, split, lang, hub_kwargs)
        rows += validate_answers(dataset.select_columns(["id", "context", "question", "answers"]), name, strict)
    return Dataset.from_list(rows)


def load_multiple_choice(task: Task, split: str, lang: str, paths: list[str] | None, hub_kwargs: dict):
    """Multiple-choice rows (context, choices, label) from local files or the Hub, in the task's schema."""
    from datasets import Dataset

    if paths is not None:
        rows = [row for path in paths for row in read_rows(path, task)]
    else:
        rows = []
        for source in hub_sources(task, split, lang):
            dataset, name = load_hub_dataset(source, task, split, lang, hub_kwargs)
            rows += checked_rows(list(dataset), task, [f"{name} row {i}" for i in range(len(dataset))])
    if any("label" in row for row in rows) and not all("label" in row for row in rows):
        raise XtremeError(f"task {task.name} {split}: some files are labelled and some are not; pool only labelled "
                          "files for training and evaluation")
    return Dataset.from_list([{k: v for k, v in row.items() if k != "_line"} for row in rows])


def rows_to_dataset(rows: list[dict], kind: str):
    from datasets import Dataset

    columns = [c for c in TEXT_COLUMNS[kind] + (LABEL_COLUMN[kind],) if c in rows[0]]
    return Dataset.from_dict({c: [row[c] for row in rows] for c in columns})


def _load_labelled(task: Task, split: str, lang: str, labels: list[str] | None, paths: list[str] | None,
                   hub_kwargs: dict) -> tuple[list, list[str] | None]:
    """Classification or tagging parts (one per file or Hub source) and the label list they use."""
    if paths is not None:
        per_file = [(path, read_rows(path, task)) for path in paths]
        if labels is None:
            labels = label_names_from_rows([r for _, rows in per_file for r in rows], task.kind)
        return [rows_to_dataset(encode_labels(rows, labels, path, task.kind, task.int_labels or task.labels),
                                task.kind) for path, rows in per_file], labels
    sources = hub_sources(task, split, lang)
    if labels is None:
        raise XtremeError(f"task {task.name}: no fixed label list, so its data must come from local files")
    return [load_labelled_hub(source, split, lang, task, labels, hub_kwargs) for source in sources], labels


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
    elif task.kind in LABEL_COLUMN:
        parts, labels = _load_labelled(task, split, lang, labels, paths, hub_kwargs or {})
    else:
        raise XtremeError(f"task {task.name}: {task.kind} tasks have no examples to load (they embed sentences)")
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


def _data_labels(task: Task, data_args, spec_files: dict) -> list[str] | None:
    """The label list of a task without a fixed one: the sorted tags of its train and dev files."""
    split_files = [("train", resolve_files(task, "train", task.train_language, data_args.train_file, spec_files,
                                           data_args.data_dir))]
    try:
        split_files.append(("dev", resolve_files(task, "dev", task.train_language, data_args.validation_file,
                                                 spec_files, data_args.data_dir)))
    except XtremeError:  # no dev layout: the dev loading says so
        pass
    return label_names_from_files(task, split_files)


def load_train_and_dev(task: Task, data_args, model_args, spec_files: dict):
    """The English training and dev sets of a task (or the user's files), with the label list they use.

    A task without a fixed label list (CCG, a spec without `labels`) gets the sorted tags of its train and dev files.
    """
    common = {"spec_files": spec_files, "data_dir": data_args.data_dir,
              "hub_kwargs": {"cache_dir": model_args.cache_dir, "token": model_args.token},
              "skip_misaligned_answers": data_args.skip_misaligned_answers}
    labels = list(task.labels) if task.labels else None
    if labels is None and task.kind in LABEL_COLUMN:
        labels = _data_labels(task, data_args, spec_files)
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
