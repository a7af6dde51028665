"""The results summariser on hand-written results JSON (tests/fixtures/results/grid).

The fixture grid (backbone xlmr, test split, two languages per task):
- none: all nine tasks with seed 1 (pawsx 85, xnli 75, udpos 80, panx 70, xquad 60, mlqa 50, tydiqa 50 (its file has
  no per-language `score`: (EM + F1)/2 is computed), bucc2018 65, tatoeba 45) and pawsx again with seed 2 (87);
- mnli: pawsx 88/90 and xnli 78/80 (seeds 1/2), xquad 64, bucc2018 85 (seed 1);
- squad_v1: pawsx 87, xquad 70, mlqa 60, tatoeba 55 (seed 1; tatoeba skipped ja);
- hellaswag: planned (grid_state.json) but no results at all.
"""

import csv
import math
import shutil

import pytest
from conftest import FIXTURES

from utils.errors import XtremeError
from utils.report import (MISSING, Summary, discover, language_score, main, write_report, xtreme_scores)

GRID = FIXTURES / "results" / "grid"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return write_report(GRID, out)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def row(rows, **match):
    found = [r for r in rows if all(r[k] == str(v) for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_language_score_follows_xtreme():
    assert language_score({"accuracy": 70.0, "score": 70.0}) == 70.0
    assert language_score({"exact_match": 40.0, "f1": 60.0}) == 50.0  # QA without a stored score
    assert language_score({"f1": 55.0, "accuracy": 90.0}) == 55.0  # tagging: F1, not token accuracy
    assert language_score({"accuracy": 42.0}) == 42.0
    assert language_score({"num_examples": 10}) is None


def test_xtreme_score_and_category_means():
    tasks = {"pawsx": 85, "xnli": 75, "udpos": 80, "panx": 70, "xquad": 60, "mlqa": 50, "tydiqa": 50,
             "bucc2018": 65, "tatoeba": 45}
    scores = xtreme_scores(tasks)
    assert scores["XTREME"] == pytest.approx(580 / 9)
    assert scores["classification"] == 80 and scores["structured prediction"] == 75
    assert scores["question answering"] == pytest.approx(160 / 3) and scores["retrieval"] == 55
    partial = xtreme_scores({k: v for k, v in tasks.items() if k != "tatoeba"})
    assert partial["XTREME"] is None and partial["retrieval"] is None  # missing, never a mean over 8 tasks
    assert partial["classification"] == 80


def test_task_scores_from_the_results_files():
    results = {(r.intermediate, r.seed, r.target): r for r in discover(GRID)}
    assert len(results) == 20
    assert results[("none", 1, "xquad")].score == 60  # per language (EM+F1)/2: en 70, de 50
    assert results[("none", 1, "tydiqa")].score == 50  # no stored score: (en 50/60 -> 55, ar 35/55 -> 45)
    assert results[("none", 1, "udpos")].score == 80
    # the step record names what produced the results; without one, the grid layout does
    assert results[("mnli", 1, "pawsx")].step["upstream"][1]["phase"] == 1
    assert results[("none", 2, "pawsx")].step is None


def test_xtreme_table_with_seeds(report):
    rows = read_csv(report["out"] / "xtreme.csv")
    none = row(rows, backbone="xlmr", intermediate="none")
    assert float(none["pawsx"]) == 86 and float(none["pawsx_std"]) == pytest.approx(math.sqrt(2), abs=1e-3)
    assert none["pawsx_n"] == "2" and none["xnli_n"] == "1" and none["xnli_std"] == ""
    assert float(none["XTREME"]) == pytest.approx(581 / 9, abs=1e-3)  # mean task scores (pawsx over 2 seeds)
    assert float(none["classification"]) == 80.5
    assert float(none["question answering"]) == pytest.approx(160 / 3, abs=1e-3)
    assert none["XTREME_std"] == ""  # seed 2 has no complete XTREME score
    mnli = row(rows, intermediate="mnli")
    assert float(mnli["pawsx"]) == 89 and float(mnli["xnli"]) == 79 and float(mnli["xnli_std"]) == pytest.approx(
        math.sqrt(2), abs=1e-3)
    assert mnli["udpos"] == "" and mnli["XTREME"] == "" and float(mnli["classification"]) == 84
    hellaswag = row(rows, intermediate="hellaswag")
    assert all(hellaswag[t] == "" for t in ("pawsx", "xnli", "XTREME"))


def test_deltas_against_the_baseline(report):
    rows = read_csv(report["out"] / "deltas.csv")
    expected = {("mnli", "pawsx"): 3, ("mnli", "xnli"): 4, ("mnli", "xquad"): 4, ("mnli", "bucc2018"): 20,
                ("squad_v1", "pawsx"): 1, ("squad_v1", "xquad"): 10, ("squad_v1", "mlqa"): 10,
                ("squad_v1", "tatoeba"): 10}
    for (setting, target), delta in expected.items():
        assert float(row(rows, intermediate=setting, target=target)["delta"]) == pytest.approx(delta)
    # missing cells stay missing: no results for mnli -> udpos, none at all for hellaswag
    assert row(rows, intermediate="mnli", target="udpos")["delta"] == ""
    assert row(rows, intermediate="mnli", target="udpos")["score"] == ""
    assert row(rows, intermediate="hellaswag", target="pawsx")["delta"] == ""
    assert row(rows, intermediate="squad_v1", target="tatoeba")["partial"] == "True"


def test_best_intermediate_per_target(report):
    rows = read_csv(report["out"] / "best_per_target.csv")
    best = {r["target"]: r for r in rows}
    assert best["pawsx"]["best_intermediate"] == "mnli" and float(best["pawsx"]["delta"]) == 3
    assert best["xquad"]["best_intermediate"] == "squad_v1" and float(best["xquad"]["delta"]) == 10
    assert best["bucc2018"]["best_intermediate"] == "mnli" and float(best["bucc2018"]["delta"]) == 20
    assert best["udpos"]["best_intermediate"] == "" and best["udpos"]["delta"] == ""
    # the "+5.4" view: mean over the targets that have both a best setting and a baseline (6 here)
    assert float(best["average"]["delta"]) == pytest.approx((3 + 4 + 10 + 10 + 20 + 10) / 6)
    assert best["average"]["score"] == ""  # XTREME with the best setting per target needs all nine
    assert float(best["average"]["baseline"]) == pytest.approx(581 / 9, abs=1e-3)
    summary = report["summary"].best_summary("xlmr")
    assert summary["n_targets"] == 6


def test_per_language_deltas(report):
    rows = read_csv(report["out"] / "language_deltas.csv")
    # pawsx de: mnli (84 + 86)/2 = 85 vs none (80 + 82)/2 = 81; en: 93 vs 91
    assert float(row(rows, target="pawsx", language="de", intermediate="mnli")["delta"]) == 4
    assert float(row(rows, target="pawsx", language="en", intermediate="mnli")["delta"]) == 2
    assert float(row(rows, target="xquad", language="de", intermediate="squad_v1")["delta"]) == 10
    assert not [r for r in rows if r["intermediate"] == "none"]


def test_markdown_has_a_row_per_setting_and_shows_missing_as_missing(report):
    text = (report["out"] / "report.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    xtreme = lines[lines.index("### XTREME scores per intermediate setting") + 2:]
    xtreme = xtreme[:xtreme.index("")]
    assert [line.split("|")[1].strip() for line in xtreme[2:]] == ["none", "mnli", "squad_v1", "hellaswag"]
    hellaswag = [c.strip() for c in xtreme[-1].split("|")[2:-1]]
    assert hellaswag and set(hellaswag) == {MISSING}
    mnli = [c.strip() for c in xtreme[3].split("|")[1:-1]]
    assert mnli[2].startswith("89.0 ± 1.4") and mnli[4] == MISSING  # pawsx over 2 seeds, udpos missing
    gains = lines[lines.index("### Gain over `none` (points)") + 2:]
    gains = gains[:gains.index("")]
    assert [line.split("|")[1].strip() for line in gains[2:]] == ["mnli", "squad_v1", "hellaswag"]
    assert "| mnli | +3.0 | +4.0 | — | — | +4.0 | — | — | +20.0 | — | +7.8 |" in gains
    assert "0.0" not in gains[-1]
    assert "+9.5" in text
    runs = (report["out"] / "runs.md").read_text(encoding="utf-8")
    assert "## xlmr / none / seed 1" in runs and "skipped: data/tatoeba" in runs


def test_provenance_in_scores_csv(report):
    rows = read_csv(report["out"] / "scores.csv")
    assert len(rows) == 20
    mnli = row(rows, intermediate="mnli", seed=1, target="pawsx")
    assert mnli["phase1_command"].startswith("python run_intermediate.py") and "--task mnli" in mnli["phase1_command"]
    assert "run_target.py" in mnli["phase2_command"] and "run_xtreme_eval.py" in mnli["phase3_command"]
    assert float(mnli["wall_s"]) == 3640 and mnli["git_commit"] == "0123abc" and mnli["transformers"] == "5.24.0"
    assert mnli["backbone_path"] == "FacebookAI/xlm-roberta-large"


def test_png_plots_are_written(report):
    out = report["out"]
    heatmap = out / "heatmap_xlmr.png"
    bars = out / "languages_xlmr_pawsx.png"
    for png in (heatmap, bars):
        data = png.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert heatmap in report["plots"]


def test_cli_and_errors(tmp_path, capsys):
    run_dir = tmp_path / "grid"
    shutil.copytree(GRID, run_dir)
    assert main([str(run_dir), "--bars", "xquad"]) == 0
    assert "+9.5 over 6 target(s)" in capsys.readouterr().out
    assert (run_dir / "report" / "languages_xlmr_xquad.png").is_file()
    assert not (run_dir / "report" / "languages_xlmr_pawsx.png").exists()
    with pytest.raises(XtremeError, match="no results"):
        main([str(tmp_path / "grid"), "--split", "dev"])
    with pytest.raises(XtremeError, match="not a directory"):
        main([str(tmp_path / "nothing")])


def test_results_outside_the_grid_layout_get_per_run_tables(tmp_path):
    single = tmp_path / "demo" / "mnli-pawsx" / "results"
    single.mkdir(parents=True)
    shutil.copy(GRID / "xlmr/none/seed1/pawsx/phase3/results/pawsx.json", single)
    done = write_report(tmp_path / "demo", tmp_path / "out")
    summary: Summary = done["summary"]
    assert len(summary.results) == 1 and not summary.grid
    assert "## mnli-pawsx" in (tmp_path / "out" / "runs.md").read_text(encoding="utf-8")
