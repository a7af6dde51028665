"""Span QA machinery on real XQuAD/MLQA slices: reading/validation, window features, post-processing."""

import collections
import json
import logging
import math
import re

import numpy as np
import pytest

from conftest import XTREME_DIR
from utils.errors import XtremeError
from utils.qa import (
    postprocess_qa_predictions,
    prepare_eval_features,
    prepare_train_features,
    read_squad_json,
    validate_answers,
)

FIXTURES = {
    "xquad-en": XTREME_DIR / "xquad" / "xquad.en.json",
    "xquad-de": XTREME_DIR / "xquad" / "xquad.de.json",
    "xquad-zh": XTREME_DIR / "xquad" / "xquad.zh.json",
    "mlqa-en": XTREME_DIR / "mlqa" / "MLQA_V1" / "dev" / "dev-context-en-question-en.json",
    "mlqa-de": XTREME_DIR / "mlqa" / "MLQA_V1" / "dev" / "dev-context-de-question-de.json",
}
WINDOW = {"max_seq_length": 128, "doc_stride": 32, "max_query_length": 64}  # several windows per context


def columns(rows: list[dict]) -> dict[str, list]:
    return {key: [row[key] for row in rows] for key in rows[0]}


def write_squad(tmp_path, qas: list[dict], context: str = "The Broncos beat the Panthers 24-10.") -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return str(path)


@pytest.fixture(scope="session")
def wordpiece_tokenizer(tmp_path_factory):
    """An uncased BERT-style WordPiece tokenizer (returns token_type_ids), built offline from the tiny corpus."""
    from transformers import AutoTokenizer

    text = (XTREME_DIR.parent / "tiny_corpus.txt").read_text(encoding="utf-8").lower()
    words = collections.Counter(re.findall(r"\w+|[^\w\s]", text))
    chars = sorted({ch for word in words for ch in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + ch for ch in chars)]
    vocab += [word for word, _ in words.most_common(2000) if len(word) > 1]
    out = tmp_path_factory.mktemp("wordpiece")
    (out / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return AutoTokenizer.from_pretrained(str(out))


@pytest.fixture(scope="session")
def byte_bpe_tokenizer(tmp_path_factory):
    """A GPT-2-style byte-level BPE tokenizer padding on the left: no CLS/SEP, offsets include the leading space."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train([str(XTREME_DIR.parent / "tiny_corpus.txt")], vocab_size=3000, special_tokens=["<|endoftext|>", "<pad>"],
              show_progress=False)
    path = tmp_path_factory.mktemp("byte_bpe") / "tokenizer.json"
    bpe.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|endoftext|>", pad_token="<pad>",
                                   padding_side="left")


# ---------------------------------------------------------------- reading and validation


def test_read_fixtures():
    rows = {name: read_squad_json(path) for name, path in FIXTURES.items()}
    assert [len(rows[f"xquad-{lang}"]) for lang in ("en", "de", "zh")] == [105, 105, 105]
    assert [r["id"] for r in rows["xquad-en"]] == [r["id"] for r in rows["xquad-zh"]]
    first = rows["xquad-en"][0]
    assert first["id"] == "56beb4343aeaaa14008c925b" and first["title"] == "Super_Bowl_50"
    assert first["answers"] == {"text": ["308"], "answer_start": [34]}
    assert first["question"] == "How many points did the Panthers defense surrender?"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("{not json", "1: not valid JSON \\(Expecting property name"),
        ('{"version": "1.1"}', 'top level: expected an object with a "data" list'),
        ('{"data": [{"paragraphs": [{"context": "c"}]}]}', 'data\\[0\\].paragraphs\\[0\\]: expected .* "qas" list'),
        ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q", "answers": '
         '[{"text": "c", "answer_start": "0"}]}]}]}]}', 'qas\\[0\\].answers\\[0\\]: expected .* integer "answer_start"'),
    ],
)
def test_read_bad_files(tmp_path, content, message):
    path = tmp_path / "squad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(XtremeError, match=f"squad.json:.*{message}"):
        read_squad_json(path)


def test_misaligned_answer_strict_and_skipped(tmp_path, caplog):
    good = {"id": "good", "question": "Who won?", "answers": [{"text": "Broncos", "answer_start": 4}]}
    bad = {"id": "q-bad", "question": "Who lost?", "answers": [{"text": "Panthers", "answer_start": 5}]}
    half = {"id": "q-half", "question": "Score?", "answers": [{"text": "24-10", "answer_start": 29},
                                                            {"text": "24-10", "answer_start": 30}]}
    path = write_squad(tmp_path, [good, bad, half])
    with pytest.raises(XtremeError, match=r"bad.json: question q-bad: answer 'Panthers' is not at answer_start 5 "
                                          r"of its context \(found 'roncos b'\)"):
        read_squad_json(path)
    with caplog.at_level(logging.WARNING, logger="utils.qa"):
        rows = read_squad_json(path, strict=False)
    assert [r["id"] for r in rows] == ["good", "q-half"]  # q-bad lost its only answer
    assert rows[1]["answers"] == {"text": ["24-10"], "answer_start": [30]}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped 2 answer(s)" in warnings[0] and "1 question(s)" in warnings[0]


def test_validate_hub_rows():
    # e.g. a loader that strips contexts without shifting answer_start
    rows = [{"id": "h1", "title": "", "question": "q", "context": "Denver won.",
             "answers": {"text": ["Denver"], "answer_start": [1]}},
            {"id": "h2", "title": "", "question": "q", "context": "Unanswerable.", "answers": {"text": [],
                                                                                       "answer_start": []}}]
    with pytest.raises(XtremeError, match="hub:xquad.en: question h1"):
        validate_answers(rows, "hub:xquad.en")
    assert [r["id"] for r in validate_answers(rows, "hub:xquad.en", strict=False)] == ["h2"]
    with pytest.raises(XtremeError, match="question id h2 occurs twice"):
        validate_answers([rows[1], rows[1]], "hub:xquad.en")


# ---------------------------------------------------------------- features


def decode_gold_positions(rows, train, evals):
    """Per feature labelled with an answer: (row, offsets, start, end, text decoded from start/end)."""
    by_id = {row["id"]: row for row in rows}
    for i, (start, end) in enumerate(zip(train["start_positions"], train["end_positions"])):
        row = by_id[evals["example_id"][i]]
        offsets = evals["offset_mapping"][i]
        if start == evals["cls_index"][i]:
            continue
        yield row, offsets, start, end, row["context"][offsets[start][0]:offsets[end][1]]


def token_aligned(row, offsets) -> bool:
    """Whether the gold answer starts and ends on token boundaries of this window."""
    start = row["answers"]["answer_start"][0]
    end = start + len(row["answers"]["text"][0])
    spans = [o for o in offsets if o is not None]
    return any(s == start for s, _ in spans) and any(e == end for _, e in spans)


def check_round_trip(rows, tokenizer, window: dict = WINDOW):
    """Gold positions decode back to the gold text, in at least one window of every question."""
    examples = columns(rows)
    train = prepare_train_features(examples, tokenizer, **window)
    evals = prepare_eval_features(examples, tokenizer, **window)
    for i, offsets in enumerate(evals["offset_mapping"]):  # offsets only inside the context
        assert [o is not None for o in offsets] == [seq == 1 for seq in evals.sequence_ids(i)]
    answered, inexact = set(), set()
    for row, offsets, start, end, text in decode_gold_positions(rows, train, evals):
        gold = row["answers"]["text"][0]
        answered.add(row["id"])
        if token_aligned(row, offsets):
            assert text == gold, row["id"]
        else:  # the gold span cuts a token: the labels cover it with the fewest tokens
            inexact.add(row["id"])
            first, last = row["answers"]["answer_start"][0], row["answers"]["answer_start"][0] + len(gold)
            assert offsets[start][0] <= first < offsets[start][1] and offsets[end][0] < last <= offsets[end][1]
    assert answered == {row["id"] for row in rows}
    return train, evals, inexact


@pytest.mark.parametrize("name", list(FIXTURES))
def test_train_labels_round_trip(tiny_tokenizer, name):
    rows = read_squad_json(FIXTURES[name])
    train, evals, inexact = check_round_trip(rows, tiny_tokenizer)
    assert len(train["input_ids"]) > 2 * len(rows)  # the small window really splits contexts
    assert set(train) == {"input_ids", "attention_mask", "start_positions", "end_positions"}  # XLM-R: no type ids
    # right-padding tokenizers are padded per batch by the collator (dynamic padding), never beyond the window
    assert max(len(ids) for ids in train["input_ids"]) == 128
    assert all(ids[-1] != tiny_tokenizer.pad_token_id for ids in train["input_ids"])
    # only MLQA en has a gold answer cut inside a word ("orm the major classes ..." for "form ...")
    assert inexact == ({"6a636c91f7733165c92ed84864debf6bdbdf7d16"} if name == "mlqa-en" else set())
    # windows labelled "no answer" really miss part of the answer
    by_id = {row["id"]: row for row in rows}
    for i, start in enumerate(train["start_positions"]):
        if start == evals["cls_index"][i]:
            row = by_id[evals["example_id"][i]]
            spans = [o for o in evals["offset_mapping"][i] if o is not None]
            first = row["answers"]["answer_start"][0]
            assert not (spans[0][0] <= first and first + len(row["answers"]["text"][0]) <= spans[-1][1])


def test_xlmr_standalone_space_token_is_exercised(tiny_tokenizer):
    """XLM-R emits a standalone "▁" whose offsets duplicate the next character's: the labels must skip it."""
    quirks = 0
    for lang in ("en", "de", "zh"):
        rows = read_squad_json(FIXTURES[f"xquad-{lang}"])
        train, evals, _ = check_round_trip(rows, tiny_tokenizer)
        for row, offsets, start, end, text in decode_gold_positions(rows, train, evals):
            quirks += offsets[start - 1] is not None and offsets[start - 1][0] == offsets[start][0]
    assert quirks > 0


def test_left_padding(tiny_model_dir):
    from transformers import AutoTokenizer

    left = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    rows = read_squad_json(FIXTURES["xquad-de"])[:20]
    train, evals, _ = check_round_trip(rows, left)
    padded = [i for i, mask in enumerate(evals["attention_mask"]) if mask[0] == 0]
    assert padded  # the no-answer position is the CLS token after the padding, not position 0
    assert all(evals["cls_index"][i] == evals["attention_mask"][i].index(1) for i in padded)
    assert all(evals["input_ids"][i][evals["cls_index"][i]] == left.cls_token_id for i in padded)


def test_decoder_style_tokenizer(byte_bpe_tokenizer):
    tok = byte_bpe_tokenizer
    rows = read_squad_json(FIXTURES["xquad-en"])[:30]
    rows[0] = {**rows[0], "question": "    " + rows[0]["question"]}  # leading spaces would become "Ġ" tokens
    train, evals, inexact = check_round_trip(rows, tok)
    assert inexact  # its offsets include the space before a word: "▁"-quirk-like spans
    assert all(tok.convert_ids_to_tokens(ids[mask.index(1)]) != "Ġ"
               for ids, mask in zip(evals["input_ids"], evals["attention_mask"]))
    assert all(c == mask.index(1) for c, mask in zip(evals["cls_index"], evals["attention_mask"]))
    start, end = one_hot_logits(train, evals)
    predictions, _ = postprocess_qa_predictions(columns(rows), evals, start, end, max_answer_length=128)
    assert predictions == {row["id"]: row["answers"]["text"][0] for row in rows}  # the space is stripped


def test_wordpiece_tokenizer_with_token_type_ids(wordpiece_tokenizer):
    window = {"max_seq_length": 256, "doc_stride": 64, "max_query_length": 64}  # its pieces are often single chars
    for name in ("xquad-en", "mlqa-de"):
        train, _, _ = check_round_trip(read_squad_json(FIXTURES[name]), wordpiece_tokenizer, window)
        assert "token_type_ids" in train and max(map(max, train["token_type_ids"])) == 1


def test_question_truncation_and_stripping(tiny_tokenizer):
    row = read_squad_json(FIXTURES["xquad-en"])[0]
    long_q = "  \t" + " ".join(["Wie viele Punkte gab die Verteidigung der Panthers ab?"] * 20)
    examples = columns([row, {**row, "id": "long", "question": long_q}])
    enc = prepare_eval_features(examples, tiny_tokenizer, **WINDOW)
    question_lengths = {}
    for i, ids in enumerate(enc["input_ids"]):
        question = [t for t, seq in zip(ids, enc.sequence_ids(i)) if seq == 0]
        question_lengths.setdefault(enc["example_id"][i], set()).add(len(question))
        assert tiny_tokenizer.convert_ids_to_tokens(question[0]) != "▁"  # leading whitespace stripped
    assert question_lengths["long"] == {64}
    assert len(question_lengths[row["id"]]) == 1 and max(question_lengths[row["id"]]) < 64


def test_doc_stride_too_large(tiny_tokenizer):
    examples = columns(read_squad_json(FIXTURES["xquad-en"])[:1])
    with pytest.raises(XtremeError, match="doc_stride=60 must be smaller than .* = 60"):
        prepare_train_features(examples, tiny_tokenizer, max_seq_length=128, doc_stride=60, max_query_length=64)


def test_dataset_map(tiny_tokenizer):
    from datasets import Dataset

    ds = Dataset.from_list(read_squad_json(FIXTURES["xquad-zh"])[:10])
    features = ds.map(prepare_eval_features, batched=True, remove_columns=ds.column_names,
                      fn_kwargs={"tokenizer": tiny_tokenizer, **WINDOW})
    train = ds.map(prepare_train_features, batched=True, remove_columns=ds.column_names,
                   fn_kwargs={"tokenizer": tiny_tokenizer, **WINDOW})
    assert len(features) == len(train) > 10
    start, end = one_hot_logits(train, features)
    predictions, _ = postprocess_qa_predictions(ds, features, start, end, max_answer_length=128)
    assert predictions == {row["id"]: row["answers"]["text"][0] for row in ds}


# ---------------------------------------------------------------- post-processing


def one_hot_logits(train, evals) -> tuple[np.ndarray, np.ndarray]:
    """Logits peaked at the gold positions of the windows that hold the answer, flat elsewhere; padded past each
    window's length with -100, as Trainer pads predictions of batches of different widths."""
    shape = (len(train["input_ids"]), max(len(ids) for ids in train["input_ids"]))
    start, end = np.zeros(shape), np.zeros(shape)
    for i, ids in enumerate(train["input_ids"]):
        start[i, len(ids):] = end[i, len(ids):] = -100.0
    for i, (s, e) in enumerate(zip(train["start_positions"], train["end_positions"])):
        if s != evals["cls_index"][i]:
            start[i, s] = end[i, e] = 10.0
    return start, end


@pytest.mark.parametrize("name", list(FIXTURES))
def test_postprocess_recovers_gold(tiny_tokenizer, name):
    rows = read_squad_json(FIXTURES[name])
    train, evals, inexact = check_round_trip(rows, tiny_tokenizer)
    start, end = one_hot_logits(train, evals)
    predictions, null_diffs = postprocess_qa_predictions(columns(rows), evals, start, end, max_answer_length=128)
    assert set(predictions) == set(null_diffs) == {row["id"] for row in rows}
    for row in rows:
        gold = row["answers"]["text"][0]
        if row["id"] in inexact:
            assert gold in predictions[row["id"]]
        else:
            assert predictions[row["id"]] == gold


def synthetic(offsets: list, start: list[float], end: list[float], context: str = "ab cd ef", cls: int = 0):
    examples = {"id": ["q"], "context": [context]}
    features = {"example_id": ["q"], "offset_mapping": [offsets], "cls_index": [cls]}
    return examples, features, np.array([start]), np.array([end])


def test_postprocess_strips_space_covered_by_standalone_token():
    # tokens: <s>, "ab", "▁" covering the space (2,3), "cd", "ef", </s>
    offsets = [None, (0, 2), (2, 3), (3, 5), (6, 8), None]
    predictions, _ = postprocess_qa_predictions(*synthetic(offsets, [0, 0, 9, 0, 0, 0], [0, 0, 0, 9, 0, 0]))
    assert predictions == {"q": "cd"}
    # a span that is only the space falls back to the next best span
    predictions, _ = postprocess_qa_predictions(*synthetic(offsets, [0, 0, 9, 5, 0, 0], [0, 0, 9, 5, 0, 0]))
    assert predictions == {"q": "cd"}


def test_postprocess_no_valid_span_and_limits():
    offsets = [None, (0, 2), (3, 5), (6, 8), None]
    # 2-best starts (0, 3) and ends (0, 1): position 0 is outside the context, and end 1 < start 3
    predictions, diffs = postprocess_qa_predictions(*synthetic(offsets, [9, 0, 0, 5, 0], [9, 5, 0, 0, 0]),
                                                    n_best_size=2)
    assert predictions == {"q": ""} and diffs == {"q": math.inf}
    # max_answer_length=2 forbids the 3-token span "ab cd ef"
    predictions, _ = postprocess_qa_predictions(*synthetic(offsets, [0, 9, 2, 0, 0], [0, 0, 1, 9, 0]),
                                                max_answer_length=2)
    assert predictions == {"q": "cd ef"}


def test_postprocess_across_windows_and_null_answer():
    context = "ab cd ef gh"
    examples = {"id": ["q", "r"], "context": [context, context]}
    features = {
        "example_id": ["q", "q", "r"],
        "offset_mapping": [[None, (0, 2), (3, 5), None], [None, (6, 8), (9, 11), None], [None, (0, 2), (3, 5), None]],
        "cls_index": [0, 0, 0],
    }
    start = np.array([[1.0, 2, 0, 0], [3.0, 0, 4, 0], [6.0, 2, 0, 0]])
    end = np.array([[1.0, 0, 2, 0], [3.0, 0, 4, 0], [6.0, 2, 0, 0]])
    predictions, diffs = postprocess_qa_predictions(examples, features, start, end)
    # q: best span "gh" (8) in window 2; null score = min over windows (1+1); r: "ab" (4) vs null 12
    assert predictions == {"q": "gh", "r": "ab"}
    assert diffs == {"q": 2.0 - 8.0, "r": 12.0 - 4.0}
    predictions, _ = postprocess_qa_predictions(examples, features, start, end, version_2_with_negative=True)
    assert predictions == {"q": "gh", "r": ""}
    predictions, _ = postprocess_qa_predictions(examples, features, start, end, version_2_with_negative=True,
                                                null_score_diff_threshold=8.0)
    assert predictions == {"q": "gh", "r": "ab"}
