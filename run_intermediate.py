#!/usr/bin/env python
"""Phase 1: train a pretrained model on an English intermediate task.

The output dir holds the trained ENCODER as a plain `AutoModel` checkpoint with its tokenizer (what
`run_target.py` and the retrieval evaluation take as `--model_name_or_path`) and the task head under
`heads/{task}/`, plus `all_results.json` with the intermediate task's dev metrics.

    python run_intermediate.py --model_name_or_path xlm-roberta-large --task mnli --do_train --output_dir runs/mnli
"""

import logging
from dataclasses import dataclass, field

from transformers import set_seed

from utils.data import load_train_and_dev
from utils.errors import run_main
from utils.kinds import fit_task, get_kind
from utils.modeling import load_model, load_tokenizer, save_encoder
from utils.multitask import SAMPLERS, run_multitask
from utils.tasks import PAPER_INTERMEDIATE_TASKS, get_task
from utils.training import (DataArguments, ModelArguments, XtremeTrainingArguments, parse_args, prepare_run,
                            setup_logging)

logger = logging.getLogger(__name__)
ALL_TASKS = ",".join(PAPER_INTERMEDIATE_TASKS)


@dataclass
class IntermediateDataArguments(DataArguments):
    tasks: str | None = field(default=None, metadata={
        "help": "Multi-task: comma-separated tasks sharing one encoder (one head each; 'mlm' = masked LM on "
                f"--mlm_files; 'all' = {ALL_TASKS})."})
    sampling: str = field(default="proportional", metadata={"help": "Task sampling.", "choices": list(SAMPLERS)})
    task_cap: int | None = field(default=None, metadata={"help": "capped sampling: examples counted per task."})
    sampling_temperature: float = field(default=2.0, metadata={"help": "temperature sampling: T."})
    mlm_files: str | None = field(default=None, metadata={"help": "MLM text files, comma-separated."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked for MLM."})

    def __post_init__(self):
        if isinstance(self.tasks, str):
            self.tasks = [t.strip() for t in self.tasks.replace("all", ALL_TASKS).split(",") if t.strip()]
        if isinstance(self.mlm_files, str):
            self.mlm_files = [f.strip() for f in self.mlm_files.split(",") if f.strip()]


def main():
    model_args, data_args, training_args = parse_args(ModelArguments, IntermediateDataArguments,
                                                      XtremeTrainingArguments)
    setup_logging(training_args)
    if data_args.tasks:
        run_dir = prepare_run("intermediate", ",".join(data_args.tasks), model_args, data_args, training_args)
        set_seed(training_args.seed)
        run_dir.finish(run_multitask(data_args.tasks, model_args, data_args, training_args, run_dir))
        return
    task, spec_files = get_task(data_args.task, data_args.task_spec)
    kind = get_kind(task, data_args)
    run_dir = prepare_run("intermediate", task.name, model_args, data_args, training_args)
    set_seed(training_args.seed)

    train, dev, labels = load_train_and_dev(task, data_args, model_args, spec_files)
    tokenizer = load_tokenizer(model_args)
    model = load_model(model_args, task.kind, labels, pad_token_id=tokenizer.pad_token_id)
    trainer, metrics = fit_task(kind, task, labels, model, tokenizer, train, dev, data_args, training_args, run_dir)
    save_encoder(trainer, training_args.output_dir, task.name, tokenizer)
    run_dir.finish(metrics)


if __name__ == "__main__":
    run_main(main)
