"""XTREME-R's causal reasoning task XCOPA (not one of XTREME's nine: no category, so the XTREME score is unchanged),
and Social IQa, the English task XTREME-R trains on before COPA (`scripts/train_xcopa.sh`): phase 1 on `siqa`,
phase 2 on `xcopa` (COPA's English training data), phase 3 on XCOPA's 11 languages."""

from ..errors import XtremeError
from .task import MULTIPLE_CHOICE, HubSource, Task, register, text_field

XCOPA_LANGS = tuple("et ht id it qu sw ta th tr vi zh".split())
# XTREME-R's question for each relation (`third_party/run_xcopa.py`): in English whatever the premise's language.
COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What was the effect?"}


def copa_record(record: dict, where: str) -> tuple:
    """COPA/XCOPA (`premise`, `choice1`, `choice2`, `question` cause|effect, `label` 0|1): context = the premise
    followed by XTREME-R's English question ("The road was wet. What was the cause?"), one pair per choice."""
    relation = record.get("question")
    if relation not in COPA_QUESTIONS:
        raise XtremeError(f"{where}: question is {relation!r}; expected 'cause' or 'effect'")
    premise = text_field(record.get("premise"), where, "premise")
    return f"{premise} {COPA_QUESTIONS[relation]}", [record.get("choice1"), record.get("choice2")], record.get("label")


def _xcopa_hub(split: str) -> HubSource:
    return HubSource("cambridgeltl/xcopa", "{lang}", split, revision="refs/convert/parquet", languages=XCOPA_LANGS)


def _copa_hub(split: str) -> HubSource:
    return HubSource("aps/super_glue", "copa", split, revision="refs/convert/parquet")


register(Task(
    "xcopa", MULTIPLE_CHOICE, "accuracy", languages=XCOPA_LANGS, labels=("0", "1"), record=copa_record,
    # XTREME-R's download (xcopa/{train,val,test}.{lang}.jsonl, COPA as "en"), then the originals: XCOPA's repo
    # (xcopa/data/{lang}/{val,test}.{lang}.jsonl) and SuperGLUE's COPA (COPA/{train,val}.jsonl)
    local={"train": ("xcopa/train.en.jsonl", "COPA/train.jsonl"),
           "dev": ("xcopa/val.{lang}.jsonl", "xcopa/data/{lang}/val.{lang}.jsonl", "COPA/val.jsonl"),
           "test": ("xcopa/test.{lang}.jsonl", "xcopa/data/{lang}/test.{lang}.jsonl")},
    hub={"train": (_copa_hub("train"),), "dev": (_copa_hub("validation"), _xcopa_hub("validation")),
         "test": (_xcopa_hub("test"),)},
    description="XCOPA (XTREME-R), 2-way: trained on English COPA (dev = COPA val), evaluated on XCOPA's validation "
                "and test sets; context = premise + \" What was the cause?\" (or effect), choices choice1, choice2."))


def siqa_record(record: dict, where: str) -> tuple:
    """Social IQa: the original v1.4 jsonl (`correct` A-C) or the Hub's (`label` "1"-"3"); context = context + " "
    + question, as XTREME-R builds it, choices answerA-C."""
    context = (text_field(record.get("context"), where, "context") + " "
               + text_field(record.get("question"), where, "question"))
    label = record.get("correct")
    if label is None and str(record.get("label", "")) in ("1", "2", "3"):
        label = "ABC"[int(record["label"]) - 1]
    return context, [record.get(f"answer{letter}") for letter in "ABC"], label


register(Task(
    "siqa", MULTIPLE_CHOICE, "accuracy", labels=("A", "B", "C"), record=siqa_record,
    local={"train": "siqa/socialIQa_v1.4_trn.jsonl", "dev": "siqa/socialIQa_v1.4_dev.jsonl"},
    hub={s: (HubSource("allenai/social_i_qa", None, hs, revision="refs/convert/parquet"),)
         for s, hs in (("train", "train"), ("dev", "validation"))},
    description="Social IQa, 3-way: context = context + \" \" + question, choices answerA-C (XTREME-R trains on it "
                "before COPA)."))
