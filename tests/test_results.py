"""Phase 3's results files: one per task and split, checked when read, resumed only by the evaluation that wrote
them (model path and weights, split, arguments)."""

import json
import os
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from utils.errors import XtremeError
from utils.results import ResultsFile, read_results, results_path, weights_fingerprint

EVALUATION = {"model": "/runs/a", "weights": "sha256:" + "a" * 64, "max_seq_length": 128, "layer": None}


def test_results_path_has_the_split_in_its_name():
    assert results_path("runs/x", "pawsx", "dev") == Path("runs/x/results/pawsx.dev.json")
    assert results_path(Path("/r"), "bucc2018", "test") == Path("/r/results/bucc2018.test.json")


def test_each_split_has_its_own_file(tmp_path):
    dev = ResultsFile(tmp_path, "pawsx", "dev", {}, EVALUATION)
    dev.add("de", {"accuracy": 80.0, "score": 80.0, "num_examples": 10})
    test = ResultsFile(tmp_path, "pawsx", "test", {}, EVALUATION, resume=True)
    assert not test.done("de")
    test.add("de", {"accuracy": 70.0, "score": 70.0, "num_examples": 10})
    assert read_results(results_path(tmp_path, "pawsx", "dev"))["score"] == 80
    assert read_results(results_path(tmp_path, "pawsx", "test"))["score"] == 70


def test_resume_keeps_only_the_same_evaluations_results(tmp_path):
    first = ResultsFile(tmp_path, "pawsx", "dev", {"model": "a"}, EVALUATION)
    first.add("de", {"score": 80.0})
    first.skip("fr", "dev-fr.tsv: file not found")
    written = first.path.read_bytes()
    again = ResultsFile(tmp_path, "pawsx", "dev", {"model": "a"}, dict(EVALUATION), resume=True)
    assert again.done("de") and again.data["skipped"] == {"fr": "dev-fr.tsv: file not found"}
    other = {**EVALUATION, "weights": "sha256:" + "b" * 64, "max_seq_length": 64}
    with pytest.raises(XtremeError) as refused:
        ResultsFile(tmp_path, "pawsx", "dev", {"model": "a"}, other, resume=True)
    assert str(refused.value) == (
        f"{first.path}: holds the results of another evaluation (weights sha256:aaaaaaaaaaaa… (now "
        "sha256:bbbbbbbbbbbb…); max_seq_length 128 (now 64)); choose another --output_dir, or drop --resume to "
        "evaluate every language again (replacing it)")
    with pytest.raises(XtremeError, match=r"\(layer null \(now 2\)\)"):
        ResultsFile(tmp_path, "pawsx", "dev", {}, {**EVALUATION, "layer": 2}, resume=True)
    with pytest.raises(XtremeError, match=r"\(model /runs/a \(now /runs/b\)\)"):
        ResultsFile(tmp_path, "pawsx", "dev", {}, {**EVALUATION, "model": "/runs/b"}, resume=True)
    assert first.path.read_bytes() == written
    # a file that does not record its evaluation cannot be resumed either
    data = json.loads(written)
    del data["evaluation"]
    first.path.write_text(json.dumps(data))
    with pytest.raises(XtremeError, match=r"another evaluation \(it does not record what produced it\)"):
        ResultsFile(tmp_path, "pawsx", "dev", {}, EVALUATION, resume=True)
    # without --resume the evaluation starts over
    assert not ResultsFile(tmp_path, "pawsx", "dev", {}, other).done("de")


@pytest.mark.parametrize("text, problem", [
    ("", "empty file"),
    ('{"task": "pawsx", "split": "dev", "langu', "not valid JSON (Unterminated string starting at: line 1"),
    ("[1, 2]", "not a JSON object"),
    ('{"task": "pawsx", "split": "valid", "languages": {}}',
     'task "pawsx", split "valid": expected a task name and dev or test'),
    ('{"task": "xnli", "split": "dev", "languages": {}}', "holds the dev results of xnli: expected the path "),
    ('{"task": "pawsx", "split": "dev", "languages": []}', "'languages' is not an object of per-language metrics"),
    ('{"task": "pawsx", "split": "dev", "languages": {"de": {"f1": null}}}',
     "languages.de.f1 is null: expected a number"),
    ('{"task": "pawsx", "split": "dev", "languages": {"de": {"score": Infinity}}}',
     "languages.de.score is Infinity: expected a number"),
    ('{"task": "pawsx", "split": "dev", "languages": {"de": {"num_examples": true}}}',
     "languages.de.num_examples is true: expected a number"),
    ('{"task": "pawsx", "split": "dev", "languages": {}, "skipped": {"de": 1}}',
     "'skipped' is not an object of per-language reasons"),
    ('{"task": "pawsx", "split": "dev", "languages": {}, "score": "high"}', 'score is "high": expected a number'),
])
def test_a_malformed_results_file_is_named_with_what_is_wrong(text, problem, tmp_path):
    path = results_path(tmp_path, "pawsx", "dev")
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(XtremeError) as err:
        read_results(path)
    assert str(err.value).startswith(f"{path}: {problem}")
    with pytest.raises(XtremeError) as err:  # --resume over it
        ResultsFile(tmp_path, "pawsx", "dev", {}, EVALUATION, resume=True)
    assert str(err.value).startswith(f"{path}: {problem}") and str(err.value).endswith(
        "; fix or remove it, or drop --resume")


def test_weights_fingerprint_reads_every_byte(tiny_model_dir, tmp_path):
    """Two models of one architecture have the same file sizes and safetensors headers; a weight changed in place
    with the old modification time restored still changes the fingerprint."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert weights_fingerprint(copy) == weights_fingerprint(tiny_model_dir)
    weights = copy / "model.safetensors"
    before, size = os.stat(weights), weights.stat().st_size
    tensors = load_file(weights)
    name = sorted(tensors)[-1]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1
    save_file(tensors, weights, metadata={"format": "pt"})
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == size and weights.stat().st_mtime_ns == before.st_mtime_ns
    assert weights_fingerprint(copy) != weights_fingerprint(tiny_model_dir)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    changed = weights_fingerprint(copy)
    (copy / "config.json").write_text(json.dumps(config))
    assert weights_fingerprint(copy) != changed


def test_weights_fingerprint_of_a_sharded_checkpoint(tiny_model_dir, tmp_path):
    from transformers import AutoModel

    sharded = tmp_path / "sharded"
    AutoModel.from_pretrained(tiny_model_dir).save_pretrained(sharded, max_shard_size="200KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").is_file()
    fingerprint = weights_fingerprint(sharded)
    tensors = load_file(shards[-1])
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1
    save_file(tensors, shards[-1], metadata={"format": "pt"})
    assert weights_fingerprint(sharded) != fingerprint


def test_environment_info_names_the_libraries_and_the_commit(tmp_path):
    import subprocess
    from importlib import metadata
    from unittest import mock

    from conftest import ROOT

    from utils import results

    info = results.environment_info()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert info["git_commit"] == commit and isinstance(info["git_dirty"], bool)
    for package in ("torch", "transformers", "datasets", "accelerate", "deepspeed", "peft"):
        assert info[package] == metadata.version(package)
    with mock.patch.object(results, "__file__", str(tmp_path / "utils" / "results.py")):  # not a git checkout
        assert results._git_state() == {"git_commit": None, "git_dirty": None}
