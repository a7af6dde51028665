"""Users' own tasks from a spec file, of every kind: trained with run_target.py and evaluated with
run_xtreme_eval.py on two languages, from local files, without editing any code."""

import json
import random

import pytest
import torch
from conftest import XTREME_DIR, read_json, run_script
from safetensors.torch import load_file

from utils.errors import XtremeError
from utils.modeling import load_model
from utils.results import results_path
from utils.tasks import load_task_spec
from utils.training import ModelArguments

FAST = ["--use_cpu", "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 16,
        "--logging_strategy", "no", "--disable_tqdm", "true"]


def _squad_subset(source, path, n):
    """The first `n` questions of a SQuAD-format file, as a file of its own."""
    doc = read_json(source)
    kept, count = [], 0
    for article in doc["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][:max(0, n - count)]
            count += len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            kept.append({**article, "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": doc.get("version", "1.1"), "data": kept}), encoding="utf-8")
    return path


def test_qa_spec_trains_and_evaluates_two_languages(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for lang in ("en", "de"):
        _squad_subset(XTREME_DIR / f"xquad/xquad.{lang}.json", data / f"qa-{lang}.json", 12)
    spec = tmp_path / "my_qa.yaml"
    spec.write_text(f"name: my_qa\nkind: qa\nlanguages: [en, de]\nfiles:\n  train: {data}/qa-en.json\n"
                    f"  dev: {data}/qa-{{lang}}.json\n", encoding="utf-8")
    window = ["--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24]
    out = tmp_path / "run"
    run_script("run_target", ["--model_name_or_path", tiny_model_dir, "--task_spec", spec, "--do_train",
                              "--output_dir", out, "--max_steps", 2, *window, *FAST])
    assert 0 <= read_json(out / "all_results.json")["eval_f1"] <= 100
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task_spec", spec, "--split", "dev", *window,
                                   *FAST])
    results = read_json(results_path(out, "my_qa", "dev"))
    assert set(results["languages"]) == {"en", "de"} and results["metric"] == "squad"
    for lang, metrics in results["languages"].items():
        gold = read_json(data / f"qa-{lang}.json")
        ids = {qa["id"] for article in gold["data"] for p in article["paragraphs"] for qa in p["qas"]}
        assert metrics["num_examples"] == len(ids) == 12
        assert metrics["score"] == pytest.approx((metrics["exact_match"] + metrics["f1"]) / 2)
        assert set(read_json(out / f"predictions/my_qa/dev-{lang}.json")) == ids


def _choices_file(path, lang, n, seed):
    """Two-way choices in an XCOPA-like schema of the user's own: the right choice carries a marker word."""
    rng = random.Random(seed)
    words = {"en": "the house tree river blue green runs walks".split(),
             "de": "das Haus Baum Fluss blau grün läuft geht".split()}[lang]
    lines = []
    for i in range(n):
        label = rng.randrange(2)
        options = [" ".join(rng.choice(words) for _ in range(4)) for _ in range(2)]
        options[label] += " zebra"
        lines.append(json.dumps({"premise": " ".join(rng.choice(words) for _ in range(5)), "option_a": options[0],
                                 "option_b": options[1], "answer": label, "idx": i}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_multiple_choice_spec_trains_and_evaluates_two_languages(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _choices_file(data / "train-en.jsonl", "en", 48, 0)
    for seed, lang in enumerate(("en", "de"), 1):
        _choices_file(data / f"dev-{lang}.jsonl", lang, 20, seed)
    spec = tmp_path / "marker.json"
    spec.write_text(json.dumps({
        "name": "marker", "kind": "multiple_choice", "languages": ["en", "de"],
        "columns": {"context": "premise", "choices": ["option_a", "option_b"], "label": "answer"},
        "files": {"train": str(data / "train-en.jsonl"), "dev": str(data / "dev-{lang}.jsonl")}}), encoding="utf-8")
    task, _ = load_task_spec(str(spec))
    assert task.labels == ("0", "1") and task.metric == "accuracy"
    out = tmp_path / "run"
    run_script("run_target", ["--model_name_or_path", tiny_model_dir, "--task_spec", spec, "--do_train",
                              "--output_dir", out, "--num_train_epochs", 1, *FAST])
    saved = load_file(out / "model.safetensors")  # the trained model, head included, loads back as it was saved
    reloaded = load_model(ModelArguments(str(out)), "multiple_choice", fresh_head=False).state_dict()
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)
    run_script("run_xtreme_eval", ["--model_name_or_path", out, "--task_spec", spec, "--split", "dev", *FAST])
    results = read_json(results_path(out, "marker", "dev"))
    assert set(results["languages"]) == {"en", "de"}
    assert results["languages"]["en"]["accuracy"] == read_json(out / "all_results.json")["eval_accuracy"]
    for lang, metrics in results["languages"].items():
        assert metrics["num_examples"] == 20 and 0 <= metrics["accuracy"] <= 100
        predictions = (out / f"predictions/marker/dev-{lang}.tsv").read_text().split()
        assert len(predictions) == 20 and set(predictions) <= {"0", "1"}


def test_retrieval_specs_evaluate_from_local_files(tiny_model_dir, tmp_path):
    """A nearest-neighbour spec (Tatoeba-like files named by the user) on two languages, a mining one (BUCC-like)."""
    data = tmp_path / "data"
    data.mkdir()
    for lang, code in (("de", "deu"), ("fr", "fra")):
        for side, name in ((code, f"{lang}.txt"), ("eng", f"en-{lang}.txt")):
            (data / name).write_bytes((XTREME_DIR / f"tatoeba/tatoeba.{code}-eng.{side}").read_bytes())
    spec = tmp_path / "pairs.yaml"
    spec.write_text(f"name: pairs\nkind: retrieval\nlanguages: [de, fr]\nfiles:\n  test: {{sentences: "
                    f"'{data}/{{lang}}.txt', english: '{data}/en-{{lang}}.txt'}}\n", encoding="utf-8")
    out = tmp_path / "out"
    run_script("run_xtreme_eval", ["--model_name_or_path", tiny_model_dir, "--task_spec", spec, "--output_dir", out,
                                   "--use_cpu"])
    results = read_json(results_path(out, "pairs", "test"))
    assert set(results["languages"]) == {"de", "fr"} and results["metric"] == "accuracy"
    assert all(m["num_examples"] == 100 and 0 <= m["accuracy"] <= 100 for m in results["languages"].values())
    assert len((out / "predictions/pairs/test-fr.tsv").read_text().split()) == 100

    bucc = XTREME_DIR / "bucc2018"
    files = {s: {"sentences": f"{bucc}/{{lang}}-en.{s}.{{lang}}", "english": f"{bucc}/{{lang}}-en.{s}.en",
                 "gold": f"{bucc}/{{lang}}-en.{s}.gold"} for s in ("dev", "test")}
    spec = tmp_path / "mined.json"
    spec.write_text(json.dumps({"name": "mined", "kind": "retrieval", "search": "mining", "languages": ["de"],
                                "files": files}), encoding="utf-8")
    run_script("run_xtreme_eval", ["--model_name_or_path", tiny_model_dir, "--task_spec", spec, "--output_dir", out,
                                   "--split", "dev", "--use_cpu"])
    mined = read_json(results_path(out, "mined", "dev"))
    assert mined["metric"] == "f1" and 0 <= mined["languages"]["de"]["f1"] <= 100
    assert all(len(line.split("\t")) == 2 for line in (out / "predictions/mined/dev-de.tsv").read_text().splitlines())


@pytest.mark.parametrize("spec, message", [
    ({"kind": "multiple_choice", "files": {"train": "t.jsonl"}}, "a multiple_choice task needs 'labels'"),
    ({"kind": "qa", "metric": "accuracy", "files": {}}, "metric 'accuracy' unknown for qa tasks; expected squad"),
    ({"kind": "retrieval", "files": {"test": "x-{lang}.txt"}}, "files.test must map sentences and english"),
    ({"kind": "retrieval", "search": "bm25", "files": {}}, "search 'bm25' unknown; expected nearest or mining"),
    ({"kind": "tagging", "columns": {"context": "c"}, "files": {}}, "columns context are not tagging columns"),
])
def test_bad_specs_are_named(tmp_path, spec, message):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "t", **spec}), encoding="utf-8")
    with pytest.raises(XtremeError, match=f"^task spec {path}: {message}"):
        load_task_spec(str(path))


def test_squad_v2_spec_keeps_unanswerable_questions(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nkind: qa\nmetric: squad_v2\nfiles: {train: a.json}\n", encoding="utf-8")
    task, files = load_task_spec(str(path))
    assert task.version_2_with_negative and task.metric == "squad_v2" and files == {"train": "a.json"}
