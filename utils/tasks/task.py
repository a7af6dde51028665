"""What a registry entry holds: a `Task` (kind, metric, labels, languages, XTREME category) and where its data
lives: `HubSource`s per split, local layouts per split (a path pattern under `--data_dir`, or `Bitext` layouts for
retrieval), and the record adapter or file reader of its own format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import XtremeError

CLASSIFICATION, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL = (
    "classification", "tagging", "qa", "multiple_choice", "retrieval")
KINDS = (CLASSIFICATION, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL)
SPLITS = ("train", "dev", "test")
# XTREME's task categories (evaluate.py's GROUP2TASK), in its order; each XTREME task names its own.
CATEGORIES = ("classification", "structured prediction", "question answering", "retrieval")

# Metric names: accuracy; f1 (seqeval span F1 for tagging, mined-pair F1 for retrieval); SQuAD v1.1 EM/F1; SQuAD 2.0
# EM/F1 (unanswerable questions); MLQA's EM/F1 (its language-specific answer normalisation).
ACCURACY, F1, SQUAD, SQUAD_V2, MLQA = "accuracy", "f1", "squad", "squad_v2", "mlqa"
METRICS = {CLASSIFICATION: (ACCURACY, F1), TAGGING: (F1, ACCURACY), QA: (SQUAD, SQUAD_V2, MLQA),
           MULTIPLE_CHOICE: (ACCURACY,), RETRIEVAL: (ACCURACY, F1)}  # first: the kind's default
# Retrieval searches: each English sentence's nearest neighbour among the other side's (Tatoeba; accuracy), or
# margin-based bitext mining with a score threshold chosen on dev gold (BUCC; F1 of the mined pairs).
NEAREST, MINING = "nearest", "mining"
SEARCH_METRIC = {NEAREST: ACCURACY, MINING: F1}

# English language names: google/xtreme's udpos configs ("udpos.German"), TyDiQA id prefixes ("german-...").
LANG_NAMES = {"bn": "Bengali", "sw": "Swahili",
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}


@dataclass(frozen=True)
class HubSource:
    """One Hub dataset split. `config` may hold `{lang}`, `{lang_name}` or `{code}` (the task's own code of the
    language); `columns` maps ours -> the Hub's. `id_prefix` keeps the rows whose id starts with it; its
    `{lang_name}` is lower-cased (TyDiQA: "english-")."""

    path: str
    config: str | None
    split: str
    columns: dict = field(default_factory=dict)
    id_prefix: str | None = None
    revision: str | None = None  # e.g. "refs/convert/parquet" for datasets whose main branch is a loading script
    languages: tuple | None = None  # what it holds; None: any language its config names, else the training language
    unusable: str | None = None  # why this Hub copy cannot be used for the task (the error says so, naming local files)

    def serves(self, lang: str, train_language: str) -> bool:
        if self.languages is not None:
            return lang in self.languages
        return "{" in f"{self.config}{self.id_prefix}" or lang == train_language

    def config_for(self, lang: str, code: str | None = None) -> str | None:
        names = {"lang": lang, "lang_name": LANG_NAMES.get(lang, lang), "code": code or lang}
        return self.config.format(**names) if self.config else None

    def id_prefix_for(self, lang: str) -> str | None:
        return self.id_prefix.format(lang_name=LANG_NAMES.get(lang, lang).lower()) if self.id_prefix else None


@dataclass(frozen=True)
class Bitext:
    """One file layout of a retrieval task for a language, `{lang}` (XTREME's code) and `{code}` (the task's own)
    filled in: the other language's sentences and the English side, found in the first of `folders` (under
    `--data_dir`) that holds either file. Nearest-neighbour files hold a sentence per line, line-aligned or (not
    `aligned`) with the alignment in a labels file; mining files hold `id<TAB>sentence` lines and `gold` pairs."""

    sentences: str
    english: str
    gold: str | None = None
    aligned: bool = True
    folders: tuple = ("",)

    def paths(self, lang: str, code: str) -> tuple[str, str, str | None]:
        fill = lambda pattern: pattern.format(lang=lang, code=code) if pattern else None  # noqa: E731
        return fill(self.sentences), fill(self.english), fill(self.gold)


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    metric: str  # one of METRICS[kind]
    languages: tuple = ("en",)
    labels: tuple | None = None  # None: built from the training file (e.g. CCG supertags)
    train_language: str = "en"
    # split -> path under --data_dir (may hold {lang}), or a tuple of them tried in order (the first that exists);
    # retrieval: split -> a tuple of Bitext layouts tried in order
    local: dict = field(default_factory=dict)
    hub: dict = field(default_factory=dict)  # split -> tuple of HubSource (pooled; those serving the language)
    columns: dict = field(default_factory=dict)  # our column -> its name in the files (and Hub rows)
    int_labels: tuple | None = None  # names of integer labels in Hub-schema files, when not `labels`' order
    record: Callable | None = None  # multiple choice: (record, where) -> (context, choices, label) of its schema
    reader: Callable | None = None  # path -> rows, for a format of its own (CCGbank)
    version_2_with_negative: bool = False  # QA: questions may have no answer (SQuAD 2.0)
    category: str | None = None  # XTREME's category (one of CATEGORIES); None: not one of XTREME's nine tasks
    split_languages: dict = field(default_factory=dict)  # split -> its languages, where fewer than `languages`
    search: str | None = None  # retrieval: NEAREST or MINING
    codes: dict = field(default_factory=dict)  # language -> the task's own code in file names and Hub configs
    description: str = ""

    def hub_sources(self, split: str, lang: str | None = None) -> tuple:
        """The Hub sources of a split (only those holding `lang`, when given)."""
        sources = self.hub.get(split, ())
        return sources if lang is None else tuple(s for s in sources if s.serves(lang, self.train_language))

    def local_patterns(self, split: str) -> tuple:
        layout = self.local.get(split, ())
        return (layout,) if isinstance(layout, str) else tuple(layout)

    def code(self, lang: str) -> tuple[str, str]:
        """(XTREME code, the task's own code) of a language given in either form (Tatoeba: "de" or "deu")."""
        if not self.codes:
            return lang, lang
        if lang in self.codes:
            return lang, self.codes[lang]
        for xtreme, own in self.codes.items():
            if lang == own:
                return xtreme, own
        raise XtremeError(f"{lang!r} is not a language of task {self.name}: expected one of {' '.join(self.codes)}")

    def languages_in(self, split: str) -> tuple:
        """The languages the split has (udpos dev lacks four of the test languages)."""
        return tuple(self.split_languages.get(split, self.languages))

    def check_languages(self, languages: list[str], split: str | None = None) -> None:
        unknown = [lang for lang in languages if lang not in self.languages]
        if unknown:
            raise XtremeError(f"task {self.name}: unknown language(s) {', '.join(unknown)}; "
                              f"expected some of: {', '.join(self.languages)}")
        available = self.languages_in(split) if split else self.languages
        absent = [lang for lang in languages if lang not in available]
        if absent:
            raise XtremeError(f"task {self.name}: the {split} split has no {', '.join(absent)}; its languages are "
                              f"{', '.join(available)}")


def text_field(value, where: str, what: str) -> str:
    """A record's text field, checked: an error naming the record and field when it is missing or not text."""
    if not isinstance(value, str):
        raise XtremeError(f"{where}: {what} is {'missing' if value is None else type(value).__name__}; expected text")
    return value


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.kind not in KINDS:
        raise XtremeError(f"task {task.name}: unknown kind {task.kind!r}; expected one of {', '.join(KINDS)}")
    if task.metric not in METRICS[task.kind]:
        raise XtremeError(f"task {task.name}: metric {task.metric!r} is not one for {task.kind} tasks; expected one "
                          f"of {', '.join(METRICS[task.kind])}")
    TASKS[task.name] = task
    return task
