"""XCOPA (XTREME-R) from its registry entry alone: the Hub schema and the original files (XCOPA's repo, SuperGLUE's
COPA, XTREME-R's download layout) through all three phases, with Social IQa first as XTREME-R trains it."""

import json
import shutil

import pytest
from conftest import FIXTURES, read_json, run_script

from utils.data import load_split
from utils.errors import MissingDataError, XtremeError
from utils.results import results_path
from utils.score import XTREME_TASKS
from utils.tasks import TASKS

ORIGINAL = FIXTURES / "xtreme_r"  # COPA/, xcopa/data/{lang}/, siqa/ as their own releases lay them out
XCOPA = TASKS["xcopa"]
FAST = ["--use_cpu", "--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 8,
        "--logging_strategy", "no", "--disable_tqdm", "true"]


def records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


FILE_SPLIT = {"train": "train", "validation": "val", "test": "test"}


def hub_file(path, config, split):
    """Where the fake Hub finds each (dataset, config, split): the fixture's files, in the Hub's schema."""
    if path == "aps/super_glue":
        return ORIGINAL / f"COPA/{FILE_SPLIT[split]}.jsonl"
    assert path == "cambridgeltl/xcopa", path
    return ORIGINAL / f"xcopa/data/{config}/{FILE_SPLIT[split]}.{config}.jsonl"


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, config, split, **kwargs):
        calls.append((path, config, split, kwargs.get("revision")))
        return datasets.Dataset.from_list(records(hub_file(path, config, split)))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_registry_entry():
    assert XCOPA.kind == "multiple_choice" and XCOPA.labels == ("0", "1") and XCOPA.category is None
    assert XCOPA.languages == tuple("et ht id it qu sw ta th tr vi zh".split())
    assert "xcopa" not in XTREME_TASKS and len(XTREME_TASKS) == 9  # an extra task: the XTREME score is unchanged


def test_original_files_and_input(tmp_path):
    dev, _ = load_split(XCOPA, "dev", "et", None, data_dir=str(ORIGINAL))  # xcopa/data/et/val.et.jsonl
    first = records(ORIGINAL / "xcopa/data/et/val.et.jsonl")[0]
    assert dev[0] == {"context": f"{first['premise']} What was the effect?",
                      "choices": [first["choice1"], first["choice2"]], "label": first["label"]}
    assert dev[1]["context"].endswith(" What was the cause?") and len(dev) == 4
    english, _ = load_split(XCOPA, "dev", "en", None, data_dir=str(ORIGINAL))  # COPA/val.jsonl
    assert english["context"][0] == "The child was hungry. What was the effect?" and len(english) == 6
    with pytest.raises(MissingDataError, match=r"xcopa/test\.en\.jsonl: file not found"):
        load_split(XCOPA, "test", "en", None, data_dir=str(ORIGINAL))
    # XTREME-R's download layout (xcopa/{split}.{lang}.jsonl) comes first when both are there
    shutil.copytree(ORIGINAL / "xcopa", tmp_path / "xcopa")
    italian = ORIGINAL / "xcopa/data/it/test.it.jsonl"
    shutil.copy(italian, tmp_path / "xcopa/test.et.jsonl")
    test, _ = load_split(XCOPA, "test", "et", None, data_dir=str(tmp_path))
    assert test["choices"] == [[r["choice1"], r["choice2"]] for r in records(italian)]


def test_hub_schema_per_language(fake_hub):
    local, _ = load_split(XCOPA, "test", "it", None, data_dir=str(ORIGINAL))
    hub, _ = load_split(XCOPA, "test", "it", None)
    assert hub.to_list() == local.to_list()
    load_split(XCOPA, "dev", "en", None)
    load_split(XCOPA, "train", "en", None)
    assert fake_hub == [("cambridgeltl/xcopa", "it", "test", "refs/convert/parquet"),
                        ("aps/super_glue", "copa", "validation", "refs/convert/parquet"),
                        ("aps/super_glue", "copa", "train", "refs/convert/parquet")]
    with pytest.raises(MissingDataError, match="no test data for en on the Hub"):
        load_split(XCOPA, "test", "en", None)


def test_bad_relation_is_named(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps({"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0}) + "\n")
    with pytest.raises(XtremeError, match=rf"^{path}:1: question is 'why'; expected 'cause' or 'effect'"):
        load_split(XCOPA, "dev", "en", None, files=[str(path)])


def test_three_phases_hub_and_local(tiny_model_dir, tmp_path, fake_hub):
    """Phase 1 Social IQa (local v1.4 files), phase 2 COPA from the Hub, phase 3 XCOPA on et and it: the test
    split from the original files and from the Hub gives the same results."""
    siqa, copa = tmp_path / "siqa", tmp_path / "copa"
    run_script("run_intermediate", ["--model_name_or_path", tiny_model_dir, "--task", "siqa", "--do_train",
                                    "--data_dir", ORIGINAL, "--output_dir", siqa, "--num_train_epochs", 1, *FAST])
    run_script("run_target", ["--model_name_or_path", siqa, "--task", "xcopa", "--do_train", "--output_dir", copa,
                              "--num_train_epochs", 1, *FAST])
    assert read_json(copa / "all_results.json")["eval_samples"] == 6  # COPA's validation split
    local = tmp_path / "local"
    run_script("run_xtreme_eval", ["--model_name_or_path", copa, "--task", "xcopa", "--languages", "et,it",
                                   "--data_dir", ORIGINAL, "--output_dir", local, *FAST])
    run_script("run_xtreme_eval", ["--model_name_or_path", copa, "--task", "xcopa", "--languages", "et,it", *FAST])
    from_files = read_json(results_path(local, "xcopa", "test"))["languages"]
    from_hub = read_json(results_path(copa, "xcopa", "test"))["languages"]
    assert set(from_files) == {"et", "it"} and all(m["num_examples"] == 6 for m in from_files.values())
    assert {lang: m["accuracy"] for lang, m in from_hub.items()} == {
        lang: m["accuracy"] for lang, m in from_files.items()}
    predictions = (local / "predictions/xcopa/test-et.tsv").read_text().split()
    assert len(predictions) == 6 and set(predictions) <= {"0", "1"}


def test_social_iqa_original_and_hub_labels(tmp_path):
    siqa = TASKS["siqa"]
    train, _ = load_split(siqa, "train", "en", None, data_dir=str(ORIGINAL))
    first = records(ORIGINAL / "siqa/socialIQa_v1.4_trn.jsonl")[0]
    assert train[0] == {"context": f"{first['context']} {first['question']}",
                        "choices": [first["answerA"], first["answerB"], first["answerC"]], "label": 0}
    hub = tmp_path / "hub.jsonl"  # allenai/social_i_qa: label "1"-"3", no `correct`
    hub.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "correct"} | {"label": str("ABC".index(
        r["correct"]) + 1)}) + "\n" for r in records(ORIGINAL / "siqa/socialIQa_v1.4_dev.jsonl")))
    dev, _ = load_split(siqa, "dev", "en", None, files=[str(hub)])
    assert dev["label"] == ["ABC".index(r["correct"]) for r in records(ORIGINAL / "siqa/socialIQa_v1.4_dev.jsonl")]
