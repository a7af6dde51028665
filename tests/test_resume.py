"""Kill and resume: a training run killed with SIGKILL (at a step, while a checkpoint is written, while an old one is
deleted) resumes from its last COMPLETE checkpoint and ends with the same model and metrics as a run never
interrupted; an evaluation killed mid-way keeps its finished languages and `--resume` evaluates only the rest.

The runs are subprocesses of tests/fault_injection.py, which kills its own process at the chosen point (the tiny
model keeps its dropout: the RNG state must be restored exactly too).
"""

import json
import signal

import pytest
from conftest import XTREME_DIR, read_json
from launchers import check, load_weights, max_difference, run

from utils.results import results_path
from utils.training import last_complete_checkpoint

# 64 examples, batch 8: 8 steps an epoch; 12 steps cross into the second epoch. Evaluation and checkpoint every 3
# steps, 2 checkpoints kept (plus the best), the best one loaded at the end.
TRAIN = ["--task", "pawsx", "--data_dir", XTREME_DIR, "--do_train", "--max_train_samples", 64,
         "--max_eval_samples", 40, "--max_steps", 12, "--per_device_train_batch_size", 8, "--learning_rate", 1e-3,
         "--eval_strategy", "steps", "--eval_steps", 3, "--save_strategy", "steps", "--save_steps", 3, "--seed", 3,
         "--logging_steps", 1, "--use_cpu", "--disable_tqdm", "true"]
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    check(run("python", "run_target.py", ["--model_name_or_path", tiny_model_dir, *TRAIN, "--output_dir", out]))
    return out


def losses(out):
    return [(e["step"], e["loss"]) for e in read_json(out / "trainer_state.json")["log_history"] if "loss" in e]


def test_training_killed_anywhere_resumes_to_the_same_model(tiny_model_dir, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = ["--model_name_or_path", tiny_model_dir, *TRAIN, "--output_dir", out]

    def attempt(fault: dict, returncode=KILLED):
        result = run("python", "run_target.py", args, env=fault)
        assert result.returncode == returncode, result.stdout[-3000:]
        return result.stdout

    # 1. killed half-way through writing checkpoint-6's trainer_state.json (truncated JSON)
    attempt({"XTREME_KILL_IN_SAVE": "6:state"})
    assert (out / "checkpoint-6/trainer_state.json").is_file()
    assert last_complete_checkpoint(out) == str(out / "checkpoint-3")
    # 2. resumes from checkpoint-3; killed after checkpoint-9's weights, before its optimizer/RNG/trainer state
    log = attempt({"XTREME_KILL_IN_SAVE": "9:weights"})
    assert f"Skipping incomplete checkpoint {out / 'checkpoint-6'}" in log
    assert f"Resuming from {out / 'checkpoint-3'}" in log
    assert (out / "checkpoint-9/model.safetensors").is_file()
    # 3. resumes from checkpoint-6 (rewritten whole); killed while deleting an old checkpoint after checkpoint-9
    log = attempt({"XTREME_KILL_IN_SAVE": "9:rotate"})
    assert f"Skipping incomplete checkpoint {out / 'checkpoint-9'}" in log
    assert f"Resuming from {out / 'checkpoint-6'}" in log
    # 4. resumes from checkpoint-9 (in the second epoch); killed at the end of step 11
    log = attempt({"XTREME_KILL_AT_STEP": "11"})
    assert f"Resuming from {out / 'checkpoint-9'}" in log
    # 5. resumes from checkpoint-9 again and finishes
    log = attempt({}, returncode=0)
    assert f"Resuming from {out / 'checkpoint-9'}" in log

    assert losses(out) == losses(uninterrupted)  # every step's loss, dropout included
    for name in ("", "checkpoint-12"):  # the best checkpoint (loaded at the end) and the last one
        assert max_difference(load_weights(out / name), load_weights(uninterrupted / name)) == 0, name
    resumed, reference = read_json(out / "all_results.json"), read_json(uninterrupted / "all_results.json")
    assert resumed["eval_accuracy"] == reference["eval_accuracy"]
    assert read_json(out / "xtreme_inter_run.json")["finished"] is True


def _checkpoint(root, step, state=True, weights=True, text=None):
    directory = root / f"checkpoint-{step}"
    directory.mkdir()
    if weights:
        (directory / "model.safetensors").write_bytes(b"weights")
    if state:
        (directory / "trainer_state.json").write_text(text or json.dumps({"global_step": step}))


def test_last_complete_checkpoint_skips_what_a_kill_leaves_behind(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4, weights=False)  # a DeepSpeed checkpoint has `latest` instead: see below
    (tmp_path / "checkpoint-4" / "latest").write_text("global_step4")
    _checkpoint(tmp_path, 6, weights=False)  # an old checkpoint half deleted
    _checkpoint(tmp_path, 8, state=False)  # killed before the trainer state
    _checkpoint(tmp_path, 10, text='{"global_step": 10, "log_hist')  # killed while writing it
    _checkpoint(tmp_path, 12, text=json.dumps({"global_step": 11}))  # not this checkpoint's state
    (tmp_path / "checkpoint-final").mkdir()  # not a step: ignored
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    (tmp_path / "checkpoint-4" / "latest").unlink()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


EVAL = ["--task", "pawsx", "--languages", "de,en,ja", "--split", "dev", "--data_dir", XTREME_DIR,
        "--per_device_eval_batch_size", 16, "--use_cpu", "--disable_tqdm", "true"]


def test_evaluation_killed_mid_way_keeps_finished_languages(uninterrupted, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "out"
    check(run("python", "run_xtreme_eval.py", ["--model_name_or_path", uninterrupted, *EVAL,
                                               "--output_dir", reference]))
    args = ["--model_name_or_path", uninterrupted, *EVAL, "--output_dir", out]
    killed = run("python", "run_xtreme_eval.py", args, env={"XTREME_KILL_AFTER_LANGUAGES": "2"})
    assert killed.returncode == KILLED, killed.stdout[-3000:]
    kept = read_json(results_path(out, "pawsx", "dev"))
    assert set(kept["languages"]) == {"de", "en"}  # ja was being predicted
    assert sorted(p.name for p in (out / "predictions/pawsx").iterdir()) == ["dev-de.tsv", "dev-en.tsv"]
    assert not list(out.rglob("*.tmp"))
    (out / "log").mkdir()
    log = check(run("python", "run_xtreme_eval.py", [*args, "--resume"], env={"XTREME_RECORD": str(out / "log")}))
    assert "pawsx de: already in" in log and "pawsx en: already in" in log
    batches = [line for line in (out / "log/rank0.txt").read_text().splitlines() if line.startswith("batch")]
    assert sum(int(line.split()[1]) for line in batches) == 100  # ja's 100 examples only
    assert read_json(results_path(out, "pawsx", "dev"))["languages"] == read_json(
        results_path(reference, "pawsx", "dev"))["languages"]
    for lang in ("de", "en", "ja"):
        name = f"predictions/pawsx/dev-{lang}.tsv"
        assert (out / name).read_text() == (reference / name).read_text()
