#!/usr/bin/env python
"""Phase 3: zero-shot evaluation of a fine-tuned model on every XTREME language of its task.

The model is loaded once and evaluated language by language; after each one `{output_dir}/results/{task}.{split}.json`
(per-language metrics, the task average, counts, what produced them) is rewritten atomically and the predictions
are written in XTREME's submission layout, `{output_dir}/predictions/{task}/{split}-{lang}.tsv` (`.json` for QA).
`--languages all` means the languages the split has (udpos dev: 29 of the 33; the others are listed as not in
the split). A language whose file is missing is reported and skipped; a run that evaluates no language at all fails,
naming the file each one expected. `--output_dir` defaults to the model dir. `--resume` keeps the languages of a
results file written by the same evaluation (model path and weights, split, arguments).
Retrieval tasks (BUCC 2018, Tatoeba, a spec's) need no task head: they embed sentences with any encoder, e.g. a
phase-1 output dir.

    python run_xtreme_eval.py --model_name_or_path runs/mnli-pawsx --task pawsx --languages all --split test
"""

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

from utils.data import load_split
from utils.errors import MissingDataError, XtremeError, run_main
from utils.kinds import check_max_seq_length, get_kind
from utils.modeling import check_model_dir, check_vocabulary, hub_kwargs, load_model, load_tokenizer
from utils.results import (ResultsFile, environment_info, format_table, weights_fingerprint,
                           write_predictions)
from utils.retrieval import default_layer, embed_sentences, evaluate_retrieval
from utils.tasks import QA, RETRIEVAL, get_task
from utils.training import (ModelArguments, PreprocessingArguments, XtremeTrainer, XtremeTrainingArguments,
                            parse_args, setup_logging)

logger = logging.getLogger(__name__)


@dataclass
class EvalArguments(PreprocessingArguments):
    languages: str = field(default="all", metadata={"help": "'all' or a comma-separated list, e.g. de,fr,zh."})
    split: str = field(default="test", metadata={"help": "dev or test.", "choices": ["dev", "test"]})
    eval_file: str | None = field(default=None, metadata={"help": "A local file pattern with {lang}, instead."})
    resume: bool = field(default=False, metadata={
        "help": "Keep the languages already in the results file when the same evaluation wrote it (model path and "
                "weights, split, arguments); another one's is refused."})
    layer: int | None = field(default=None, metadata={
        "help": "Retrieval: index into output_hidden_states (0 = embeddings); default the middle layer. XTREME "
                "used 14 for XLM-R Large."})
    pooling: str = field(default="mean", metadata={"help": "Retrieval pooling.", "choices": ["mean", "cls", "last"]})
    block_size: int = field(default=512, metadata={"help": "Retrieval: queries per block of the k-NN search."})
    search_backend: str = field(default="torch", metadata={"help": "Retrieval k-NN search.",
                                                           "choices": ["torch", "faiss"]})
    labels_file: str | None = field(default=None, metadata={
        "help": "Nearest-neighbour retrieval (Tatoeba) with an English side in another order (XTREME's sorted "
                "layout): the labels file, a pattern with {lang}, e.g. labels/tatoeba/test-{lang}.tsv."})


@dataclass
class EvalTrainingArguments(XtremeTrainingArguments):
    eval_strategy: str = field(default="no", metadata={"help": "Unused here: no training."})
    save_strategy: str = field(default="no", metadata={"help": "Unused here: no training."})
    load_best_model_at_end: bool = field(default=False, metadata={"help": "Unused here: no training."})

    def __post_init__(self):
        self.output_dir_given = self.output_dir is not None
        super().__post_init__()


def head_evaluator(model_args, eval_args, training_args, task, spec_files):
    """Per-language evaluation of a model with a trained task head (phase-2 output), loaded once."""
    kind = get_kind(task, eval_args)
    tokenizer = load_tokenizer(model_args)
    model = load_model(model_args, task.kind, fresh_head=False, pad_token_id=tokenizer.pad_token_id)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if task.labels and task.kind != QA and sorted(labels) != sorted(task.labels):
        raise XtremeError(f"{model_args.model_name_or_path}: its head predicts {', '.join(labels)}, but task "
                          f"{task.name} has labels {', '.join(task.labels)}")
    check_max_seq_length(kind, tokenizer, model, eval_args)
    trainer = XtremeTrainer(model=model, args=training_args, processing_class=tokenizer,
                            data_collator=kind.collator(tokenizer, training_args),
                            preprocess_logits_for_metrics=kind.preprocess_logits)

    def evaluate(lang):
        examples, _ = load_split(task, eval_args.split, lang, labels, spec_files=spec_files,
                                 files=[eval_args.eval_file] if eval_args.eval_file else None,
                                 data_dir=eval_args.data_dir, max_samples=eval_args.max_eval_samples,
                                 hub_kwargs={"cache_dir": model_args.cache_dir, "token": model_args.token},
                                 skip_misaligned_answers=eval_args.skip_misaligned_answers)
        features = kind.features(examples, tokenizer, eval_args, f"Tokenising {lang}")
        metrics, predictions = kind.evaluate(trainer, examples, features, task, lang, labels, eval_args)
        return metrics, predictions, kind.prediction_suffix, len(examples)

    return evaluate


def retrieval_evaluator(model_args, eval_args, training_args, task, spec_files):
    """Per-language retrieval evaluation (BUCC, Tatoeba, a spec's) of any encoder (a phase-1 dir or a Hub
    checkpoint), loaded once."""
    import torch
    from transformers import AutoModel

    tokenizer = load_tokenizer(model_args)
    model = AutoModel.from_pretrained(model_args.model_name_or_path, **hub_kwargs(model_args))
    check_vocabulary(tokenizer, model)
    model.to(training_args.device)
    layer = eval_args.layer if eval_args.layer is not None else default_layer(model.config)
    dtype = torch.bfloat16 if training_args.bf16 else torch.float16 if training_args.fp16 else None
    logger.info("Embedding with hidden_states[%d], %s pooling", layer, eval_args.pooling)

    def embed(sentences):
        return embed_sentences(model, tokenizer, sentences, layer, eval_args.pooling,
                               training_args.per_device_eval_batch_size, eval_args.max_seq_length or 512, dtype)

    embed([])  # a --layer or --pooling the model cannot take stops here, once, not once per language
    search = {"block_size": eval_args.block_size, "backend": eval_args.search_backend}

    def evaluate(lang):
        labels_file = eval_args.labels_file.format(lang=lang) if eval_args.labels_file else None
        metrics, predictions, n = evaluate_retrieval(embed, task, lang, eval_args.split, eval_args.data_dir,
                                                     spec_files, labels_file, **search)
        return {**(metrics or {}), "layer": layer}, predictions, ".tsv", n

    return evaluate


# Evaluation arguments that change which languages run or how fast, never a number: left out of the record that
# --resume compares (task and split are the results file's own fields).
NOT_RECORDED = {"task", "split", "languages", "resume", "preprocessing_num_workers", "overwrite_cache", "block_size",
                "search_backend"}


def evaluation_record(model_args, eval_args, training_args) -> dict:
    """What the numbers of a results file depend on: the model (resolved path, or Hub id and revision, and a
    fingerprint of its weights), the tokenizer, the precision and every other evaluation argument."""
    model = Path(model_args.model_name_or_path)
    if model.is_dir():
        name, files = str(model.resolve()), model
    else:  # a Hub model: the cached snapshot it was loaded from
        from huggingface_hub import try_to_load_from_cache

        name = f"{model_args.model_name_or_path}@{model_args.model_revision}"
        config = try_to_load_from_cache(model_args.model_name_or_path, "config.json", cache_dir=model_args.cache_dir,
                                        revision=model_args.model_revision)
        files = Path(config).parent if isinstance(config, str) else None
    return {"model": name, "weights": weights_fingerprint(files) if files else None,
            "tokenizer": resolved(model_args.tokenizer_name), "bf16": training_args.bf16, "fp16": training_args.fp16,
            **{f.name: resolved(getattr(eval_args, f.name)) for f in fields(eval_args) if f.name not in NOT_RECORDED}}


def resolved(value):
    """A local path as its absolute form (the same files however they are spelt); any other value as it is."""
    return str(Path(value).resolve()) if isinstance(value, str) and value and Path(value).exists() else value


def main():
    model_args, eval_args, training_args = parse_args(ModelArguments, EvalArguments, EvalTrainingArguments)
    setup_logging(training_args)
    check_model_dir(model_args.model_name_or_path)
    task, spec_files = get_task(eval_args.task, eval_args.task_spec)
    in_split = task.languages_in(eval_args.split)
    languages = list(in_split) if eval_args.languages == "all" else eval_args.languages.split(",")
    task.check_languages(languages, eval_args.split)
    output_dir = training_args.output_dir if training_args.output_dir_given else model_args.model_name_or_path
    if not training_args.output_dir_given and not Path(output_dir).is_dir():
        raise XtremeError(f"{output_dir} is not a local dir: pass --output_dir for results of a Hub model")
    training_args.output_dir = output_dir  # the Trainer creates its output_dir: not a stray ./trainer_output

    if task.kind == RETRIEVAL:
        evaluate = retrieval_evaluator(model_args, eval_args, training_args, task, spec_files)
    else:
        evaluate = head_evaluator(model_args, eval_args, training_args, task, spec_files)
    main_process = training_args.process_index == 0
    meta = {"model": model_args.model_name_or_path, "metric": task.metric, "environment": environment_info(),
            "not_in_split": [lang for lang in task.languages if lang not in in_split]}
    results = ResultsFile(output_dir, task.name, eval_args.split, meta,
                          evaluation_record(model_args, eval_args, training_args), resume=eval_args.resume)
    skipped, failed, evaluated = {}, [], []
    for lang in languages:
        if results.done(lang):
            evaluated.append(lang)
            logger.info("%s %s: already in %s", task.name, lang, results.path)
            continue
        try:
            metrics, predictions, suffix, count = evaluate(lang)
        except XtremeError as err:
            logger.warning("%s %s: skipped (%s)", task.name, lang, err)
            skipped[lang] = str(err)
            if not isinstance(err, MissingDataError):
                failed.append(lang)
            continue
        if main_process:
            write_predictions(output_dir, task.name, f"{eval_args.split}-{lang}{suffix}", predictions)
            results.add(lang, {**(metrics or {}), "num_examples": count})
        evaluated.append(lang)
        logger.info("%s %s: %s", task.name, lang, metrics if metrics else "predictions written (no labels)")
    if not evaluated:  # nothing to report (on every rank): the output dir is left as it was
        raise XtremeError(f"task {task.name} ({eval_args.split}): no language could be evaluated; "
                          + "; ".join(f"{lang}: {reason}" for lang, reason in skipped.items()))
    if main_process:  # every rank evaluates (sharded) and skips alike; only the main one writes
        for lang, reason in skipped.items():
            results.skip(lang, reason)
        print(format_table(results.data))
        print(f"results: {results.path}")
    if failed:
        raise XtremeError(f"evaluation failed for {', '.join(failed)} (see 'skipped' in {results.path}); the other "
                          "languages' results are kept")


if __name__ == "__main__":
    run_main(main)
