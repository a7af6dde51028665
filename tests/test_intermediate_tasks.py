"""The nine intermediate tasks of Phang et al. (2020): loaders for each dataset's original format, a few training
steps of each on the tiny model, the handoff of its encoder to a target task of another kind, multiple choice,
SQuAD 2.0 evaluation and bad input."""

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FIXTURES, XTREME_DIR, read_json, run_script
from safetensors.torch import load_file

from utils.data import load_split, load_train_and_dev, read_rows
from utils.errors import XtremeError
from utils.kinds import MultipleChoiceCollator, get_kind
from utils.modeling import load_model
from utils.preprocess import multiple_choice_features
from utils.qa import prepare_train_features
from utils.tasks import CLASSIFICATION, QA, TAGGING, TASKS
from utils.training import DataArguments, ModelArguments

F = FIXTURES / "intermediate"
FAST = ["--use_cpu", "--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 32,
        "--logging_strategy", "no", "--disable_tqdm", "true", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "false"]
WINDOW = ["--max_seq_length", 96, "--doc_stride", 32, "--max_query_length", 24]

# task -> its training / dev files in the dataset's original format (mnli and squad_v1 mix in German training data:
# the translated-intermediate-data baseline) and extra arguments
RUNS = {
    "mnli": ([XTREME_DIR / "xnli/train-en.tsv", XTREME_DIR / "xnli/dev-de.tsv"], [XTREME_DIR / "xnli/dev-en.tsv"],
             ["--max_eval_samples", 20]),
    "qqp": ([F / "qqp/train.jsonl"], [F / "qqp/dev.jsonl"], []),
    "anli_plus": ([F / "anli/train_r1.jsonl", F / "anli/snli_train.jsonl"], [F / "anli/dev_r1.jsonl"], []),
    "squad_v1": ([XTREME_DIR / "xquad/xquad.en.json", XTREME_DIR / "xquad/xquad.de.json"],
                 [XTREME_DIR / "xquad/xquad.en.json"], ["--max_eval_samples", 10, *WINDOW]),
    "squad_v2": ([F / "squad_v2/train-v2.0.json"], [F / "squad_v2/dev-v2.0.json"], WINDOW),
    "hellaswag": ([F / "hellaswag/train.jsonl"], [F / "hellaswag/dev.jsonl"], []),
    "commonsenseqa": ([F / "commonsenseqa/train.jsonl"], [F / "commonsenseqa/dev_rand_split.jsonl"], []),
    "cosmosqa": ([F / "cosmosqa/train.jsonl"], [F / "cosmosqa/valid.jsonl"], []),
    "ccg": ([F / "ccg/wsj_9901.auto", F / "ccg/wsj_9902.auto"], [F / "ccg/ccg.dev"], []),
}
# one run_target per kind of intermediate task, always into another kind; the others are checked with load_model
TARGETS = {
    "mnli": ("xquad", [XTREME_DIR / "xquad/xquad.en.json"], ["--max_eval_samples", 5, *WINDOW]),
    "squad_v2": ("panx", [XTREME_DIR / "panx/dev-af.tsv"], ["--max_train_samples", 16, "--max_eval_samples", 16]),
    "hellaswag": ("pawsx", [XTREME_DIR / "pawsx/dev-en.tsv"], ["--max_train_samples", 16, "--max_eval_samples", 16]),
    "ccg": ("pawsx", [XTREME_DIR / "pawsx/dev-en.tsv"], ["--max_train_samples", 16, "--max_eval_samples", 16]),
}
OTHER_KIND = {CLASSIFICATION: (TAGGING, ["O", "B-PER", "I-PER"]), QA: (CLASSIFICATION, ["0", "1"]),
              "multiple_choice": (QA, None), TAGGING: (CLASSIFICATION, ["0", "1"])}
SCORE_KEY = {"accuracy": "eval_accuracy", "squad": "eval_exact_match", "squad_v2": "eval_HasAns_exact"}


@pytest.mark.parametrize("name", list(RUNS))
def test_intermediate_task_runs_and_hands_its_encoder_on(name, tiny_model_dir, tmp_path):
    task = TASKS[name]
    train, dev, extra = RUNS[name]
    out = tmp_path / name
    run_script("run_intermediate", ["--model_name_or_path", tiny_model_dir, "--task", name, "--do_train",
                                    "--output_dir", out, "--train_file", *train, "--validation_file", *dev,
                                    "--max_steps", 2, *extra, *FAST])
    results = read_json(out / "all_results.json")
    assert SCORE_KEY[task.metric] in results and 0 <= results["eval_score"] <= 100, results
    assert read_json(out / "xtreme_inter_run.json")["finished"] is True
    assert read_json(out / "config.json")["architectures"] == ["XLMRobertaModel"]
    encoder = load_file(out / "model.safetensors")
    assert encoder and not any(k.startswith(("roberta.", "classifier", "qa_outputs")) for k in encoder)
    head = json.loads((out / f"heads/{name}/head.json").read_text())
    assert head["model_class"] == {"classification": "XLMRobertaForSequenceClassification", "qa":
                                   "XLMRobertaForQuestionAnswering", "tagging": "XLMRobertaForTokenClassification",
                                   "multiple_choice": "ChoiceModel"}[task.kind]

    # the encoder goes into a model of another kind whose head starts fresh
    kind, labels = OTHER_KIND[task.kind]
    model = load_model(ModelArguments(str(out)), kind, labels)
    state = model.state_dict()
    for key, tensor in encoder.items():  # the multiple-choice model's pooler has no place in the others
        if not key.startswith("pooler."):
            assert torch.equal(state[f"roberta.{key}"], tensor), key
    if name in TARGETS:
        target, files, target_extra = TARGETS[name]
        target_out = tmp_path / f"{name}-{target}"
        run_script("run_target", ["--model_name_or_path", out, "--task", target, "--do_train",
                                  "--output_dir", target_out, "--train_file", *files, "--validation_file", *files,
                                  "--max_steps", 2, *target_extra, *FAST])
        assert TASKS[target].kind != task.kind
        assert 0 <= read_json(target_out / "all_results.json")["eval_score"] <= 100
        assert (target_out / "model.safetensors").is_file()


def test_ccg_tags_come_from_train_and_dev_and_are_saved(tiny_model_dir, tmp_path):
    """CCG's label list: every tag of the training AUTO files and the dev tsv (jiant's ccg_to_num), saved with the
    head; a tag seen only in dev is a possible (wrong) prediction, not a crash. CCG -> PAN-X gets a 7-tag head."""
    args = DataArguments(task="ccg", train_file=[str(F / "ccg")], validation_file=[str(F / "ccg/ccg.dev")])
    train, dev, labels = load_train_and_dev(TASKS["ccg"], args, ModelArguments(str(tiny_model_dir)), {})
    assert len(train) == 3 and len(dev) == 2
    assert "(S\\NP)\\(S\\NP)" in labels and "(S[dcl]\\NP)/NP" in labels and labels == sorted(set(labels))
    assert dev[1]["tags"][2] == labels.index("(S\\NP)\\(S\\NP)")
    # the tsv and the AUTO files of the same sentences read the same
    auto = read_rows(F / "ccg/wsj_9901.auto", TASKS["ccg"]) + read_rows(F / "ccg/wsj_9902.auto", TASKS["ccg"])
    tsv = read_rows(F / "ccg/ccg.train", TASKS["ccg"])[:3]
    assert [(r["tokens"], r["tags"]) for r in auto] == [(r["tokens"], r["tags"]) for r in tsv]

    out = tmp_path / "ccg"
    run_script("run_intermediate", ["--model_name_or_path", tiny_model_dir, "--task", "ccg", "--do_train",
                                    "--output_dir", out, "--train_file", F / "ccg",
                                    "--validation_file", F / "ccg/ccg.dev", "--max_steps", 1, *FAST])
    head = json.loads((out / "heads/ccg/head.json").read_text())
    assert list(head["id2label"].values()) == labels
    assert load_file(out / "heads/ccg/head.safetensors")["classifier.weight"].shape[0] == len(labels)
    results = read_json(out / "all_results.json")
    assert "eval_f1" not in results and results["eval_score"] == results["eval_accuracy"]
    panx = load_model(ModelArguments(str(out)), TAGGING, list(TASKS["panx"].labels))
    assert panx.classifier.weight.shape[0] == 7


def test_translated_training_files_are_pooled(tiny_model_dir):
    """Any intermediate task takes non-English (machine-translated) training files, alone or mixed with English."""
    model_args = ModelArguments(str(tiny_model_dir))
    squad = DataArguments(task="squad_v1", train_file=[str(XTREME_DIR / "xquad/xquad.de.json")],
                          validation_file=[str(XTREME_DIR / "xquad/xquad.en.json")])
    train, dev, _ = load_train_and_dev(TASKS["squad_v1"], squad, model_args, {})
    assert len(train) == len(dev) == 105 and train[0]["id"] == dev[0]["id"] and train[0]["context"] != dev[0]["context"]
    nli = DataArguments(task="mnli", train_file=[str(XTREME_DIR / "xnli/train-en.tsv"),
                                                 str(XTREME_DIR / "xnli/dev-de.tsv")],
                        validation_file=[str(XTREME_DIR / "xnli/dev-en.tsv")])
    train, _, labels = load_train_and_dev(TASKS["mnli"], nli, model_args, {})
    assert len(train) == 400 and labels == list(TASKS["mnli"].labels)
    german = (XTREME_DIR / "xnli/dev-de.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert train[300]["sentence1"] == german[0] and labels[train[300]["label"]] == german[2]


# ---------------------------------------------------------------- the datasets' own formats


def test_multiple_choice_schemas():
    hellaswag, _ = load_split(TASKS["hellaswag"], "train", "en", ["0", "1", "2", "3"],
                              files=[str(F / "hellaswag/train.jsonl")])
    first = json.loads((F / "hellaswag/train.jsonl").read_text().splitlines()[0])
    assert hellaswag[0]["context"] == first["ctx_a"]
    assert hellaswag[0]["choices"] == [f"{first['ctx_b']} {e}" for e in first["endings"]]
    assert hellaswag[0]["label"] == int(first["label"])
    # CommonsenseQA: the Hub schema (train) and the original jsonl (dev) give the same columns; labels by letter
    csqa = TASKS["commonsenseqa"]
    dev, _ = load_split(csqa, "dev", "en", list(csqa.labels), files=[str(F / "commonsenseqa/dev_rand_split.jsonl")])
    assert dev[0] == {"context": "What keeps you warm in winter?", "choices": ["ice", "coat", "fan", "snow", "wind"],
                      "label": 1}
    cosmos, _ = load_split(TASKS["cosmosqa"], "dev", "en", ["0", "1", "2", "3"],
                           files=[str(F / "cosmosqa/valid.jsonl")])
    record = json.loads((F / "cosmosqa/valid.jsonl").read_text().splitlines()[0])
    assert cosmos[0]["context"] == f"{record['context']} {record['question']}"
    assert cosmos[0]["choices"] == [record[f"answer{i}"] for i in range(4)] and cosmos[0]["label"] == record["label"]


def test_multiple_choice_from_the_hub_schema(monkeypatch):
    """Hub rows go through the same schema readers; Cosmos QA is read from the Hub's parquet conversion branch."""
    import datasets

    rows = [json.loads(line) for line in (F / "cosmosqa/valid.jsonl").read_text().splitlines()]
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, split, **kw: calls.append(
        (path, split, kw.get("revision"))) or datasets.Dataset.from_list(rows))
    dev, _ = load_split(TASKS["cosmosqa"], "dev", "en", list(TASKS["cosmosqa"].labels))
    assert calls == [("allenai/cosmos_qa", "validation", "refs/convert/parquet")]
    assert dev["label"] == [r["label"] for r in rows] and dev[0]["context"].endswith(rows[0]["question"])
    rows = [{**rows[0], "answer3": ""}]
    with pytest.raises(XtremeError, match=r"allenai/cosmos_qa split validation row 0: choice 3 is missing or empty"):
        load_split(TASKS["cosmosqa"], "dev", "en", list(TASKS["cosmosqa"].labels))


def test_squad_v2_keeps_unanswerable_questions_pointing_at_cls(tiny_tokenizer):
    rows, _ = load_split(TASKS["squad_v2"], "train", "en", None, files=[str(F / "squad_v2/train-v2.0.json")])
    unanswerable = [r for r in rows if not r["answers"]["text"]]
    assert len(rows) == 5 and {r["id"] for r in unanswerable} == {"5a0003", "5a0005"}
    features = prepare_train_features(rows[:], tiny_tokenizer, max_seq_length=256, doc_stride=64, max_query_length=24)
    cls = [i for i, r in enumerate(rows) if not r["answers"]["text"]]
    assert all(features["start_positions"][i] == features["end_positions"][i] == 0 for i in cls)
    assert all(features["start_positions"][i] > 0 for i in range(len(rows)) if i not in cls)


def test_multiple_choice_features_and_collator(tiny_tokenizer):
    examples = {"context": ["a b c d e f g h i j k l", "x"], "choices": [["one", "two words"], ["z", "y y y y"]],
                "label": [1, 0]}
    features = multiple_choice_features(examples, tiny_tokenizer, max_seq_length=8)
    assert [len(pairs) for pairs in features["input_ids"]] == [2, 2]
    assert all(len(ids) <= 8 for pairs in features["input_ids"] for ids in pairs)
    assert features["length"] == [max(len(ids) for ids in pairs) for pairs in features["input_ids"]]
    assert features["labels"] == [1, 0]
    rows = [{k: features[k][i] for k in features} for i in range(2)]
    batch = MultipleChoiceCollator(tiny_tokenizer)(rows)
    longest = max(features["length"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 2, longest)
    assert batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"][1, 0].sum() == len(features["input_ids"][1][0])


def _marker_hellaswag(path, n, seed):
    rng = random.Random(seed)
    words = "the a house tree river blue green runs walks city small large".split()
    lines = []
    for i in range(n):
        label = rng.randrange(4)
        endings = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 6))) for _ in range(4)]
        endings[label] += " zebra"
        record = {"ctx_a": " ".join(rng.choice(words) for _ in range(6)), "ctx_b": rng.choice(words),
                  "endings": endings, "label": str(label)}
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_multiple_choice_learns_a_marker_task(tiny_model_dir, tmp_path):
    """The right choice carries a marker word: learnt to >= 90% dev accuracy."""
    out = tmp_path / "run"
    run_script("run_intermediate", [
        "--model_name_or_path", tiny_model_dir, "--task", "hellaswag", "--do_train", "--output_dir", out,
        "--train_file", _marker_hellaswag(tmp_path / "train.jsonl", 120, 0),
        "--validation_file", _marker_hellaswag(tmp_path / "dev.jsonl", 60, 1), "--num_train_epochs", 4,
        "--learning_rate", 5e-3, "--warmup_steps", 0.0, "--seed", 1, *FAST, "--per_device_train_batch_size", 8])
    assert read_json(out / "all_results.json")["eval_accuracy"] >= 90


# ---------------------------------------------------------------- SQuAD 2.0 through the adapter's evaluate


class _FixedLogits:
    """A stand-in trainer: for each window, `spans[id] = (span score, null score)`, the span being the answer text."""

    def __init__(self, examples, spans, text="Brazil"):
        self.context = dict(zip(examples["id"], examples["context"]))
        self.spans, self.text = spans, text

    def predict(self, features):
        width = max(len(o) for o in features["offset_mapping"])
        start, end = np.full((len(features), width), -50.0), np.full((len(features), width), -50.0)
        for f, (qid, offsets, cls) in enumerate(zip(features["example_id"], features["offset_mapping"],
                                                    features["cls_index"])):
            first = self.context[qid].index(self.text)
            last = first + len(self.text) - 1
            tokens = [t for t, o in enumerate(offsets) if o is not None and o[1] > o[0]]
            span_score, null_score = self.spans[qid]
            start[f, max(t for t in tokens if offsets[t][0] <= first)] = span_score / 2
            end[f, max(t for t in tokens if offsets[t][0] <= last)] = span_score / 2
            start[f, cls] = end[f, cls] = null_score / 2
        return SimpleNamespace(predictions=(start, end))


@pytest.mark.parametrize("threshold, expected", [
    # q1 (answerable, "Brazil"): span 4, null 2 -> diff -2; q2 (unanswerable): span 3, null 4 -> diff 1
    (0.0, {"exact": 100.0, "f1": 100.0, "HasAns_exact": 100.0, "NoAns_exact": 100.0, "answers": ["Brazil", ""]}),
    (1.5, {"exact": 50.0, "f1": 50.0, "HasAns_exact": 100.0, "NoAns_exact": 0.0, "answers": ["Brazil", "Brazil"]}),
    (-3.0, {"exact": 50.0, "f1": 50.0, "HasAns_exact": 0.0, "NoAns_exact": 100.0, "answers": ["", ""]}),
])
def test_squad_v2_evaluation_with_null_threshold(threshold, expected, tiny_tokenizer):
    task = TASKS["squad_v2"]
    examples, _ = load_split(task, "dev", "en", None, files=[str(F / "squad_v2/dev-v2.0.json")])
    args = SimpleNamespace(max_seq_length=96, doc_stride=32, max_query_length=24, n_best_size=20,
                           max_answer_length=30, null_score_diff_threshold=threshold,
                           preprocessing_num_workers=None, overwrite_cache=False)
    kind = get_kind(task)
    features = kind.features(examples, tiny_tokenizer, args, "dev")
    trainer = _FixedLogits(examples, {"5b0001": (4.0, 2.0), "5b0002": (3.0, 4.0)})
    metrics, text = kind.evaluate(trainer, examples, features, task, "en", None, args)
    predictions = json.loads(text)
    assert [predictions[q].rstrip(".") for q in ("5b0001", "5b0002")] == expected["answers"]
    for key in ("exact", "f1", "HasAns_exact", "NoAns_exact"):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert metrics["HasAns_total"] == metrics["NoAns_total"] == 1
    assert metrics["score"] == pytest.approx((expected["exact"] + expected["f1"]) / 2)
    # the dev-optimal threshold: answering q1 (diff -2) and abstaining on q2 (diff 1)
    assert metrics["best_exact"] == 100.0 and metrics["best_exact_thresh"] == pytest.approx(-2.0)


# ---------------------------------------------------------------- bad input


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


GOOD_HELLASWAG = {"ctx_a": "A man sits.", "ctx_b": "He", "endings": ["a.", "b.", "c.", "d."], "label": "0"}


@pytest.mark.parametrize("task, record, message", [
    ("hellaswag", {**GOOD_HELLASWAG, "endings": ["a.", "b.", "c."]}, "3 choices; expected 4"),
    ("hellaswag", {**GOOD_HELLASWAG, "endings": ["a.", None, "c.", "d."]}, "choice 1 is missing or empty"),
    ("hellaswag", {**GOOD_HELLASWAG, "label": "4"}, "label '4' out of range; expected one of 0, 1, 2, 3"),
    ("cosmosqa", {"context": "c", "question": "q", "answer0": "a", "answer1": "b", "answer2": "c", "label": 0},
     "3 choices; expected 4"),
    ("cosmosqa", {"context": "c", "question": "q", **{f"answer{i}": "x" for i in range(4)}, "label": 7},
     "label '7' out of range"),
    ("commonsenseqa", {"question": "q", "choices": {"label": list("ABCD"), "text": list("abcd")}, "answerKey": "A"},
     "choices A, B, C, D; expected exactly A, B, C, D, E"),
    ("commonsenseqa", {"question": "q", "choices": {"label": list("ABCDE"), "text": list("abcde")}, "answerKey": "F"},
     "label 'F' out of range"),
])
def test_bad_multiple_choice_rows_are_named(task, record, message, tmp_path):
    good = {"hellaswag": GOOD_HELLASWAG, "cosmosqa": {"context": "c", "question": "q",
                                                      **{f"answer{i}": "x" for i in range(4)}, "label": 1},
            "commonsenseqa": {"question": "q", "choices": {"label": list("ABCDE"), "text": list("abcde")},
                              "answerKey": "B"}}[task]
    path = _jsonl(tmp_path / "bad.jsonl", [good, good, record])
    with pytest.raises(XtremeError) as err:
        load_split(TASKS[task], "train", "en", list(TASKS[task].labels), files=[path])
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)


def test_bad_multiple_choice_file_stops_the_script(tiny_model_dir, tmp_path, capsys):
    path = _jsonl(tmp_path / "train.jsonl", [GOOD_HELLASWAG, {**GOOD_HELLASWAG, "endings": ["a.", "b.", "c."]}])
    with pytest.raises(SystemExit) as exit_info:
        run_script("run_intermediate", ["--model_name_or_path", tiny_model_dir, "--task", "hellaswag", "--do_train",
                                        "--output_dir", tmp_path / "out", "--train_file", path, *FAST])
    assert exit_info.value.code == 2
    assert f"{path}:2: 3 choices; expected 4 (hellaswag)" in capsys.readouterr().err


def test_ccg_tag_count_must_match_token_count(tmp_path):
    path = tmp_path / "ccg.train"
    path.write_text("Anna reads books .\tN (S[dcl]\\NP)/NP N .\nThe river flows .\tNP[nb]/N N .\n")
    with pytest.raises(XtremeError, match=rf"^{path}:2: 4 tokens but 3 tags"):
        read_rows(path, TASKS["ccg"])
    auto = tmp_path / "wsj_0001.auto"
    auto.write_text("ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n(<T S[dcl] 0 2> (<L N NNP NNP Anna N>) (<L S[dcl]\\NP VBZ "
                    "flows S[dcl]\\NP_1>) )\n")
    with pytest.raises(XtremeError, match=rf"^{auto}:2: leaf .* has 4 fields; expected 5"):
        read_rows(auto, TASKS["ccg"])
    auto.write_text("ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n\n")
    with pytest.raises(XtremeError, match=rf"^{auto}:2: expected the derivation of ID=wsj_0001.1"):
        read_rows(auto, TASKS["ccg"])
