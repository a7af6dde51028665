"""What every script shares around `Trainer`: arguments, defaults, logging, output dirs, resuming, prediction.

`XtremeTrainingArguments` is `TrainingArguments` with this project's defaults (the paper's optimiser settings,
per-epoch evaluation with the best English-dev checkpoint kept, length-grouped batches); every one of them can
still be overridden on the command line or in the JSON file.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from .errors import BEFORE_DISTRIBUTED_END, XtremeError
from .files import atomic_write_json, load_json
from .results import RUN_INFO, environment_info

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Hub id or the output dir of the previous phase."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub models and datasets are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit."})
    token: str | None = field(default=None, metadata={"help": "Hub token for gated models."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run model code from the Hub (off: safe)."})
    use_lora: bool = field(default=False, metadata={
        "help": "Train LoRA adapters on the backbone's linear layers (peft) and the task head fully; the adapters "
                "are merged into the saved model, so the next phase loads a plain checkpoint."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})


@dataclass
class PreprocessingArguments:
    task: str | None = field(default=None, metadata={"help": "A registered task (see README)."})
    task_spec: str | None = field(default=None, metadata={"help": "YAML/JSON spec of your own task."})
    data_dir: str | None = field(default=None, metadata={
        "help": "XTREME's downloaded layout (e.g. DIR/xnli/dev-de.tsv). Without it data comes from the Hub."})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "Longest tokenised input (tagging: per segment; QA: per window). Default 384 for QA, else 128."})
    doc_stride: int = field(default=128, metadata={"help": "QA: overlap between context windows, in tokens."})
    max_query_length: int = field(default=64, metadata={"help": "QA: questions are cut to this many tokens."})
    n_best_size: int = field(default=20, metadata={"help": "QA: start/end candidates per window."})
    max_answer_length: int = field(default=30, metadata={"help": "QA: longest answer, in tokens."})
    null_score_diff_threshold: float = field(default=0.0, metadata={
        "help": "SQuAD 2.0: answer \"\" when the null score exceeds the best span's score by more than this."})
    skip_misaligned_answers: bool = field(default=False, metadata={
        "help": "QA: drop (and count) gold answers not found at their answer_start instead of stopping."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N examples per eval set."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-tokenise even if a cached result exists."})


@dataclass
class DataArguments(PreprocessingArguments):
    train_file: list[str] | None = field(default=None, metadata={
        "help": "Local training file(s) in the task's format (tsv, jsonl, conllu, ...), pooled; overrides the Hub."})
    validation_file: list[str] | None = field(default=None, metadata={"help": "Local English dev file(s)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start over in an output dir that holds another run (or the same one): nothing of it is resumed, and "
                "its checkpoints and results are deleted when training starts."})


@dataclass
class XtremeTrainingArguments(TrainingArguments):
    # The paper's settings (jiant): lr 1e-5, 10% warmup, AdamW weight decay 0.01.
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (paper: 1e-5)."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup steps, or a fraction of training if < 1."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    # Model selection on the English dev set, as XTREME and the paper do.
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the dev set."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best dev checkpoint."})
    metric_for_best_model: str | None = field(default="score", metadata={"help": "Dev metric for selection."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Whether higher metric is better."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best is kept too)."})
    # Speed: batches of similar length, dynamic padding.
    train_sampling_strategy: str = field(default="group_by_length", metadata={"help": "Training batch order."})

    def __post_init__(self):
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise XtremeError(f"--{name} {getattr(self, name)}: must be 1 or more")
        if (self.bf16 or self.bf16_full_eval) and not self.use_cpu and not bf16_supported():
            raise XtremeError("--bf16: this machine's accelerator has no bfloat16 support (it needs e.g. an NVIDIA "
                              "Ampere or newer GPU); use --fp16 instead, or --use_cpu")
        super().__post_init__()  # sets up the device (and the process group) first
        if self.deepspeed and self.use_cpu:
            # On accelerators accelerate starts DeepSpeed's comm layer; with --use_cpu it only starts torch's, and
            # ZeRO-3's zero.Init in from_pretrained then takes the world for 1 process (batch-size assertion).
            import torch.distributed
            from deepspeed import comm

            if torch.distributed.is_initialized() and not comm.is_initialized():
                comm.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)
        # Speed: TF32 matmuls on GPUs that have them (Ampere+), unless --tf32 false or --use_cpu.
        if self.tf32 is None and not self.use_cpu:
            from transformers.utils.import_utils import enable_tf32, is_torch_tf32_available

            if is_torch_tf32_available():
                self.tf32 = True
                enable_tf32(True)


def bf16_supported() -> bool:
    """Whether the accelerator computes in bfloat16 (the check `TrainingArguments` makes, read through its module)."""
    from transformers import training_args

    return training_args.is_torch_bf16_gpu_available() or training_args.is_torch_xla_available()


def parse_args(*dataclasses):
    """`HfArgumentParser` over the dataclasses; a single `.json`/`.yaml` argument is read as the whole config."""
    config_file = sys.argv[1] if len(sys.argv) == 2 and sys.argv[1].endswith((".json", ".yaml", ".yml")) else None
    if config_file and not Path(config_file).is_file():
        raise XtremeError(f"{config_file}: config file not found")
    wants_deepspeed = any(a.startswith("--deepspeed") for a in sys.argv) or (
        config_file is not None and "deepspeed" in Path(config_file).read_text(encoding="utf-8"))
    if wants_deepspeed and "WORLD_SIZE" not in os.environ:
        single_process_env()
    parser = HfArgumentParser(dataclasses)
    try:
        if config_file and config_file.endswith(".json"):
            return parser.parse_json_file(json_file=str(Path(sys.argv[1]).resolve()))
        if config_file:
            return parser.parse_yaml_file(yaml_file=str(Path(sys.argv[1]).resolve()))
        return parser.parse_args_into_dataclasses()
    except ValueError as err:  # unknown or removed arguments in a config file
        raise XtremeError(str(err).splitlines()[0])


def single_process_env() -> None:
    """DeepSpeed started by plain `python` (no launcher) needs a one-process world, else it asks for mpi4py."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(port)), ("RANK", "0"),
                       ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, value)


def setup_logging(training_args: TrainingArguments) -> None:
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    for lib_logger in (logging.getLogger("utils"), logging.getLogger("__main__")):
        lib_logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger.warning("Process rank: %s, device: %s, n_gpu: %s, distributed training: %s, fp16: %s, bf16: %s",
                   training_args.local_process_index, training_args.device, training_args.n_gpu,
                   training_args.parallel_mode.value == "distributed", training_args.fp16, training_args.bf16)


# What defines the model a run trains, besides the model, tokenizer and data arguments: an output dir resumes only a
# run whose values are the same. Logging, saving, evaluation batch sizes, how the global batch is split over
# processes and accumulation steps, and speed settings may change between the attempts.
TRAINING_DEFINITION = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
                       "num_train_epochs", "max_steps", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps",
                       "optim", "optim_args", "label_smoothing_factor", "seed", "data_seed", "train_sampling_strategy",
                       "fp16", "bf16", "eval_strategy", "eval_steps", "load_best_model_at_end",
                       "metric_for_best_model", "greater_is_better")
NOT_DEFINING = {"cache_dir", "token", "trust_remote_code", "overwrite_output_dir", "overwrite_cache",
                "preprocessing_num_workers"}
PATH_ARGUMENTS = {"model_name_or_path", "tokenizer_name", "task_spec", "data_dir", "train_file", "validation_file",
                  "mlm_files"}
# What a training run writes besides the model files, removed when `--overwrite_output_dir` starts it over.
RUN_OUTPUTS = ("checkpoint-*", "heads", "results", "predictions", "all_results.json", "train_results.json",
               "eval_results.json", "trainer_state.json")
START_OVER = ("pass --overwrite_output_dir to start over (its checkpoints and results are deleted when training "
              "starts)")


def run_arguments(model_args, data_args, training_args) -> dict:
    """The arguments that define the trained model (see TRAINING_DEFINITION), as JSON values; local paths absolute."""
    from dataclasses import fields
    from enum import Enum

    def value(name, v):
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, (list, tuple)):
            return [value(name, item) for item in v]
        if name in PATH_ARGUMENTS and isinstance(v, str) and os.path.exists(v):
            return os.path.abspath(v)
        return v

    arguments = {f.name: getattr(args, f.name) for args in (model_args, data_args) for f in fields(args)
                 if f.name not in NOT_DEFINING}
    arguments.update({name: getattr(training_args, name) for name in TRAINING_DEFINITION})
    arguments["train_batch_size"] = (training_args.per_device_train_batch_size * training_args.world_size
                                     * training_args.gradient_accumulation_steps)
    return {name: value(name, v) for name, v in arguments.items()}


def check_training_args(training_args) -> None:
    """Settings under which a phase script would not train (or not train at all as asked) are refused."""
    script = Path(sys.argv[0]).name
    if not training_args.do_train:
        raise XtremeError(f"{script} trains a model and was not given --do_train; pass it (to evaluate a trained "
                          "model, use run_xtreme_eval.py)")
    if training_args.learning_rate < 0:
        raise XtremeError(f"--learning_rate {training_args.learning_rate}: must be 0 or more")
    if training_args.max_steps == 0 or training_args.max_steps < -1:
        raise XtremeError(f"--max_steps {training_args.max_steps}: must be at least 1 optimisation step (or -1 to "
                          "train --num_train_epochs)")
    if training_args.max_steps < 0 and training_args.num_train_epochs <= 0:
        raise XtremeError(f"--num_train_epochs {training_args.num_train_epochs:g}: must be more than 0 (at least "
                          "one optimisation step)")


def check_output_location(output_dir: Path) -> None:
    """The output dir must be a directory we can write, or creatable under one."""
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == output_dir else f"is under {existing}, a file"
        raise XtremeError(f"output dir {output_dir} {where}; expected a directory (or a new path)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise XtremeError(f"output dir {output_dir}: {existing} is not writable; choose a dir you can write to")


@dataclass
class RunDir:
    """The output dir of a training run: where it resumes from, and the run marker (`RUN_INFO`) saying what it holds.

    The dir is claimed (marker written, a start over's old outputs removed) only when training starts, so a run that
    fails before leaves the dir as it was.
    """

    path: Path
    run: dict
    resume: str | None
    start_over: bool
    should_save: bool

    def claim(self) -> None:
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # every rank has looked at the dir before it changes
        if self.should_save:
            if self.start_over:
                remove_run_outputs(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path / RUN_INFO, {**self.run, "finished": False,
                                                     "environment": environment_info()})
        PartialState().wait_for_everyone()

    def finish(self, results: dict) -> None:
        if self.should_save:
            path = self.path / RUN_INFO
            atomic_write_json(path, {**load_json(path), **self.run, "finished": True, "results": results})


def remove_run_outputs(output_dir: Path) -> None:
    import shutil

    for pattern in RUN_OUTPUTS:
        for path in sorted(output_dir.glob(pattern)):
            logger.info("Starting over (--overwrite_output_dir): removing %s", path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def prepare_run(phase: str, task: str, model_args, data_args, training_args) -> RunDir:
    """Check the training settings and the output dir (reading only); return where the run resumes from.

    A dir holding an unfinished run of the same phase, task and arguments (`run_arguments`) resumes from its last
    complete checkpoint. A finished run, another run, or files that are not ours need `--overwrite_output_dir`,
    which starts over: nothing of the dir's previous run is resumed, and its checkpoints and results are deleted
    when the new run starts training.
    """
    from .modeling import check_model_dir

    check_training_args(training_args)
    check_model_dir(model_args.model_name_or_path)
    output_dir = Path(training_args.output_dir)
    check_output_location(output_dir)
    run = {"phase": phase, "task": task, "arguments": run_arguments(model_args, data_args, training_args)}
    resume, start_over = training_args.resume_from_checkpoint, data_args.overwrite_output_dir
    if start_over and resume is not None:
        raise XtremeError("--overwrite_output_dir starts over and --resume_from_checkpoint resumes: pass one of them")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not start_over:
        check_previous_run(output_dir, run, explicit_resume=resume is not None)
        if resume is None:
            resume = last_complete_checkpoint(output_dir)
        if resume:
            logger.info("Resuming from %s (an unfinished run of the same arguments; --overwrite_output_dir starts "
                        "over)", resume)
    return RunDir(output_dir, run, resume, start_over, training_args.should_save)


def check_previous_run(output_dir: Path, run: dict, explicit_resume: bool) -> None:
    """Refuse a non-empty output dir unless it holds an unfinished run of `run` (or a finished one to resume from an
    explicit checkpoint)."""
    marker = output_dir / RUN_INFO
    previous = load_json(marker) if marker.is_file() else None
    if previous is None:
        raise XtremeError(f"output dir {output_dir} is not empty and holds no xtreme-inter run; choose another dir "
                          f"or {START_OVER}")
    if (previous.get("phase"), previous.get("task")) != (run["phase"], run["task"]):
        raise XtremeError(f"output dir {output_dir} holds another run ({previous.get('phase')} "
                          f"{previous.get('task')}); choose another dir or {START_OVER}")
    if explicit_resume:  # --resume_from_checkpoint: the user's choice, also with other arguments
        return
    if previous.get("finished"):
        raise XtremeError(f"output dir {output_dir} holds a finished {run['task']} run; choose another dir or "
                          f"{START_OVER}")
    before, now = previous.get("arguments"), run["arguments"]
    if before != now:
        before = before if isinstance(before, dict) else {}
        changed = [f"--{name} {before.get(name)} there, {now.get(name)} now"
                   for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name)]
        changed = "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")
        raise XtremeError(f"output dir {output_dir} holds a {run['task']} run with other arguments ({changed}); "
                          f"rerun with its arguments to resume it, choose another dir, or {START_OVER}")


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest `checkpoint-N` that was written to the end, or None.

    Trainer writes a checkpoint weights first, then optimizer, scheduler and RNG states, and `trainer_state.json`
    last (not atomically; `XtremeTrainer` makes every rank finish its files before it). A checkpoint counts as
    complete when that file parses and names step N, and the weights are there; a run killed while saving (or
    while deleting an old checkpoint) leaves an incomplete one, which is skipped.
    """
    checkpoints = sorted((p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                         key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for checkpoint in checkpoints:
        try:
            state = load_json(checkpoint / "trainer_state.json")
            complete = state.get("global_step") == int(checkpoint.name.split("-")[-1]) and any(
                (checkpoint / name).exists() for name in CHECKPOINT_WEIGHTS)
        except (OSError, XtremeError, AttributeError):
            complete = False
        if complete:
            return str(checkpoint)
        logger.warning("Skipping incomplete checkpoint %s (interrupted while it was saved or deleted)", checkpoint)
    return None


# Any of these shows that a checkpoint's weights were saved: plain/sharded/PEFT weights, or a DeepSpeed checkpoint
# (`latest` is written after its `global_step*` dir).
CHECKPOINT_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                      "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin", "latest")


_TRAINERS = weakref.WeakSet()


def release_deepspeed_engines() -> None:
    """Take the hooks of every DeepSpeed engine of our trainers off (`engine.destroy()`), before the process ends."""
    for trainer in list(_TRAINERS):
        if getattr(trainer, "deepspeed", None) is not None and hasattr(trainer.deepspeed, "destroy"):
            trainer.deepspeed.destroy()


BEFORE_DISTRIBUTED_END.append(release_deepspeed_engines)


class XtremeTrainer(Trainer):
    """`Trainer` that groups training batches by our precomputed `length` column, predicts in dataset order, and
    evaluates the dev set with the same code as every language of phase 3 (`evaluator(trainer) -> metrics`).

    Trainer drops unused columns before building its sampler, so it would re-measure every example; and its
    eval sampler shuffles under `group_by_length`, which would scramble predictions. We sort eval sets ourselves.

    The loss of an optimizer step is the mean over its whole global batch (every micro-batch of every rank) of what
    the model averages over: examples, labelled tokens (tagging, MLM) or QA windows. Trainer's own scaling assumes
    that a model taking `**kwargs` normalises by `num_items_in_batch` (and then skips the division by the
    accumulation steps); the encoders' heads and `ChoiceModel` take `**kwargs` but return a per-batch mean. So the
    model is never given `num_items_in_batch`, and `compute_loss` weights its per-batch mean by the micro-batch's
    share of the step's items: 1 x 32, 8 x 4 accumulated and 2 processes x 16 give the same losses, gradients and
    weights.
    """

    loss_is_scaled_for_ga = True  # compute_loss already divides by the items of the whole step

    def __init__(self, *args, evaluator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.evaluator = evaluator
        self.model_accepts_loss_kwargs = False  # never pass num_items_in_batch to the model: see the class doc
        _TRAINERS.add(self)  # see release_deepspeed_engines
        from .modeling import check_vocabulary

        check_vocabulary(self.processing_class, self.model)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The micro-batches of one optimizer step and the number of loss items in all of them, on every rank."""
        import torch

        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        batches = self.prepare_step(batches)
        items = sum((loss_items(batch) for batch in batches), torch.tensor(0)).to(device)
        if self.args.world_size > 1:
            items = self.accelerator.gather(items).sum()
        return batches, items

    def prepare_step(self, batches: list) -> list:
        """The micro-batches of a step as the model sees them (a subclass may draw inputs per step here)."""
        return batches

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        if num_items_in_batch is not None:  # training: this micro-batch's share of the step (DDP and DeepSpeed
            # average the ranks' gradients, hence x world size)
            items = loss_items(inputs).to(loss.device)
            loss = (loss if items else loss.nan_to_num()) * (items * self.args.world_size / num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir=None, state_dict=None):
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            from transformers import PreTrainedModel

            from .files import honour_umask

            model = self.accelerator.unwrap_model(self.model)
            if not isinstance(model, PreTrainedModel) and hasattr(model, "config"):  # ChoiceModel: its dir loads again
                model.config.save_pretrained(output_dir or self.args.output_dir)
            honour_umask(Path(output_dir or self.args.output_dir).glob("*.safetensors"))  # safetensors writes 0600

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        if self.evaluator is None or eval_dataset is not None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        start = time.time()
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.evaluator(self).items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _save_checkpoint(self, model, trial):
        try:
            super()._save_checkpoint(model, trial)
        except Exception as err:  # torch.save on a full disk says only "unexpected pos ...": name the cause
            from .errors import disk_full

            if isinstance(err, OSError) or not disk_full(err, self.args.output_dir):
                raise
            checkpoint = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(checkpoint)) from err

    def _save_rng_state(self, output_dir):
        # The last per-rank file of a checkpoint: wait for every rank before rank 0 writes trainer_state.json, the
        # file that marks the checkpoint complete (see `last_complete_checkpoint`).
        super()._save_rng_state(output_dir)
        self.accelerator.wait_for_everyone()

    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy == "group_by_length" and "length" in self.train_dataset.column_names:
            # Mega-batches of the GLOBAL batch (every rank's share of one optimizer step), so 2 ranks x 4 see the
            # same batches as 1 x 8; the order is drawn from (seed, epoch), so a resumed run replays it.
            global_batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochLengthGroupedSampler(global_batch, self.train_dataset["length"], seed)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        from torch.utils.data import SequentialSampler

        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` whose shuffle comes from a generator seeded with (seed, epoch), not the global RNG.

    Trainer's own sampler draws from the global torch RNG, whose state at the start of an epoch depends on the
    whole training before it (dropout, evaluation): a run resumed in a later epoch would see another order.
    """

    def __init__(self, batch_size: int, lengths, seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by Trainer (through accelerate) before every epoch
        self.epoch = epoch

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def loss_items(batch: dict):
    """What a model's loss averages over in a batch: labelled positions (labels other than -100: one per example
    for classification and multiple choice, per token for tagging and MLM), else one per example (QA windows)."""
    import torch

    if "labels" in batch:
        return batch["labels"].ne(-100).sum()
    return torch.tensor(len(batch["input_ids"]))


def sort_by_length(dataset):
    """The dataset sorted longest first (fewer pad tokens per batch) and the permutation that undoes it."""
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    return dataset.select(order), order


def predict_in_order(trainer, dataset):
    """Predict length-sorted; return the predictions (an array, or a tuple for QA) in the dataset's order."""
    sorted_dataset, order = sort_by_length(dataset)
    predictions = trainer.predict(sorted_dataset).predictions

    def restore(array):
        restored = np.empty_like(array)
        restored[order] = array
        return restored

    return tuple(map(restore, predictions)) if isinstance(predictions, tuple) else restore(predictions)


def fit(model, tokenizer, train_features, training_args, run_dir: RunDir, *, data_collator, evaluate_dev=None,
        dev_features=None, preprocess_logits=None, trainer_class=None, **trainer_kwargs):
    """Train with per-epoch English-dev evaluation (`evaluate_dev(trainer) -> metrics` over `dev_features`, both
    None without a dev set) and best-checkpoint selection on its `score`; log and save metrics as HF examples do.
    The output dir is claimed once everything is checked, just before training starts."""
    from transformers.trainer_utils import IntervalStrategy

    from .modeling import check_tokenizer_encodes

    check_tokenizer_encodes(tokenizer, train_features)
    if evaluate_dev is None:
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    trainer = (trainer_class or XtremeTrainer)(
        model=model, args=training_args, train_dataset=train_features, eval_dataset=dev_features,
        processing_class=tokenizer, data_collator=data_collator, preprocess_logits_for_metrics=preprocess_logits,
        evaluator=evaluate_dev, **trainer_kwargs)
    run_dir.claim()
    result = trainer.train(resume_from_checkpoint=run_dir.resume)
    metrics = {**result.metrics, "train_samples": len(train_features)}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if evaluate_dev is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    return trainer, metrics
