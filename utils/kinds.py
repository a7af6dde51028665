"""One adapter per task kind: features, collator, and the evaluation of one dataset (a language, or English dev).

The scripts are written once against `KindAdapter`; a new kind is one more class that fits it (no base class).
`evaluate` returns the metrics (None for unlabelled data) and the predictions in XTREME's submission format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from metrics.xtreme.xtreme_metrics import qa_scores

from .cache import cached_map
from .errors import XtremeError
from .metrics import classification_metrics, tagging_metrics
from .preprocess import classification_features, multiple_choice_features, reassemble_tagging, tagging_features
from .qa import postprocess_qa_predictions, prepare_eval_features, prepare_train_features
from .qa_metrics import squad_v2_scores
from .tasks import CLASSIFICATION, MULTIPLE_CHOICE, QA, TAGGING
from .training import predict_in_order


def argmax_logits(logits, labels):
    """Keep only predicted ids on the way out of the model (a 1,363-tag CCG head would not fit otherwise)."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(dim=-1)


def pad_multiple(training_args) -> int | None:
    return 8 if training_args.fp16 or training_args.bf16 else None


def _map(dataset, function, args, desc: str, **kwargs):
    """Batched map, cached across runs and scripts by data + tokenizer + arguments (see utils/cache.py)."""
    return cached_map(dataset, function, batched=True, remove_columns=dataset.column_names, desc=desc,
                      num_proc=args.preprocessing_num_workers, overwrite_cache=args.overwrite_cache, **kwargs)


class KindAdapter(Protocol):
    """What the scripts need of a task kind: its features, collator and the evaluation of one dataset."""

    default_max_seq_length: int
    text_segments: int  # 2: its inputs are text pairs (the room --max_seq_length must leave for text)
    preprocess_logits: Callable | None  # applied to the logits on the way out of the model (None: kept as they are)
    prediction_suffix: str  # of its predictions files in XTREME's submission layout

    def features(self, dataset, tokenizer, args, desc: str, train: bool = False): ...

    def collator(self, tokenizer, training_args): ...

    def evaluate(self, trainer, examples, features, task, lang: str, labels, args) -> tuple[dict | None, str]:
        """(metrics, None for unlabelled data; the predictions file text)."""


def padding_collator(tokenizer, training_args):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(training_args))


def evaluate_labels(trainer, examples, features, labels) -> tuple[dict | None, str]:
    """One predicted label per example, written one name per line (classification, multiple choice)."""
    predictions = predict_in_order(trainer, features)
    metrics = classification_metrics(predictions, examples["label"]) if "label" in examples.column_names else None
    return metrics, "".join(f"{labels[p]}\n" for p in predictions)


class Classification:
    """Sentence(-pair) classification (XNLI, PAWS-X, MNLI, QQP, ...)."""

    default_max_seq_length = 128
    text_segments = 2  # sentence pairs (a single sentence needs less room)
    preprocess_logits = staticmethod(argmax_logits)
    prediction_suffix = ".tsv"

    def features(self, dataset, tokenizer, args, desc: str, train: bool = False):
        return _map(dataset, classification_features, args, desc,
                    fn_kwargs={"tokenizer": tokenizer, "max_seq_length": args.max_seq_length})

    def collator(self, tokenizer, training_args):
        return padding_collator(tokenizer, training_args)

    def evaluate(self, trainer, examples, features, task, lang, labels, args):
        return evaluate_labels(trainer, examples, features, labels)


class Tagging:
    """One tag per word, on its first sub-token (PAN-X, UD-POS, CCG); predictions one tag per line."""

    default_max_seq_length = 128
    text_segments = 1
    preprocess_logits = staticmethod(argmax_logits)
    prediction_suffix = ".tsv"

    def features(self, dataset, tokenizer, args, desc: str, train: bool = False):
        return _map(dataset, tagging_features, args, desc, with_indices=True,
                    fn_kwargs={"tokenizer": tokenizer, "max_seq_length": args.max_seq_length})

    def collator(self, tokenizer, training_args):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_multiple(training_args))

    def evaluate(self, trainer, examples, features, task, lang, labels, args):
        predicted = reassemble_tagging(features, predict_in_order(trainer, features))
        if len(predicted) != len(examples):
            raise XtremeError(f"{task.name} {lang}: {len(examples) - len(predicted)} sentence(s) produced no features")
        predicted = [[labels[t] for t in predicted[i]] for i in range(len(examples))]
        metrics = None
        if "tags" in examples.column_names:
            gold = [[labels[t] for t in tags] for tags in examples["tags"]]
            metrics = tagging_metrics(gold, predicted, metric=task.metric)
        return metrics, "".join("".join(f"{tag}\n" for tag in sentence) + "\n" for sentence in predicted)


class QuestionAnswering:
    """Extractive span QA over overlapping context windows (SQuAD, XQuAD, MLQA, TyDiQA-GoldP)."""

    default_max_seq_length = 384
    text_segments = 2  # question and context
    preprocess_logits = None
    prediction_suffix = ".json"

    def features(self, dataset, tokenizer, args, desc: str, train: bool = False):
        window = {"tokenizer": tokenizer, "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride,
                  "max_query_length": args.max_query_length}
        features = _map(dataset, prepare_train_features if train else prepare_eval_features, args, desc,
                        fn_kwargs=window)
        return features.map(lambda b: {"length": [sum(m) for m in b["attention_mask"]]}, batched=True,
                            desc="Measuring windows")

    def collator(self, tokenizer, training_args):
        return padding_collator(tokenizer, training_args)

    def evaluate(self, trainer, examples, features, task, lang, labels, args):
        start_logits, end_logits = predict_in_order(trainer, features)
        spans, null_diffs = postprocess_qa_predictions(examples, features, start_logits, end_logits,
                                                       n_best_size=args.n_best_size,
                                                       max_answer_length=args.max_answer_length)
        references = dict(zip(examples["id"], (a["text"] for a in examples["answers"])))
        metrics, predictions = None, spans
        if task.version_2_with_negative:
            # SQuAD 2.0: "" where null score - best span score > threshold (postprocess_qa_predictions' rule). The
            # metric gets the best spans with the null differences, so it also reports the dev-optimal threshold
            # (best_f1_thresh) for --null_score_diff_threshold; its exact/f1 are those of `predictions`.
            threshold = args.null_score_diff_threshold
            predictions = {qid: "" if null_diffs[qid] > threshold else text for qid, text in spans.items()}
            metrics = squad_v2_scores(spans, references, na_probs=null_diffs, null_threshold=threshold)
            metrics["score"] = (metrics["exact"] + metrics["f1"]) / 2
        elif any(references.values()):
            try:
                metrics = qa_scores(task.metric, predictions, references, lang)
            except ValueError as err:
                raise XtremeError(f"task {task.name}, {lang}: {err}") from None
            metrics["score"] = (metrics["exact_match"] + metrics["f1"]) / 2
        return metrics, json.dumps(predictions, ensure_ascii=False, indent=1) + "\n"


class MultipleChoiceCollator:
    """Pads a batch of multiple-choice features to [batch, num_choices, longest pair in the batch]."""

    model_inputs = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer, self.pad_to_multiple_of = tokenizer, pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        keys = [k for k in self.model_inputs if k in features[0]]
        num_choices = len(features[0]["input_ids"])
        if any(len(f["input_ids"]) != num_choices for f in features):
            raise XtremeError("multiple choice: examples of one batch have different numbers of choices")
        flat = [{k: f[k][i] for k in keys} for f in features for i in range(num_choices)]
        batch = self.tokenizer.pad(flat, padding=True, pad_to_multiple_of=self.pad_to_multiple_of,
                                   return_tensors="pt")
        batch = {k: v.view(len(features), num_choices, -1) for k, v in batch.items()}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch


class MultipleChoice:
    """One score per (context, choice) pair, softmax over the choices (HellaSwag, CommonsenseQA, Cosmos QA).

    Labels are the task's choice names ("0".."3", "A".."E"), predictions are written one name per line.
    """

    default_max_seq_length = 128
    text_segments = 2  # context and choice
    preprocess_logits = staticmethod(argmax_logits)
    prediction_suffix = ".tsv"

    def features(self, dataset, tokenizer, args, desc: str, train: bool = False):
        return _map(dataset, multiple_choice_features, args, desc,
                    fn_kwargs={"tokenizer": tokenizer, "max_seq_length": args.max_seq_length})

    def collator(self, tokenizer, training_args):
        return MultipleChoiceCollator(tokenizer, pad_to_multiple_of=pad_multiple(training_args))

    def evaluate(self, trainer, examples, features, task, lang, labels, args):
        return evaluate_labels(trainer, examples, features, labels)


KINDS: dict[str, KindAdapter] = {CLASSIFICATION: Classification(), TAGGING: Tagging(), QA: QuestionAnswering(),
                                  MULTIPLE_CHOICE: MultipleChoice()}


def get_kind(task, args=None) -> KindAdapter:
    """The task's adapter; fills `args.max_seq_length` with the kind's default when it is unset."""
    if task.kind not in KINDS:
        raise XtremeError(f"task {task.name}: {task.kind} tasks are not supported by this script")
    kind = KINDS[task.kind]
    if args is not None and args.max_seq_length is None:
        args.max_seq_length = kind.default_max_seq_length
    return kind


def dev_evaluator(kind, task, labels, dev, dev_features, args):
    """The English-dev evaluation used for checkpoint selection: phase 3's code on the training language."""
    if dev is None:
        return None
    def evaluate(trainer):
        metrics, _ = kind.evaluate(trainer, dev, dev_features, task, task.train_language, labels, args)
        return {**metrics, "samples": len(dev)}
    return evaluate


def check_max_seq_length(kind, tokenizer, model, args) -> None:
    """`--max_seq_length` must fit the model's positions and leave room for text besides the special tokens."""
    from .modeling import model_positions

    positions = model_positions(model, tokenizer)
    if positions is not None and args.max_seq_length > positions:
        raise XtremeError(f"--max_seq_length {args.max_seq_length}: beyond the {positions} positions of the model "
                          f"({tokenizer.name_or_path}); pass {positions} or less")
    special = tokenizer.num_special_tokens_to_add(pair=kind.text_segments == 2)
    if args.max_seq_length < special + kind.text_segments:
        raise XtremeError(f"--max_seq_length {args.max_seq_length}: leaves no room for text ({special} special "
                          f"tokens per input); pass at least {special + kind.text_segments}")


def fit_task(kind, task, labels, model, tokenizer, train, dev, data_args, training_args, run_dir):
    """Tokenise a task's English train/dev sets and train on them with dev-set checkpoint selection; LoRA
    adapters, if any, are merged afterwards so `trainer.model` saves as a plain checkpoint."""
    from .modeling import merge_lora
    from .training import fit

    check_max_seq_length(kind, tokenizer, model, data_args)
    with training_args.main_process_first(desc="tokenisation"):
        train_features = kind.features(train, tokenizer, data_args, "Tokenising the training set", train=True)
        dev_features = kind.features(dev, tokenizer, data_args, "Tokenising the dev set") if dev else None
    trainer, metrics = fit(model, tokenizer, train_features, training_args, run_dir,
                           data_collator=kind.collator(tokenizer, training_args),
                           evaluate_dev=dev_evaluator(kind, task, labels, dev, dev_features, data_args),
                           dev_features=dev_features, preprocess_logits=kind.preprocess_logits)
    merge_lora(trainer)
    return trainer, metrics
