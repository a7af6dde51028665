"""The one Hub loader: a registry `HubSource` for one language as a Dataset (every kind, retrieval too)."""

from __future__ import annotations

import logging

from ..errors import XtremeError
from ..tasks import CLASSIFICATION, RETRIEVAL, TAGGING, HubSource, Task
from .labels import LABEL_COLUMN, TEXT_COLUMNS, LabelEncoder, has_gold

logger = logging.getLogger(__name__)


def local_alternative(task: Task, split: str, lang: str) -> str:
    """How to give a task's split as local files instead of loading it from the Hub (named in Hub errors)."""
    if task.kind == RETRIEVAL:
        layouts = [layout.paths(*task.code(lang))[:2] for layout in task.local_patterns(split)]
        return "--data_dir DIR holding " + ", or ".join(f"{sentences} and {english}" for sentences, english in layouts)
    flag = "--train_file FILE" if split == "train" else "--validation_file FILE (--eval_file in run_xtreme_eval.py)"
    layouts = [p.format(lang=lang) for p in task.local_patterns(split)]
    return (f"--data_dir DIR holding DIR/{' or DIR/'.join(layouts)}, or " if layouts else "") + flag


def unusable(source: HubSource, task: Task, split: str, lang: str) -> XtremeError:
    """The error for a Hub copy the registry marks unusable for its task: why, and the local files to use."""
    return XtremeError(f"{source.path} config '{source.config_for(lang, task.code(lang)[1])}' cannot be used for "
                       f"task {task.name}: {source.unusable}; use local files instead: "
                       f"{local_alternative(task, split, lang)}")


def load_hub_dataset(source: HubSource, task: Task, split: str, lang: str, hub_kwargs: dict):
    """One Hub split of `task` for `lang` as a Dataset, and its name for messages. When it cannot be loaded (a
    source the registry marks unusable; a dataset that is only a loading script, which datasets >= 4 cannot run;
    a missing revision, config or split; no network) the error names the dataset, config and split, the cause,
    and the local files that would replace it."""
    from datasets import load_dataset

    config = source.config_for(lang, task.code(lang)[1])
    name = f"{source.path}" + (f" config {config}" if config else "") + f" split {source.split}"
    if source.unusable:
        raise unusable(source, task, split, lang)
    if source.revision:
        hub_kwargs = {**hub_kwargs, "revision": source.revision}
    try:
        dataset = load_dataset(source.path, config, split=source.split, **hub_kwargs)
    except Exception as err:  # a script, a missing revision/config/split, the network: all end the same way
        cause = " ".join(str(err).split())[:300]
        revision = f" (revision {source.revision})" if source.revision else ""
        raise XtremeError(f"could not load {name}{revision} from the Hub ({type(err).__name__}: {cause}); use "
                          f"local files instead: {local_alternative(task, split, lang)}") from None
    prefix = source.id_prefix_for(lang)
    if prefix:
        dataset = dataset.filter(lambda b: [i.startswith(prefix) for i in b["id"]], batched=True,
                                 desc=f"Keeping ids {prefix}*")
    return dataset, name


def _class_names(feature) -> list | None:
    """The names of a (sequence of) ClassLabel feature, None for plain values."""
    from datasets import ClassLabel, Sequence

    inner = feature.feature if isinstance(feature, Sequence) else feature[0] if isinstance(feature, list) else feature
    return inner.names if isinstance(inner, ClassLabel) else None


def load_labelled_hub(source: HubSource, split: str, lang: str, task: Task, labels: list[str], hub_kwargs: dict):
    """One Hub split of a classification or tagging task in our columns, labels mapped by name."""
    dataset, name = load_hub_dataset(source, task, split, lang, hub_kwargs)
    label_col = LABEL_COLUMN[task.kind]
    renames = {hub: ours for ours, hub in source.columns.items() if hub != ours and hub in dataset.column_names}
    dataset = dataset.rename_columns(renames)
    if label_col not in dataset.column_names:
        hub_label = source.columns.get(label_col, label_col)
        raise XtremeError(f"{name}: no label column {hub_label!r}; columns are {', '.join(dataset.column_names)}")
    encode = LabelEncoder(labels, task.int_labels or task.labels, _class_names(dataset.features[label_col]))
    before = len(dataset)
    if task.kind == CLASSIFICATION:
        dataset = dataset.filter(lambda b: [has_gold(v) for v in b[label_col]], batched=True,
                                 desc="Dropping examples without gold label")
    if len(dataset) < before:
        logger.warning("%s: dropped %d example(s) without a gold label", name, before - len(dataset))
    encoded = (lambda b: {label_col: [[encode(v, name) for v in seq] for seq in b[label_col]]}) \
        if task.kind == TAGGING else (lambda b: {label_col: [encode(v, name) for v in b[label_col]]})
    keep = [c for c in TEXT_COLUMNS[task.kind] + (label_col,) if c in dataset.column_names]
    return dataset.select_columns(keep).map(encoded, batched=True, desc="Mapping labels by name")
