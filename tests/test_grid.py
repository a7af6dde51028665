"""The experiment-grid driver: plan parsing and commands, dry run, resuming, failures, and a real 2x2 grid."""

import json
import shutil
import sys

import pytest
import yaml
from conftest import ROOT, XTREME_DIR, grid_ends, read_json

from utils.errors import XtremeError
from utils.grid import build_steps, load_plan, main, select_steps
from utils.results import results_path

PLANS = ROOT / "plans"
STUB = ROOT / "tests" / "grid_stub.py"


def write_plan(tmp_path, plan: dict, name="plan.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


def steps_of(tmp_path, plan: dict):
    return {s.id: s for s in build_steps(load_plan(str(write_plan(tmp_path, plan))))}


def flag(argv, name):
    i = argv.index(name)
    return argv[i + 1]


# ----------------------------------------------------------------------------------------------- plan -> commands

BASE = {"output_dir": "runs/x", "backbones": ["FacebookAI/xlm-roberta-large"], "seeds": [1],
        "intermediate": ["none", "mnli"], "targets": ["pawsx", "bucc2018"]}


def test_steps_phases_and_layout(tmp_path):
    steps = steps_of(tmp_path, BASE)
    assert list(steps) == [
        "phase2:xlm-roberta-large/none/seed1/pawsx", "phase3:xlm-roberta-large/none/seed1/pawsx",
        "phase3:xlm-roberta-large/none/seed1/bucc2018", "phase1:xlm-roberta-large/mnli/seed1",
        "phase2:xlm-roberta-large/mnli/seed1/pawsx", "phase3:xlm-roberta-large/mnli/seed1/pawsx",
        "phase3:xlm-roberta-large/mnli/seed1/bucc2018"]
    p1 = steps["phase1:xlm-roberta-large/mnli/seed1"]
    assert p1.argv[1:] == ["run_intermediate.py", "--model_name_or_path", "FacebookAI/xlm-roberta-large", "--task",
                           "mnli", "--output_dir", "runs/x/xlm-roberta-large/mnli/seed1/phase1/model", "--do_train",
                           "--seed", "1"]
    p2 = steps["phase2:xlm-roberta-large/mnli/seed1/pawsx"]
    assert p2.argv[1] == "run_target.py" and flag(p2.argv, "--model_name_or_path") == str(p1.output_dir)
    assert p2.deps == [p1]
    p3 = steps["phase3:xlm-roberta-large/mnli/seed1/pawsx"]
    assert p3.argv[1] == "run_xtreme_eval.py" and flag(p3.argv, "--languages") == "all" and "--resume" in p3.argv
    assert flag(p3.argv, "--model_name_or_path") == str(p2.output_dir)
    assert flag(p3.argv, "--output_dir") == "runs/x/xlm-roberta-large/mnli/seed1/pawsx/phase3"
    assert p3.languages == ["de", "en", "es", "fr", "ja", "ko", "zh"]  # "all" = XTREME's list
    # retrieval: straight on the phase-1 model (the pretrained one for `none`), no phase 2
    bucc = steps["phase3:xlm-roberta-large/mnli/seed1/bucc2018"]
    assert flag(bucc.argv, "--model_name_or_path") == str(p1.output_dir) and bucc.deps == [p1]
    none_bucc = steps["phase3:xlm-roberta-large/none/seed1/bucc2018"]
    assert flag(none_bucc.argv, "--model_name_or_path") == "FacebookAI/xlm-roberta-large" and not none_bucc.deps
    p2_none = steps["phase2:xlm-roberta-large/none/seed1/pawsx"]
    assert flag(p2_none.argv, "--model_name_or_path") == "FacebookAI/xlm-roberta-large" and not p2_none.deps


def test_multitask_mlm_translated_and_args_precedence(tmp_path):
    plan = {**BASE, "seeds": [1, 2], "intermediate": [
        "none",
        {"name": "multi", "tasks": ["mnli", "squad_v1"]},
        {"name": "mlm_control", "tasks": ["mnli", "mlm"], "mlm_files": ["wiki.de.txt", "wiki.zh.txt"]},
        {"name": "mnli_tt", "task": "mnli", "args": {"train_file": ["mnli.en.tsv", "mnli.de.tsv"]}}],
        "targets": [{"name": "pawsx", "languages": ["de", "en"], "args": {"learning_rate": 3e-5}},
                    {"name": "xquad"}, {"name": "mlqa", "train_with": "xquad"}, "bucc2018"],
        "args": {"all": {"bf16": True}, "target": {"learning_rate": 1e-5, "num_train_epochs": 1},
                 "eval": {"split": "dev"}},
        "tasks": {"pawsx": {"target": {"num_train_epochs": 5, "learning_rate": 2e-5}},
                  "xquad": {"all": {"max_seq_length": 384}}}}
    steps = steps_of(tmp_path, plan)
    multi = steps["phase1:xlm-roberta-large/multi/seed2"].argv
    assert flag(multi, "--tasks") == "mnli,squad_v1" and "--task" not in multi and flag(multi, "--seed") == "2"
    mlm = steps["phase1:xlm-roberta-large/mlm_control/seed1"].argv
    assert flag(mlm, "--tasks") == "mnli,mlm" and flag(mlm, "--mlm_files") == "wiki.de.txt,wiki.zh.txt"
    tt = steps["phase1:xlm-roberta-large/mnli_tt/seed1"].argv
    assert tt[tt.index("--train_file") + 1:tt.index("--train_file") + 3] == ["mnli.en.tsv", "mnli.de.tsv"]
    pawsx = steps["phase2:xlm-roberta-large/multi/seed1/pawsx"].argv
    # later wins: args.all < args.target < tasks.pawsx.target < the target entry's args
    assert flag(pawsx, "--learning_rate") == "3e-05" and flag(pawsx, "--num_train_epochs") == "5"
    assert flag(pawsx, "--bf16") == "true" and "--split" not in pawsx
    eval_pawsx = steps["phase3:xlm-roberta-large/multi/seed1/pawsx"]
    assert flag(eval_pawsx.argv, "--languages") == "de,en" and eval_pawsx.languages == ["de", "en"]
    assert flag(eval_pawsx.argv, "--split") == "dev" and eval_pawsx.split == "dev"
    assert "--num_train_epochs" not in eval_pawsx.argv
    mlqa = steps["phase3:xlm-roberta-large/multi/seed1/mlqa"]
    assert "phase2:xlm-roberta-large/multi/seed1/mlqa" not in steps
    assert mlqa.deps == [steps["phase2:xlm-roberta-large/multi/seed1/xquad"]]
    assert flag(mlqa.argv, "--model_name_or_path").endswith("multi/seed1/xquad/phase2/model")
    assert flag(steps["phase2:xlm-roberta-large/multi/seed1/xquad"].argv, "--max_seq_length") == "384"
    # the pretrained model's retrieval does not depend on the seed: evaluated once
    assert "phase3:xlm-roberta-large/none/seed2/bucc2018" not in steps
    assert "phase3:xlm-roberta-large/multi/seed2/bucc2018" in steps


def test_launcher_deepspeed_and_backbone_pairs(tmp_path):
    plan = {**BASE, "launcher": "accelerate", "num_processes": 8, "launcher_args": ["--multi_gpu"],
            "deepspeed": "ds_configs/zero2.json",
            "backbones": [{"name": "qwen", "path": "Qwen/Qwen2.5-0.5B", "group": "base", "pair": "qwen0.5b"},
                          {"name": "qwen-instruct", "path": "Qwen/Qwen2.5-0.5B-Instruct", "group": "aligned",
                           "pair": "qwen0.5b", "args": {"eval": {"pooling": "last"}}}]}
    steps = steps_of(tmp_path, plan)
    p1 = steps["phase1:qwen-instruct/mnli/seed1"]
    assert p1.argv[:6] == ["accelerate", "launch", "--num_processes", "8", "--multi_gpu", "run_intermediate.py"]
    assert flag(p1.argv, "--deepspeed") == "ds_configs/zero2.json"
    assert flag(steps["phase2:qwen/mnli/seed1/pawsx"].argv, "--deepspeed") == "ds_configs/zero2.json"
    assert "--deepspeed" not in steps["phase3:qwen/mnli/seed1/pawsx"].argv
    assert flag(steps["phase3:qwen-instruct/mnli/seed1/pawsx"].argv, "--pooling") == "last"
    assert "--pooling" not in steps["phase3:qwen/mnli/seed1/pawsx"].argv
    assert p1.label == "phase1 [qwen-instruct] mnli seed 1"
    assert p1.backbone.record() == {"name": "qwen-instruct", "path": "Qwen/Qwen2.5-0.5B-Instruct",
                                    "group": "aligned", "pair": "qwen0.5b"}


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown key"),
    ({"targets": [{"name": "pawsx", "args": {"output_dir": "x"}}]}, "set by the grid"),
    ({"args": {"eval": {"seed": 3}}}, "set by the grid"),
    ({"args": {"phase9": {}}}, "unknown key"),
    ({"intermediate": ["none", "mnli", "mnli"]}, "appears twice"),
    ({"intermediate": [{"name": "bad/name", "task": "mnli"}]}, "directory name"),
    ({"backbones": [{"path": "a", "group": "base", "pair": "p"}, {"path": "b", "group": "base", "pair": "p"}]},
     "one 'base' and one 'aligned'"),
    ({"backbones": [{"path": "a", "group": "tuned"}]}, "group 'tuned'"),
    ({"targets": [{"name": "mlqa", "train_with": "xquad"}, "xquad"]}, "listed before it"),
    ({"launcher": "slurm"}, "launcher"),
    ({"seeds": "one"}, "seeds"),
])
def test_plan_errors(tmp_path, change, message):
    with pytest.raises(XtremeError, match=message):
        load_plan(str(write_plan(tmp_path, {**BASE, **change})))


def test_set_overrides_and_only(tmp_path):
    path = write_plan(tmp_path, BASE)
    plan = load_plan(str(path), ["seeds=[3, 4]", "backbones.0.path=/models/tiny"], output_dir=str(tmp_path / "o"))
    assert plan.seeds == [3, 4] and plan.backbones[0].path == "/models/tiny" and plan.output_dir == tmp_path / "o"
    steps = build_steps(plan)
    chosen = select_steps(plan, steps, ["target=pawsx", "phase=3", "intermediate=mnli"])
    # the matching steps and what they need
    assert [s.id for s in chosen] == ["phase1:tiny/mnli/seed3", "phase2:tiny/mnli/seed3/pawsx",
                                      "phase3:tiny/mnli/seed3/pawsx", "phase1:tiny/mnli/seed4",
                                      "phase2:tiny/mnli/seed4/pawsx", "phase3:tiny/mnli/seed4/pawsx"]
    with pytest.raises(XtremeError, match="no target pawx"):
        select_steps(plan, steps, ["target=pawx"])
    with pytest.raises(XtremeError, match="KEY=VALUE"):
        select_steps(plan, steps, ["colour=red"])


# ------------------------------------------------------------------------------------------------------- dry run

def test_dry_run_prints_the_paper_grid(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main([str(PLANS / "paper_xlmr_large.yaml"), "--dry-run", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # a dry run writes nothing
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    # 12 settings (none, 9 tasks, multi-task, MLM control); 11 phase 1, 12 x 6 trained targets, 12 x 9 evaluations
    assert len(commands) == 11 + 72 + 108 and "191 step(s)" in text
    assert sum(" run_intermediate.py " in c for c in commands) == 11
    assert sum(" run_target.py " in c for c in commands) == 72
    assert sum(" run_xtreme_eval.py " in c for c in commands) == 108
    base = f"{out}/xlmr-large"
    assert any(c.endswith(f"--task mnli --output_dir {base}/mnli/seed1/phase1/model --do_train --seed 1 --bf16 true "
                          "--learning_rate 1e-05 --warmup_steps 0.1 --weight_decay 0.01 --num_train_epochs 3 "
                          "--max_seq_length 256 --per_device_train_batch_size 8 --gradient_accumulation_steps 4 "
                          "--per_device_eval_batch_size 64") for c in commands)
    xnli = next(c for c in commands if "run_target.py" in c and f"{base}/mnli/seed1/xnli/phase2/model" in c)
    assert f"--model_name_or_path {base}/mnli/seed1/phase1/model --task xnli" in xnli
    assert "--num_train_epochs 2" in xnli
    udpos = next(c for c in commands if "run_target.py" in c and "--task udpos" in c)
    assert "--num_train_epochs 10" in udpos
    tatoeba = next(c for c in commands if "--task tatoeba" in c and "/squad_v1/" in c)
    assert tatoeba.startswith(f"mkdir -p {base}/squad_v1/seed1/tatoeba/phase3 && ")
    assert f"run_xtreme_eval.py --model_name_or_path {base}/squad_v1/seed1/phase1/model --task tatoeba " \
           "--languages all" in tatoeba
    assert any("--tasks anli_plus,mnli,qqp,squad_v1,squad_v2,hellaswag,commonsenseqa,cosmosqa,ccg" in c
               for c in commands)
    assert any("--tasks mnli,mlm --mlm_files data/wiki/ar.txt," in c for c in commands)
    xquad = next(c for c in commands if "run_target.py" in c and "--task xquad" in c)
    assert "--max_seq_length 384" in xquad and "--num_train_epochs 2" in xquad


def test_dry_run_of_the_demo_plan(capsys):
    assert main([str(PLANS / "tiny_demo.yaml"), "--dry-run", "--output-dir", "/nonexistent/grid"]) == 0
    text = capsys.readouterr().out
    assert "9 step(s)" in text and text.count("would run") == 9
    assert "run_intermediate.py --model_name_or_path demo_runs/tiny_model --task mnli" in text


# ---------------------------------------------------------------------------- resuming and failures (fake scripts)

@pytest.fixture()
def fake_plan(tmp_path):
    """Stub scripts (tests/grid_stub.py): phase 1 fails, udpos's evaluation misses its last language."""
    plan = {"output_dir": str(tmp_path / "grid"),
            "python": f"{sys.executable} {STUB} --fail run_intermediate.py --incomplete udpos",
            "backbones": [{"name": "m", "path": "some/model"}], "seeds": [1],
            "intermediate": ["none", "mnli"],
            "targets": [{"name": "pawsx", "languages": ["de", "en"]}, {"name": "udpos", "languages": ["de", "en"]}]}
    return write_plan(tmp_path, plan), tmp_path / "grid"




def test_failures_are_reported_and_the_rest_goes_on(fake_plan, capsys):
    path, grid = fake_plan
    assert main([str(path)]) == 1
    lines = grid_ends(capsys.readouterr().out)
    assert lines["phase2 none->pawsx seed 1"].startswith("done in")
    assert lines["phase3 none->pawsx seed 1"].startswith("done in")
    assert lines["phase3 none->udpos seed 1"].startswith("INCOMPLETE") and "missing: en" in lines[
        "phase3 none->udpos seed 1"]
    assert lines["phase1 mnli seed 1"].startswith("FAILED (exit 2: error: cannot load the model: no such dir)")
    assert lines["phase2 mnli->pawsx seed 1"] == "skipped (phase1 mnli seed 1 failed)"
    assert lines["phase3 mnli->pawsx seed 1"] == "skipped (phase2 mnli->pawsx seed 1 was skipped)"
    record = read_json(grid / "m/mnli/seed1/phase1/step.json")
    assert record["status"] == "failed" and record["exit_code"] == 2 and "no such dir" in record["error"]
    assert "error: cannot load the model" in (grid / "m/mnli/seed1/phase1/log.txt").read_text()
    state = read_json(grid / "grid_state.json")
    assert state["steps"]["phase1:m/mnli/seed1"]["status"] == "failed"
    assert state["steps"]["phase2:m/mnli/seed1/pawsx"]["status"] == "blocked"
    assert state["invocations"][-1]["counts"] == {"done": 3, "incomplete": 1, "failed": 1, "blocked": 4}


def test_resume_skips_complete_steps_and_reruns_dependents(fake_plan, capsys):
    path, grid = fake_plan
    main([str(path), "--only", "intermediate=none"])
    capsys.readouterr()
    assert main([str(path), "--only", "intermediate=none", "target=pawsx"]) == 0
    lines = grid_ends(capsys.readouterr().out)
    assert lines == {"phase2 none->pawsx seed 1": "skipped (done)", "phase3 none->pawsx seed 1": "skipped (done)"}
    # phase 2 produced again (its outputs deleted): its evaluation is stale and runs again, nothing else
    shutil.rmtree(grid / "m/none/seed1/pawsx/phase2/model")
    old = read_json(grid / "m/none/seed1/pawsx/phase3/step.json")["deps"]
    main([str(path), "--only", "intermediate=none"])
    lines = grid_ends(capsys.readouterr().out)
    assert lines["phase2 none->pawsx seed 1"].startswith("done in")
    assert lines["phase3 none->pawsx seed 1"].startswith("input changed (phase2 none->pawsx seed 1): old outputs "
                                                         "removed; done in")
    assert lines["phase2 none->udpos seed 1"] == "skipped (done)"
    assert lines["phase3 none->udpos seed 1"].startswith("INCOMPLETE")  # re-tried: a language is still missing
    new = read_json(grid / "m/none/seed1/pawsx/phase3/step.json")
    assert new["deps"] != old and new["status"] == "done"
    # a phase-2 run made again outside the grid (new completion file) makes its evaluation stale too
    info = grid / "m/none/seed1/pawsx/phase2/model/xtreme_inter_run.json"
    info.write_text(info.read_text()[:-1] + ', "again": true}')
    main([str(path), "--dry-run", "--only", "intermediate=none", "target=pawsx"])
    assert "phase3 none->pawsx seed 1: stale (an input changed), would run again" in capsys.readouterr().out
    main([str(path), "--only", "intermediate=none", "target=pawsx"])
    lines = grid_ends(capsys.readouterr().out)
    assert lines["phase2 none->pawsx seed 1"] == "skipped (done)"
    assert lines["phase3 none->pawsx seed 1"].startswith("input changed (phase2 none->pawsx seed 1): old outputs "
                                                         "removed; done in")


# -------------------------------------------------------------------------------------- the real 2x2 tiny grid

def test_tiny_grid_runs_resumes_and_reruns_what_depends(tiny_model_dir, tmp_path, capsys):
    tiny = {"per_device_train_batch_size": 8, "per_device_eval_batch_size": 32, "max_steps": 2,
            "max_train_samples": 32, "max_eval_samples": 16, "learning_rate": 1e-3, "logging_strategy": "no",
            "save_total_limit": 1}
    plan = {
        "output_dir": str(tmp_path / "grid"), "backbones": [{"name": "tiny", "path": str(tiny_model_dir)}],
        "seeds": [7],
        "intermediate": ["none", {"name": "mnli", "task": "mnli", "args": {
            "train_file": str(XTREME_DIR / "xnli/train-en.tsv"),
            "validation_file": str(XTREME_DIR / "xnli/dev-en.tsv")}}],
        # a trained target and a retrieval target (evaluated on the phase-1 model / the pretrained one)
        "targets": [{"name": "pawsx", "languages": ["de", "en"]},
                    {"name": "tatoeba", "languages": ["de", "fr"], "eval_args": {"split": "test"}}],
        "args": {"all": {"use_cpu": True, "disable_tqdm": True},
                 "intermediate": tiny, "target": {**tiny, "data_dir": str(XTREME_DIR)},
                 "eval": {"data_dir": str(XTREME_DIR), "split": "dev", "max_eval_samples": 16,
                          "per_device_eval_batch_size": 32}}}
    path = write_plan(tmp_path, plan)
    grid = tmp_path / "grid/tiny"

    assert main([str(path)]) == 0
    first = grid_ends(capsys.readouterr().out)
    assert list(first) == ["phase2 none->pawsx seed 7", "phase3 none->pawsx seed 7", "phase3 none->tatoeba seed 7",
                           "phase1 mnli seed 7", "phase2 mnli->pawsx seed 7", "phase3 mnli->pawsx seed 7",
                           "phase3 mnli->tatoeba seed 7"]
    assert all(v.startswith("done in") for v in first.values()), first
    tatoeba = read_json(results_path(grid / "mnli/seed7/tatoeba/phase3", "tatoeba", "test"))
    assert set(tatoeba["languages"]) == {"de", "fr"} and tatoeba["model"] == str(grid / "mnli/seed7/phase1/model")
    none_tatoeba = read_json(results_path(grid / "none/seed7/tatoeba/phase3", "tatoeba", "test"))
    assert none_tatoeba["model"] == str(tiny_model_dir)
    results = read_json(results_path(grid / "mnli/seed7/pawsx/phase3", "pawsx", "dev"))
    assert set(results["languages"]) == {"de", "en"} and results["model"].endswith("mnli/seed7/pawsx/phase2/model")
    assert read_json(grid / "mnli/seed7/phase1/model/xtreme_inter_run.json")["finished"] is True
    record = read_json(grid / "mnli/seed7/pawsx/phase3/step.json")
    assert record["status"] == "done" and record["wall_s"] > 0 and record["environment"]["transformers"]
    assert [u["phase"] for u in record["upstream"]] == [2, 1] and "--seed 7" in record["upstream"][1]["command"]
    assert (grid / "mnli/seed7/phase1/log.txt").stat().st_size > 0

    assert main([str(path)]) == 0
    second = grid_ends(capsys.readouterr().out)
    assert set(second.values()) == {"skipped (done)"}

    shutil.rmtree(grid / "mnli/seed7/pawsx/phase2/model")
    assert main([str(path)]) == 0
    third = grid_ends(capsys.readouterr().out)
    rerun = {k for k, v in third.items() if v != "skipped (done)"}
    assert rerun == {"phase2 mnli->pawsx seed 7", "phase3 mnli->pawsx seed 7"}, third
    assert third["phase3 mnli->pawsx seed 7"].startswith("input changed (phase2 mnli->pawsx seed 7)")
    assert "done in" in third["phase3 mnli->pawsx seed 7"]

    from utils.report import write_report

    done = write_report(tmp_path / "grid", tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| none | 7 |" in report and "| mnli | 7 |" in report
    assert all(p.stat().st_size > 0 for p in done["plots"])
    state = read_json(tmp_path / "grid/grid_state.json")
    assert len(state["invocations"]) == 3 and all(s["status"] == "done" for s in state["steps"].values())
    assert json.dumps(state)  # serialisable, no paths objects left


def test_a_changed_command_is_reported_not_rerun(fake_plan, capsys):
    path, grid = fake_plan
    main([str(path), "--only", "intermediate=none", "target=pawsx"])
    plan = yaml.safe_load(path.read_text())
    plan["args"] = {"target": {"num_train_epochs": 3}}
    path.write_text(yaml.safe_dump(plan))
    capsys.readouterr()
    assert main([str(path), "--only", "intermediate=none", "target=pawsx"]) == 0
    lines = grid_ends(capsys.readouterr().out)
    assert lines["phase2 none->pawsx seed 1"].startswith("skipped (done, but with another command than the plan's")
    assert lines["phase3 none->pawsx seed 1"] == "skipped (done)"
