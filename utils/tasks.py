"""The task registry: every XTREME target task and every intermediate task, described once.

A `Task` says what kind of problem it is, its labels, the exact XTREME language list (and a split's own, where it
has fewer), its XTREME category, its metric, and where its data lives: on the Hub (`HubSource`) and in XTREME's
downloaded layout under `--data_dir`. A user's own task is a `Task` too, read from a small YAML/JSON spec
(`--task_spec`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import XtremeError

CLASSIFICATION, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL = (
    "classification", "tagging", "qa", "multiple_choice", "retrieval")
KINDS = (CLASSIFICATION, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL)
SPLITS = ("train", "dev", "test")
# XTREME's task categories (evaluate.py's GROUP2TASK), in its order; each XTREME task names its own.
CATEGORIES = ("classification", "structured prediction", "question answering", "retrieval")

# Exact language lists of XTREME's evaluate.py.
PANX_LANGS = ("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw yo "
              "my zh kk tr et fi hu").split()
UDPOS_LANGS = ("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur vi yo "
               "zh").split()
TATOEBA_LANGS = [lang for lang in PANX_LANGS if lang not in ("en", "ms", "my", "yo")]
# UD v2.5 has no dev treebank for these (test only): XTREME's and the Hub's udpos dev split has the other 29.
UDPOS_DEV_LANGS = [lang for lang in UDPOS_LANGS if lang not in ("kk", "th", "tl", "yo")]

# English language names: google/xtreme's udpos configs ("udpos.German"), TyDiQA id prefixes ("german-...").
LANG_NAMES = {"bn": "Bengali", "sw": "Swahili",
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}

NLI_LABELS = ("contradiction", "entailment", "neutral")  # XTREME's order (processors/xnli.py)
HUB_NLI_LABELS = ("entailment", "neutral", "contradiction")  # GLUE/XNLI/ANLI/SNLI ClassLabel order
PANX_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
UPOS_LABELS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
               "SCONJ", "SYM", "VERB", "X")


@dataclass(frozen=True)
class HubSource:
    """One Hub dataset split. `config` may hold `{lang}` or `{lang_name}`; `columns` maps ours -> the Hub's.

    `id_prefix` keeps the rows whose id starts with it; its `{lang_name}` is lower-cased (TyDiQA: "english-").
    """

    path: str
    config: str | None
    split: str
    columns: dict = field(default_factory=dict)
    label_names: tuple | None = None  # names of integer labels when the Hub column is not a ClassLabel
    id_prefix: str | None = None
    revision: str | None = None  # e.g. "refs/convert/parquet" for datasets whose main branch is a loading script


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    metric: str  # "accuracy" | "f1" (seqeval span F1) | ...
    languages: tuple = ("en",)
    labels: tuple | None = None  # None: built from the training file (e.g. CCG supertags)
    train_language: str = "en"
    local: dict = field(default_factory=dict)  # split -> path under --data_dir, may hold {lang}
    hub: dict = field(default_factory=dict)  # split -> tuple of HubSource (pooled)
    columns: dict = field(default_factory=dict)  # our column -> its name in local files with a header
    int_labels: tuple | None = None  # names of integer labels in Hub-schema files, when not `labels`' order
    schema: str | None = None  # record format of its files and Hub rows when not the kind's own (data.SCHEMAS)
    version_2_with_negative: bool = False  # QA: questions may have no answer (SQuAD 2.0)
    category: str | None = None  # XTREME's category (one of CATEGORIES); None: not one of XTREME's nine tasks
    split_languages: dict = field(default_factory=dict)  # split -> its languages, where fewer than `languages`
    description: str = ""

    def hub_sources(self, split: str) -> tuple:
        return self.hub.get(split, ())

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


def _xnli_sources(split: str) -> tuple:
    return (HubSource("facebook/xnli", "{lang}", split, {"sentence1": "premise", "sentence2": "hypothesis"}),)


def _glue(config: str, split: str, s1: str, s2: str) -> HubSource:
    return HubSource("nyu-mll/glue", config, split, {"sentence1": s1, "sentence2": s2})


def _anli(split: str) -> HubSource:
    return HubSource("facebook/anli", None, split, {"sentence1": "premise", "sentence2": "hypothesis"})


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.kind not in KINDS:
        raise XtremeError(f"task {task.name}: unknown kind {task.kind!r}; expected one of {', '.join(KINDS)}")
    TASKS[task.name] = task
    return task


# --- XTREME target tasks -------------------------------------------------------------------------------------
register(Task(
    "pawsx", CLASSIFICATION, "accuracy", languages=tuple("de en es fr ja ko zh".split()), labels=("0", "1"),
    category="classification",
    local={s: f"pawsx/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google-research-datasets/paws-x", "{lang}", hs),)
         for s, hs in (("train", "train"), ("dev", "validation"), ("test", "test"))},
    description="PAWS-X paraphrase identification."))
register(Task(
    "xnli", CLASSIFICATION, "accuracy",
    languages=tuple("ar bg de el en es fr hi ru sw th tr ur vi zh".split()), labels=NLI_LABELS,
    int_labels=HUB_NLI_LABELS, category="classification",
    local={s: f"xnli/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={"train": _xnli_sources("train"), "dev": _xnli_sources("validation"), "test": _xnli_sources("test")},
    description="XNLI: English training data is MNLI (XTREME's xnli/train-en.tsv)."))
register(Task(
    "udpos", TAGGING, "f1", languages=tuple(UDPOS_LANGS), labels=UPOS_LABELS, category="structured prediction",
    split_languages={"dev": tuple(UDPOS_DEV_LANGS)},
    local={s: f"udpos/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google/xtreme", "udpos.{lang_name}", hs, {"tokens": "tokens", "tags": "pos_tags"}),)
         for s, hs in (("train", "train"), ("dev", "validation"), ("test", "test"))},
    description="UD-POS (UD v2.5) universal POS tags; XTREME scores it with seqeval F1, token accuracy beside it."))
register(Task(
    "panx", TAGGING, "f1", languages=tuple(PANX_LANGS), labels=PANX_LABELS, category="structured prediction",
    local={s: f"panx/{s}-{{lang}}.tsv" for s in SPLITS},
    hub={s: (HubSource("google/xtreme", "PAN-X.{lang}", hs, {"tokens": "tokens", "tags": "ner_tags"}),)
         for s, hs in (("train", "train"), ("dev", "validation"), ("test", "test"))},
    description="PAN-X (WikiANN) named entities, IOB2, seqeval span F1."))
_SQUAD = {"train": (HubSource("rajpurkar/squad", None, "train"),),
          "dev": (HubSource("rajpurkar/squad", None, "validation"),)}
_SQUAD_LOCAL = {"train": "squad/train-v1.1.json", "dev": "squad/dev-v1.1.json"}
register(Task(
    "xquad", QA, "squad", languages=tuple("en es de el ru tr ar vi th zh hi".split()), category="question answering",
    split_languages={"dev": ("en",)},
    local={**_SQUAD_LOCAL, "test": "xquad/xquad.{lang}.json"},
    hub={**_SQUAD, "test": (HubSource("google/xtreme", "XQuAD.{lang}", "validation"),)},
    description="XQuAD: trained on SQuAD v1.1 (dev = SQuAD dev); the whole XQuAD set is the test set."))
register(Task(
    "mlqa", QA, "mlqa", languages=tuple("en es de ar hi vi zh".split()), category="question answering",
    local={"train": "squad/train-v1.1.json",
           **{s: f"mlqa/MLQA_V1/{s}/{s}-context-{{lang}}-question-{{lang}}.json" for s in ("dev", "test")}},
    hub={"train": _SQUAD["train"], "dev": (HubSource("google/xtreme", "MLQA.{lang}.{lang}", "validation"),),
         "test": (HubSource("google/xtreme", "MLQA.{lang}.{lang}", "test"),)},
    description="MLQA (context language = question language): trained on SQuAD v1.1, MLQA's own metric."))
_TYDIQA_DEV = (HubSource("google/xtreme", "tydiqa", "validation", id_prefix="{lang_name}-"),)
register(Task(
    "tydiqa", QA, "squad", languages=tuple("en ar bn fi id ko ru sw te".split()), category="question answering",
    local={"train": "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json",
           **{s: "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json" for s in ("dev", "test")}},
    hub={"train": (HubSource("google/xtreme", "tydiqa", "train", id_prefix="{lang_name}-"),),
         "dev": _TYDIQA_DEV, "test": _TYDIQA_DEV},
    description="TyDiQA-GoldP: trained on its English GoldP train set; evaluated on the GoldP dev sets."))
register(Task("bucc2018", RETRIEVAL, "f1", languages=("de", "fr", "ru", "zh"), category="retrieval"))
register(Task("tatoeba", RETRIEVAL, "accuracy", languages=tuple(TATOEBA_LANGS), category="retrieval"))

# --- English intermediate tasks --------------------------------------------------------------------------------
register(Task(
    "mnli", CLASSIFICATION, "accuracy", labels=NLI_LABELS, int_labels=HUB_NLI_LABELS,
    columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "gold_label"},
    local={"train": "MNLI/train.tsv", "dev": "MNLI/dev_matched.tsv"},
    hub={"train": (_glue("mnli", "train", "premise", "hypothesis"),),
         "dev": (_glue("mnli", "validation_matched", "premise", "hypothesis"),)},
    description="MultiNLI, 3-way NLI (dev = validation_matched)."))
register(Task(
    "qqp", CLASSIFICATION, "accuracy", labels=("not_duplicate", "duplicate"),
    columns={"sentence1": "question1", "sentence2": "question2", "label": "is_duplicate"},
    local={"train": "QQP/train.tsv", "dev": "QQP/dev.tsv"},
    hub={"train": (_glue("qqp", "train", "question1", "question2"),),
         "dev": (_glue("qqp", "validation", "question1", "question2"),)},
    description="Quora Question Pairs, binary paraphrase (labels 0 = not_duplicate, 1 = duplicate)."))
register(Task(
    "anli_plus", CLASSIFICATION, "accuracy", labels=NLI_LABELS, int_labels=HUB_NLI_LABELS,
    hub={"train": (_anli("train_r1"), _anli("train_r2"), _anli("train_r3"),
                   _glue("mnli", "train", "premise", "hypothesis"),
                   HubSource("stanfordnlp/snli", None, "train", {"sentence1": "premise", "sentence2": "hypothesis"})),
         "dev": (_anli("dev_r1"), _anli("dev_r2"), _anli("dev_r3"))},
    description="ANLI+: ANLI R1-R3 + MNLI + SNLI pooled into one 3-way NLI task (SNLI label -1 dropped); "
                "dev = ANLI R1-R3 dev."))

register(Task(
    "squad_v1", QA, "squad", local=_SQUAD_LOCAL, hub=_SQUAD,
    description="SQuAD v1.1 extractive QA (dev = the official dev set), scored by EM/F1."))
register(Task(
    "squad_v2", QA, "squad_v2", version_2_with_negative=True,
    local={"train": "squad/train-v2.0.json", "dev": "squad/dev-v2.0.json"},
    hub={"train": (HubSource("rajpurkar/squad_v2", None, "train"),),
         "dev": (HubSource("rajpurkar/squad_v2", None, "validation"),)},
    description="SQuAD 2.0: span QA with unanswerable questions (trained to point at CLS; predicted \"\" when the null "
                "score beats the best span by more than --null_score_diff_threshold); official v2 metrics."))
_CHOICE_IDS = ("0", "1", "2", "3")
register(Task(
    "hellaswag", MULTIPLE_CHOICE, "accuracy", labels=_CHOICE_IDS, schema="hellaswag",
    local={"train": "hellaswag/hellaswag_train.jsonl", "dev": "hellaswag/hellaswag_val.jsonl"},
    hub={"train": (HubSource("Rowan/hellaswag", None, "train"),),
         "dev": (HubSource("Rowan/hellaswag", None, "validation"),)},
    description="HellaSwag, 4-way: context = ctx_a, choice i = ctx_b + \" \" + endings[i] (jiant's input)."))
register(Task(
    "commonsenseqa", MULTIPLE_CHOICE, "accuracy", labels=("A", "B", "C", "D", "E"), schema="commonsenseqa",
    local={"train": "commonsenseqa/train_rand_split.jsonl", "dev": "commonsenseqa/dev_rand_split.jsonl"},
    hub={"train": (HubSource("tau/commonsense_qa", None, "train"),),
         "dev": (HubSource("tau/commonsense_qa", None, "validation"),)},
    description="CommonsenseQA, 5-way: context = the question, choices A-E (dev = validation; test is unlabelled)."))
register(Task(
    "cosmosqa", MULTIPLE_CHOICE, "accuracy", labels=_CHOICE_IDS, schema="cosmosqa",
    local={"train": "cosmosqa/train.jsonl", "dev": "cosmosqa/valid.jsonl"},
    hub={s: (HubSource("allenai/cosmos_qa", None, hs, revision="refs/convert/parquet"),)
         for s, hs in (("train", "train"), ("dev", "validation"))},
    description="Cosmos QA, 4-way: context = context + \" \" + question (jiant's input), choices answer0-3."))
register(Task(
    "ccg", TAGGING, "accuracy", schema="ccg",
    local={s: f"ccg/ccg.{s}" for s in SPLITS},
    description="CCG supertagging (CCGbank, LDC2005T13; local files only): first sub-token of each word tagged; "
                "the tag list is built from the training and dev files, as jiant's ccg_to_num does."))

_SPEC_KEYS = {"name", "kind", "metric", "languages", "labels", "train_language", "files", "columns"}


def load_task_spec(path: str) -> tuple[Task, dict]:
    """Read a user task spec (YAML or JSON). Returns the task and its `files`: split -> path or {lang: path}."""
    spec_path = Path(path)
    if not spec_path.is_file():
        raise XtremeError(f"task spec {path}: file not found")
    text = spec_path.read_text(encoding="utf-8")
    try:
        if spec_path.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
    except Exception as err:  # yaml and json raise different types; both mean a malformed file
        raise XtremeError(f"task spec {path}: not valid {spec_path.suffix[1:].upper()} ({err})".replace("\n", " "))
    if not isinstance(spec, dict):
        raise XtremeError(f"task spec {path}: expected a mapping with keys {', '.join(sorted(_SPEC_KEYS))}")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise XtremeError(f"task spec {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"expected {', '.join(sorted(_SPEC_KEYS))}")
    for key in ("name", "kind", "files"):
        if key not in spec:
            raise XtremeError(f"task spec {path}: missing required key '{key}'")
    kind = spec["kind"]
    if kind not in (CLASSIFICATION, TAGGING):
        raise XtremeError(f"task spec {path}: kind {kind!r} is not supported in specs; expected "
                          f"{CLASSIFICATION} or {TAGGING}")
    files = spec["files"]
    if not isinstance(files, dict) or not set(files) <= set(SPLITS):
        raise XtremeError(f"task spec {path}: 'files' must map splits ({', '.join(SPLITS)}) to a path, a path "
                          "with {lang}, or a {language: path} mapping")
    train_language = spec.get("train_language", "en")
    languages = spec.get("languages") or sorted(
        {lang for split_files in files.values() if isinstance(split_files, dict) for lang in split_files}
        | {train_language})
    task = Task(
        name=str(spec["name"]), kind=kind, metric=spec.get("metric", "accuracy" if kind == CLASSIFICATION else "f1"),
        languages=tuple(languages), labels=tuple(str(x) for x in spec["labels"]) if spec.get("labels") else None,
        train_language=train_language, columns=dict(spec.get("columns") or {}),
        description=f"user task from {path}")
    if task.metric not in ("accuracy", "f1"):
        raise XtremeError(f"task spec {path}: metric {task.metric!r} unknown; expected accuracy or f1")
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
