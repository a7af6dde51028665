import warnings

import pytest

from metrics.xtreme.xtreme_metrics import accuracy, seqeval_chunks, seqeval_scores
from utils.metrics import classification_metrics, tagging_metrics


def test_accuracy_hand_computed():
    assert accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 75.0
    assert classification_metrics([1, 1, 0], [1, 0, 0]) == {"accuracy": pytest.approx(200 / 3),
                                                          "score": pytest.approx(200 / 3)}


def test_seqeval_span_f1_on_panx_tags():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG"]]
    # gold spans: PER(0-1) LOC(3) ORG(s2); predicted: PER(0-1) ORG(3) ORG(s2) -> 2 of 3 right both ways
    scores = seqeval_scores(gold, pred)
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)


def test_seqeval_on_upos_tags_is_not_token_accuracy():
    # seqeval 0.0.12 reads NOUN as chunk tag "N" + type "NOUN": runs of one type merge into one "entity".
    gold = [["NOUN", "VERB", "DET", "NOUN"]]
    pred = [["NOUN", "VERB", "NOUN", "NOUN"]]
    # gold entities: NOUN(0) VERB(1) DET(2) NOUN(3); predicted: NOUN(0) VERB(1) NOUN(2-3) -> 2 right
    # P = 2/3, R = 2/4, F1 = 4/7
    scores = tagging_metrics(gold, pred, metric="f1")
    assert scores["f1"] == pytest.approx(400 / 7)
    assert scores["accuracy"] == pytest.approx(75.0)
    assert scores["score"] == scores["f1"]


def test_tagging_metrics_reject_misaligned_sentences():
    with pytest.raises(ValueError):
        tagging_metrics([["O", "O"]], [["O"]])


def test_upos_types_are_seqeval_0012s_whole_tag():
    """seqeval 1.x types "CCONJ" and "SCONJ" alike ("CONJ" after the first character): a CCONJ predicted as SCONJ
    counts as right there. XTREME's seqeval 0.0.12 takes the text after the last "-", the whole tag."""
    from seqeval.metrics import f1_score

    gold, pred = [["PRON", "CCONJ", "VERB"]], [["PRON", "SCONJ", "VERB"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f1_score(gold, pred) == 1.0  # the installed seqeval 1.x
    assert seqeval_scores(gold, pred) == {"f1": 2 / 3 * 100, "precision": 2 / 3 * 100, "recall": 2 / 3 * 100}


def test_chunks_follow_seqeval_0012_rules():
    # I after O starts a chunk; B-X I-Y splits by type; E and S end chunks; sentences never join across the "O"
    gold = [["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], ["B-X", "E-X", "S-X"], ["I-PER"], ["I-PER"]]
    assert seqeval_chunks(gold) == {("PER", 1, 2), ("LOC", 3, 3), ("ORG", 4, 4), ("X", 6, 7), ("X", 8, 8),
                             ("PER", 10, 10), ("PER", 12, 12)}
