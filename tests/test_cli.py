"""Command-line behaviour in real subprocesses: one-line errors, and a DeepSpeed ZeRO-2 run through Trainer."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, XTREME_DIR

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(*args, env=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=env or ENV, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--task", "xnly"], "error: unknown task 'xnly'"),
    (["--task", "pawsx", "--train_file", "missing.tsv"], "error: missing.tsv: file not found"),
    (["--task", "pawsx", "--train_file", XTREME_DIR / "xnli/dev-en.tsv"],
     f"error: {XTREME_DIR / 'xnli/dev-en.tsv'}:1: unknown label 'contradiction'; expected one of: 0, 1"),
])
def test_bad_input_is_one_line(tiny_model_dir, tmp_path, args, message):
    result = _run("run_target.py", "--model_name_or_path", tiny_model_dir, "--do_train", "--use_cpu",
                  "--output_dir", tmp_path / "out", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message)


def test_unknown_language_in_eval(tiny_model_dir, tmp_path):
    result = _run("run_xtreme_eval.py", "--model_name_or_path", tiny_model_dir, "--task", "pawsx",
                  "--languages", "de,xx", "--use_cpu", "--output_dir", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: task pawsx: unknown language(s) xx;")


def test_deepspeed_zero2_run_completes_and_its_output_loads(tiny_model_dir, tmp_path):
    out = tmp_path / "ds"
    result = _run("run_intermediate.py", "--model_name_or_path", tiny_model_dir, "--task", "mnli",
                  "--train_file", XTREME_DIR / "xnli/train-en.tsv", "--validation_file", XTREME_DIR / "xnli/dev-en.tsv",
                  "--max_train_samples", 64, "--max_steps", 3, "--per_device_train_batch_size", 8, "--do_train",
                  "--use_cpu", "--deepspeed", ROOT / "ds_configs/zero2.json", "--output_dir", out)
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    assert model.config.hidden_size == 32
    assert (out / "heads/mnli/head.safetensors").is_file()
