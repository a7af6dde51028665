"""Extractive (span) QA: SQuAD-format reading and validation, window features for `Dataset.map(batched=True)`,
and n-best post-processing of start/end logits back to answer text.

Rows have the Hub SQuAD schema: id, title, context, question, answers={"text": [...], "answer_start": [...]};
an unanswerable (SQuAD 2.0) question has empty answer lists.
"""

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from utils.errors import XtremeError
from utils.files import load_json

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- reading and validation


def _check(ok: bool, path: Path, where: str, what: str) -> None:
    if not ok:
        raise XtremeError(f"{path}: {where}: expected {what} (SQuAD JSON format)")


def _is_list_field(obj, key: str) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get(key), list)


def read_squad_json(path: str | Path, strict: bool = True) -> list[dict]:
    """Read a SQuAD v1.1/v2.0 JSON file into rows, checking its structure and answers (see `validate_answers`)."""
    path = Path(path)
    if not path.is_file():
        raise XtremeError(f"{path}: file not found (expected a SQuAD-format JSON file)")
    doc = load_json(path)
    _check(_is_list_field(doc, "data"), path, "top level", 'an object with a "data" list')
    rows = []
    for i, article in enumerate(doc["data"]):
        _check(_is_list_field(article, "paragraphs"), path, f"data[{i}]", 'an object with a "paragraphs" list')
        for j, para in enumerate(article["paragraphs"]):
            where = f"data[{i}].paragraphs[{j}]"
            ok = _is_list_field(para, "qas") and isinstance(para.get("context"), str)
            _check(ok, path, where, 'an object with a "context" string and a "qas" list')
            for k, qa in enumerate(para["qas"]):
                ok = _is_list_field(qa, "answers") and all(isinstance(qa.get(key), str) for key in ("id", "question"))
                what = 'an object with "id" and "question" strings and an "answers" list'
                _check(ok, path, f"{where}.qas[{k}]", what)
                for m, ans in enumerate(qa["answers"]):
                    ok = isinstance(ans, dict) and isinstance(ans.get("text"), str)
                    ok = ok and type(ans.get("answer_start")) is int
                    _check(ok, path, f"{where}.qas[{k}].answers[{m}]",
                           'an object with a "text" string and an integer "answer_start"')
                rows.append({
                    "id": qa["id"],
                    "title": article.get("title", ""),
                    "context": para["context"],
                    "question": qa["question"],
                    "answers": {
                        "text": [a["text"] for a in qa["answers"]],
                        "answer_start": [a["answer_start"] for a in qa["answers"]],
                    },
                })
    return validate_answers(rows, str(path), strict)


def validate_answers(rows: Iterable[Mapping], source_name: str, strict: bool = True) -> list[dict]:
    """Check ids are unique and every answer text sits at its `answer_start` in the context.

    A misaligned answer raises `XtremeError` naming `source_name` and the question id; with `strict=False` it is
    dropped instead (so is a question left with no answer) and one warning reports the counts.
    Returns the kept rows as plain dicts.
    """
    out, seen, dropped_answers, dropped_questions = [], set(), 0, 0
    for row in rows:
        qid, context, answers = row["id"], row["context"], row["answers"]
        if qid in seen:
            raise XtremeError(f"{source_name}: question id {qid} occurs twice (expected unique ids)")
        seen.add(qid)
        keep = {"text": [], "answer_start": []}
        for text, start in zip(answers["text"], answers["answer_start"]):
            found = context[start:start + len(text)] if start >= 0 else ""
            if text and found == text:
                keep["text"].append(text)
                keep["answer_start"].append(start)
            elif strict:
                raise XtremeError(
                    f"{source_name}: question {qid}: answer {text!r} is not at answer_start {start} of its context "
                    f"(found {found!r}); fix the data or skip such answers (--skip_misaligned_answers)"
                )
            else:
                dropped_answers += 1
        if answers["text"] and not keep["text"]:
            dropped_questions += 1
            continue
        out.append({**row, "answers": keep})
    if dropped_answers:
        logger.warning("%s: dropped %d answer(s) not found at their answer_start, and %d question(s) left without "
                       "an answer", source_name, dropped_answers, dropped_questions)
    return out


# ---------------------------------------------------------------- features


def _truncate_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Strip leading whitespace and cut each question after its `max_query_length`-th token (re-checked, since
    re-tokenising a cut question can segment it differently)."""
    questions = [q.lstrip() for q in questions]
    todo = range(len(questions))
    while todo:
        enc = tokenizer([questions[i] for i in todo], add_special_tokens=False, return_offsets_mapping=True)
        long = [(i, offsets) for i, offsets in zip(todo, enc["offset_mapping"]) if len(offsets) > max_query_length]
        for i, offsets in long:  # cutting at least one character guarantees progress
            questions[i] = questions[i][: min(offsets[max_query_length - 1][1], len(questions[i]) - 1)]
        todo = [i for i, _ in long]
    return questions


def _cls_index(input_ids: list[int], attention_mask: list[int], tokenizer) -> int:
    """The no-answer position: the CLS (else BOS) token, else the first non-padding token."""
    for special in (tokenizer.cls_token_id, tokenizer.bos_token_id):
        if special is not None and special in input_ids:
            return input_ids.index(special)
    return attention_mask.index(1)


def _windows(examples: Mapping, tokenizer, max_seq_length: int, doc_stride: int, max_query_length: int):
    """Tokenise question/context pairs into overlapping context windows. Left-padding tokenizers (decoders) pad to
    `max_seq_length` here, so positions never shift; others are padded per batch by the collator."""
    budget = max_seq_length - max_query_length - tokenizer.num_special_tokens_to_add(pair=True)
    if doc_stride >= budget:
        raise XtremeError(
            f"doc_stride={doc_stride} must be smaller than the context room per window, max_seq_length - "
            f"max_query_length - special tokens = {budget}"
        )
    questions = _truncate_questions(list(examples["question"]), tokenizer, max_query_length)
    return tokenizer(
        questions,
        list(examples["context"]),
        truncation="only_second",
        max_length=max_seq_length,
        stride=doc_stride,
        padding="max_length" if tokenizer.padding_side == "left" else False,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids="token_type_ids" in tokenizer.model_input_names,
    )


def _context_span(enc, i: int) -> list[int]:
    return [t for t, seq in enumerate(enc.sequence_ids(i)) if seq == 1]


def prepare_train_features(
    examples: Mapping, tokenizer, max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64
) -> dict:
    """Batched map: one feature per context window, labelled with the first answer's start/end token, or with the
    no-answer (CLS) position when the window does not hold the whole answer or there is none.
    """
    enc = _windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    enc["start_positions"], enc["end_positions"] = [], []
    for i, offsets in enumerate(enc["offset_mapping"]):
        answers = examples["answers"][enc["overflow_to_sample_mapping"][i]]
        start = end = _cls_index(enc["input_ids"][i], enc["attention_mask"][i], tokenizer)
        if answers["text"]:
            first_char = answers["answer_start"][0]
            last_char = first_char + len(answers["text"][0]) - 1
            # Tokens covering a character: the last context token starting at or before it. Taking the last one
            # skips XLM-R's standalone "▁" token, whose offsets duplicate the next token's first character.
            tokens = [t for t in _context_span(enc, i) if offsets[t][1] > offsets[t][0]]
            if tokens and offsets[tokens[0]][0] <= first_char and offsets[tokens[-1]][1] > last_char:
                start = max(t for t in tokens if offsets[t][0] <= first_char)
                end = max(t for t in tokens if offsets[t][0] <= last_char)
        enc["start_positions"].append(start)
        enc["end_positions"].append(end)
    del enc["offset_mapping"], enc["overflow_to_sample_mapping"]
    return enc


def prepare_eval_features(
    examples: Mapping, tokenizer, max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64
) -> dict:
    """Batched map: the same windows as training, with `example_id`, `cls_index` and an `offset_mapping` that is
    None outside the context, for `postprocess_qa_predictions`.
    """
    enc = _windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    enc["example_id"], enc["cls_index"] = [], []
    for i in range(len(enc["input_ids"])):
        enc["example_id"].append(examples["id"][enc["overflow_to_sample_mapping"][i]])
        enc["cls_index"].append(_cls_index(enc["input_ids"][i], enc["attention_mask"][i], tokenizer))
        context = set(_context_span(enc, i))
        enc["offset_mapping"][i] = [o if t in context else None for t, o in enumerate(enc["offset_mapping"][i])]
    del enc["overflow_to_sample_mapping"]
    return enc


# ---------------------------------------------------------------- post-processing


def _window_candidates(start_logits, end_logits, offsets, n_best_size: int, max_answer_length: int):
    """Scores and character spans of the valid (start, end) pairs among the window's n-best starts and ends."""
    valid = np.array([o is not None and o[1] > o[0] for o in offsets])
    starts = np.argsort(start_logits)[::-1][:n_best_size]
    ends = np.argsort(end_logits)[::-1][:n_best_size]
    s, e = np.meshgrid(starts, ends, indexing="ij")
    ok = valid[s] & valid[e] & (e >= s) & (e - s < max_answer_length)
    s, e = s[ok], e[ok]
    chars = [(offsets[a][0], offsets[b][1]) for a, b in zip(s, e)]
    return start_logits[s] + end_logits[e], chars


def postprocess_qa_predictions(
    examples: Mapping,
    features: Mapping,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, float]]:
    """Best answer per example over all its windows, cut from the original context by character offsets.

    `examples` needs columns id/context, `features` (from `prepare_eval_features`) example_id/offset_mapping/
    cls_index; the logits are (num_features, seq_len). Every example gets a prediction: "" when no valid span
    exists or, with `version_2_with_negative`, when null score - best span score > `null_score_diff_threshold`.
    Also returns that null score difference per example (inf when no valid span exists).
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    by_example: dict[str, list[int]] = {}
    for f, example_id in enumerate(features["example_id"]):
        by_example.setdefault(example_id, []).append(f)
    offsets_all, cls_all = list(features["offset_mapping"]), list(features["cls_index"])

    predictions, null_diffs = {}, {}
    for example_id, context in zip(examples["id"], examples["context"]):
        scores, chars, null_score = [], [], math.inf
        for f in by_example.get(example_id, []):
            cls = cls_all[f]
            null_score = min(null_score, float(start_logits[f][cls] + end_logits[f][cls]))
            width = len(offsets_all[f])  # logits of a batch are padded past the window's own length
            s, c = _window_candidates(start_logits[f][:width], end_logits[f][:width], offsets_all[f], n_best_size,
                                      max_answer_length)
            scores.append(s)
            chars.extend(c)
        # The best-scoring span with a non-blank text; stripping drops a space a "▁" token's offsets may cover.
        text, best = "", None
        if chars:
            all_scores = np.concatenate(scores)
            for k in np.argsort(-all_scores, kind="stable"):
                text = context[chars[k][0]:chars[k][1]].strip()
                if text:
                    best = float(all_scores[k])
                    break
        null_diffs[example_id] = math.inf if best is None else null_score - best
        if version_2_with_negative and null_diffs[example_id] > null_score_diff_threshold:
            text = ""
        predictions[example_id] = text
    return predictions, null_diffs
