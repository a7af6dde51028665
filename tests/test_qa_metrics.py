"""QA metrics against hand-worked values (official SQuAD v1.1, MLQA and SQuAD 2.0 semantics)."""

import pytest

from metrics.xtreme.xtreme_metrics import MLQA_LANGS, mlqa_scores, normalize_mlqa, normalize_squad, squad_scores
from utils.errors import XtremeError
from utils.qa_metrics import squad_v2_scores


def one(pred: str, golds: list[str], lang: str | None = None) -> dict:
    refs = {"q": golds}
    return squad_scores({"q": pred}, refs) if lang is None else mlqa_scores({"q": pred}, refs, lang)


# ---------------------------------------------------------------- SQuAD v1.1


def test_gold_answers_score_100():
    refs = {"a": ["Denver Broncos"], "b": ["308"], "c": ["黑豹队"]}
    assert squad_scores({k: v[0] for k, v in refs.items()}, refs) == {"exact_match": 100.0, "f1": 100.0}
    assert mlqa_scores({k: v[0] for k, v in refs.items()}, refs, "zh") == {"exact_match": 100.0, "f1": 100.0}


def test_squad_normalisation():
    assert normalize_squad("The  Denver Broncos.") == "denver broncos"
    assert normalize_squad("a banana, an apple") == "banana apple"  # articles only as whole words
    assert normalize_squad("«Denver»") == "«denver»"  # non-ASCII punctuation is kept


def test_squad_f1_hand_worked():
    # pred tokens {denver, broncos, team}, gold {denver, broncos}: P=2/3, R=1, F1=0.8
    assert one("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx({"exact_match": 0.0, "f1": 80.0})
    # max over golds: "Denver" vs "Broncos" = 0, vs "Denver Broncos" = 2*(1*0.5)/1.5
    assert one("Denver", ["Broncos", "Denver Broncos"])["f1"] == pytest.approx(200 / 3)
    assert one("Panthers", ["Denver Broncos"]) == {"exact_match": 0.0, "f1": 0.0}
    # repeated tokens count by multiplicity: pred {x:2}, gold {x:1} -> P=1/2, R=1
    assert one("x x", ["x"])["f1"] == pytest.approx(200 / 3)


def test_ascii_vs_unicode_punctuation():
    assert one("Denver.", ["Denver"])["exact_match"] == 100.0
    assert one("«Denver»", ["Denver"])["exact_match"] == 0.0  # SQuAD script: ASCII punctuation only
    assert one("«Denver»", ["Denver"], lang="en")["exact_match"] == 100.0  # MLQA: every Unicode P* char
    assert normalize_mlqa("5€ $5", "en") == "5€ 5"  # € is a symbol (Sc), $ is in string.punctuation


def test_missing_prediction_scores_zero_and_counts():
    refs = {"a": ["Denver"], "b": ["Carolina"]}
    assert squad_scores({"a": "Denver", "zzz": "ignored"}, refs) == {"exact_match": 50.0, "f1": 50.0}
    assert mlqa_scores({"b": "Carolina"}, refs, "de") == {"exact_match": 50.0, "f1": 50.0}


def test_v1_rejects_question_without_gold():
    with pytest.raises(ValueError, match="question q: no gold answer"):
        squad_scores({"q": ""}, {"q": []})


# ---------------------------------------------------------------- MLQA


def test_chinese_mixed_segmentation():
    assert normalize_mlqa("国家橄榄球联盟 (NFL) 2016年", "zh") == "国 家 橄 榄 球 联 盟 nfl 2016 年"
    # punctuation goes before segmentation, so "，" between two Latin runs glues them (as in the official script)
    assert normalize_mlqa("NFL，2016年", "zh") == "nfl2016 年"
    # "北京大学" -> 4 tokens, "北京" -> 2: P=2/4, R=1, F1=2/3; whitespace tokenisation gives 0
    assert one("北京大学", ["北京"], lang="zh")["f1"] == pytest.approx(200 / 3)
    assert one("北京大学", ["北京"])["f1"] == 0.0


def test_arabic_al_is_removed_everywhere():
    assert normalize_mlqa("البيت", "ar") == "بيت"
    assert normalize_mlqa("بالكتاب", "ar") == "ب كتاب"  # also inside a word
    assert one("بيت", ["البيت"], lang="ar")["exact_match"] == 100.0
    assert one("بيت", ["البيت"])["exact_match"] == 0.0
    # gold tokens [ب, كتاب], pred [كتاب]: P=1, R=1/2
    assert one("كتاب", ["بالكتاب"], lang="ar")["f1"] == pytest.approx(200 / 3)


def test_language_specific_articles():
    assert one("der Vertrag", ["Vertrag"], lang="de")["exact_match"] == 100.0
    assert one("Die Verträge", ["Verträge"], lang="de")["exact_match"] == 100.0  # lowercased first
    assert one("der Vertrag", ["Vertrag"], lang="en")["exact_match"] == 0.0
    assert one("der Vertrag", ["Vertrag"])["exact_match"] == 0.0
    assert one("Angeles", ["Los Angeles"], lang="es")["exact_match"] == 100.0
    assert one("the Angeles", ["Angeles"], lang="es")["exact_match"] == 0.0
    assert normalize_mlqa("cái bàn của tôi", "vi") == "bàn tôi"
    assert normalize_mlqa("the दिल्ली।", "hi") == "the दिल्ली"  # no articles; the danda is punctuation


def test_unknown_language():
    with pytest.raises(ValueError, match=r"unknown language 'fr' \(expected one of en, es, de, vi, ar, hi, zh\)"):
        mlqa_scores({}, {}, "fr")
    assert set(MLQA_LANGS) == {"en", "es", "de", "vi", "ar", "hi", "zh"}


# ---------------------------------------------------------------- SQuAD 2.0

V2_REFS = {"q1": ["Denver Broncos"], "q2": ["Carolina Panthers"], "q3": [], "q4": []}
V2_PREDS = {"q1": "Denver Broncos", "q2": "Panthers", "q3": "", "q4": "Santa Clara"}
# raw scores: exact q1..q4 = 1, 0, 1, 0; f1 = 1, 2/3, 1, 0


def test_squad_v2_has_ans_no_ans():
    scores = squad_v2_scores(V2_PREDS, V2_REFS)
    assert scores == pytest.approx({
        "exact": 50.0, "f1": 100 * (8 / 3) / 4, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 100 * (5 / 3) / 2, "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
    })


def test_squad_v2_best_threshold():
    na_probs = {"q1": 0.1, "q2": 0.2, "q4": 0.3, "q3": 0.9}
    # Scan by rising na_prob from 2 (all no-answer right): q1 +1 -> 3, q2 +0 (exact) / +2/3 (f1), q4 -1, q3 0.
    scores = squad_v2_scores(V2_PREDS, V2_REFS, na_probs=na_probs)
    assert scores["exact"] == 50.0  # default null_threshold 1.0 forces nothing
    assert scores["best_exact"] == pytest.approx(75.0) and scores["best_exact_thresh"] == 0.1
    assert scores["best_f1"] == pytest.approx(100 * (11 / 3) / 4) and scores["best_f1_thresh"] == 0.2
    # na_prob > 0.25 counts as answering "": q4 becomes right
    forced = squad_v2_scores(V2_PREDS, V2_REFS, na_probs=na_probs, null_threshold=0.25)
    assert forced["exact"] == 75.0 and forced["NoAns_exact"] == 100.0 and forced["HasAns_exact"] == 50.0


def test_squad_v2_missing_prediction_and_na_probs():
    preds = {k: v for k, v in V2_PREDS.items() if k != "q3"}
    scores = squad_v2_scores(preds, V2_REFS, na_probs={"q1": 0.1, "q2": 0.2, "q3": 0.25, "q4": 0.3})
    assert scores["total"] == 4 and scores["NoAns_exact"] == 0.0 and scores["exact"] == 25.0
    # q3 now counts -1 in the scan: 2 -> q1 3 -> q2 3 -> q3 2 -> q4 1
    assert scores["best_exact"] == 75.0 and scores["best_exact_thresh"] == 0.1
    with pytest.raises(XtremeError, match=r"no null score for 1 question\(s\), e.g. q4"):
        squad_v2_scores(V2_PREDS, V2_REFS, na_probs={"q1": 0.0, "q2": 0.0, "q3": 0.0})


def test_squad_v2_answerable_only_has_no_noans_keys():
    scores = squad_v2_scores({"q1": "Denver"}, {"q1": ["Denver Broncos"]})
    assert "NoAns_total" not in scores and scores["HasAns_total"] == 1
    assert scores["f1"] == pytest.approx(200 / 3) and scores["exact"] == 0.0
