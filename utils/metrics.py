"""Metrics of the classification and tagging tasks, as XTREME's evaluate.py defines them (x100).

Every task's metric dict carries `score`: the number XTREME ranks a task by (accuracy for XNLI/PAWS-X, seqeval
F1 for PAN-X and UD-POS), which also drives checkpoint selection on the English dev set.
"""

from __future__ import annotations

import numpy as np


def accuracy(predictions, references) -> float:
    predictions, references = np.asarray(predictions), np.asarray(references)
    if len(references) == 0:
        raise ValueError("accuracy of an empty set")
    return float((predictions == references).mean() * 100)


def _chunks(sentences: list[list[str]]) -> set[tuple[str, int, int]]:
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
    XTREME's UD-POS numbers (see `_chunks`). The floating-point steps are seqeval's, so the numbers are identical.
    """
    gold, predicted = _chunks(references), _chunks(predictions)
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0
    recall = correct / len(gold) if gold else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def classification_metrics(predictions, references) -> dict:
    value = accuracy(predictions, references)
    return {"accuracy": value, "score": value}


def tagging_metrics(references: list[list[str]], predictions: list[list[str]], metric: str = "f1") -> dict:
    """seqeval span F1 (XTREME's PAN-X and UD-POS number) and word-level accuracy beside it.

    With `metric="accuracy"` (CCG supertags, which have no spans) only the word-level accuracy is computed.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} gold sentences but {len(predictions)} predicted")
    for ref, pred in zip(references, predictions):
        if len(ref) != len(pred):
            raise ValueError(f"sentence with {len(ref)} gold tags but {len(pred)} predictions")
    scores = {} if metric == "accuracy" else seqeval_scores(references, predictions)
    scores["accuracy"] = accuracy([t for s in predictions for t in s], [t for s in references for t in s])
    scores["score"] = scores[metric]
    return scores
