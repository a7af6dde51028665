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
from conftest import FIXTURES, ROOT

from utils.errors import XtremeError
from utils.report import MISSING, BrokenResults, Summary, discover, main, write_report
from utils.results import results_path
from utils.score import language_score, xtreme_scores

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
    shutil.copy(results_path(GRID / "xlmr/none/seed1/pawsx/phase3", "pawsx", "test"), single)
    done = write_report(tmp_path / "demo", tmp_path / "out")
    summary: Summary = done["summary"]
    assert len(summary.results) == 1 and not summary.grid
    assert "## mnli-pawsx" in (tmp_path / "out" / "runs.md").read_text(encoding="utf-8")


def _edit(path, change):
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_broken_results_files_are_named_and_stop_the_report(tmp_path, capsys):
    run_dir = tmp_path / "grid"
    shutil.copytree(GRID, run_dir)
    path = lambda rel, task: results_path(run_dir / "xlmr" / rel / task / "phase3", task, "test")
    empty, truncated = path("none/seed1", "xnli"), path("none/seed1", "udpos")
    string, nan, no_score = path("mnli/seed1", "pawsx"), path("mnli/seed2", "pawsx"), path("squad_v1/seed1", "xquad")
    misnamed = path("squad_v1/seed1", "pawsx")
    empty.write_text("")
    truncated.write_text(truncated.read_text(encoding="utf-8")[:80], encoding="utf-8")
    _edit(string, lambda d: d["languages"]["de"].update(score="84.0"))
    _edit(nan, lambda d: d["languages"]["en"].update(score=float("nan")))
    _edit(no_score, lambda d: d["languages"].update(de={"exact_match": 60.0, "num_examples": 10}))
    misnamed.rename(misnamed.parent / "pawsx.json")
    with pytest.raises(BrokenResults) as broken:
        main([str(run_dir)])
    lines = capsys.readouterr().err.splitlines()
    assert lines == broken.value.files
    problems = dict(line.split(": ", 1) for line in lines)
    assert list(problems) == sorted(problems)  # a line per file, in path order
    assert problems == {
        str(misnamed.parent / "pawsx.json"): f"holds the test results of pawsx: expected the path {misnamed}",
        str(string): 'languages.de.score is "84.0": expected a number',
        str(nan): "languages.en.score is NaN: expected a number",
        str(empty): "empty file",
        str(truncated): problems[str(truncated)],
        str(no_score): "languages.de has no score (expected score, accuracy, f1, or exact_match and f1)"}
    assert problems[str(truncated)].startswith("not valid JSON (Unterminated string starting at: line ")
    assert len(lines) == 6 and str(broken.value) == (
        f"6 results file(s) under {run_dir} cannot be used (listed above): fix or remove them, or pass --skip-broken "
        "to report without them")
    assert not (run_dir / "report").exists()
    # --skip-broken: reported without them, and report.md says which were left out and why
    assert main([str(run_dir), "--skip-broken"]) == 0
    assert "left out 6 results file(s)" in capsys.readouterr().out
    text = (run_dir / "report" / "report.md").read_text(encoding="utf-8")
    assert "**6 results file(s) left out** (`--skip-broken`)" in text
    assert all(f"- {line}" in text for line in lines)
    rows = read_csv(run_dir / "report" / "xtreme.csv")
    assert row(rows, intermediate="none")["xnli"] == "" and row(rows, intermediate="mnli")["pawsx"] == ""
    assert float(row(rows, intermediate="mnli")["xnli"]) == 79  # the readable files are all there
    assert len(read_csv(run_dir / "report" / "scores.csv")) == 20 - 6


def test_both_splits_of_a_target_are_never_mixed(tmp_path):
    run_dir = tmp_path / "grid"
    shutil.copytree(GRID, run_dir)
    dev = results_path(run_dir / "xlmr/none/seed1/pawsx/phase3", "pawsx", "dev")
    test = results_path(dev.parent.parent, "pawsx", "test")
    shutil.copy(test, dev)
    _edit(dev, lambda d: d.update(split="dev", languages={"de": {"accuracy": 10.0, "score": 10.0}, "en": {"accuracy": 20.0, "score": 20.0}}))
    with pytest.raises(XtremeError) as mixed:
        write_report(run_dir, tmp_path / "out")
    first_test = results_path(run_dir / "xlmr/mnli/seed1/pawsx/phase3", "pawsx", "test")
    assert str(mixed.value) == (f"{run_dir}: both dev and test results for pawsx (e.g. {dev} and {first_test}): "
                                "pass --split dev or --split test to report one of them")
    assert not (tmp_path / "out").exists()
    tested = write_report(run_dir, tmp_path / "test", split="test")["summary"]
    assert tested.value("xlmr", "none", "pawsx") == 86 and len(tested.results) == 20  # as without the dev file
    developed = write_report(run_dir, tmp_path / "dev", split="dev")["summary"]
    assert [r.path for r in developed.results] == [dev] and developed.value("xlmr", "none", "pawsx") == 15
    assert "split dev." in (tmp_path / "dev" / "report.md").read_text(encoding="utf-8")
    # outside the grid: one run's dir with both splits of a task
    single = tmp_path / "single" / "run"
    (single / "results").mkdir(parents=True)
    shutil.copy(dev, single / "results")
    shutil.copy(test, single / "results")
    with pytest.raises(XtremeError, match=r"both dev and test results for pawsx in run \(e.g\."):
        write_report(tmp_path / "single", tmp_path / "out")


# ----------------------------------------------------------------------------- aligned vs base
#
# tests/fixtures/results/pairs: the pair `qwen2.5-0.5b` = base `qwen` + aligned `qwen-instruct` (grid_state.json and
# every step.json say so), settings none and mnli, targets xnli and pawsx (udpos planned, never run), seeds 1 and 2,
# test split, two languages (de = score - 2, en = score + 2):
#
#                    none xnli  none pawsx  mnli xnli  mnli pawsx   gains (mnli - none, per seed)
#   qwen             60, 62     70, 72      64, 68     71, 75       xnli 4, 6 (5 ± √2)    pawsx 1, 3 (2 ± √2)
#   qwen-instruct    65, 65     74, 76      66, 67     77, —        xnli 1, 2 (1.5 ± √½)  pawsx 3 (seed 1 only)

PAIRS = FIXTURES / "results" / "pairs"


def write_result(run_dir, backbone, setting, seed, target, score, group=None, pair=None, task=None, split="test"):
    """One phase-3 results file (two languages around `score`) and its step record, as the grid writes them."""
    import json

    d = run_dir / backbone / setting / f"seed{seed}" / target / "phase3"
    path = results_path(d, task or target, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    langs = {"de": score - 2.0, "en": score + 2.0}
    path.write_text(json.dumps({
        "task": task or target, "split": split,
        "languages": {lang: {"accuracy": v, "score": v} for lang, v in langs.items()},
        "skipped": {}}), encoding="utf-8")
    (d / "step.json").write_text(json.dumps({
        "phase": 3, "backbone": {"name": backbone, "path": f"hub/{backbone}", "group": group, "pair": pair},
        "intermediate": setting, "seed": seed, "target": target, "task": task or target}), encoding="utf-8")


@pytest.fixture(scope="module")
def pair_report(tmp_path_factory):
    return write_report(PAIRS, tmp_path_factory.mktemp("pair_report"))


def test_pairs_come_from_the_plan_records(pair_report):
    s: Summary = pair_report["summary"]
    assert [(p.name, p.base, p.aligned) for p in s.pairs] == [("qwen2.5-0.5b", "qwen", "qwen-instruct")]
    assert s.pair_notes == []


def test_pair_gains_per_setting_and_their_difference(pair_report):
    s: Summary = pair_report["summary"]
    pair = s.pairs[0]
    xnli = s.pair_gains(pair, "mnli", "xnli")
    assert xnli.base.per_seed == {1: 4, 2: 6} and xnli.base.mean == 5
    assert xnli.base.std == pytest.approx(math.sqrt(2))
    assert xnli.aligned.per_seed == {1: 1, 2: 2} and xnli.aligned.mean == 1.5
    assert xnli.aligned.std == pytest.approx(math.sqrt(0.5))
    assert xnli.diff == -3.5  # aligned - base: the difference of the mean gains
    assert xnli.std == pytest.approx(math.sqrt(2 + 0.5))  # sqrt(std_base^2 + std_aligned^2)
    assert xnli.se == pytest.approx(math.sqrt(2 / 2 + 0.5 / 2))  # standard error of the difference of the means
    rows = read_csv(pair_report["out"] / "pairs.csv")
    r = row(rows, target="xnli", intermediate="mnli")
    assert (r["pair"], r["base_backbone"], r["aligned_backbone"]) == ("qwen2.5-0.5b", "qwen", "qwen-instruct")
    assert float(r["base_gain"]) == 5 and float(r["base_gain_std"]) == pytest.approx(math.sqrt(2), abs=1e-3)
    assert float(r["aligned_gain"]) == 1.5 and float(r["aligned_gain_std"]) == pytest.approx(math.sqrt(.5), abs=1e-3)
    assert float(r["diff"]) == -3.5 and float(r["diff_std"]) == pytest.approx(math.sqrt(2.5), abs=1e-3)
    assert (r["base_n"], r["aligned_n"]) == ("2", "2")
    assert float(r["base_baseline"]) == 61 and float(r["base_score"]) == 66
    assert float(r["aligned_baseline"]) == 65 and float(r["aligned_score"]) == 66.5


def test_pair_missing_seeds_and_cells_stay_missing(pair_report, tmp_path):
    s: Summary = pair_report["summary"]
    pair = s.pairs[0]
    # aligned mnli -> pawsx has seed 1 only: a gain over one seed (77 - 74), no std, so no combined spread
    pawsx = s.pair_gains(pair, "mnli", "pawsx")
    assert pawsx.aligned.per_seed == {1: 3} and pawsx.aligned.std is None
    assert pawsx.base.mean == 2 and pawsx.diff == 1 and pawsx.std is None and pawsx.se is None
    rows = read_csv(pair_report["out"] / "pairs.csv")
    r = row(rows, target="pawsx", intermediate="mnli")
    assert r["aligned_gain_std"] == "" and r["aligned_n"] == "1" and r["diff_std"] == "" and float(r["diff"]) == 1
    # udpos was planned but never ran: every value missing, never 0
    udpos = row(rows, target="udpos", intermediate="mnli")
    assert all(udpos[k] == "" for k in ("base_gain", "aligned_gain", "diff", "diff_std", "base_baseline"))
    assert row(rows, target="udpos", intermediate="best")["base_setting"] == ""
    # a whole cell gone (aligned mnli -> pawsx): its gain and the difference are missing, the base gain stays
    run_dir = tmp_path / "pairs"
    shutil.copytree(PAIRS, run_dir)
    shutil.rmtree(run_dir / "qwen-instruct" / "mnli" / "seed1" / "pawsx")
    s2 = Summary(discover(run_dir), run_dir)
    pawsx = s2.pair_gains(s2.pairs[0], "mnli", "pawsx")
    assert pawsx.aligned.mean is None and pawsx.aligned.score is None and pawsx.diff is None
    assert pawsx.base.mean == 2
    best = s2.pair_gains(s2.pairs[0], None, "pawsx")
    assert best.aligned.setting is None and best.aligned.mean is None and best.diff is None
    assert best.aligned.baseline == 75  # the baseline is still there
    avg = s2.pair_average(s2.pairs[0], None)
    assert avg["targets"] == ["xnli"] and avg["diff"] == -3.5  # averages only where both gains exist
    # a seed whose baseline is missing has no gain (not a gain over 0)
    shutil.rmtree(run_dir / "qwen" / "none" / "seed2" / "xnli")
    s3 = Summary(discover(run_dir), run_dir)
    assert s3.gain("qwen", "mnli", "xnli").per_seed == {1: 4}


def test_pair_best_setting_per_target_is_each_backbones_own(tmp_path):
    run_dir = tmp_path / "pairs"
    shutil.copytree(PAIRS, run_dir)
    meta = {"qwen": ("base", "qwen2.5-0.5b"), "qwen-instruct": ("aligned", "qwen2.5-0.5b")}
    for bb, scores in (("qwen", (61, 63)), ("qwen-instruct", (69, 71))):  # squad_v1 -> xnli
        for seed, score in zip((1, 2), scores):
            write_result(run_dir, bb, "squad_v1", seed, "xnli", score, *meta[bb])
    done = write_report(run_dir, tmp_path / "out")
    s: Summary = done["summary"]
    pair = s.pairs[0]
    best = s.pair_gains(pair, None, "xnli")
    # base: mnli (66) beats squad_v1 (62); aligned: squad_v1 (70) beats mnli (66.5)
    assert best.base.setting == "mnli" and best.base.mean == 5
    assert best.aligned.setting == "squad_v1" and best.aligned.per_seed == {1: 4, 2: 6}
    assert best.diff == 0 and best.std == pytest.approx(2.0)  # sqrt(2 + 2): a real zero, with its spread
    squad = s.pair_gains(pair, "squad_v1", "xnli")
    assert squad.base.per_seed == {1: 1, 2: 1} and squad.base.std == 0 and squad.diff == 4
    assert s.pair_gains(pair, "squad_v1", "pawsx").diff is None  # never ran
    avg = s.pair_average(pair, None)  # pawsx: base mnli +2, aligned mnli +3 (seed 1)
    assert avg["n_targets"] == 2 and avg["base"] == 3.5 and avg["aligned"] == 4 and avg["diff"] == 0.5
    rows = read_csv(done["out"] / "pairs.csv")
    r = row(rows, target="xnli", intermediate="best")
    assert (r["base_setting"], r["aligned_setting"]) == ("mnli", "squad_v1")
    assert float(r["diff"]) == 0 and float(r["diff_std"]) == 2
    a = row(rows, target="average", intermediate="best")
    assert float(a["base_gain"]) == 3.5 and float(a["aligned_gain"]) == 4 and float(a["diff"]) == .5
    assert a["n_targets"] == "2"
    text = (done["out"] / "report.md").read_text(encoding="utf-8")
    assert ("| xnli | 61.0 ± 1.4† | mnli | +5.0 ± 1.4 | 65.0 ± 0.0† | squad_v1 | +5.0 ± 1.4 | +0.0 ± 2.0 |"
            in text)


def test_pair_markdown_table(pair_report):
    text = (pair_report["out"] / "report.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "### Pair `qwen2.5-0.5b`: base `qwen` vs aligned `qwen-instruct`" in lines
    best = lines[lines.index("#### Best intermediate setting per target") + 2:]
    best = best[:best.index("")]
    assert best[0] == ("| target | base: none | base: best | base gain | aligned: none | aligned: best | aligned gain "
                       "| aligned − base |")
    assert best[2:] == [
        "| pawsx | 71.0 ± 1.4† | mnli | +2.0 ± 1.4 | 75.0 ± 1.4† | mnli | +3.0 (1 seed) | +1.0 |",
        "| xnli | 61.0 ± 1.4† | mnli | +5.0 ± 1.4 | 65.0 ± 0.0† | mnli | +1.5 ± 0.7 | -3.5 ± 1.6 |",
        "| udpos | — | — | — | — | — | — | — |",
        "| **average** (2 targets) |  |  | +3.5 |  |  | +2.2 | **-1.2** |"]
    per = lines[lines.index("#### Gain per intermediate setting") + 2:]
    per = per[:per.index("")]
    assert per[0] == "| target | intermediate | base gain | aligned gain | aligned − base |"
    assert per[2:] == ["| pawsx | mnli | +2.0 ± 1.4 | +3.0 (1 seed) | +1.0 |",
                       "| xnli | mnli | +5.0 ± 1.4 | +1.5 ± 0.7 | -3.5 ± 1.6 |",
                       "| udpos | mnli | — | — | — |",
                       "| **average** (2 targets) | mnli | +3.5 | +2.2 | **-1.2** |"]
    # the comparison comes before the per-backbone sections, which are unchanged
    assert lines.index("## Aligned vs base: the gain from intermediate training") < lines.index("## qwen")


def test_pair_plot_is_written(pair_report):
    png = pair_report["out"] / "pairs_qwen2.5-0.5b.png"
    data = png.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert png in pair_report["plots"]


def test_without_pairs_nothing_changes(report):
    out = report["out"]
    assert not (out / "pairs.csv").exists() and not list(out.glob("pairs_*.png"))
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Aligned vs base" not in text and "aligned" not in text
    assert report["summary"].pairs == []


def test_pairs_from_step_records_and_incomplete_pairs(tmp_path, capsys):
    run_dir = tmp_path / "pairs"
    shutil.copytree(PAIRS, run_dir)
    (run_dir / "grid_state.json").unlink()  # the step records alone say which backbones pair up
    s = Summary(discover(run_dir), run_dir)
    assert [(p.base, p.aligned) for p in s.pairs] == [("qwen", "qwen-instruct")]
    assert s.pair_gains(s.pairs[0], "mnli", "xnli").diff == -3.5
    assert main([str(run_dir)]) == 0
    assert "pair qwen2.5-0.5b: gain of the best intermediate setting per target, base qwen +3.5, aligned " \
           "qwen-instruct +2.2, aligned - base -1.2 over 2 target(s)" in capsys.readouterr().out
    # a pair with only its base in the records is reported as left out, not compared with nothing
    shutil.rmtree(run_dir / "qwen-instruct")
    done = write_report(run_dir, tmp_path / "out")
    assert done["summary"].pairs == [] and not (tmp_path / "out" / "pairs.csv").exists()
    assert "pair `qwen2.5-0.5b` left out: expected one base and one aligned backbone, found base qwen, aligned —" \
           in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_pair_retrieval_baseline_serves_every_seed(tmp_path):
    """The grid evaluates a retrieval target's `none` (the pretrained model) for the first seed only."""
    for bb, group, none, mnli in (("b", "base", 40, (50, 54)), ("a", "aligned", 45, (46, 46))):
        write_result(tmp_path, bb, "none", 1, "tatoeba", none, group, "p")
        for seed, score in zip((1, 2), mnli):
            write_result(tmp_path, bb, "mnli", seed, "tatoeba", score, group, "p")
    s = Summary(discover(tmp_path), tmp_path)
    d = s.pair_gains(s.pairs[0], "mnli", "tatoeba")
    assert d.base.per_seed == {1: 10, 2: 14} and d.aligned.per_seed == {1: 1, 2: 1}
    assert d.diff == -11 and d.std == pytest.approx(math.sqrt(8))
    # a trained target's baseline is per seed: seed 2 without one has no gain
    for bb, group in (("b", "base"), ("a", "aligned")):
        write_result(tmp_path, bb, "none", 1, "pawsx", 70, group, "p")
        for seed in (1, 2):
            write_result(tmp_path, bb, "mnli", seed, "pawsx", 72, group, "p")
    s = Summary(discover(tmp_path), tmp_path)
    assert s.gain("b", "mnli", "pawsx").per_seed == {1: 2}


# ------------------------------------------------------------------------ the copy-paste base/aligned plan

def test_qwen_pair_plan_dry_run(capsys):
    from utils.grid import build_steps, load_plan
    from utils.grid import main as grid_main

    plan_path = ROOT / "plans" / "qwen_base_vs_instruct.yaml"
    assert grid_main([str(plan_path), "--dry-run", "--output-dir", "/nonexistent/qwen"]) == 0
    text = capsys.readouterr().out
    # per backbone: none 4 trained targets x 3 seeds x (phase 2 + 3) + tatoeba once; mnli and squad_v1: 3 phase 1,
    # 24 phase 2/3, 3 tatoeba each -> 25 + 30 + 30 = 85
    assert "170 step(s)" in text and text.count("would run") == 170
    plan = load_plan(str(plan_path))
    assert [(b.path, b.group, b.pair) for b in plan.backbones] == [
        ("Qwen/Qwen2.5-0.5B", "base", "qwen2.5-0.5b"), ("Qwen/Qwen2.5-0.5B-Instruct", "aligned", "qwen2.5-0.5b")]
    assert plan.seeds == [1, 2, 3] and [x.name for x in plan.intermediates] == ["none", "mnli", "squad_v1"]
    assert [t.name for t in plan.targets] == ["xnli", "pawsx", "panx", "xquad", "tatoeba"]
    steps = build_steps(plan)
    for step in steps:
        argv = step.argv
        assert flag_value(argv, "--bf16") == "true"
        if step.phase in (1, 2):
            assert flag_value(argv, "--learning_rate") == "2e-05"
        if step.task == "tatoeba":
            assert flag_value(argv, "--pooling") == "last"
        else:
            assert "--pooling" not in argv
    # both backbones run the same commands but for the model
    by_backbone = {}
    for step in steps:
        key = step.id.split(":")[0], step.id.split("/", 1)[1]
        by_backbone.setdefault(key, []).append(step.backbone.name)
    assert all(v == ["qwen2.5-0.5b", "qwen2.5-0.5b-instruct"] for v in by_backbone.values())


def test_qwen_pair_plan_flags_parse_in_their_scripts(monkeypatch):
    """Every command's flags are known to its script's argument parser (argparse level: nothing is loaded)."""
    import importlib

    from transformers import HfArgumentParser

    from utils.grid import build_steps, load_plan

    class Parsed(Exception):
        pass

    steps = build_steps(load_plan(str(ROOT / "plans" / "qwen_base_vs_instruct.yaml")))
    seen = set()
    for step in steps:
        i = next(i for i, a in enumerate(step.argv) if a.endswith(".py"))
        script, args = step.argv[i].rsplit("/", 1)[-1][:-3], step.argv[i + 1:]
        key = (script, tuple(a for a in args if a.startswith("--")), step.task)
        if key in seen:
            continue
        seen.add(key)
        module = importlib.import_module(script)

        def parse(*dataclasses, args=args):
            raise Parsed(HfArgumentParser(dataclasses).parse_args(args))

        monkeypatch.setattr(module, "parse_args", parse)
        with pytest.raises(Parsed) as parsed:
            module.main()
        namespace = parsed.value.args[0]
        assert namespace.bf16 is True
        if step.phase < 3:
            assert namespace.seed == step.seed and namespace.learning_rate == 2e-5
        if step.task == "tatoeba":
            assert namespace.pooling == "last"
    assert {k[0] for k in seen} == {"run_intermediate", "run_target", "run_xtreme_eval"}


def flag_value(argv, name):
    return argv[argv.index(name) + 1]


def test_partial_is_judged_against_the_splits_languages(tmp_path):
    """udpos dev has 29 languages (no dev data for kk, th, tl, yo): all 29 is complete on dev, partial on test."""
    import json

    from utils.tasks import TASKS

    languages = {lang: {"f1": 50.0, "score": 50.0} for lang in TASKS["udpos"].languages_in("dev")}
    for split in ("dev", "test"):
        path = results_path(tmp_path / split, "udpos", split)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"task": "udpos", "split": split, "languages": languages}))
    partial = {r.split: r.partial for r in discover(tmp_path)}
    assert len(languages) == 29 and partial == {"dev": False, "test": True}
