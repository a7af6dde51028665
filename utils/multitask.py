"""Multi-task intermediate training: one shared encoder, one head per task, every batch from a single task.

`MultiTaskModel` holds the encoder once and, per task, the `AutoModelFor<Kind>` whose base model IS that shared
encoder; `forward(task=..., **inputs)` runs the task's model. `MultiTaskBatchSampler` draws a task per batch from
the sampling distribution (`task_probabilities`) and is deterministic given (seed, epoch), so a resumed run replays
exactly the batches of the interrupted one.
"""

from __future__ import annotations

import bisect
import inspect
import math

import torch
from torch import nn

from .errors import XtremeError

SAMPLERS = ("proportional", "capped", "temperature", "uniform")


def task_probabilities(sizes: dict[str, int], strategy: str = "proportional", cap: int | None = None,
                       temperature: float = 1.0) -> dict[str, float]:
    """Examples-proportional (n_i / N), capped (min(n_i, cap) / sum), temperature ((n_i / N)^(1/T), normalised)
    or uniform (1 / k) task probabilities."""
    if strategy == "proportional":
        weights = dict(sizes)
    elif strategy == "capped":
        if not cap or cap <= 0:
            raise XtremeError("--sampling capped needs --task_cap N (a positive number of examples)")
        weights = {t: min(n, cap) for t, n in sizes.items()}
    elif strategy == "temperature":
        if temperature <= 0:
            raise XtremeError(f"--sampling_temperature must be positive, got {temperature}")
        total = sum(sizes.values())
        weights = {t: (n / total) ** (1.0 / temperature) for t, n in sizes.items()}
    elif strategy == "uniform":
        weights = {t: 1.0 for t in sizes}
    else:
        raise XtremeError(f"unknown --sampling {strategy!r}; expected one of {', '.join(SAMPLERS)}")
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class MultiTaskBatchSampler(torch.utils.data.Sampler):
    """Batches of indices into the concatenation of the tasks' datasets, each batch from one task.

    Each task's examples are visited in a fresh random order (reshuffled when exhausted); an epoch is
    `num_batches` batches, whose tasks are drawn with `probabilities`.

    Each drawn batch is the GLOBAL batch of one optimizer step, `micro_batches * batch_size` examples (micro_batches
    = ranks x gradient accumulation steps), yielded as that many consecutive per-rank batches (accelerate deals them
    out round-robin): every rank trains the same task at every step (ZeRO-3 gathers the same parameters on all
    ranks; DDP averages one task's gradients), and 2 ranks x 4 or 4 x 2 accumulated see the examples of 1 x 8.
    """

    def __init__(self, sizes: list[int], batch_size: int, probabilities: list[float], num_batches: int, seed: int,
                 micro_batches: int = 1):
        self.sizes, self.batch_size, self.num_batches, self.seed = sizes, batch_size, num_batches, seed
        self.micro_batches = micro_batches
        self.probabilities = torch.tensor(probabilities, dtype=torch.double)
        self.offsets = [0] + list(torch.tensor(sizes).cumsum(0)[:-1].tolist())
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches * self.micro_batches

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        orders = [torch.randperm(n, generator=generator).tolist() for n in self.sizes]
        cursors = [0] * len(self.sizes)
        tasks = torch.multinomial(self.probabilities, self.num_batches, replacement=True, generator=generator)
        size = self.batch_size * self.micro_batches
        for task in tasks.tolist():
            batch = []
            while len(batch) < size:
                if cursors[task] == self.sizes[task]:
                    orders[task], cursors[task] = torch.randperm(self.sizes[task], generator=generator).tolist(), 0
                take = min(size - len(batch), self.sizes[task] - cursors[task])
                batch += [self.offsets[task] + i for i in orders[task][cursors[task]:cursors[task] + take]]
                cursors[task] += take
            for start in range(0, size, self.batch_size):  # the step's micro-batches
                yield batch[start:start + self.batch_size]


class TaskConcat(torch.utils.data.Dataset):
    """The tasks' feature datasets end to end; each item is tagged with its task name."""

    def __init__(self, datasets: dict):
        self.names, self.datasets = list(datasets), list(datasets.values())
        self.ends = list(torch.tensor([len(d) for d in self.datasets]).cumsum(0).tolist())

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, index: int) -> dict:
        task = bisect.bisect_right(self.ends, index)
        start = self.ends[task - 1] if task else 0
        return {**self.datasets[task][index - start], "task": self.names[task]}


class MultiTaskCollator:
    """Collates a single-task batch with that task's collator, keeping only the inputs its model takes."""

    def __init__(self, collators: dict, models: dict):
        self.collators = collators
        self.inputs = {t: set(inspect.signature(m.forward).parameters) | {"special_tokens_mask"}
                       for t, m in models.items()}

    def __call__(self, items: list[dict]) -> dict:
        task = items[0]["task"]
        if any(item["task"] != task for item in items):
            raise RuntimeError("a multi-task batch mixes tasks")
        batch = self.collators[task]([{k: v for k, v in item.items() if k in self.inputs[task]} for item in items])
        return {**batch, "task": task}


class MultiTaskModel(nn.Module):
    """A shared encoder and one task model per task built around it."""

    _keys_to_ignore_on_save = None  # read by Trainer when saving a model that is not a `PreTrainedModel`

    def __init__(self, encoder, heads: dict):
        super().__init__()
        self.encoder = encoder
        for model in heads.values():
            setattr(model, model.base_model_prefix, encoder)
            if hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None:
                model.tie_weights()  # an MLM head's decoder follows the shared input embeddings
        self.heads = nn.ModuleDict(heads)
        self.config = encoder.config

    def forward(self, task: str, **inputs):
        return self.heads[task](**inputs)

    def state_dict(self, *args, **kwargs):
        """Every tensor once, under its first name: the encoder's as `encoder.*`, then each head's own (tied
        tensors such as an MLM decoder sharing the embeddings are kept under the first name only)."""
        state, seen = {}, set()
        for key, value in super().state_dict(*args, **kwargs).items():
            if value.data_ptr() not in seen:
                seen.add(value.data_ptr())
                state[key] = value
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Loads what `state_dict()` saves: names it left out are aliases of tensors loaded under another name."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        aliases = set(super().state_dict()) - set(self.state_dict())
        missing = [k for k in result.missing_keys if k not in aliases]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"MultiTaskModel state dict: missing {missing}, unexpected {result.unexpected_keys}")
        return result._replace(missing_keys=missing)

    def head_state_dicts(self, state: dict) -> dict[str, dict]:
        """Per task, the head's own tensors out of a (gathered) `state_dict()`."""
        heads = {}
        for task, model in self.heads.items():
            prefix, base = f"heads.{task}.", model.base_model_prefix + "."
            heads[task] = {k[len(prefix):]: v for k, v in state.items()
                           if k.startswith(prefix) and not k[len(prefix):].startswith(base)}
        return heads


class TaskPredictor:
    """One task's dev-set predictions made by the multi-task trainer itself, with its DeepSpeed engine: a second
    Trainer on the task's model would wrap the shared (under ZeRO-3 partitioned) parameters in a second engine,
    whose hooks clash with the first. `kind.evaluate` needs only `predict`."""

    def __init__(self, trainer, task: str, task_model, preprocess_logits):
        from transformers.utils import find_labels

        self.trainer, self.task, self.preprocess_logits = trainer, task, preprocess_logits
        self.label_names = find_labels(type(task_model))  # Trainer reads them off the model's class

    def predict(self, dataset):
        trainer = self.trainer
        saved = trainer.label_names, trainer.preprocess_logits_for_metrics, trainer.task_losses, trainer.task_steps
        trainer.label_names, trainer.preprocess_logits_for_metrics = self.label_names, self.preprocess_logits
        trainer.task_losses, trainer.task_steps = {}, {}
        try:
            return trainer.predict(TaskConcat({self.task: dataset}))
        finally:  # dev losses are not training losses
            trainer.label_names, trainer.preprocess_logits_for_metrics, trainer.task_losses, trainer.task_steps = saved


def epoch_batches(sizes: dict[str, int], batch_size: int, strategy: str, cap: int | None) -> int:
    """Batches per epoch: every (capped) example once in expectation."""
    counted = {t: min(n, cap) if strategy == "capped" and cap else n for t, n in sizes.items()}
    return max(1, math.ceil(sum(counted.values()) / batch_size))


def build_trainer_class():
    """`MultiTaskTrainer`: our Trainer with the task-batch sampler and per-task loss logging."""
    from .training import XtremeTrainer

    class MultiTaskTrainer(XtremeTrainer):
        def __init__(self, *args, batch_sampler=None, mask=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.batch_sampler, self.mask = batch_sampler, mask
            self.task_losses, self.task_steps = {}, {}

        def _get_collator_with_removed_columns(self, data_collator, description=None):
            return data_collator  # MultiTaskCollator keeps each task's own inputs (Trainer would read ours: task)

        def get_train_dataloader(self):
            loader = torch.utils.data.DataLoader(self.train_dataset, batch_sampler=self.batch_sampler,
                                                 collate_fn=self.data_collator,
                                                 num_workers=self.args.dataloader_num_workers)
            return self.accelerator.prepare(loader)

        def prepare_step(self, batches):
            """MLM batches get their masks here, drawn from (seed, step, micro-batch): identical after a resume."""
            for call, inputs in enumerate(batches):
                special = inputs.pop("special_tokens_mask", None)
                if special is not None:
                    generator = torch.Generator().manual_seed(hash((self.args.seed, self.state.global_step, call))
                                                              % 2**63)
                    ids, labels = self.mask(inputs["input_ids"].cpu(), special.cpu(), generator)
                    inputs["input_ids"], inputs["labels"] = ids.to(special.device), labels.to(special.device)
            return batches

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            task = inputs["task"]
            self.task_losses[task] = self.task_losses.get(task, 0.0) + outputs["loss"].detach().float()
            self.task_steps[task] = self.task_steps.get(task, 0) + 1
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs and self.task_losses:
                for task, total in self.task_losses.items():
                    logs[f"loss_{task}"] = round(float(total) / self.task_steps[task], 4)
                    logs[f"batches_{task}"] = self.task_steps[task]
                self.task_losses, self.task_steps = {}, {}
            super().log(logs, *args, **kwargs)

    return MultiTaskTrainer


def _checked_tasks(names: list[str], model_args, data_args) -> dict:
    """The registered tasks of `--tasks` (all but mlm), after the checks that need no data."""
    from .mlm import MLM_TASK
    from .tasks import get_task

    if len(set(names)) != len(names):
        raise XtremeError(f"--tasks names a task twice: {','.join(names)}")
    registered = {name: get_task(name)[0] for name in names if name != MLM_TASK}  # unknown names fail before loading
    if MLM_TASK in names and not data_args.mlm_files:
        raise XtremeError("task mlm needs text: pass --mlm_files a.txt,b.txt (one sentence or paragraph per line)")
    if model_args.use_lora:
        raise XtremeError("--use_lora is not supported with --tasks yet: train the tasks one at a time with LoRA")
    if data_args.train_file or data_args.validation_file:
        raise XtremeError("--train_file/--validation_file take one task's files; with --tasks use --data_dir or the "
                          "Hub (or run one task at a time)")
    return registered


def _mlm_part(model_args, data_args, training_args, tokenizer) -> tuple:
    """Masked LM on `--mlm_files`: its training features, model and collator."""
    from transformers import DataCollatorWithPadding

    from .kinds import pad_multiple
    from .mlm import load_mlm_model, mlm_features, read_text

    text = read_text(data_args.mlm_files, data_args.max_train_samples)
    with training_args.main_process_first(desc="tokenisation"):
        features = text.map(mlm_features, batched=True, remove_columns=["text"], desc="Tokenising text",
                            fn_kwargs={"tokenizer": tokenizer, "max_seq_length": data_args.max_seq_length or 128})
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(training_args))
    return features, load_mlm_model(model_args), collator, None


def _task_part(name: str, task, model_args, data_args, training_args, tokenizer) -> tuple:
    """A registered task: its training features, model, collator and dev set (kind, labels, dev, features, args)."""
    import dataclasses

    from .data import load_train_and_dev
    from .kinds import check_max_seq_length, get_kind
    from .modeling import load_model

    task_args = dataclasses.replace(data_args)  # the kind fills in its own default max_seq_length
    kind = get_kind(task, task_args)
    train, dev, labels = load_train_and_dev(task, task_args, model_args, {})
    head = load_model(model_args, task.kind, labels, pad_token_id=tokenizer.pad_token_id)
    check_max_seq_length(kind, tokenizer, head, task_args)
    with training_args.main_process_first(desc="tokenisation"):
        features = kind.features(train, tokenizer, task_args, f"Tokenising {name}", train=True)
        dev_features = kind.features(dev, tokenizer, task_args, f"Tokenising {name} dev") if dev else None
    dev_set = (kind, labels, dev, dev_features, task_args) if dev is not None else None
    return features, head, kind.collator(tokenizer, training_args), dev_set


def _dev_evaluator(tasks: dict, heads: dict, collators: dict, devs: dict, tokenizer, training_args):
    """Each task's dev evaluation with its own head (phase 3's code), and their mean `score`."""
    import dataclasses

    from .training import XtremeTrainer

    eval_args = dataclasses.replace(training_args, deepspeed=None, eval_strategy="no", save_strategy="no",
                                    load_best_model_at_end=False)

    def evaluate(trainer):
        metrics = {}
        for name, (kind, labels, dev, dev_features, task_args) in devs.items():
            if trainer.is_deepspeed_enabled:
                predictor = TaskPredictor(trainer, name, heads[name], kind.preprocess_logits)
            else:
                predictor = XtremeTrainer(model=heads[name], args=eval_args, processing_class=tokenizer,
                                          data_collator=collators[name],
                                          preprocess_logits_for_metrics=kind.preprocess_logits)
            task_metrics, _ = kind.evaluate(predictor, dev, dev_features, tasks[name], "en", labels, task_args)
            metrics.update({f"{name}_{k}": v for k, v in task_metrics.items()})
        metrics["score"] = sum(metrics[f"{name}_score"] for name in devs) / len(devs)
        return metrics

    return evaluate


def run_multitask(names: list[str], model_args, data_args, training_args, run_dir):
    """Phase 1 on several tasks at once (any of them `mlm`): load, train, evaluate each dev set, save."""
    from .mlm import MLM_TASK, mask_tokens
    from .modeling import gathered_state_dict, load_tokenizer, write_phase1_output
    from .training import fit

    tasks = _checked_tasks(names, model_args, data_args)
    tokenizer = load_tokenizer(model_args)
    features, heads, collators, devs = {}, {}, {}, {}
    for name in names:
        part = (_mlm_part(model_args, data_args, training_args, tokenizer) if name == MLM_TASK
                else _task_part(name, tasks[name], model_args, data_args, training_args, tokenizer))
        features[name], heads[name], collators[name], dev_set = part
        if dev_set is not None:
            devs[name] = dev_set
    encoder = heads[names[0]].base_model
    model = MultiTaskModel(encoder, heads)

    sizes = {name: len(f) for name, f in features.items()}
    probabilities = task_probabilities(sizes, data_args.sampling, data_args.task_cap, data_args.sampling_temperature)
    batch_size = training_args.per_device_train_batch_size
    micro_batches = training_args.world_size * training_args.gradient_accumulation_steps
    sampler = MultiTaskBatchSampler(list(sizes.values()), batch_size, list(probabilities.values()),
                                    epoch_batches(sizes, batch_size * micro_batches, data_args.sampling,
                                                  data_args.task_cap), training_args.seed, micro_batches=micro_batches)
    training_args.ddp_find_unused_parameters = True  # a batch uses one head only
    evaluate = _dev_evaluator(tasks, heads, collators, devs, tokenizer, training_args) if devs else None
    trainer, metrics = fit(model, tokenizer, TaskConcat(features), training_args, run_dir,
                           data_collator=MultiTaskCollator(collators, heads), evaluate_dev=evaluate,
                           dev_features=TaskConcat({name: dev[3] for name, dev in devs.items()}) if devs else None,
                           trainer_class=build_trainer_class(), batch_sampler=sampler,
                           mask=lambda ids, special, generator: mask_tokens(ids, special, tokenizer,
                                                                            data_args.mlm_probability, generator))
    state = gathered_state_dict(trainer)
    if trainer.is_world_process_zero():
        encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        head_states = model.head_state_dicts(state)
        write_phase1_output(training_args.output_dir, encoder, encoder_state,
                            {name: (heads[name], head_states[name]) for name in names}, tokenizer)
    metrics["task_probabilities"] = probabilities
    return metrics
