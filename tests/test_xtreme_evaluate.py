"""The `evaluate` module `metrics/xtreme`, loaded offline from the repo: the numbers of `utils.score` on XTREME's
mock submission for each of the nine tasks, hand-worked values on typical inputs, errors, and a cold module cache
shared by processes loading it at once."""

import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT

from metrics.xtreme.xtreme_metrics import TASK_METRICS, compute
from utils import score as S

MOCK = FIXTURES / "xtreme_mock"
MODULE = ROOT / "metrics" / "xtreme"


@pytest.fixture(scope="module")
def load():
    import evaluate

    return lambda task: evaluate.load(str(MODULE), task)


def test_configs_are_xtremes_nine_tasks():
    assert set(TASK_METRICS) == set(S.XTREME_TASKS)


@pytest.mark.parametrize("task", S.XTREME_TASKS)
def test_mock_submission_scores_as_utils_score(load, task):
    metric = load(task)
    suffix = "json" if S.TASKS[task].kind == S.QA else "tsv"
    per_language = {}
    for lang in S.TASKS[task].languages:
        name = f"{task}/test-{lang}.{suffix}"
        predictions, labels = S.read_submission(task, MOCK / "predictions" / name, MOCK / "labels" / name)
        per_language[lang] = metric.compute(predictions=predictions, references=labels, language=lang)
        assert per_language[lang] == S.score_file(task, lang, MOCK / "predictions" / name, MOCK / "labels" / name)
    expected = S.score_folder(MOCK / "predictions", MOCK / "labels")["tasks"][task]["average"]
    assert S.average(task, per_language) == expected


def test_typical_inputs(load):
    assert load("xnli").compute(predictions=["entailment", "neutral", "neutral", "contradiction"],
                                references=["entailment", "neutral", "contradiction", "contradiction"]) \
        == {"accuracy": 75.0}
    assert load("pawsx").compute(predictions=[1, 0, 1], references=[1, 1, 1]) == pytest.approx({"accuracy": 200 / 3})
    assert load("tatoeba").compute(predictions=[3, 1, 2, 0], references=[3, 1, 0, 2]) == {"accuracy": 50.0}
    # PAN-X: gold PER(0-1) LOC(3) ORG; predicted PER(0-1) ORG(3) ORG: 2 of 3 spans right, 6 of 7 words
    panx = load("panx").compute(predictions=[["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG"]],
                                references=[["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]])
    assert panx == pytest.approx({"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3, "accuracy": 500 / 6})
    # UD-POS as seqeval 0.0.12 reads it: CCONJ and SCONJ are different types (seqeval 1.x would give 100)
    udpos = load("udpos").compute(predictions=[["PRON", "SCONJ", "VERB"]], references=[["PRON", "CCONJ", "VERB"]])
    assert udpos == pytest.approx({"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3, "accuracy": 200 / 3})
    # SQuAD: pred tokens {denver, broncos, team} vs gold {denver, broncos}: F1 0.8; max over the gold answers
    xquad = load("xquad").compute(predictions=["the Denver Broncos team", "Carolina"],
                                  references=[["Denver Broncos"], ["Panthers", "Carolina"]])
    assert xquad == pytest.approx({"exact_match": 50.0, "f1": 90.0})
    assert load("tydiqa").compute(predictions=["«Denver»"], references=[["Denver"]])["exact_match"] == 0.0
    bucc = load("bucc2018").compute(predictions=[[["de-1", "en-1"], ["de-2", "en-3"]]],
                                    references=[[["de-1", "en-1"], ["de-2", "en-2"], ["de-3", "en-3"]]])
    assert bucc == pytest.approx({"f1": 40.0, "precision": 50.0, "recall": 100 / 3})


def test_mlqa_normalises_per_language(load):
    mlqa = load("mlqa")
    assert mlqa.compute(predictions=["der Vertrag"], references=[["Vertrag"]], language="de")["exact_match"] == 100
    assert mlqa.compute(predictions=["der Vertrag"], references=[["Vertrag"]], language="en")["exact_match"] == 0
    # zh: every ideograph is a token, so a partial answer gets partial credit
    assert mlqa.compute(predictions=["北京大学"], references=[["北京"]], language="zh")["f1"] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="MLQA metric: no language given"):
        mlqa.compute(predictions=["Vertrag"], references=[["Vertrag"]])


def test_the_same_numbers_as_the_project_functions(load):
    from utils.metrics import tagging_metrics

    tags = [["B-LOC", "I-LOC", "O", "B-PER"], ["O", "O", "B-ORG", "I-ORG", "I-ORG"]]
    predicted = [["B-LOC", "O", "O", "B-PER"], ["O", "B-ORG", "I-ORG", "I-ORG", "I-ORG"]]
    expected = {k: v for k, v in tagging_metrics(tags, predicted).items() if k != "score"}
    assert load("panx").compute(predictions=predicted, references=tags) == expected == compute("panx", predicted, tags)


def test_relative_path_and_errors(load, monkeypatch):
    import evaluate

    monkeypatch.chdir(ROOT)
    assert evaluate.load("metrics/xtreme", "pawsx").compute(predictions=["1"], references=["1"]) == {"accuracy": 100}
    with pytest.raises(ValueError, match="unknown task 'xcopa'; pass one of pawsx, xnli, udpos"):
        evaluate.load("metrics/xtreme", "xcopa")
    with pytest.raises(ValueError, match="no task given"):
        evaluate.load("metrics/xtreme")
    with pytest.raises(ValueError):  # int predictions against text labels
        load("xnli").compute(predictions=[0, 1], references=["entailment", "neutral"])
    with pytest.raises(ValueError, match="sentence 1 has 2 gold tags but 1 predictions"):
        load("udpos").compute(predictions=[["NOUN"]], references=[["NOUN", "VERB"]])


LOAD_AND_SCORE = """
import json, sys
import evaluate
scores = {task: evaluate.load(sys.argv[1], task).compute(predictions=["a", "b"], references=["a", "c"])
          for task in ("pawsx", "xnli")}
scores["xquad"] = evaluate.load(sys.argv[1], "xquad").compute(predictions=["x y"], references=[["x"]])
print(json.dumps(scores))
"""


def test_processes_loading_at_once_into_a_cold_cache(tmp_path):
    """Two processes load the module at the same moment into an empty cache (HF_HOME), offline: both work."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_AND_SCORE, str(MODULE)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    expected = {"pawsx": {"accuracy": 50.0}, "xnli": {"accuracy": 50.0}, "xquad": compute("xquad", ["x y"], [["x"]])}
    assert expected["xquad"] == pytest.approx({"exact_match": 0.0, "f1": 200 / 3})
    assert [json.loads(out) for out, _ in outputs] == [expected, expected]
    assert list((tmp_path / "hf").rglob("xtreme_metrics.py"))  # evaluate copied the implementation beside xtreme.py
