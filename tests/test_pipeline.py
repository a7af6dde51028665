"""The three phases end to end on the tiny model and real XTREME-format slices."""

import random

import pytest
import torch
from conftest import XTREME_DIR, read_json, run_script
from safetensors.torch import load_file

from utils.modeling import load_model
from utils.results import results_path
from utils.training import ModelArguments

FAST = ["--use_cpu", "--per_device_train_batch_size", 16, "--per_device_eval_batch_size", 32,
        "--logging_strategy", "no", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def intermediate_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnli")
    run_script("run_intermediate", [
        "--model_name_or_path", tiny_model_dir, "--task", "mnli", "--do_train", "--output_dir", out,
        "--train_file", XTREME_DIR / "xnli/train-en.tsv", "--validation_file", XTREME_DIR / "xnli/dev-en.tsv",
        "--max_train_samples", 96, "--num_train_epochs", 1, "--learning_rate", 1e-3, *FAST])
    return out


@pytest.fixture(scope="module")
def target_dir(intermediate_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnli-pawsx")
    run_script("run_target", [
        "--model_name_or_path", intermediate_dir, "--task", "pawsx", "--data_dir", XTREME_DIR, "--do_train",
        "--output_dir", out, "--max_train_samples", 64, "--num_train_epochs", 2, *FAST])
    return out


def _encoder(state_dict, prefix=""):
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def test_intermediate_saves_a_plain_encoder_and_its_head(intermediate_dir):
    weights = load_file(intermediate_dir / "model.safetensors")
    assert weights and not any(k.startswith(("classifier", "roberta.", "lm_head")) for k in weights)
    assert read_json(intermediate_dir / "config.json")["architectures"] == ["XLMRobertaModel"]
    head = load_file(intermediate_dir / "heads/mnli/head.safetensors")
    assert head["classifier.out_proj.weight"].shape[0] == 3
    results = read_json(intermediate_dir / "all_results.json")
    assert 0 <= results["eval_accuracy"] <= 100 and "train_loss" in results
    assert read_json(intermediate_dir / "xtreme_inter_run.json")["finished"] is True


def test_target_transfers_the_encoder_with_a_fresh_head(intermediate_dir):
    encoder = load_file(intermediate_dir / "model.safetensors")
    old_head = load_file(intermediate_dir / "heads/mnli/head.safetensors")
    model = load_model(ModelArguments(str(intermediate_dir)), "classification", ["0", "1"])
    state = model.state_dict()
    for name, tensor in encoder.items():
        assert torch.equal(state[f"roberta.{name}"], tensor), name
    assert state["classifier.out_proj.weight"].shape[0] == 2
    assert not torch.equal(state["classifier.dense.weight"], old_head["classifier.dense.weight"])


def test_a_head_in_the_model_dir_is_reinitialised_unless_kept(target_dir):
    trained = load_file(target_dir / "model.safetensors")
    fresh = load_model(ModelArguments(str(target_dir)), "classification", ["0", "1"]).state_dict()
    kept = load_model(ModelArguments(str(target_dir)), "classification", ["0", "1"], fresh_head=False).state_dict()
    assert not torch.equal(fresh["classifier.out_proj.weight"], trained["classifier.out_proj.weight"])
    assert torch.equal(kept["classifier.out_proj.weight"], trained["classifier.out_proj.weight"])
    assert torch.equal(fresh["roberta.embeddings.word_embeddings.weight"],
                       trained["roberta.embeddings.word_embeddings.weight"])


def test_chain_evaluates_every_requested_language(target_dir, capsys, tmp_path, monkeypatch):
    assert (target_dir / "model.safetensors").is_file() and (target_dir / "tokenizer.json").is_file()
    assert read_json(target_dir / "all_results.json")["eval_samples"] == 100
    monkeypatch.chdir(tmp_path)
    run_script("run_xtreme_eval", ["--model_name_or_path", target_dir, "--task", "pawsx", "--languages", "de,en,ja,fr",
                                   "--data_dir", XTREME_DIR, "--split", "dev", *FAST])
    assert not any(tmp_path.iterdir())  # everything goes to the model dir, nothing to the working directory
    results = read_json(results_path(target_dir, "pawsx", "dev"))
    assert set(results["languages"]) == {"de", "en", "ja"}
    assert "fr" in results["skipped"] and "file not found" in results["skipped"]["fr"]
    for lang, metrics in results["languages"].items():
        assert metrics["num_examples"] == 100 and 0 <= metrics["accuracy"] <= 100
        lines = (target_dir / f"predictions/pawsx/dev-{lang}.tsv").read_text().splitlines()
        assert len(lines) == 100 and set(lines) <= {"0", "1"}
    assert results["score"] == pytest.approx(sum(m["accuracy"] for m in results["languages"].values()) / 3)
    assert results["split"] == "dev" and results["model"] == str(target_dir)
    assert "| de |" in capsys.readouterr().out


def test_output_dir_holding_another_run_is_refused(intermediate_dir, target_dir, capsys):
    args = ["--model_name_or_path", intermediate_dir, "--task", "xnli", "--data_dir", XTREME_DIR, "--do_train",
            "--output_dir", target_dir, *FAST]
    before = (target_dir / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run_script("run_target", args)
    assert exit_info.value.code == 2
    assert "holds another run (target pawsx)" in capsys.readouterr().err
    assert (target_dir / "model.safetensors").read_bytes() == before


def _marker_files(tmp_path, n_train=320, n_dev=80, seed=0):
    """Synthetic pair task: the label is 1 iff the marker word appears; nothing else separates the classes."""
    rng = random.Random(seed)
    words = "the a house tree river blue green runs walks city small large".split()
    paths = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = []
        for i in range(n):
            label = i % 2
            s1 = [rng.choice(words) for _ in range(rng.randint(4, 9))]
            if label:
                s1.insert(rng.randrange(len(s1)), "zebra")
            lines.append(f"{' '.join(s1)}\t{' '.join(rng.choice(words) for _ in range(5))}\t{label}")
        paths[split] = tmp_path / f"{split}-en.tsv"
        paths[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def test_training_learns_a_marker_task(tiny_model_dir, tmp_path):
    files = _marker_files(tmp_path)
    out = tmp_path / "run"
    run_script("run_target", [
        "--model_name_or_path", tiny_model_dir, "--task", "pawsx", "--train_file", files["train"],
        "--validation_file", files["dev"], "--do_train", "--output_dir", out, "--num_train_epochs", 8,
        "--learning_rate", 3e-3, "--warmup_steps", 0.0, "--seed", 1, *FAST])
    assert read_json(out / "all_results.json")["eval_accuracy"] >= 90


def test_user_task_from_a_spec_file(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = random.Random(0)
    vocab = {"en": "cat dog house Paris Berlin walks".split(), "de": "Katze Hund Haus Paris Berlin läuft".split()}
    for lang in ("en", "de"):
        for split in ("train", "dev"):
            sentences = []
            for _ in range(40):
                words = [rng.choice(vocab[lang]) for _ in range(rng.randint(3, 7))]
                sentences.append("\n".join(f"{w}\t{'B-LOC' if w in ('Paris', 'Berlin') else 'O'}" for w in words))
            (data / f"{split}-{lang}.tsv").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    spec = tmp_path / "cities.yaml"
    spec.write_text(f"name: cities\nkind: tagging\nlabels: [O, B-LOC, I-LOC]\nlanguages: [en, de]\n"
                    f"files:\n  train: {data}/train-en.tsv\n  dev: {data}/dev-{{lang}}.tsv\n", encoding="utf-8")
    out = tmp_path / "run"
    run_script("run_target", ["--model_name_or_path", tiny_model_dir, "--task_spec", spec, "--do_train",
                              "--output_dir", out, "--num_train_epochs", 2, "--learning_rate", 1e-3, *FAST])
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task_spec", spec, "--split", "dev", *FAST])
    results = read_json(results_path(out, "cities", "dev"))
    assert set(results["languages"]) == {"en", "de"}
    assert all(m["num_examples"] == 40 and 0 <= m["f1"] <= 100 for m in results["languages"].values())
    predictions = (out / "predictions/cities/dev-de.tsv").read_text().split("\n\n")
    assert len([p for p in predictions if p.strip()]) == 40


def test_question_answering_end_to_end(tiny_model_dir, tmp_path):
    """Train on SQuAD-format data a few steps, evaluate XQuAD (3 languages) and MLQA (its own metric)."""
    out = tmp_path / "qa"
    squad = XTREME_DIR / "xquad/xquad.en.json"  # a SQuAD v1.1 dev subset: stands in for SQuAD here
    window = ["--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24]
    run_script("run_target", ["--model_name_or_path", tiny_model_dir, "--task", "xquad", "--train_file", squad,
                              "--validation_file", squad, "--max_train_samples", 40, "--max_eval_samples", 20,
                              "--max_steps", 3, "--do_train", "--output_dir", out, *window, *FAST])
    dev = read_json(out / "all_results.json")
    assert dev["eval_samples"] == 20 and 0 <= dev["eval_f1"] <= 100
    assert dev["eval_score"] == pytest.approx((dev["eval_exact_match"] + dev["eval_f1"]) / 2)
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task", "xquad", "--languages", "en,de,zh",
                                   "--data_dir", XTREME_DIR, *window, *FAST])
    results = read_json(results_path(out, "xquad", "test"))
    assert set(results["languages"]) == {"en", "de", "zh"}
    for lang in ("en", "de", "zh"):
        gold = read_json(XTREME_DIR / f"xquad/xquad.{lang}.json")
        ids = {qa["id"] for article in gold["data"] for p in article["paragraphs"] for qa in p["qas"]}
        predictions = read_json(out / f"predictions/xquad/test-{lang}.json")
        assert set(predictions) == ids and all(isinstance(v, str) for v in predictions.values())
        assert results["languages"][lang]["num_examples"] == len(ids)
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task", "mlqa", "--languages", "en,de",
                                   "--split", "dev", "--data_dir", XTREME_DIR, *window, *FAST])
    mlqa = read_json(results_path(out, "mlqa", "dev"))
    assert set(mlqa["languages"]) == {"en", "de"} and mlqa["metric"] == "mlqa"


def test_retrieval_straight_on_a_phase1_dir(intermediate_dir, capsys):
    """Tatoeba and BUCC need no target training: they embed with the intermediate encoder."""
    run_script("run_xtreme_eval", ["--model_name_or_path", intermediate_dir, "--task", "tatoeba",
                                   "--languages", "de,fr,zh,ja", "--data_dir", XTREME_DIR, "--use_cpu"])
    results = read_json(results_path(intermediate_dir, "tatoeba", "test"))
    assert set(results["languages"]) == {"de", "fr", "zh"} and "ja" in results["skipped"]
    for lang, metrics in results["languages"].items():
        assert metrics["num_examples"] == 100 and metrics["layer"] == 1
        assert 0 <= metrics["accuracy"] <= 100 and "accuracy_xx2en" in metrics
        predictions = (intermediate_dir / f"predictions/tatoeba/test-{lang}.tsv").read_text().split()
        assert len(predictions) == 100 and all(0 <= int(p) < 100 for p in predictions)
    run_script("run_xtreme_eval", ["--model_name_or_path", intermediate_dir, "--task", "bucc2018", "--languages",
                                   "de", "--data_dir", XTREME_DIR, "--layer", 2, "--search_backend", "faiss",
                                   "--use_cpu"])
    bucc = read_json(results_path(intermediate_dir, "bucc2018", "test"))["languages"]["de"]
    assert bucc["layer"] == 2 and "threshold" in bucc and "f1" not in bucc  # test gold is not public
    pairs = (intermediate_dir / "predictions/bucc2018/test-de.tsv").read_text().splitlines()
    assert all(len(p.split("\t")) == 2 for p in pairs)
    run_script("run_xtreme_eval", ["--model_name_or_path", intermediate_dir, "--task", "bucc2018", "--languages",
                                   "de", "--split", "dev", "--data_dir", XTREME_DIR, "--use_cpu"])
    bucc = read_json(results_path(intermediate_dir, "bucc2018", "dev"))["languages"]["de"]
    assert 0 <= bucc["f1"] <= 100 and bucc["score"] == bucc["f1"]
    test = read_json(results_path(intermediate_dir, "bucc2018", "test"))  # kept beside the dev results
    assert test["split"] == "test" and "f1" not in test["languages"]["de"]


def test_retrieval_with_a_layer_the_model_lacks_stops_before_any_language(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script("run_xtreme_eval", ["--model_name_or_path", tiny_model_dir, "--task", "tatoeba", "--languages",
                                       "all", "--layer", 14, "--data_dir", XTREME_DIR, "--output_dir", tmp_path,
                                       "--use_cpu"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: layer 14 is out of range for a model with 2 layers: expected 0..2 (an index into "
        "output_hidden_states, 0 = embeddings)")
    assert not any(tmp_path.iterdir())


def test_bucc_from_the_hub_is_refused(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_script("run_xtreme_eval", ["--model_name_or_path", tiny_model_dir, "--task", "bucc2018",
                                       "--languages", "de", "--output_dir", tmp_path, "--use_cpu"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: task bucc2018 (test): no language could be evaluated; de: google/xtreme config")
    assert "holds only the gold parallel pairs" in error
    assert not (tmp_path / "results").exists()


def test_tatoeba_hidden_label_layout_scores_like_the_aligned_files(intermediate_dir, tmp_path):
    """XTREME's test layout sorts the English side and keeps the alignment in a labels file."""
    german = (XTREME_DIR / "tatoeba/tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
    english = (XTREME_DIR / "tatoeba/tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()
    order = sorted(range(len(english)), key=lambda i: english[i])
    (tmp_path / "de-en.de").write_text("\n".join(german) + "\n", encoding="utf-8")
    (tmp_path / "de-en.en").write_text("\n".join(english[i] for i in order) + "\n", encoding="utf-8")
    (tmp_path / "labels-de.txt").write_text("".join(f"[{i}]\n" for i in order), encoding="utf-8")
    hidden = tmp_path / "hidden"
    run_script("run_xtreme_eval", ["--model_name_or_path", intermediate_dir, "--task", "tatoeba", "--languages", "de",
                                   "--data_dir", tmp_path, "--labels_file", tmp_path / "labels-{lang}.txt",
                                   "--output_dir", hidden, "--use_cpu"])
    aligned = tmp_path / "aligned"
    run_script("run_xtreme_eval", ["--model_name_or_path", intermediate_dir, "--task", "tatoeba", "--languages", "de",
                                   "--data_dir", XTREME_DIR, "--output_dir", aligned, "--use_cpu"])
    got = read_json(results_path(hidden, "tatoeba", "test"))["languages"]["de"]
    expected = read_json(results_path(aligned, "tatoeba", "test"))["languages"]["de"]
    assert got["accuracy"] == expected["accuracy"] and got["num_examples"] == 100
    # both in submission order (the sorted English file's): the same file from either layout
    predictions = [(d / "predictions/tatoeba/test-de.tsv").read_text() for d in (hidden, aligned)]
    assert predictions[0] == predictions[1]


def test_udpos_dev_has_29_languages(tiny_model_dir, tmp_path, capsys):
    """`--split dev --languages all`: the 29 languages of udpos dev (here only en has a file: the other 28 are
    skipped as missing), kk/th/tl/yo listed as not in the split; naming one of them is an error."""
    model = tmp_path / "udpos"
    run_script("run_target", ["--model_name_or_path", tiny_model_dir, "--task", "udpos", "--do_train",
                              "--train_file", XTREME_DIR / "udpos/dev-en.tsv", "--max_train_samples", 16,
                              "--validation_file", XTREME_DIR / "udpos/dev-en.tsv", "--max_eval_samples", 8,
                              "--max_steps", 2, "--eval_strategy", "no", "--save_strategy", "no",
                              "--load_best_model_at_end", "false", "--output_dir", model, *FAST])
    args = ["--model_name_or_path", model, "--task", "udpos", "--split", "dev", "--data_dir", XTREME_DIR,
            "--max_eval_samples", 8, *FAST]
    capsys.readouterr()
    run_script("run_xtreme_eval", [*args, "--languages", "all"])
    results = read_json(results_path(model, "udpos", "dev"))
    assert list(results["languages"]) == ["en"] and len(results["skipped"]) == 28
    assert results["not_in_split"] == ["kk", "th", "tl", "yo"]
    out = capsys.readouterr().out
    assert "not in the dev split: kk, th, tl, yo" in out
    assert f"skipped de: {XTREME_DIR / 'udpos/dev-de.tsv'}: file not found" in out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert [line.split(" | ")[0] for line in table[2:]] == ["| en", "| avg"]  # no row without numbers
    assert all(line.count("|") == table[0].count("|") for line in table)
    with pytest.raises(SystemExit) as exit_info:
        run_script("run_xtreme_eval", [*args, "--languages", "en,kk"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: task udpos: the dev split has no kk; its languages are " + ", ".join(
            lang for lang in "af ar bg de el en es et eu fa fi fr he hi hu id it ja ko mr nl pt ru ta te tr ur vi "
                             "zh".split()))
