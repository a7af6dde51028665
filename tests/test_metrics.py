import pytest

from utils.metrics import accuracy, classification_metrics, seqeval_scores, tagging_metrics


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
    # seqeval reads NOUN as chunk tag "N" + type "OUN": runs of one type merge into one "entity".
    gold = [["NOUN", "VERB", "DET", "NOUN"]]
    pred = [["NOUN", "VERB", "NOUN", "NOUN"]]
    # gold entities: OUN(0) ERB(1) ET(2) OUN(3); predicted: OUN(0) ERB(1) OUN(2-3) -> 2 right
    # P = 2/3, R = 2/4, F1 = 4/7
    scores = tagging_metrics(gold, pred, metric="f1")
    assert scores["f1"] == pytest.approx(400 / 7)
    assert scores["accuracy"] == pytest.approx(75.0)
    assert scores["score"] == scores["f1"]


def test_tagging_metrics_reject_misaligned_sentences():
    with pytest.raises(ValueError):
        tagging_metrics([["O", "O"]], [["O"]])
