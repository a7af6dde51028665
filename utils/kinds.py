"""One adapter per task kind: features, collator, dev metrics, and evaluation of one language.

The scripts are written once against this interface; a new kind (QA, multiple choice) is one more adapter.
"""

from __future__ import annotations

from .errors import XtremeError
from .metrics import classification_metrics, tagging_metrics
from .preprocess import classification_features, reassemble_tagging, tagging_features
from .tasks import CLASSIFICATION, TAGGING
from .training import predict_in_order


def argmax_logits(logits, labels):
    """Keep only predicted ids on the way out of the model (a 1,363-tag CCG head would not fit otherwise)."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(dim=-1)


def pad_multiple(training_args) -> int | None:
    return 8 if training_args.fp16 or training_args.bf16 else None


class Classification:
    preprocess_logits = staticmethod(argmax_logits)

    def features(self, dataset, tokenizer, data_args, desc: str):
        return dataset.map(classification_features, batched=True, remove_columns=dataset.column_names,
                           num_proc=data_args.preprocessing_num_workers,
                           load_from_cache_file=not data_args.overwrite_cache, desc=desc,
                           fn_kwargs={"tokenizer": tokenizer, "max_seq_length": data_args.max_seq_length})

    def collator(self, tokenizer, training_args):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(training_args))

    def compute_metrics(self, labels: list[str], dev_features, metric: str):
        return lambda p: classification_metrics(p.predictions, p.label_ids)

    def evaluate(self, trainer, labels: list[str], examples, features, metric: str):
        predictions = predict_in_order(trainer, features)
        metrics = classification_metrics(predictions, examples["label"]) if "label" in examples.column_names \
            else None
        return metrics, [labels[p] for p in predictions]


class Tagging:
    preprocess_logits = staticmethod(argmax_logits)

    def features(self, dataset, tokenizer, data_args, desc: str):
        return dataset.map(tagging_features, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           num_proc=data_args.preprocessing_num_workers,
                           load_from_cache_file=not data_args.overwrite_cache, desc=desc,
                           fn_kwargs={"tokenizer": tokenizer, "max_seq_length": data_args.max_seq_length})

    def collator(self, tokenizer, training_args):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_multiple(training_args))

    def compute_metrics(self, labels: list[str], dev_features, metric: str):
        def compute(p):
            predicted = reassemble_tagging(dev_features, p.predictions)
            gold = reassemble_tagging(dev_features, p.label_ids)
            return tagging_metrics(*self._names(labels, gold, predicted), metric=metric)
        return compute

    def evaluate(self, trainer, labels: list[str], examples, features, metric: str):
        predicted = reassemble_tagging(features, predict_in_order(trainer, features))
        if len(predicted) != len(examples):
            raise XtremeError(f"{len(examples) - len(predicted)} sentence(s) produced no features")
        metrics = None
        if "tags" in examples.column_names:
            gold = dict(enumerate(examples["tags"]))
            metrics = tagging_metrics(*self._names(labels, gold, predicted), metric=metric)
        lines = []
        for sentence in range(len(examples)):
            lines.extend(labels[t] for t in predicted[sentence])
            lines.append("")
        return metrics, lines

    @staticmethod
    def _names(labels, gold: dict, predicted: dict):
        ids = sorted(gold)
        return ([[labels[t] for t in gold[i]] for i in ids], [[labels[t] for t in predicted[i]] for i in ids])


KINDS = {CLASSIFICATION: Classification(), TAGGING: Tagging()}


def get_kind(task):
    if task.kind not in KINDS:
        raise XtremeError(f"task {task.name}: {task.kind} tasks are not supported by this script yet")
    return KINDS[task.kind]
