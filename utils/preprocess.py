"""Tokenisation of each task kind into model features, as batched `datasets.map` functions.

Features carry a `length` column (tokens before padding) used for length-grouped training batches and
length-sorted evaluation; padding happens per batch in the collator (dynamic padding).
"""

from __future__ import annotations


def classification_features(examples: dict, tokenizer, max_seq_length: int) -> dict:
    texts = (examples["sentence1"],) + ((examples["sentence2"],) if "sentence2" in examples else ())
    features = tokenizer(*texts, truncation=True, max_length=max_seq_length)
    features["length"] = [len(ids) for ids in features["input_ids"]]
    if "label" in examples:
        features["labels"] = examples["label"]
    return features


def tagging_features(examples: dict, indices: list[int], tokenizer, max_seq_length: int) -> dict:
    """Words -> sub-tokens with the first sub-token of each word labelled (others -100).

    A sentence longer than `max_seq_length` is split into segments of whole words, never truncated, so every
    word gets a prediction (XTREME's `.idx` segmenting). `sentence_id` (the example's index, from
    `map(with_indices=True)`) and `word_start` locate each segment, and
    `word_positions` holds the first sub-token of each of its words, for re-assembly after prediction.
    A word with no sub-tokens (or more than fit) becomes the unknown token, as in XTREME.
    """
    prefix, suffix = special_tokens_around(tokenizer)
    budget = max_seq_length - len(prefix) - len(suffix)
    # Byte-level BPE (GPT-2, Qwen, Llama 3) spells a word differently after a space: give every word its space,
    # as in running text (transformers' `add_prefix_space`); sentencepiece tokenizers are unaffected.
    space = " " if tokenizer(" a", add_special_tokens=False)["input_ids"] != tokenizer(
        "a", add_special_tokens=False)["input_ids"] else ""
    flat = [space + word for words in examples["tokens"] for word in words]
    pieces = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    unk = [tokenizer.unk_token_id]
    out = {k: [] for k in ("input_ids", "attention_mask", "length", "sentence_id", "word_start", "word_positions")}
    labelled = "tags" in examples
    if labelled:
        out["labels"] = []
    cursor = 0
    for sentence, words in enumerate(examples["tokens"]):
        word_ids = [p if 0 < len(p) <= budget else unk for p in pieces[cursor:cursor + len(words)]]
        cursor += len(words)
        tags = examples["tags"][sentence] if labelled else None
        for start, end in _segments(word_ids, budget):
            ids = [i for p in word_ids[start:end] for i in p]
            input_ids = prefix + ids + suffix
            positions, position = [], len(prefix)
            for p in word_ids[start:end]:
                positions.append(position)
                position += len(p)
            out["input_ids"].append(input_ids)
            out["attention_mask"].append([1] * len(input_ids))
            out["length"].append(len(input_ids))
            out["sentence_id"].append(indices[sentence])
            out["word_start"].append(start)
            out["word_positions"].append(positions)
            if labelled:
                labels = [-100] * len(input_ids)
                for pos, tag in zip(positions, tags[start:end]):
                    labels[pos] = tag
                out["labels"].append(labels)
    return out


def _segments(word_ids: list[list[int]], budget: int):
    """Greedy split of a sentence into [start, end) word ranges whose sub-tokens fit the budget."""
    start, used = 0, 0
    for index, pieces in enumerate(word_ids):
        if used + len(pieces) > budget and index > start:
            yield start, index
            start, used = index, 0
        used += len(pieces)
    if word_ids:
        yield start, len(word_ids)


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a single sequence (<s> ... </s> for XLM-R)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next(i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain)
    return full[:start], full[start + len(plain):]


def reassemble_tagging(features, predictions) -> dict[int, list[int]]:
    """Per-feature predictions (token-level label ids) -> per-sentence word-level predictions."""
    pieces: dict[int, list] = {}
    for sentence, start, positions, row in zip(features["sentence_id"], features["word_start"],
                                               features["word_positions"], predictions):
        pieces.setdefault(sentence, []).append((start, [int(row[p]) for p in positions]))
    return {s: [tag for _, seg in sorted(parts) for tag in seg] for s, parts in pieces.items()}


def multiple_choice_features(examples: dict, tokenizer, max_seq_length: int) -> dict:
    """Each example -> one (context, choice) pair per choice, as lists of per-choice token lists.

    Pairs are cut longest-first to `max_seq_length` (jiant's `truncate_sequences`: the long context loses its end
    before a short choice loses anything); `length` is the longest pair, for length-grouped batches.
    """
    counts = [len(choices) for choices in examples["choices"]]
    firsts = [context for context, n in zip(examples["context"], counts) for _ in range(n)]
    seconds = [choice for choices in examples["choices"] for choice in choices]
    encoded = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_seq_length)
    features, start = {key: [] for key in encoded}, 0
    for n in counts:
        for key, values in encoded.items():
            features[key].append(values[start:start + n])
        start += n
    features["length"] = [max(len(ids) for ids in pairs) for pairs in features["input_ids"]]
    if "label" in examples:
        features["labels"] = examples["label"]
    return features
