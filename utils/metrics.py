"""The metrics of the classification and tagging kinds: XTREME's (`metrics.xtreme.xtreme_metrics`) plus `score`,
the number a task is ranked by (accuracy for XNLI/PAWS-X, seqeval F1 for PAN-X and UD-POS), which also drives
checkpoint selection on the English dev set.
"""

from __future__ import annotations

from metrics.xtreme.xtreme_metrics import accuracy, tagging_scores, word_accuracy


def classification_metrics(predictions, references) -> dict:
    value = accuracy(predictions, references)
    return {"accuracy": value, "score": value}


def tagging_metrics(references: list[list[str]], predictions: list[list[str]], metric: str = "f1") -> dict:
    """seqeval span F1 (XTREME's PAN-X and UD-POS number) and word-level accuracy beside it.

    With `metric="accuracy"` (CCG supertags, which have no spans) only the word-level accuracy is computed.
    """
    scores = ({"accuracy": word_accuracy(references, predictions)} if metric == "accuracy"
              else tagging_scores(references, predictions))
    return {**scores, "score": scores[metric]}
