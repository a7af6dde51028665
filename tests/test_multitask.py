"""Multi-task intermediate training: samplers, shared encoder with several heads + MLM, resume, bad input."""

import json
import shutil
from collections import Counter

import pytest
import torch
from conftest import XTREME_DIR, glue_squad_layout, hellaswag_layout, read_json, run_script
from safetensors.torch import load_file

from utils.modeling import load_model
from utils.multitask import MultiTaskBatchSampler, task_probabilities
from utils.training import ModelArguments

SIZES = {"mnli": 6000, "squad": 3000, "hellaswag": 1000}
FAST = ["--use_cpu", "--per_device_train_batch_size", 8, "--disable_tqdm", "true"]


@pytest.mark.parametrize("strategy, kwargs, expected", [
    ("proportional", {}, {"mnli": 0.6, "squad": 0.3, "hellaswag": 0.1}),
    ("capped", {"cap": 2000}, {"mnli": 0.4, "squad": 0.4, "hellaswag": 0.2}),
    ("temperature", {"temperature": 2.0},
     {t: (n / 10000) ** 0.5 / sum((m / 10000) ** 0.5 for m in SIZES.values()) for t, n in SIZES.items()}),
    ("uniform", {}, {"mnli": 1 / 3, "squad": 1 / 3, "hellaswag": 1 / 3}),
])
def test_sampler_frequencies_match_the_formula(strategy, kwargs, expected):
    probabilities = task_probabilities(SIZES, strategy, **kwargs)
    assert probabilities == pytest.approx(expected)
    sampler = MultiTaskBatchSampler(list(SIZES.values()), 4, list(probabilities.values()), 10_000, seed=3)
    ends = [6000, 9000, 10000]
    drawn = Counter(next(i for i, end in enumerate(ends) if batch[0] < end) for batch in sampler)
    for index, task in enumerate(SIZES):
        assert drawn[index] / 10_000 == pytest.approx(expected[task], abs=0.015)


def test_batches_are_single_task_and_replayable():
    sampler = MultiTaskBatchSampler([5, 7], 3, [0.5, 0.5], 20, seed=1)
    batches = list(sampler)
    assert all(all(i < 5 for i in b) or all(i >= 5 for i in b) for b in batches)
    assert all(len(b) == 3 for b in batches)
    assert batches == list(sampler)  # same seed and epoch: the same batches (what resuming relies on)
    sampler.set_epoch(1)
    assert batches != list(sampler)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """GLUE/SQuAD layout built from real fixture slices."""
    root = hellaswag_layout(glue_squad_layout(tmp_path_factory.mktemp("data")))
    text = root / "wiki.txt"
    lines = [line.split("\t")[0] for lang in ("de", "sw", "zh")
             for line in (XTREME_DIR / f"xnli/dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _losses(output_dir, task):
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    return [entry[f"loss_{task}"] for entry in history if f"loss_{task}" in entry]


def test_multitask_with_mlm_trains_every_head_and_saves_a_plain_encoder(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "multi"
    run_script("run_intermediate", [
        "--model_name_or_path", tiny_model_dir, "--tasks", "mnli,xquad,hellaswag,mlm", "--data_dir", data_dir,
        "--mlm_files", data_dir / "wiki.txt", "--max_train_samples", 48, "--max_eval_samples", 16,
        "--max_steps", 64, "--logging_steps", 8, "--learning_rate", 2e-3, "--warmup_steps", 0.0,
        "--sampling", "uniform", "--max_seq_length", 128, "--doc_stride", 32, "--max_query_length", 24,
        "--do_train", "--output_dir", out, *FAST])
    for task in ("mnli", "xquad", "hellaswag", "mlm"):
        losses = _losses(out, task)
        assert len(losses) >= 3, task
        assert sum(losses[-2:]) < sum(losses[:2]), (task, losses)
    results = read_json(out / "all_results.json")
    assert {"eval_mnli_accuracy", "eval_xquad_f1", "eval_hellaswag_accuracy", "eval_score"} <= set(results)
    assert results["eval_score"] == pytest.approx(
        (results["eval_mnli_score"] + results["eval_xquad_score"] + results["eval_hellaswag_score"]) / 3)
    assert read_json(out / "config.json")["architectures"] == ["XLMRobertaModel"]
    assert set(p.name for p in (out / "heads").iterdir()) == {"mnli", "xquad", "hellaswag", "mlm"}
    encoder = load_file(out / "model.safetensors")
    target = load_model(ModelArguments(str(out)), "tagging", ["O", "B-PER", "I-PER"]).state_dict()
    assert all(torch.equal(target[f"roberta.{k}"], v) for k, v in encoder.items())
    run_script("run_target", ["--model_name_or_path", out, "--task", "panx", "--train_file",
                              XTREME_DIR / "panx/dev-af.tsv", "--validation_file", XTREME_DIR / "panx/dev-af.tsv",
                              "--max_train_samples", 16, "--max_eval_samples", 16, "--max_steps", 1,
                              "--do_train", "--output_dir", tmp_path / "target", *FAST])
    assert (tmp_path / "target/model.safetensors").is_file()


def test_interrupted_multitask_run_resumes_to_the_same_weights(tiny_model_dir, data_dir, tmp_path):
    args = ["--model_name_or_path", tiny_model_dir, "--tasks", "mnli,mlm", "--data_dir", data_dir,
            "--mlm_files", data_dir / "wiki.txt", "--max_train_samples", 40, "--max_steps", 8,
            "--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_strategy", "steps",
            "--save_steps", 4, "--learning_rate", 1e-3, "--do_train", *FAST]
    run_script("run_intermediate", [*args, "--output_dir", tmp_path / "full"])
    interrupted = tmp_path / "interrupted"
    run_script("run_intermediate", [*args, "--output_dir", interrupted])
    # leave what a run killed after its step-4 checkpoint leaves behind
    for path in interrupted.iterdir():
        if path.name not in ("checkpoint-4", "xtreme_inter_run.json"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    info = read_json(interrupted / "xtreme_inter_run.json")
    (interrupted / "xtreme_inter_run.json").write_text(json.dumps({**info, "finished": False}))
    run_script("run_intermediate", [*args, "--output_dir", interrupted])
    full, resumed = load_file(tmp_path / "full/model.safetensors"), load_file(interrupted / "model.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=1e-5, atol=1e-6)
    assert read_json(interrupted / "trainer_state.json")["global_step"] == 8


@pytest.mark.parametrize("tasks, extra, message", [
    ("mnli,mnli", [], "--tasks names a task twice"),
    ("mnli,nope", [], "unknown task 'nope'"),
    ("mlm", [], "task mlm needs text: pass --mlm_files"),
])
def test_bad_multitask_input(tiny_model_dir, tmp_path, capsys, tasks, extra, message):
    with pytest.raises(SystemExit):
        run_script("run_intermediate", ["--model_name_or_path", tiny_model_dir, "--tasks", tasks, "--do_train",
                                        "--output_dir", tmp_path / "out", *extra, *FAST])
    assert message in capsys.readouterr().err



def test_multitask_under_deepspeed_zero2(tiny_model_dir, data_dir, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "zero2"
    args = ["run_intermediate.py", "--model_name_or_path", tiny_model_dir, "--tasks", "mnli,mlm", "--data_dir",
            data_dir, "--mlm_files", data_dir / "wiki.txt", "--max_train_samples", 32, "--max_eval_samples", 16,
            "--max_steps", 4, "--do_train", "--output_dir", out, "--deepspeed", ROOT / "ds_configs/zero2.json", *FAST]
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_json(out / "config.json")["architectures"] == ["XLMRobertaModel"]
    assert {p.name for p in (out / "heads").iterdir()} == {"mnli", "mlm"}
