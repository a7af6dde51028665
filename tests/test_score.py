"""`utils.score`: XTREME's official mock submission scored exactly as XTREME's `evaluate.py` scores it, the CLI,
missing files, and Tatoeba predictions in submission order from LASER-layout input."""

import json
import shutil
import subprocess
import sys
import warnings

import pytest
from conftest import FIXTURES, ROOT, XTREME_DIR, run_script

from utils import score as S
from utils.errors import XtremeError
from utils.results import results_path

MOCK = FIXTURES / "xtreme_mock"

# XTREME's evaluate_test.py: the averages its evaluate.py gives on the mock submission (exact floats)
EXPECTED = {
    "pawsx": {"accuracy": 51.42857142857143},
    "xnli": {"accuracy": 30.666666666666668},
    "panx": {"f1": 57.50793650793652, "precision": 54.729166666666664, "recall": 62.750000000000014},
    "udpos": {"f1": 70.21746048354693, "precision": 71.02232625883823, "recall": 69.54982073976082},
    "bucc2018": {"f1": 55.0, "precision": 55.0, "recall": 55.0},
    "tatoeba": {"accuracy": 53.611111111111114},
    "xquad": {"exact_match": 77.27272727272727, "f1": 79.9586776859504},
    "mlqa": {"exact_match": 57.142857142857146, "f1": 81.76870748299321},
    "tydiqa": {"exact_match": 88.88888888888889, "f1": 97.22222222222223},
}


@pytest.fixture(scope="module")
def mock_scores():
    return S.score_folder(MOCK / "predictions", MOCK / "labels")


@pytest.mark.parametrize("task", EXPECTED)
def test_mock_submission_averages_are_xtremes(mock_scores, task):
    result = mock_scores["tasks"][task]
    assert {k: result["average"][k] for k in EXPECTED[task]} == EXPECTED[task]
    assert not result["partial"] and not result["missing_predictions"] and not result["no_labels"]


def _seqeval_1x(task):
    """seqeval 1.x (installed) on the mock files: per-language f1/precision/recall x100."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    out = {}
    for lang in S.TASKS[task].languages:
        gold, predicted = (S._sentences(MOCK / kind / task / f"test-{lang}.tsv") for kind in ("labels", "predictions"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[lang] = {"f1": f1_score(gold, predicted) * 100, "precision": precision_score(gold, predicted) * 100,
                         "recall": recall_score(gold, predicted) * 100}
    return out


def test_udpos_is_seqeval_0012_not_the_installed_seqeval_1x(mock_scores):
    """seqeval 1.x reads UPOS "CCONJ"/"SCONJ" as one type: its UD-POS F1 on the mock is 70.398..., not XTREME's."""
    from importlib.metadata import version

    assert version("seqeval").startswith("1.")
    installed = S.average("udpos", _seqeval_1x("udpos"))
    assert installed["f1"] == 70.39805810699043
    assert mock_scores["tasks"]["udpos"]["average"]["f1"] == 70.21746048354693 != installed["f1"]


def test_panx_equals_the_installed_seqeval_1x(mock_scores):
    ours = {lang: {k: m[k] for k in ("f1", "precision", "recall")}
            for lang, m in mock_scores["tasks"]["panx"]["languages"].items()}
    assert ours == _seqeval_1x("panx")


def test_xtreme_score_and_categories(mock_scores):
    task = {t: mock_scores["tasks"][t]["score"] for t in S.XTREME_TASKS}
    assert task["xquad"] == (77.27272727272727 + 79.9586776859504) / 2  # QA: (EM + F1) / 2
    assert task["udpos"] == 70.21746048354693 and task["tatoeba"] == 53.611111111111114  # F1, else accuracy
    assert S.CATEGORIES == {"classification": ("pawsx", "xnli"), "structured prediction": ("udpos", "panx"),
                            "question answering": ("xquad", "mlqa", "tydiqa"), "retrieval": ("bucc2018", "tatoeba")}
    assert mock_scores["categories"]["question answering"] == (task["xquad"] + task["mlqa"] + task["tydiqa"]) / 3
    assert mock_scores["xtreme"] == sum(task.values()) / 9


def test_cli_prints_the_averages_and_writes_json(tmp_path):
    out = tmp_path / "scores.json"
    result = subprocess.run([sys.executable, "-m", "utils.score", MOCK / "predictions", MOCK / "labels", "--json",
                             out], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for task, expected in EXPECTED.items():
        section = result.stdout.split(f"## {task}:")[1].split("## ")[0]
        assert all(f"{metric} {value!r}" in section for metric, value in expected.items()), section
    scores = json.loads(out.read_text())
    assert {t: {k: scores["tasks"][t]["average"][k] for k in EXPECTED[t]} for t in EXPECTED} == EXPECTED
    assert f"XTREME score: {scores['xtreme']!r}" in result.stdout


def _copy_task(tmp_path, task):
    for kind in ("predictions", "labels"):
        shutil.copytree(MOCK / kind / task, tmp_path / kind / task)
    return tmp_path / "predictions", tmp_path / "labels"


def test_missing_predictions_are_named_never_scored_zero(tmp_path, capsys):
    predictions, labels = _copy_task(tmp_path, "pawsx")
    (predictions / "pawsx/test-ja.tsv").unlink()
    (labels / "pawsx/test-ko.tsv").unlink()
    with pytest.raises(SystemExit) as exit_info:
        run_script("utils.score", [predictions, labels, "--json", tmp_path / "s.json"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert captured.err.strip() == (f"error: 1 predictions file(s) missing, their languages are left out of the "
                                    f"averages above: {predictions / 'pawsx/test-ja.tsv'}")
    scores = json.loads((tmp_path / "s.json").read_text())["tasks"]["pawsx"]
    assert scores["missing_predictions"] == {"ja": str(predictions / "pawsx/test-ja.tsv")}
    assert scores["no_labels"] == ["ko"] and scores["partial"]
    assert set(scores["languages"]) == {"de", "en", "es", "fr", "zh"}
    assert scores["average"]["accuracy"] == sum(m["accuracy"] for m in scores["languages"].values()) / 5
    assert "## pawsx: 5 of 7 languages (partial)" in captured.out
    assert "XTREME score: None" in captured.out


def test_tatoeba_bracketed_predictions_and_length_mismatch(tmp_path):
    predictions, labels = _copy_task(tmp_path, "tatoeba")
    for path in (predictions / "tatoeba").iterdir():
        path.write_text("".join(f"[{line}]\n" for line in path.read_text().split()))
    assert S.score_folder(predictions, labels)["tasks"]["tatoeba"]["average"] == EXPECTED["tatoeba"]
    path = predictions / "tatoeba/test-de.tsv"
    path.write_text(path.read_text() + "[1]\n")
    with pytest.raises(XtremeError, match=r"test-de\.tsv: 11 lines but .*test-de\.tsv has 10"):
        S.score_folder(predictions, labels)


@pytest.mark.parametrize("task, old, new, message", [
    ("udpos", "VERB\n", "", r"test-de\.tsv: sentence 1 has 11 tags but 12 in "),
    ("bucc2018", "\t", " ",
     r"test-de\.tsv \(labels .*test-de\.tsv\): BUCC: expected rows of \(source id, English id\) pairs"),
], ids=["tagging sentence mismatch", "bucc line without a pair"])
def test_malformed_prediction_line_is_named(tmp_path, task, old, new, message):
    predictions, labels = _copy_task(tmp_path, task)
    path = predictions / f"{task}/test-de.tsv"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(XtremeError, match=message):
        S.score_folder(predictions, labels)


def test_no_task_folder(tmp_path):
    with pytest.raises(XtremeError, match="no XTREME task folder"):
        S.score_folder(tmp_path, MOCK / "labels")


# ---------------------------------------------------------------------------------- Tatoeba submission order

def hidden_labels(english: list[str], path):
    """XTREME's hidden Tatoeba test set: `tatoeba_preprocess` strips and sorts the English side (stable sort);
    the label of sorted line i is the index of its translation (its line in the LASER files)."""
    order = sorted(range(len(english)), key=lambda i: english[i].strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in order))


def test_tatoeba_run_from_laser_files_scores_as_reported(tiny_model_dir, tmp_path):
    """A LASER-layout pair whose German side is the English text itself (so the tiny random model retrieves most
    lines right): the submitted file, scored against labels built as XTREME builds them, gives the accuracy the
    run reports. Leading spaces and a repeated sentence make the sort and its ties matter."""
    english = (XTREME_DIR / "tatoeba/tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()
    english[5], english[17] = " " + english[5], english[3]
    data = tmp_path / "laser"
    data.mkdir()
    for suffix in ("deu", "eng"):
        (data / f"tatoeba.deu-eng.{suffix}").write_text("\n".join(english) + "\n", encoding="utf-8")
    hidden_labels(english, tmp_path / "labels/tatoeba/test-de.tsv")
    out = tmp_path / "eval"
    run_script("run_xtreme_eval", ["--model_name_or_path", tiny_model_dir, "--task", "tatoeba", "--languages",
                                   "de", "--data_dir", data, "--output_dir", out, "--use_cpu"])
    reported = json.loads(results_path(out, "tatoeba", "test").read_text())["languages"]["de"]
    scored = S.score_folder(out / "predictions", tmp_path / "labels")["tasks"]["tatoeba"]["languages"]["de"]
    assert reported["accuracy"] > 50 and scored["accuracy"] == reported["accuracy"]
