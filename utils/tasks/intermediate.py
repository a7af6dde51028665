"""The English intermediate tasks of phase 1, each with the record adapter or reader of its own format."""

import re
from pathlib import Path

from ..errors import MissingDataError, XtremeError
from ..lines import tab_fields
from .task import CLASSIFICATION, MULTIPLE_CHOICE, QA, SPLITS, TAGGING, HubSource, Task, register, text_field
from .xtreme import HUB_NLI_LABELS, NLI_LABELS, SQUAD_HUB, SQUAD_LOCAL


def _glue(config: str, split: str, s1: str, s2: str) -> HubSource:
    return HubSource("nyu-mll/glue", config, split, {"sentence1": s1, "sentence2": s2})


def _anli(split: str) -> HubSource:
    return HubSource("facebook/anli", None, split, {"sentence1": "premise", "sentence2": "hypothesis"})


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
    "squad_v1", QA, "squad", local=SQUAD_LOCAL, hub=SQUAD_HUB,
    description="SQuAD v1.1 extractive QA (dev = the official dev set), scored by EM/F1."))
register(Task(
    "squad_v2", QA, "squad_v2", version_2_with_negative=True,
    local={"train": "squad/train-v2.0.json", "dev": "squad/dev-v2.0.json"},
    hub={"train": (HubSource("rajpurkar/squad_v2", None, "train"),),
         "dev": (HubSource("rajpurkar/squad_v2", None, "validation"),)},
    description="SQuAD 2.0: span QA with unanswerable questions (trained to point at CLS; predicted \"\" when the null "
                "score beats the best span by more than --null_score_diff_threshold); official v2 metrics."))


# --- multiple choice: each dataset's records -> (context, choices, label) --------------------------------------

def hellaswag_record(record: dict, where: str) -> tuple:
    """HellaSwag (Hub and original jsonl): context = ctx_a, choice i = ctx_b + " " + endings[i], as jiant does."""
    endings = record.get("endings")
    if not isinstance(endings, list):
        raise XtremeError(f"{where}: no 'endings' list")
    ctx_b = text_field(record.get("ctx_b", ""), where, "ctx_b")
    choices = [(ctx_b + " " + text_field(e, where, f"ending {i}")).strip() if e else e
               for i, e in enumerate(endings)]
    return text_field(record.get("ctx_a"), where, "ctx_a"), choices, record.get("label")


def commonsenseqa_record(record: dict, where: str) -> tuple:
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
    return text_field(question, where, "question"), dict(zip(keys, texts)), record.get("answerKey")


def cosmosqa_record(record: dict, where: str) -> tuple:
    """Cosmos QA: context = context + " " + question (jiant's input), choices answer0..answer3."""
    context = (text_field(record.get("context"), where, "context") + " "
               + text_field(record.get("question"), where, "question"))
    choices = [record.get(f"answer{i}") for i in range(10) if f"answer{i}" in record]
    return context, choices, record.get("label")


_CHOICE_IDS = ("0", "1", "2", "3")
register(Task(
    "hellaswag", MULTIPLE_CHOICE, "accuracy", labels=_CHOICE_IDS, record=hellaswag_record,
    local={"train": "hellaswag/hellaswag_train.jsonl", "dev": "hellaswag/hellaswag_val.jsonl"},
    hub={"train": (HubSource("Rowan/hellaswag", None, "train"),),
         "dev": (HubSource("Rowan/hellaswag", None, "validation"),)},
    description="HellaSwag, 4-way: context = ctx_a, choice i = ctx_b + \" \" + endings[i] (jiant's input)."))
register(Task(
    "commonsenseqa", MULTIPLE_CHOICE, "accuracy", labels=("A", "B", "C", "D", "E"), record=commonsenseqa_record,
    local={"train": "commonsenseqa/train_rand_split.jsonl", "dev": "commonsenseqa/dev_rand_split.jsonl"},
    hub={"train": (HubSource("tau/commonsense_qa", None, "train"),),
         "dev": (HubSource("tau/commonsense_qa", None, "validation"),)},
    description="CommonsenseQA, 5-way: context = the question, choices A-E (dev = validation; test is unlabelled)."))
register(Task(
    "cosmosqa", MULTIPLE_CHOICE, "accuracy", labels=_CHOICE_IDS, record=cosmosqa_record,
    local={"train": "cosmosqa/train.jsonl", "dev": "cosmosqa/valid.jsonl"},
    hub={s: (HubSource("allenai/cosmos_qa", None, hs, revision="refs/convert/parquet"),)
         for s, hs in (("train", "train"), ("dev", "validation"))},
    description="Cosmos QA, 4-way: context = context + \" \" + question (jiant's input), choices answer0-3."))


# --- CCG supertagging (CCGbank) ---------------------------------------------------------------------------------

_CCG_LEAF = re.compile(r"\(<L (.*?)>\)")


def read_ccg(path: Path) -> list[dict]:
    """CCGbank supertags: `AUTO` derivation files (a `.auto` file, or a dir of them, e.g. AUTO/00) or the
    `tokens<TAB>tags` one-sentence-per-line file of jiant's conversion (space-separated tokens and tags)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.auto"))
        if not files:
            raise MissingDataError(f"{path}: directory holds no CCGbank *.auto files")
        rows = [row for file in files for row in read_ccg_auto(file)]
    elif not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    else:
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        auto = path.suffix == ".auto" or first.startswith("ID=")
        rows = read_ccg_auto(path) if auto else read_ccg_tsv(path)
    if not rows:
        raise XtremeError(f"{path}: no sentences found")
    return rows


def read_ccg_auto(path: Path) -> list[dict]:
    """CCGbank `AUTO` format: an `ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1` line, then the derivation on one line whose
    leaves `(<L N/N NNP NNP Pierre N_73/N_73>)` give the supertag (1st field) and the token (4th field)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    for number, line in enumerate(lines, 1):
        if line.startswith("ID=") and (number == len(lines) or "(<" not in lines[number]):
            raise XtremeError(f"{path}:{number + 1}: expected the derivation of {line.split()[0]} after its "
                              "ID line (CCGbank AUTO format)")
        if line.strip() and not line.startswith("ID="):
            rows.append(_ccg_derivation(path, number, line))
    return rows


def _ccg_derivation(path: Path, number: int, line: str) -> dict:
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
    return {"tokens": tokens, "tags": tags, "_line": number}


def read_ccg_tsv(path: Path) -> list[dict]:
    """One sentence per line: space-separated tokens, a tab, space-separated supertags (tokens alone: unlabelled)."""
    rows = []
    for number, parts in tab_fields(path, "'tokens<TAB>tags' (or tokens alone in unlabelled files)"):
        if parts is None:
            continue
        row = {"tokens": parts[0].split(), "_line": number}
        if len(parts) == 2:
            row["tags"] = parts[1].split()
            if len(row["tags"]) != len(row["tokens"]):
                raise XtremeError(f"{path}:{number}: {len(row['tokens'])} tokens but {len(row['tags'])} tags; "
                                  "expected one supertag per token")
        rows.append(row)
    return rows


register(Task(
    "ccg", TAGGING, "accuracy", reader=read_ccg,
    local={s: f"ccg/ccg.{s}" for s in SPLITS},
    description="CCG supertagging (CCGbank, LDC2005T13; local files only): first sub-token of each word tagged; "
                "the tag list is built from the training and dev files, as jiant's ccg_to_num does."))

# The paper's intermediate tasks (`run_intermediate.py --tasks all`).
PAPER_INTERMEDIATE_TASKS = ("anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "commonsenseqa",
                            "cosmosqa", "ccg")
