"""The bad-input catalogue of docs/troubleshooting.md, one test per row: each mistake ends with ONE line `error: ...` on
stderr, exit status 2, no traceback, and nothing already written is changed.

Most rows run the script in this process (`run_script`, as `python script.py` would); the first row also runs as
a real subprocess to check the exit status and stderr of the command line itself.
"""

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, XTREME_DIR, read_json, run_script
from transformers import Trainer

from utils.errors import disk_full
from utils.files import file_mode
from utils.results import results_path
from utils.tasks import UPOS_LABELS as UPOS
from utils.training import last_complete_checkpoint

QUIET = ["--use_cpu", "--disable_tqdm", "true", "--logging_strategy", "no", "--per_device_train_batch_size", 8,
         "--per_device_eval_batch_size", 32]
NO_EVAL = ["--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false"]
START_OVER = "pass --overwrite_output_dir to start over (its checkpoints and results are deleted when training starts)"


def one_line_error(capsys, script, args) -> str:
    """Run `script` expecting a user error; return its one error line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_script(script, [*QUIET, *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-2000:]
    return errors[0]


def target(model, out, *args):
    return ["--model_name_or_path", model, "--do_train", "--output_dir", out, *args]


def files(directory: Path) -> dict:
    """Every file under `directory` with its content: what a failing run must leave as it was."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


PAWSX = ["--task", "pawsx", "--data_dir", XTREME_DIR, "--max_train_samples", 16, "--max_steps", 2]


@pytest.fixture(scope="module")
def pawsx_model(tiny_model_dir, tmp_path_factory):
    """A phase-2 PAWS-X model (a few steps: good enough to evaluate)."""
    out = tmp_path_factory.mktemp("pawsx") / "model"
    run_script("run_target", [*target(tiny_model_dir, out, "--task", "pawsx", "--data_dir", XTREME_DIR,
                                      "--max_train_samples", 16, "--max_steps", 2), *NO_EVAL, *QUIET])
    return out


def test_wrong_task(tiny_model_dir, tmp_path, capsys):
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", "--task", "xnly"))
    assert line.startswith("error: unknown task 'xnly'")
    result = subprocess.run([sys.executable, "run_target.py", *map(str, target(tiny_model_dir, tmp_path / "o",
                                                                               "--task", "xnly")), "--use_cpu"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == line


def test_missing_data_file(tiny_model_dir, tmp_path, capsys):
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", "--task", "pawsx",
                                                       "--train_file", tmp_path / "missing.tsv"))
    assert line == f"error: {tmp_path / 'missing.tsv'}: file not found"


def corrupt(path, corruption: str, good: bytes):
    """Write `good` (a pair-classification tsv) to `path` damaged as `corruption` says; return the message the
    one error line must end with (after `error: {path}`)."""
    if corruption == "gzip":
        path.write_bytes(gzip.compress(good))
        return ": gzip-compressed data, not text; decompress it first"
    if corruption == "binary":  # raw bytes in the middle of line 4
        start = good.index(b"\n", good.index(b"\n", good.index(b"\n") + 1) + 1) + 5
        path.write_bytes(good[:start] + bytes(range(128, 256)) + good[start:])
        return f":4: not UTF-8 text (invalid start byte at byte {start}); expected a UTF-8 text file"
    if corruption == "columns":
        lines = good.decode().splitlines()
        path.write_text("\n".join(lines[:2] + ["a line cut short"] + lines[3:10]) + "\n")
        return ":3: expected 3 tab-separated columns, found 1"
    rows = [dict(zip(("sentence1", "sentence2", "label"), line.split("\t"))) for line in good.decode().splitlines()]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:3]) + '\n{"sentence1": "a", "sente\n')
    return ":5:20: not valid JSON lines (Unterminated string starting at)"


@pytest.mark.parametrize("corruption", ["gzip", "binary", "columns", "jsonl"])
def test_corrupt_data_file(corruption, tiny_model_dir, tmp_path, capsys):
    good = (XTREME_DIR / "pawsx/train-en.tsv").read_bytes()
    path = tmp_path / ("train.jsonl" if corruption == "jsonl" else "train.tsv")
    message = corrupt(path, corruption, good)
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", "--task", "pawsx",
                                                       "--train_file", path))
    assert line == f"error: {path}{message}"
    assert "decompress" not in line or corruption == "gzip"


def snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("corruption", ["gzip", "binary", "jsonl"])
def test_corrupt_eval_file_changes_nothing(corruption, pawsx_model, tmp_path, capsys):
    """An evaluation over earlier results: the bad file is named (its line, no decompression hint unless it is
    compressed) and the earlier results and predictions are left as they were."""
    out = tmp_path / "eval"
    args = ["--model_name_or_path", pawsx_model, "--task", "pawsx", "--split", "dev", "--languages", "de",
            "--output_dir", out]
    run_script("run_xtreme_eval", [*args, "--data_dir", XTREME_DIR, *QUIET])
    before = snapshot(out)
    path = tmp_path / ("dev-de.jsonl" if corruption == "jsonl" else "dev-de.tsv")
    message = corrupt(path, corruption, (XTREME_DIR / "pawsx/dev-de.tsv").read_bytes())
    line = one_line_error(capsys, "run_xtreme_eval", [*args, "--eval_file", path])
    prefix = "error: " if corruption != "jsonl" else "error: task pawsx (dev): no language could be evaluated; de: "
    assert line == f"{prefix}{path}{message}"
    assert snapshot(out) == before


def test_evaluation_of_nothing_fails_naming_each_file(pawsx_model, tmp_path, capsys):
    """`--split test --languages all` without test files: exit 2 naming the file each language expected; the
    output dir (earlier dev results) is left as it was and no test results file is written."""
    out = tmp_path / "eval"
    args = ["--model_name_or_path", pawsx_model, "--task", "pawsx", "--data_dir", XTREME_DIR, "--output_dir", out]
    run_script("run_xtreme_eval", [*args, "--split", "dev", "--languages", "de", *QUIET])
    before = snapshot(out)
    line = one_line_error(capsys, "run_xtreme_eval", [*args, "--split", "test", "--languages", "all"])
    assert line == "error: task pawsx (test): no language could be evaluated; " + "; ".join(
        f"{lang}: {XTREME_DIR / f'pawsx/test-{lang}.tsv'}: file not found" for lang in "de en es fr ja ko zh".split())
    assert snapshot(out) == before


def test_conllu_tag_error_names_the_tokens_line(tiny_model_dir, tmp_path, capsys):
    lines = (XTREME_DIR / "udpos/en_ewt-ud-dev.conllu").read_text(encoding="utf-8").splitlines()[:40]
    number = next(n for n, line in enumerate(lines, 1) if n > 20 and line.split("\t")[3:4] == ["NOUN"])
    parts = lines[number - 1].split("\t")
    parts[3] = "NOUNS"
    lines[number - 1] = "\t".join(parts)
    path = tmp_path / "en_ewt-ud-train.conllu"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    before = snapshot(tmp_path)
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", "--task", "udpos",
                                                       "--train_file", path, "--validation_file", path))
    assert line == f"error: {path}:{number}: unknown label 'NOUNS'; expected one of: {', '.join(UPOS)}"
    assert {p: b for p, b in snapshot(tmp_path).items() if p in before} == before


def test_label_outside_the_label_list(tiny_model_dir, tmp_path, capsys):
    path = XTREME_DIR / "xnli/dev-en.tsv"
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", "--task", "pawsx",
                                                       "--train_file", path))
    assert line == f"error: {path}:1: unknown label 'contradiction'; expected one of: 0, 1"


def test_model_dir_without_weights(tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    line = one_line_error(capsys, "run_target", target(model, tmp_path / "o", "--task", "pawsx", "--data_dir",
                                                       XTREME_DIR))
    assert line.startswith(f"error: {model}: no model weights (expected one of model.safetensors")


def test_zero_checkpoint_without_gathered_weights(tiny_model_dir, tmp_path, capsys):
    """What a ZeRO-3 run with stage3_gather_16bit_weights_on_model_save=false leaves: config, tokenizer and
    DeepSpeed's partitioned `global_stepN/` (+ `latest`, `zero_to_fp32.py`), no weights file."""
    model = tmp_path / "zero"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    (model / "global_step8").mkdir()
    (model / "global_step8" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"partitioned")
    (model / "latest").write_text("global_step8")
    (model / "zero_to_fp32.py").write_text("# DeepSpeed's recovery script\n")
    line = one_line_error(capsys, "run_xtreme_eval", ["--model_name_or_path", model, "--task", "pawsx",
                                                      "--output_dir", tmp_path / "o"])
    assert line == (f"error: {model}: holds a DeepSpeed ZeRO checkpoint without gathered weights; run "
                    f"`python {model}/zero_to_fp32.py {model} {model} --safe_serialization` first")


def test_tokenizer_larger_than_the_model_vocabulary(tiny_model_dir, pawsx_model, tmp_path, capsys):
    """A model whose embeddings stop at 1,000 rows with the 4,002-token tokenizer: ids above 999 would fail deep in
    the first forward pass ("index out of range in self")."""
    from transformers import AutoModelForSequenceClassification

    small = tmp_path / "small"
    model = AutoModelForSequenceClassification.from_pretrained(pawsx_model)
    model.resize_token_embeddings(1000)
    model.save_pretrained(small)
    expected = (f"error: the tokenizer ({tiny_model_dir}) has 4002 tokens but the model's embeddings only 1000: use "
                "the model's own tokenizer (drop --tokenizer_name) or a model trained with this one")
    line = one_line_error(capsys, "run_target", [*target(small, tmp_path / "o", "--task", "pawsx", "--data_dir",
                                                         XTREME_DIR, "--max_train_samples", 8, "--tokenizer_name",
                                                         tiny_model_dir), *NO_EVAL])
    assert line == expected
    line = one_line_error(capsys, "run_xtreme_eval", ["--model_name_or_path", small, "--tokenizer_name",
                                                      tiny_model_dir, "--task", "pawsx", "--languages", "de",
                                                      "--split", "dev", "--data_dir", XTREME_DIR, "--output_dir",
                                                      tmp_path / "e"])
    assert line == expected
    line = one_line_error(capsys, "run_xtreme_eval", ["--model_name_or_path", small, "--tokenizer_name",
                                                      tiny_model_dir, "--task", "tatoeba", "--languages", "de",
                                                      "--data_dir", XTREME_DIR, "--output_dir", tmp_path / "t"])
    assert line == expected


def test_output_dir_holding_another_tasks_run(tiny_model_dir, pawsx_model, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(pawsx_model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, out, "--task", "xnli", "--data_dir",
                                                       XTREME_DIR))
    assert line == f"error: output dir {out} holds another run (target pawsx); choose another dir or {START_OVER}"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_kept_head_of_another_size(pawsx_model, tmp_path, capsys):
    line = one_line_error(capsys, "run_target", target(pawsx_model, tmp_path / "run", "--task", "xnli", "--keep_head",
                                                       "--data_dir", XTREME_DIR))
    assert line == (f"error: {pawsx_model}: its classification head has 2 labels, this task 3; drop --keep_head to "
                    "start a fresh head")
    assert not (tmp_path / "run").exists()


def evaluate(model, out, *args):
    return ["--model_name_or_path", model, "--task", "pawsx", "--split", "dev", "--data_dir", XTREME_DIR,
            "--output_dir", out, *args]


def perturbed_copy(model: Path, copy: Path) -> Path:
    """`model` with one weight changed: same files, sizes and safetensors header (what another fine-tuning of the
    same architecture looks like)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, copy, dirs_exist_ok=True)
    weights = copy / "model.safetensors"
    stat = weights.stat()
    tensors = load_file(weights)
    tensors["classifier.out_proj.bias"] = tensors["classifier.out_proj.bias"] + 1
    save_file(tensors, weights, metadata={"format": "pt"})
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old modification time
    assert weights.stat().st_size == stat.st_size
    return copy


def test_resume_over_another_models_results(pawsx_model, tmp_path, capsys):
    out = tmp_path / "eval"
    run_script("run_xtreme_eval", [*evaluate(pawsx_model, out, "--languages", "de"), *QUIET])
    before = files(out)
    results = results_path(out, "pawsx", "dev")
    other = perturbed_copy(pawsx_model, tmp_path / "other")
    line = one_line_error(capsys, "run_xtreme_eval", [*evaluate(other, out, "--languages", "de,en"), "--resume"])
    assert line.startswith(f"error: {results}: holds the results of another evaluation (model "
                           f"{pawsx_model.resolve()} (now {other.resolve()}); weights sha256:")
    assert line.endswith("); choose another --output_dir, or drop --resume to evaluate every language again "
                         "(replacing it)")
    assert files(out) == before


def test_resume_after_the_model_changed_in_place(pawsx_model, tmp_path, capsys):
    """The same path, weights of the same size rewritten and their old modification time restored."""
    model, out = tmp_path / "model", tmp_path / "eval"
    shutil.copytree(pawsx_model, model)
    run_script("run_xtreme_eval", [*evaluate(model, out, "--languages", "de"), *QUIET])
    before = files(out)
    perturbed_copy(pawsx_model, model)
    line = one_line_error(capsys, "run_xtreme_eval", [*evaluate(model, out, "--languages", "de,en"), "--resume"])
    assert line.startswith(f"error: {results_path(out, 'pawsx', 'dev')}: holds the results of another evaluation "
                           "(weights sha256:") and "model" not in line.split("(", 1)[1]
    assert files(out) == before


def test_resume_with_other_evaluation_arguments(pawsx_model, tmp_path, capsys):
    out = tmp_path / "eval"
    run_script("run_xtreme_eval", [*evaluate(pawsx_model, out, "--languages", "de"), *QUIET])
    before = files(out)
    line = one_line_error(capsys, "run_xtreme_eval", [*evaluate(pawsx_model, out, "--languages", "de,en"),
                                                      "--resume", "--max_seq_length", 64, "--max_eval_samples", 50])
    assert line == (f"error: {results_path(out, 'pawsx', 'dev')}: holds the results of another evaluation "
                    "(max_seq_length 128 (now 64); max_eval_samples null (now 50)); choose another --output_dir, or "
                    "drop --resume to evaluate every language again (replacing it)")
    assert files(out) == before
    # the same evaluation resumes (other languages, batch size and workers do not change a number)
    run_script("run_xtreme_eval", [*evaluate(pawsx_model, out, "--languages", "de,en"), "--resume", *QUIET,
                                   "--per_device_eval_batch_size", 8, "--preprocessing_num_workers", 1])
    assert set(read_json(results_path(out, "pawsx", "dev"))["languages"]) == {"de", "en"}
    # the same files under another spelling of their path are the same evaluation
    relative = evaluate(pawsx_model, out, "--languages", "de,en,ja")
    relative[relative.index("--data_dir") + 1] = os.path.relpath(XTREME_DIR)
    run_script("run_xtreme_eval", [*relative, "--resume", *QUIET])
    assert set(read_json(results_path(out, "pawsx", "dev"))["languages"]) == {"de", "en", "ja"}
    assert (out / "predictions/pawsx/dev-de.tsv").read_bytes() == before["predictions/pawsx/dev-de.tsv"]


def test_test_split_after_dev_keeps_the_dev_results(pawsx_model, tmp_path):
    data = tmp_path / "data"
    (data / "pawsx").mkdir(parents=True)
    dev = (XTREME_DIR / "pawsx/dev-de.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "pawsx/dev-de.tsv").write_text("".join(dev), encoding="utf-8")
    (data / "pawsx/test-de.tsv").write_text("".join(dev[:40]), encoding="utf-8")
    out = tmp_path / "eval"
    args = ["--model_name_or_path", pawsx_model, "--task", "pawsx", "--languages", "de", "--data_dir", data,
            "--output_dir", out, *QUIET]
    run_script("run_xtreme_eval", [*args, "--split", "dev"])
    before = files(out)
    run_script("run_xtreme_eval", [*args, "--split", "test"])
    assert all(files(out)[p] == text for p, text in before.items())  # exit 0, nothing of dev's changed
    assert read_json(results_path(out, "pawsx", "dev"))["languages"]["de"]["num_examples"] == 100
    assert read_json(results_path(out, "pawsx", "test"))["languages"]["de"]["num_examples"] == 40


def test_report_over_a_corrupted_results_file(tmp_path, capsys):
    run_dir = tmp_path / "runs"
    good = results_path(run_dir / "a", "pawsx", "test")
    good.parent.mkdir(parents=True)
    good.write_text(json.dumps({"task": "pawsx", "split": "test", "languages": {"de": {"score": 80.0}}}))
    broken = results_path(run_dir / "b", "pawsx", "test")
    broken.parent.mkdir(parents=True)
    broken.write_text(good.read_text()[:30])
    before = files(run_dir)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_script("utils.report", [run_dir])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    problem, line = err.splitlines()  # a line per broken file, then the error
    assert problem.startswith(f"{broken}: not valid JSON (Unterminated string starting at: line 1 column ")
    assert line == (f"error: 1 results file(s) under {run_dir} cannot be used (listed above): fix or remove them, or "
                    "pass --skip-broken to report without them")
    assert files(run_dir) == before  # no report written


def _full_disk_on(directory: Path):
    """os.fdopen whose files under `directory` fail to write with ENOSPC (what a full disk does)."""
    original = os.fdopen

    def fdopen(fd, *args, **kwargs):
        handle = original(fd, *args, **kwargs)
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(directory)):
            def write(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            handle.write = write
        return handle

    return fdopen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the file being written")
def test_disk_full_while_writing_results(pawsx_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    args = ["--model_name_or_path", pawsx_model, "--task", "pawsx", "--split", "dev", "--data_dir", XTREME_DIR,
            "--output_dir", out]
    run_script("run_xtreme_eval", [*args, "--languages", "de", *QUIET])
    results = results_path(out, "pawsx", "dev").read_bytes()
    monkeypatch.setattr(os, "fdopen", _full_disk_on(out))
    line = one_line_error(capsys, "run_xtreme_eval", [*args, "--languages", "de,en", "--resume"])
    assert line.startswith(f"error: no space left on the device while writing {out / 'predictions/pawsx/dev-en.tsv'};")
    assert results_path(out, "pawsx", "dev").read_bytes() == results  # de's results intact
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["dev-de.tsv", "pawsx.dev.json"]  # no temp files


def test_disk_full_while_writing_a_checkpoint(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """torch.save on a full disk raises RuntimeError("... unexpected pos ...") without naming the cause; the
    trainer recognises it by the free space left and the user gets the one line; checkpoint-2 stays usable."""
    out = tmp_path / "run"
    args = [*target(tiny_model_dir, out, "--task", "pawsx", "--data_dir", XTREME_DIR, "--max_train_samples", 32,
                    "--max_steps", 4, "--save_strategy", "steps", "--save_steps", 2), "--eval_strategy", "no",
            "--load_best_model_at_end", "false"]
    original = Trainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        if self.state.global_step == 4:
            monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", save)
    line = one_line_error(capsys, "run_target", args)
    assert line.startswith(f"error: no space left on the device while writing {out / 'checkpoint-4'};")
    assert last_complete_checkpoint(out) == str(out / "checkpoint-2")
    monkeypatch.undo()
    run_script("run_target", [*args, *QUIET])  # space freed: resumes from checkpoint-2 and finishes
    assert read_json(out / "trainer_state.json")["global_step"] == 4
    assert read_json(out / "xtreme_inter_run.json")["finished"] is True


def test_disk_full_as_other_libraries_report_it():
    from safetensors import SafetensorError

    assert disk_full(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk_full(RuntimeError("CUDA out of memory"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("while saving") from err
    except RuntimeError as wrapped:
        assert disk_full(wrapped)


@pytest.mark.parametrize("args, message", [
    (["--per_device_train_batch_size", 0], "--per_device_train_batch_size 0: must be 1 or more"),
    (["--per_device_eval_batch_size", -4], "--per_device_eval_batch_size -4: must be 1 or more"),
    (["--gradient_accumulation_steps", 0], "--gradient_accumulation_steps 0: must be 1 or more"),
    (["--learning_rate=-1e-5"], "--learning_rate -1e-05: must be 0 or more"),
    (["--max_steps", 0], "--max_steps 0: must be at least 1 optimisation step (or -1 to train --num_train_epochs)"),
    (["--max_steps", -1, "--num_train_epochs", 0], "--num_train_epochs 0: must be more than 0 (at least one "
                                                   "optimisation step)"),
    (["--max_seq_length", 2], "--max_seq_length 2: leaves no room for text (4 special tokens per input); pass at "
                              "least 6"),
    (["--max_seq_length", 600], "--max_seq_length 600: beyond the 512 positions of the model ({model}); pass 512 "
                                "or less"),
])
def test_degenerate_training_settings(args, message, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    line = one_line_error(capsys, "run_target", [*target(tiny_model_dir, out, *PAWSX), *NO_EVAL, *args])
    assert line == "error: " + message.format(model=tiny_model_dir)
    assert not (out / "xtreme_inter_run.json").exists()


def test_evaluation_beyond_the_models_positions(pawsx_model, tmp_path, capsys):
    out = tmp_path / "eval"
    line = one_line_error(capsys, "run_xtreme_eval", ["--model_name_or_path", pawsx_model, "--task", "pawsx",
                                                      "--data_dir", XTREME_DIR, "--split", "dev", "--languages", "de",
                                                      "--max_seq_length", 600, "--output_dir", out, "--use_cpu"])
    assert line == f"error: --max_seq_length 600: beyond the 512 positions of the model ({pawsx_model}); pass 512 or less"
    assert not out.exists()


@pytest.mark.parametrize("script", ["run_target", "run_intermediate"])
def test_training_script_without_do_train(script, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    line = one_line_error(capsys, script, ["--model_name_or_path", tiny_model_dir, "--output_dir", out, *PAWSX])
    assert line == (f"error: {script}.py trains a model and was not given --do_train; pass it (to evaluate a trained "
                    "model, use run_xtreme_eval.py)")
    assert not out.exists()


def test_bf16_without_support(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: False)
    line = one_line_error(capsys, "run_target", [*target(tiny_model_dir, tmp_path / "o", *PAWSX), "--bf16",
                                                 "--use_cpu", "false"])
    assert line == ("error: --bf16: this machine's accelerator has no bfloat16 support (it needs e.g. an NVIDIA "
                    "Ampere or newer GPU); use --fp16 instead, or --use_cpu")
    assert not (tmp_path / "o").exists()


def test_output_dir_under_a_file_or_not_writable(tiny_model_dir, tmp_path, capsys, monkeypatch):
    regular = tmp_path / "file"
    regular.write_text("mine\n")
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, regular / "out", *PAWSX))
    assert line == f"error: output dir {regular / 'out'} is under {regular}, a file; expected a directory (or a new path)"
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, regular, *PAWSX))
    assert line == f"error: output dir {regular} is a file; expected a directory (or a new path)"
    assert regular.read_text() == "mine\n"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere: answer as the mode bits do for everyone else
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: access(path, mode, **kw) and Path(path) != locked)
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, locked / "run", *PAWSX))
    assert line == f"error: output dir {locked / 'run'}: {locked} is not writable; choose a dir you can write to"
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model", "{tmp}/model"])
def test_model_path_that_does_not_exist(path, tmp_path, capsys):
    path = path.format(tmp=tmp_path)
    line = one_line_error(capsys, "run_target", target(path, tmp_path / "o", *PAWSX))
    assert line == (f"error: --model_name_or_path {path}: no such directory (expected a model dir, e.g. a phase output "
                    "dir, or a Hub id such as xlm-roberta-large)")


def test_evaluation_output_dir_given_as_model(pawsx_model, tmp_path, capsys):
    evaluation = tmp_path / "eval"
    run_script("run_xtreme_eval", ["--model_name_or_path", pawsx_model, "--task", "pawsx", "--split", "dev",
                                   "--languages", "de", "--data_dir", XTREME_DIR, "--output_dir", evaluation, *QUIET])
    before = files(evaluation)
    expected = (f"error: {evaluation}: holds evaluation results (results/, predictions/), not a model; pass the "
                f"model dir that was evaluated ({pawsx_model})")
    assert one_line_error(capsys, "run_target", target(evaluation, tmp_path / "o", *PAWSX)) == expected
    assert one_line_error(capsys, "run_xtreme_eval", ["--model_name_or_path", evaluation, "--task", "pawsx",
                                                      "--split", "dev", "--data_dir", XTREME_DIR]) == expected
    assert files(evaluation) == before


def test_model_dir_without_tokenizer_files(tiny_model_dir, tmp_path, capsys):
    """A tokenizer built from the config alone has the 5 special tokens and encodes every word as <unk>."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    for path in model.glob("tokenizer*"):
        path.unlink()
    line = one_line_error(capsys, "run_target", target(model, tmp_path / "o", *PAWSX))
    assert line == (f"error: {model}: its tokenizer has only special tokens (5: <s> </s> <unk> <pad> <mask>), no "
                    "vocabulary; the dir lacks the tokenizer files: pass --tokenizer_name with the model's tokenizer")
    assert not (tmp_path / "o").exists()


def test_tokenizer_that_cannot_encode_the_training_text(tiny_model_dir, tmp_path, capsys):
    """A tokenizer of Chinese text without Latin letters: English words are <unk>."""
    import re

    from utils.tiny_model import build_tokenizer

    corpus = tmp_path / "zh.txt"
    text = (XTREME_DIR / "xnli/dev-zh.tsv").read_text(encoding="utf-8")
    corpus.write_text(re.sub("[A-Za-z]", "", text), encoding="utf-8")
    build_tokenizer(corpus, tmp_path / "zh", vocab_size=1500)
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, tmp_path / "o", *PAWSX, "--tokenizer_name",
                                                       tmp_path / "zh"))
    assert line.startswith(f"error: {tmp_path / 'zh'}: its tokenizer cannot encode the training text (")
    assert line.endswith("pass --tokenizer_name with the model's tokenizer")
    assert not (tmp_path / "o" / "xtreme_inter_run.json").exists()


def test_tiny_model_vocabulary_too_small(tmp_path, capsys):
    from unittest import mock

    from utils import tiny_model
    from utils.errors import run_main

    with mock.patch.object(sys, "argv", ["tiny_model.py", str(tmp_path / "m"), "--vocab_size", "50"]):
        with pytest.raises(SystemExit) as exit_info:
            run_main(tiny_model.main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: --vocab_size 50: too small for the characters of {ROOT / 'tests/fixtures/tiny_corpus.txt'}; pass "
        "--vocab_size 2102 or more")
    assert not (tmp_path / "m").exists()


def test_unfinished_run_with_other_arguments(pawsx_model, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(pawsx_model, out)
    marker = read_json(out / "xtreme_inter_run.json")
    (out / "xtreme_inter_run.json").write_text(json.dumps({**marker, "finished": False}))  # as a killed run leaves
    before = files(out)
    line = one_line_error(capsys, "run_target", [*target(tiny_model_dir, out, *PAWSX), *NO_EVAL,
                                                 "--learning_rate", 1e-3])
    assert line == (f"error: output dir {out} holds a pawsx run with other arguments (--learning_rate 1e-05 there, "
                    f"0.001 now); rerun with its arguments to resume it, choose another dir, or {START_OVER}")
    assert files(out) == before


def test_overwrite_output_dir_starts_over_in_another_tasks_dir(tiny_model_dir, tmp_path, capsys):
    """A 3-way XNLI run with a checkpoint, then PAWS-X (2-way) with --overwrite_output_dir into its dir: a start
    that fails before training leaves the dir as it was; the real one trains from step 0 (the old checkpoint is not
    resumed) and removes the old run's checkpoints and results."""
    out = tmp_path / "run"
    run_script("run_target", [*QUIET, *target(tiny_model_dir, out, "--task", "xnli", "--train_file",
                                              XTREME_DIR / "xnli/train-en.tsv", "--validation_file",
                                              XTREME_DIR / "xnli/dev-en.tsv", "--max_train_samples", 16,
                                              "--max_steps", 2, "--save_strategy", "steps", "--save_steps", 2,
                                              "--eval_strategy", "no", "--load_best_model_at_end", "false")])
    assert (out / "checkpoint-2").is_dir()
    before = files(out)
    line = one_line_error(capsys, "run_target", target(tiny_model_dir, out, *PAWSX, "--overwrite_output_dir",
                                                       "--train_file", tmp_path / "missing.tsv"))
    assert line == f"error: {tmp_path / 'missing.tsv'}: file not found"
    assert files(out) == before
    run_script("run_target", [*QUIET, *target(tiny_model_dir, out, *PAWSX, "--overwrite_output_dir",
                                              "--logging_strategy", "steps", "--logging_steps", 1), *NO_EVAL])
    state = read_json(out / "trainer_state.json")
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2]
    assert not (out / "checkpoint-2").exists()
    marker = read_json(out / "xtreme_inter_run.json")
    assert (marker["task"], marker["finished"]) == ("pawsx", True)
    assert read_json(out / "config.json")["id2label"] == {"0": "0", "1": "1"}


def test_outputs_follow_the_umask(tiny_model_dir, tmp_path):
    """Weights, checkpoints, results and predictions get the mode of any new file (here 0664, umask 002)."""
    previous = os.umask(0o002)
    try:
        out = tmp_path / "run"
        run_script("run_target", [*QUIET, *target(tiny_model_dir, out, *PAWSX, "--save_strategy", "steps",
                                                  "--save_steps", 2, "--eval_strategy", "no",
                                                  "--load_best_model_at_end", "false")])
        run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task", "pawsx", "--split", "dev",
                                       "--languages", "de", "--data_dir", XTREME_DIR, *QUIET])
        assert file_mode() == 0o664
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert {"model.safetensors", "checkpoint-2/model.safetensors", "xtreme_inter_run.json", "results/pawsx.dev.json",
            "predictions/pawsx/dev-de.tsv"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != oct(0o664)} == {}
