"""Loading models and tokenizers, transferring the encoder between phases, saving phase outputs.

The paper's handoff: the next phase takes the previous phase's ENCODER and starts a fresh task head. Phase 1
therefore saves a plain encoder (`AutoModel` format) in its output dir and its heads beside it under `heads/`;
phase 2 loads that dir into `AutoModelFor<Kind>`, whose head is new. If the given model dir does carry weights
for the head (e.g. a fine-tuned checkpoint), they are re-initialised unless `--keep_head` asks to reuse them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .errors import XtremeError
from .tasks import CLASSIFICATION, MULTIPLE_CHOICE, QA, TAGGING

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def auto_model_class(kind: str):
    """The model class of a task kind; multiple choice is our `ChoiceModel`, which works for any backbone."""
    import transformers

    if kind == MULTIPLE_CHOICE:
        from .choice_model import ChoiceModel

        return ChoiceModel
    names = {CLASSIFICATION: "AutoModelForSequenceClassification", TAGGING: "AutoModelForTokenClassification",
             QA: "AutoModelForQuestionAnswering"}
    return getattr(transformers, names[kind])


def hub_kwargs(model_args) -> dict:
    return {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token,
            "trust_remote_code": model_args.trust_remote_code}


def check_model_dir(path: str) -> None:
    """A local model dir must hold weights; a ZeRO checkpoint without gathered weights gets the recipe."""
    directory = Path(path)
    if not directory.exists():
        return  # a Hub id: from_pretrained reports it
    if not directory.is_dir() or not (directory / "config.json").is_file():
        raise XtremeError(f"{path}: not a model directory (no config.json); pass a phase output dir or a Hub id")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        if any(directory.glob("global_step*")):
            raise XtremeError(f"{path}: holds a DeepSpeed ZeRO checkpoint without gathered weights; run "
                              f"`python {path}/zero_to_fp32.py {path} {path} --safe_serialization` first")
        raise XtremeError(f"{path}: no model weights (expected one of {', '.join(WEIGHT_FILES)})")


def load_tokenizer(model_args):
    from transformers import AutoTokenizer

    name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise XtremeError(f"cannot load a tokenizer from {name}: {str(err).splitlines()[0]}")
    if tokenizer.pad_token is None:  # decoder-only checkpoints come without one: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    # Features are built unpadded and padded per batch on the right, where every head (sequence classification
    # of decoders takes the last non-pad token) and every position we read back (tagging, QA) expects it.
    tokenizer.padding_side = "right"
    return tokenizer


def head_parameter_names(model) -> list[str]:
    prefix = model.base_model_prefix + "."
    return [name for name, _ in model.named_parameters() if not name.startswith(prefix)]


def load_model(model_args, kind: str, labels: list[str] | None = None, *, fresh_head: bool = True,
               num_labels: int | None = None, pad_token_id: int | None = None):
    """`AutoModelFor<kind>` from a model dir or Hub id: encoder transferred, head fresh unless `fresh_head=False`.

    With `fresh_head=False` (evaluation, `--keep_head`) the head must be in the checkpoint with matching shapes.
    `pad_token_id` (the tokenizer's) fills a config without one, as decoder checkpoints come.
    """
    from transformers import AutoConfig

    check_model_dir(model_args.model_name_or_path)
    config_kwargs = {}
    if labels is not None:
        config_kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                         "label2id": {label: i for i, label in enumerate(labels)}}
    elif num_labels is not None:
        config_kwargs = {"num_labels": num_labels}
    try:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, **config_kwargs, **hub_kwargs(model_args))
        if config.pad_token_id is None:
            config.pad_token_id = pad_token_id
        model, info = auto_model_class(kind).from_pretrained(
            model_args.model_name_or_path, config=config, output_loading_info=True,
            ignore_mismatched_sizes=fresh_head, **hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise XtremeError(f"cannot load a {kind} model from {model_args.model_name_or_path}: "
                          f"{str(err).splitlines()[0]}")
    except RuntimeError as err:  # size mismatches
        raise XtremeError(f"{model_args.model_name_or_path}: its {kind} head does not fit this task "
                          f"({str(err).splitlines()[0][:200]}); drop --keep_head to start a fresh head")
    head = head_parameter_names(model)
    missing = set(info.get("missing_keys", ())) | {k for k, *_ in info.get("mismatched_keys", ())}
    encoder_missing = sorted(k for k in missing if k not in head and "pooler" not in k)
    if encoder_missing:
        logger.warning("%d encoder weights were not in %s and start random: %s", len(encoder_missing),
                       model_args.model_name_or_path, ", ".join(encoder_missing[:5]))
    loaded_head = [name for name in head if name not in missing]
    if fresh_head and loaded_head:
        reinitialise(model, loaded_head)
        logger.info("Head weights found in the checkpoint were re-initialised (pass --keep_head to reuse them): %s",
                    ", ".join(loaded_head))
    elif not fresh_head and len(loaded_head) < len(head):
        raise XtremeError(f"{model_args.model_name_or_path}: has no trained {kind} head (missing "
                          f"{', '.join(sorted(set(head) - set(loaded_head)))}); train one with run_target.py first")
    logger.info("Loaded %s from %s: encoder transferred, head %s", type(model).__name__,
                model_args.model_name_or_path, "fresh" if fresh_head else "from the checkpoint")
    return apply_lora(model, model_args) if fresh_head and getattr(model_args, "use_lora", False) else model


def apply_lora(model, model_args):
    """Wrap `model` with LoRA adapters on every linear layer of its backbone; the head is trained in full."""
    import re

    from peft import LoraConfig, get_peft_model
    from torch import nn

    prefix = model.base_model_prefix
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.base_model.named_modules()
                     if isinstance(module, nn.Linear)})
    heads = sorted({name.split(".", 1)[0] for name in head_parameter_names(model)})
    config = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                        target_modules=rf"^{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, linear))})$",
                        modules_to_save=heads)
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA r=%d on %s: %d of %d parameters trainable (heads in full: %s)", model_args.lora_r,
                ", ".join(linear), trainable, total, ", ".join(heads))
    return model


def merge_lora(trainer) -> None:
    """Fold trained LoRA adapters into the weights, so `trainer.model` saves as a plain checkpoint."""
    from peft import PeftModel

    if isinstance(trainer.model, PeftModel):
        trainer.model = trainer.model.merge_and_unload()
        trainer.model_wrapped = trainer.model


def reinitialise(model, parameter_names: list[str]) -> None:
    """Give the modules owning these parameters a fresh init (the model's own `_init_weights`)."""
    modules = {name.rsplit(".", 1)[0] for name in parameter_names}
    for name, module in model.named_modules():
        if name in modules:
            for tensor in module.parameters(recurse=False):  # loaded weights are flagged to skip init
                tensor._is_hf_initialized = False
            model._init_weights(module)


def gathered_state_dict(trainer) -> dict:
    """The full state dict of the trained model (under ZeRO-3 the partitioned weights are gathered first)."""
    return trainer.accelerator.get_state_dict(trainer.model_wrapped if trainer.is_deepspeed_enabled
                                              else trainer.model)


def save_encoder(trainer, output_dir: str, head_name: str, tokenizer) -> None:
    """Phase-1 output of a single-task model: the encoder as a plain `AutoModel` checkpoint, its head under
    `heads/{head_name}/`."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = gathered_state_dict(trainer)
    if trainer.is_world_process_zero():
        prefix = model.base_model_prefix + "."
        encoder = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        head = {k: v for k, v in state.items() if not k.startswith(prefix)}
        write_phase1_output(output_dir, model.base_model, encoder, {head_name: (model, head)}, tokenizer)


def write_phase1_output(output_dir: str, encoder_model, encoder_state: dict, heads: dict, tokenizer) -> None:
    """Write `output_dir` as an `AutoModel` checkpoint + tokenizer, and each head (name -> (task model, state))
    under `heads/{name}/` (`head.safetensors` + `head.json` with its class and labels) to resume or re-evaluate."""
    from safetensors.torch import save_file

    config = encoder_model.config.__class__.from_dict(encoder_model.config.to_dict())
    config.architectures = [type(encoder_model).__name__]
    config.id2label, config.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    config.problem_type = None
    config.save_pretrained(output_dir)
    save_file({k: v.contiguous() for k, v in encoder_state.items()}, str(Path(output_dir) / "model.safetensors"),
              metadata={"format": "pt"})
    tokenizer.save_pretrained(output_dir)
    for name, (model, state) in heads.items():
        head_dir = Path(output_dir) / "heads" / name
        head_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(head_dir / "head.safetensors"),
                  metadata={"format": "pt"})
        (head_dir / "head.json").write_text(json.dumps({"model_class": type(model).__name__,
                                                        "id2label": model.config.id2label}, indent=2) + "\n")
