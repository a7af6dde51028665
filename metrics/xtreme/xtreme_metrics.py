"""XTREME's metrics, computed as XTREME's `evaluate.py` and the official scripts compute them (x100).

The one implementation: the `evaluate` module beside it (`xtreme.py`) and the project's scripts and scorer
(`utils.score`) all call these functions. Self-contained (standard library and numpy) so that `evaluate.load` can
copy it beside `xtreme.py`. Bad input raises `ValueError`.

| task | metric | `compute` returns |
|---|---|---|
| pawsx, xnli | accuracy of the labels | accuracy |
| udpos, panx | span F1 as seqeval 0.0.12 computes it, word accuracy beside it | f1, precision, recall, accuracy |
| xquad, tydiqa | SQuAD v1.1 (`evaluate-v1.1.py`) | exact_match, f1 |
| mlqa | MLQA's script: SQuAD with the context language's normalisation | exact_match, f1 |
| bucc2018 | F1 over (source id, English id) pairs (`bucc_f1`) | f1, precision, recall |
| tatoeba | accuracy of the retrieved indices | accuracy |
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable

import numpy as np

TASK_METRICS = {"pawsx": "accuracy", "xnli": "accuracy", "udpos": "span_f1", "panx": "span_f1", "xquad": "squad",
                "mlqa": "mlqa", "tydiqa": "squad", "bucc2018": "bucc_f1", "tatoeba": "accuracy"}


def accuracy(predictions, references) -> float:
    predictions, references = np.asarray(predictions), np.asarray(references)
    if len(references) == 0:
        raise ValueError("accuracy of an empty set")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return float((predictions == references).mean() * 100)


def prf(n_correct: int, n_predicted: int, n_gold: int) -> tuple[float, float, float]:
    """(precision, recall, F1) as fractions; all 0 when nothing is correct (XTREME's `bucc_f1`, LASER's
    `bucc_optimize`)."""
    if n_correct == 0:
        return 0.0, 0.0, 0.0
    precision, recall = n_correct / n_predicted, n_correct / n_gold
    return precision, recall, 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------- tagging (UD-POS, PAN-X)

def seqeval_chunks(sentences: list[list[str]]) -> set[tuple[str, int, int]]:
    """(type, start, end) of every chunk, read as seqeval 0.0.12 reads tags (the version XTREME and jiant used).

    Sentences are joined with an "O" after each one. A tag's chunk tag is its first character and its type the
    text after its last "-": "B-PER" is (B, PER), an un-prefixed UPOS tag "NOUN" is (N, NOUN). seqeval 1.x takes
    the type after the first character instead ("OUN"), which makes CCONJ and SCONJ one type ("CONJ").
    """
    tags = [tag for sentence in sentences for tag in [*sentence, "O"]] + ["O"]
    chunks, start, prev_tag, prev_type = set(), 0, "O", ""
    for i, label in enumerate(tags):
        tag, type_ = label[0], label.split("-")[-1]
        ends = (prev_tag in "ES" or (prev_tag in "BI" and tag in "BSO")
                or (prev_tag not in "O." and prev_type != type_))
        if ends:
            chunks.add((prev_type, start, i - 1))
        if tag in "BS" or (prev_tag in "ESO" and tag in "EI") or (tag not in "O." and prev_type != type_):
            start = i
        prev_tag, prev_type = tag, type_
    return chunks


def seqeval_scores(references: list[list[str]], predictions: list[list[str]]) -> dict:
    """Entity-level micro P/R/F1 of seqeval 0.0.12 (default mode), x100, whatever seqeval is installed.

    It equals seqeval 1.x on IOB2 tags (PAN-X); on UPOS tags, which carry no B-/I- prefix, only 0.0.12 gives
    XTREME's UD-POS numbers (see `seqeval_chunks`). The floating-point steps are seqeval's, so the numbers are
    identical.
    """
    gold, predicted = seqeval_chunks(references), seqeval_chunks(predictions)
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0
    recall = correct / len(gold) if gold else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def word_accuracy(references: list[list[str]], predictions: list[list[str]]) -> float:
    """Tag accuracy over all words of sentences of equal lengths."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} gold sentences but {len(predictions)} predicted")
    for number, (ref, pred) in enumerate(zip(references, predictions), 1):
        if len(ref) != len(pred):
            raise ValueError(f"sentence {number} has {len(ref)} gold tags but {len(pred)} predictions")
    return accuracy([t for s in predictions for t in s], [t for s in references for t in s])


def tagging_scores(references: list[list[str]], predictions: list[list[str]]) -> dict:
    """XTREME's PAN-X and UD-POS metrics: seqeval span F1 (the task's number) and word-level accuracy beside it."""
    word = word_accuracy(references, predictions)
    return {**seqeval_scores(references, predictions), "accuracy": word}


# ---------------------------------------------------------------- QA: SQuAD v1.1 (XQuAD, TyDiQA-GoldP), MLQA

_ASCII_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_squad(text: str) -> str:
    """Lowercase, drop ASCII punctuation, replace English articles by a space, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """F1 of the bags of tokens (a fraction); 0 when none is shared."""
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _qa_scores(predictions: dict[str, str], references: dict[str, list[str]],
               tokens: Callable[[str], list[str]]) -> dict:
    """Max EM/F1 over the gold answers per question, averaged over all questions (missing predictions score 0)."""
    em = f1 = 0.0
    for qid, golds in references.items():
        if not golds:
            raise ValueError(f"question {qid}: no gold answer (unanswerable questions need SQuAD 2.0's metric)")
        if qid not in predictions:
            continue
        pred = tokens(predictions[qid])
        em += max(float(pred == tokens(gold)) for gold in golds)
        f1 += max(token_f1(pred, tokens(gold)) for gold in golds)
    total = len(references)
    return {"exact_match": 100.0 * em / total if total else 0.0, "f1": 100.0 * f1 / total if total else 0.0}


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """SQuAD v1.1 `{"exact_match", "f1"}` (x100): `predictions` maps question id -> answer text, `references`
    question id -> gold answer texts. Every question in `references` is scored; other ids are ignored."""
    return _qa_scores(predictions, references, lambda text: normalize_squad(text).split())


def _is_punct(ch: str) -> bool:
    """MLQA's PUNCT set: every Unicode category P* character plus `string.punctuation` (which adds $+<=>^`|~)."""
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile(r"\sال^|ال"),  # MLQA's regex: in effect every "ال" becomes a space
    "hi": None,
    "zh": None,
}
MLQA_LANGS = tuple(_ARTICLES)


def _check_lang(lang: str | None) -> None:
    if lang not in _ARTICLES:
        what = "no language given: pass the context language" if lang is None else f"unknown language {lang!r}"
        raise ValueError(f"MLQA metric: {what} (expected one of {', '.join(MLQA_LANGS)})")


def _mixed_segmentation(text: str) -> list[str]:
    """Each CJK ideograph and punctuation char is a token; the runs between them are split on whitespace."""
    tokens, run = [], ""
    for ch in text:
        if "\u4e00" <= ch <= "\u9fa5" or _is_punct(ch):
            tokens.extend(run.split())
            tokens.append(ch)
            run = ""
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def normalize_mlqa(text: str, lang: str) -> str:
    """Lowercase -> drop Unicode+ASCII punctuation -> drop `lang`'s articles -> tokenise -> join with spaces."""
    _check_lang(lang)
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    if _ARTICLES[lang] is not None:
        text = _ARTICLES[lang].sub(" ", text)
    tokens = _mixed_segmentation(text) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def mlqa_scores(predictions: dict[str, str], references: dict[str, list[str]], lang: str) -> dict[str, float]:
    """MLQA `{"exact_match", "f1"}` (x100) for the context language `lang` (one of `MLQA_LANGS`); arguments as
    `squad_scores`."""
    _check_lang(lang)
    return _qa_scores(predictions, references, lambda text: normalize_mlqa(text, lang).split())


def qa_scores(metric: str, predictions: dict[str, str], references: dict[str, list[str]],
              language: str | None = None) -> dict[str, float]:
    """`squad_scores` (metric "squad") or `mlqa_scores` for `language` (metric "mlqa")."""
    if metric == "mlqa":
        return mlqa_scores(predictions, references, language)
    if metric == "squad":
        return squad_scores(predictions, references)
    raise ValueError(f"QA metric {metric!r}: expected squad or mlqa")


# ----------------------------------------------------------------------------------------------- BUCC 2018

def bucc_scores(predicted: set, gold: set) -> dict:
    """Precision, recall and F1 (x100) of predicted (src_id, en_id) pairs against the gold pairs (`bucc_f1`)."""
    precision, recall, f1 = prf(len(predicted & gold), len(predicted), len(gold))
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def _pair_set(rows) -> set[tuple[str, str]]:
    pairs = {tuple(pair) for row in rows for pair in row}
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("BUCC: expected rows of (source id, English id) pairs")
    return pairs


# --------------------------------------------------------------------------------------- one task's metric

def compute(task: str, predictions: list, references: list, language: str | None = None) -> dict:
    """One language's metrics of an XTREME task, from lists with one entry per example:

    - pawsx, xnli, tatoeba: a label (or retrieved index) per example;
    - udpos, panx: a list of tags per sentence;
    - xquad, mlqa, tydiqa: per question, the predicted answer text (None: no prediction, scores 0) and the list of
      gold answer texts; mlqa needs the context `language`;
    - bucc2018: per row, a list of (source id, English id) pairs; the rows' pairs are pooled into one set each.
    """
    if task not in TASK_METRICS:
        raise ValueError(f"unknown XTREME task {task!r}; expected one of {', '.join(TASK_METRICS)}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    metric = TASK_METRICS[task]
    if metric == "accuracy":
        return {"accuracy": accuracy(predictions, references)}
    if metric == "span_f1":
        return tagging_scores(references, predictions)
    if metric == "bucc_f1":
        return bucc_scores(_pair_set(predictions), _pair_set(references))
    answers = {str(i): text for i, text in enumerate(predictions) if text is not None}
    return qa_scores(metric, answers, {str(i): list(golds) for i, golds in enumerate(references)}, language)
