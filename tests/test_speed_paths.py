"""The fast paths: length-sorted prediction restored to the original order, and the cross-run tokenisation cache.

No timing assertions here: speed is measured by `make bench` (benchmarks/).
"""

import numpy as np
import pytest
from conftest import XTREME_DIR

from utils.data import load_split
from utils.kinds import get_kind
from utils.tasks import get_task
from utils.training import PreprocessingArguments, XtremeTrainer, XtremeTrainingArguments, predict_in_order


# --- length-sorted prediction ------------------------------------------------------------------------------------

class FakeTrainer:
    """Predicts each example's `uid` * 10 (and * -1 as a second output), and records the order it was given."""

    def __init__(self, tuple_output=False):
        self.tuple_output, self.seen = tuple_output, None

    def predict(self, dataset):
        from transformers.trainer_utils import PredictionOutput

        self.seen = list(dataset["uid"])
        uid = np.asarray(dataset["uid"]) * 10
        predictions = (uid, -uid) if self.tuple_output else uid
        return PredictionOutput(predictions=predictions, label_ids=None, metrics={})


@pytest.mark.parametrize("tuple_output", [False, True])
def test_predict_in_order_is_a_permutation_undone(tuple_output):
    from datasets import Dataset

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=200).tolist()
    lengths[10] = lengths[11] = lengths[150]  # ties keep file order (stable sort)
    dataset = Dataset.from_dict({"uid": list(range(200)), "length": lengths})
    trainer = FakeTrainer(tuple_output)
    predictions = predict_in_order(trainer, dataset)
    seen_lengths = [lengths[i] for i in trainer.seen]
    assert seen_lengths == sorted(lengths, reverse=True), "the model must see the examples longest first"
    assert trainer.seen != list(range(200))
    expected = np.arange(200) * 10
    if tuple_output:
        np.testing.assert_array_equal(predictions[0], expected)
        np.testing.assert_array_equal(predictions[1], -expected)
    else:
        np.testing.assert_array_equal(predictions, expected)


def test_sorted_prediction_matches_file_order_prediction(cache_home, tiny_model_dir, tiny_tokenizer, tmp_path):
    """Real tiny model: length-sorted, dynamically padded batches give each example the logits it gets in file
    order, at the same position."""
    from transformers import AutoModelForSequenceClassification

    task, _ = get_task("xnli")
    kind = get_kind(task)
    examples, labels = load_split(task, "dev", "de", list(task.labels), data_dir=str(XTREME_DIR))
    args = PreprocessingArguments(max_seq_length=128)
    features = kind.features(examples, tiny_tokenizer, args, "test")
    assert np.any(np.diff(features["length"]) > 0), "the fixture must not already be sorted"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    training_args = XtremeTrainingArguments(output_dir=str(tmp_path), use_cpu=True, per_device_eval_batch_size=16,
                                            eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                            report_to=[], disable_tqdm=True)
    trainer = XtremeTrainer(model=model, args=training_args, processing_class=tiny_tokenizer,
                            data_collator=kind.collator(tiny_tokenizer, training_args))
    sorted_logits = predict_in_order(trainer, features)
    file_order_logits = trainer.predict(features).predictions  # sequential sampler: file order
    assert sorted_logits.shape == (len(examples), 3)
    np.testing.assert_allclose(sorted_logits, file_order_logits, atol=1e-5)


# --- the tokenisation cache --------------------------------------------------------------------------------------

@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    return tmp_path / "hf_datasets" / "xtreme_inter"


@pytest.fixture
def tokenizer_calls(monkeypatch, tiny_tokenizer):
    """Counts every call of the tokenizer class (the only way preprocessing tokenises)."""
    calls = []
    cls = type(tiny_tokenizer)
    original = cls.__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", counting)
    return calls


def _xnli(lang="en", split="dev"):
    task, _ = get_task("xnli")
    examples, _ = load_split(task, split, lang, list(task.labels), data_dir=str(XTREME_DIR))
    return get_kind(task), examples


def _tokenise(kind, examples, tokenizer, **args):
    return kind.features(examples, tokenizer, PreprocessingArguments(**{"max_seq_length": 128, **args}), "test")


def test_cached_preprocessing_is_reused_across_runs(cache_home, tokenizer_calls, tiny_model_dir, tiny_tokenizer):
    from transformers import AutoTokenizer

    kind, examples = _xnli()
    first = _tokenise(kind, examples, tiny_tokenizer)
    assert tokenizer_calls, "the first run tokenises"
    files = [f["filename"] for f in first.cache_files]
    assert files and all(f.startswith(str(cache_home)) for f in files)

    # "another run": data read again from the file, tokenizer loaded again from disk, other argument objects
    tokenizer_calls.clear()
    kind, examples_again = _xnli()
    tokenizer_again = AutoTokenizer.from_pretrained(tiny_model_dir)
    second = _tokenise(kind, examples_again, tokenizer_again)
    assert tokenizer_calls == [], "a cache hit must not tokenise"
    assert [f["filename"] for f in second.cache_files] == files
    assert second.to_dict() == first.to_dict()
    assert len(list(cache_home.glob("*.arrow"))) == 1


def test_cache_is_shared_by_the_phases(cache_home, tokenizer_calls, tiny_tokenizer):
    """Phase 2's English dev set and phase 3's English evaluation use different argument classes: one entry."""
    import run_xtreme_eval
    from utils.training import DataArguments

    kind, examples = _xnli()
    kind.features(examples, tiny_tokenizer, DataArguments(task="xnli", max_seq_length=128), "dev set")
    tokenizer_calls.clear()
    kind.features(examples, tiny_tokenizer, run_xtreme_eval.EvalArguments(task="xnli", max_seq_length=128), "en")
    assert tokenizer_calls == []


def test_cache_is_invalidated_by_tokenizer_length_and_data(cache_home, tokenizer_calls, tiny_model_dir,
                                                         tiny_tokenizer):
    from transformers import AutoTokenizer

    kind, examples = _xnli()
    base = _tokenise(kind, examples, tiny_tokenizer)

    tokenizer_calls.clear()
    shorter = _tokenise(kind, examples, tiny_tokenizer, max_seq_length=16)
    assert tokenizer_calls, "another max_seq_length must tokenise again"
    assert max(shorter["length"]) == 16 < max(base["length"])

    tokenizer_calls.clear()
    changed = AutoTokenizer.from_pretrained(tiny_model_dir)
    changed.add_tokens(["xtremeinterword"])
    _tokenise(kind, examples, changed)
    assert tokenizer_calls, "another tokenizer must tokenise again"

    tokenizer_calls.clear()
    _tokenise(kind, examples.select(range(50)), tiny_tokenizer)
    assert tokenizer_calls, "other data must be tokenised"

    tokenizer_calls.clear()
    _tokenise(kind, examples, tiny_tokenizer, overwrite_cache=True)
    assert tokenizer_calls, "--overwrite_cache must tokenise again"

    tokenizer_calls.clear()
    again = _tokenise(kind, examples, tiny_tokenizer)
    assert tokenizer_calls == [] and again.to_dict() == base.to_dict()
    assert len(list(cache_home.glob("*.arrow"))) == 4


def test_tokenizer_fingerprint_ignores_call_state_and_reloading(tiny_model_dir, tiny_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    from utils.cache import tokenizer_fingerprint

    fresh = AutoTokenizer.from_pretrained(tiny_model_dir)
    before = tokenizer_fingerprint(fresh)
    fresh("a b c", "d e", truncation=True, max_length=7, padding="max_length")  # leaves state in the backend
    assert tokenizer_fingerprint(fresh) == before
    fresh.save_pretrained(tmp_path / "saved")
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(tmp_path / "saved")) == before
    fresh.padding_side = "left"
    assert tokenizer_fingerprint(fresh) != before


def test_tagging_cache_with_num_proc(cache_home, tokenizer_calls, tiny_tokenizer):
    """Shards written with num_proc=2 are loaded by a later run without num_proc, without tokenising."""
    task, _ = get_task("panx")
    kind = get_kind(task)
    examples, _ = load_split(task, "dev", "af", list(task.labels), data_dir=str(XTREME_DIR))
    first = kind.features(examples, tiny_tokenizer, PreprocessingArguments(max_seq_length=32,
                                                                           preprocessing_num_workers=2), "test")
    assert len(list(cache_home.glob("*_of_00002.arrow"))) == 2
    tokenizer_calls.clear()
    second = kind.features(examples, tiny_tokenizer, PreprocessingArguments(max_seq_length=32), "test")
    assert tokenizer_calls == []
    assert second.to_dict() == first.to_dict()
