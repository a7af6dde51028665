#!/usr/bin/env python
"""Phase 2: fine-tune on the English training data of an XTREME target task.

`--model_name_or_path` is usually a phase-1 output dir (or a Hub checkpoint for the no-intermediate baseline).
The encoder is transferred and the task head starts fresh, as in Phang et al. (2020); the checkpoint is selected
on the English dev set and the best model is saved to `--output_dir` with its tokenizer and `all_results.json`.

    python run_target.py --model_name_or_path runs/mnli --task pawsx --do_train --output_dir runs/mnli-pawsx
"""

import logging
from dataclasses import dataclass, field

from transformers import set_seed

from utils.data import load_train_and_dev
from utils.errors import run_main
from utils.kinds import fit_task, get_kind
from utils.modeling import load_model, load_tokenizer
from utils.tasks import get_task
from utils.training import (DataArguments, ModelArguments, XtremeTrainingArguments, parse_args, prepare_run,
                            setup_logging)

logger = logging.getLogger(__name__)


@dataclass
class TargetDataArguments(DataArguments):
    keep_head: bool = field(default=False, metadata={
        "help": "Reuse a task head found in the model dir (shapes must match) instead of a fresh one."})


def main():
    model_args, data_args, training_args = parse_args(ModelArguments, TargetDataArguments, XtremeTrainingArguments)
    setup_logging(training_args)
    task, spec_files = get_task(data_args.task, data_args.task_spec)
    kind = get_kind(task, data_args)
    run_dir = prepare_run("target", task.name, model_args, data_args, training_args)
    set_seed(training_args.seed)

    train, dev, labels = load_train_and_dev(task, data_args, model_args, spec_files)
    tokenizer = load_tokenizer(model_args)
    model = load_model(model_args, task.kind, labels, fresh_head=not data_args.keep_head,
                       pad_token_id=tokenizer.pad_token_id)
    trainer, metrics = fit_task(kind, task, labels, model, tokenizer, train, dev, data_args, training_args, run_dir)
    trainer.save_model()
    run_dir.finish(metrics)


if __name__ == "__main__":
    run_main(main)
