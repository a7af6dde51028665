"""Tokenisation of tagging data: first sub-token labels, segmenting of long sentences, re-assembly."""

import numpy as np
from datasets import Dataset

from utils.preprocess import reassemble_tagging, special_tokens_around, tagging_features


def _features(tokenizer, sentences, max_seq_length):
    dataset = Dataset.from_dict({"tokens": [s for s, _ in sentences], "tags": [t for _, t in sentences]})
    return dataset.map(tagging_features, batched=True, batch_size=2, with_indices=True,
                       remove_columns=dataset.column_names,
                       fn_kwargs={"tokenizer": tokenizer, "max_seq_length": max_seq_length})


def test_long_sentences_are_segmented_not_truncated(tiny_tokenizer):
    long_words = ("Die Zusammenarbeit zwischen den Universitäten wurde im vergangenen Jahr deutlich verstärkt , "
                  "obwohl die Finanzierung unsicher blieb und viele Forschende abwanderten .").split()
    sentences = [(long_words, list(range(len(long_words)))),
                 (["kurz", "."], [1, 2]),
                 (long_words[:5], [3, 4, 5, 6, 7])]
    features = _features(tiny_tokenizer, [(w, [t % 7 for t in tags]) for w, tags in sentences], max_seq_length=12)
    prefix, suffix = special_tokens_around(tiny_tokenizer)
    assert all(n <= 12 for n in features["length"])
    assert features["sentence_id"].count(0) > 1, "the long sentence must be split into several segments"
    for ids, labels, positions in zip(features["input_ids"], features["labels"], features["word_positions"]):
        assert ids[:len(prefix)] == prefix and ids[len(ids) - len(suffix):] == suffix
        assert [i for i, label in enumerate(labels) if label != -100] == positions  # first sub-token only
    # re-assembly of "predictions" equal to the gold labels recovers every word's tag in order
    width = max(features["length"])
    padded = np.full((len(features), width), -100)
    for row, labels in enumerate(features["labels"]):
        padded[row, :len(labels)] = labels
    sentences_out = reassemble_tagging(features, padded)
    assert sentences_out == {i: [t % 7 for t in tags] for i, (_, tags) in enumerate(sentences)}


def test_word_with_no_subtokens_becomes_unk(tiny_tokenizer):
    features = _features(tiny_tokenizer, [(["a", "\u200b", "b"], [0, 1, 2])], max_seq_length=32)
    positions = features["word_positions"][0]
    assert len(positions) == 3
    assert features["input_ids"][0][positions[1]] == tiny_tokenizer.unk_token_id
