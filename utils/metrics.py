"""Metrics of the classification and tagging tasks, as XTREME's evaluate.py defines them (x100).

Every task's metric dict carries `score`: the number XTREME ranks a task by (accuracy for XNLI/PAWS-X, seqeval
F1 for PAN-X and UD-POS), which also drives checkpoint selection on the English dev set.
"""

from __future__ import annotations

import warnings

import numpy as np


def accuracy(predictions, references) -> float:
    predictions, references = np.asarray(predictions), np.asarray(references)
    if len(references) == 0:
        raise ValueError("accuracy of an empty set")
    return float((predictions == references).mean() * 100)


def seqeval_scores(references: list[list[str]], predictions: list[list[str]]) -> dict:
    """Entity-level micro P/R/F1 of `seqeval` in its default (non-strict) mode, as XTREME computes it.

    UPOS tags have no B-/I- prefix: seqeval then reads the first character as the chunk tag and warns for each
    one; XTREME reports that number for UD-POS all the same, so we do too and silence the warnings.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "f1": f1_score(references, predictions) * 100,
            "precision": precision_score(references, predictions) * 100,
            "recall": recall_score(references, predictions) * 100,
        }


def classification_metrics(predictions, references) -> dict:
    value = accuracy(predictions, references)
    return {"accuracy": value, "score": value}


def tagging_metrics(references: list[list[str]], predictions: list[list[str]], metric: str = "f1") -> dict:
    """seqeval span F1 (XTREME's PAN-X and UD-POS number) and word-level accuracy beside it.

    With `metric="accuracy"` (CCG supertags, which have no spans) only the word-level accuracy is computed.
    """
    for ref, pred in zip(references, predictions):
        if len(ref) != len(pred):
            raise ValueError(f"sentence with {len(ref)} gold tags but {len(pred)} predictions")
    scores = {} if metric == "accuracy" else seqeval_scores(references, predictions)
    scores["accuracy"] = accuracy([t for s in predictions for t in s], [t for s in references for t in s])
    scores["score"] = scores[metric]
    return scores
