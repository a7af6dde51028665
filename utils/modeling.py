"""Loading models and tokenizers, transferring the encoder between phases, saving phase outputs.

The paper's handoff: the next phase takes the previous phase's ENCODER and starts a fresh task head. Phase 1
therefore saves a plain encoder (`AutoModel` format) in its output dir and its heads beside it under `heads/`;
phase 2 loads that dir into `AutoModelFor<Kind>`, whose head is new. If the given model dir does carry weights
for the head (e.g. a fine-tuned checkpoint), they are re-initialised unless `--keep_head` asks to reuse them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .errors import XtremeError
from .files import honour_umask, load_json
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


def looks_like_path(name: str) -> bool:
    """Whether a model/tokenizer argument names a local path rather than a Hub id (`org/name` at most)."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.endswith("/") or name.count("/") > 1
            or ("/" in name and Path(name.split("/")[0]).is_dir()))


def check_local_path(name: str, flag: str) -> None:
    if not Path(name).exists() and looks_like_path(name):
        raise XtremeError(f"{flag} {name}: no such directory (expected a model dir, e.g. a phase output dir, or a "
                          "Hub id such as xlm-roberta-large)")


def check_model_dir(path: str) -> None:
    """A local model dir must hold weights; a ZeRO checkpoint without gathered weights gets the recipe."""
    check_local_path(path, "--model_name_or_path")
    directory = Path(path)
    if not directory.exists():
        return  # a Hub id: from_pretrained reports it
    if directory.is_dir() and not (directory / "config.json").is_file() and (
            (directory / "results").is_dir() or (directory / "predictions").is_dir()):
        evaluated = next((m for m in map(_evaluated_model, sorted(directory.glob("results/*.json"))) if m), None)
        raise XtremeError(f"{path}: holds evaluation results (results/, predictions/), not a model; pass the model "
                          f"dir that was evaluated{f' ({evaluated})' if evaluated else ''}")
    if not directory.is_dir() or not (directory / "config.json").is_file():
        raise XtremeError(f"{path}: not a model directory (no config.json); pass a phase output dir or a Hub id")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        if any(directory.glob("global_step*")):
            raise XtremeError(f"{path}: holds a DeepSpeed ZeRO checkpoint without gathered weights; run "
                              f"`python {path}/zero_to_fp32.py {path} {path} --safe_serialization` first")
        raise XtremeError(f"{path}: no model weights (expected one of {', '.join(WEIGHT_FILES)})")


def _evaluated_model(results_file: Path) -> str | None:
    """The model a phase-3 results file names, if it can be read."""
    try:
        model = load_json(results_file).get("model")
    except (OSError, XtremeError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def load_tokenizer(model_args):
    from transformers import AutoTokenizer

    name = model_args.tokenizer_name or model_args.model_name_or_path
    check_local_path(name, "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise XtremeError(f"cannot load a tokenizer from {name}: {str(err).splitlines()[0]}")
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):  # e.g. built from a config without tokenizer files
        raise XtremeError(f"{name}: its tokenizer has only special tokens ({len(tokenizer)}: "
                          f"{' '.join(tokenizer.all_special_tokens)}), no vocabulary; the dir lacks the tokenizer "
                          "files: pass --tokenizer_name with the model's tokenizer")
    if tokenizer.pad_token is None:  # decoder-only checkpoints come without one: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    # Features are built unpadded and padded per batch on the right, where every head (sequence classification
    # of decoders takes the last non-pad token) and every position we read back (tagging, QA) expects it.
    tokenizer.padding_side = "right"
    return tokenizer


def check_tokenizer_encodes(tokenizer, features, examples: int = 16) -> None:
    """Refuse a tokenizer that cannot encode the training text: more than half the (non-special) tokens of the
    first `examples` training features unknown."""
    if tokenizer.unk_token_id is None or len(features) == 0:
        return  # byte-level tokenizers encode anything
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    tokens = [t for i in range(min(examples, len(features))) for t in _flat(features[i]["input_ids"])
              if t not in special]
    unknown = sum(t == tokenizer.unk_token_id for t in tokens)
    if tokens and unknown * 2 > len(tokens):
        raise XtremeError(f"{tokenizer.name_or_path}: its tokenizer cannot encode the training text "
                          f"({unknown} of the {len(tokens)} tokens of the first {examples} examples are "
                          f"{tokenizer.unk_token}; it has {len(tokenizer)} tokens); pass --tokenizer_name with the "
                          "model's tokenizer")


def _flat(ids):
    return [t for row in ids for t in _flat(row)] if ids and isinstance(ids[0], list) else list(ids)


def check_vocabulary(tokenizer, model) -> None:
    """A tokenizer whose ids go past the model's embedding matrix would fail deep in the first forward pass
    ("index out of range in self"): refuse it up front."""
    embeddings = getattr(model, "get_input_embeddings", None)
    if embeddings is None and hasattr(model, "encoder"):  # the multi-task model: its shared encoder
        embeddings = getattr(model.encoder, "get_input_embeddings", None)
    embeddings = embeddings() if embeddings is not None else None
    size = getattr(embeddings, "num_embeddings", None)
    if size is not None and tokenizer is not None and hasattr(tokenizer, "__len__") and len(tokenizer) > size:
        raise XtremeError(f"the tokenizer ({tokenizer.name_or_path}) has {len(tokenizer)} tokens but the model's "
                          f"embeddings only {size}: use the model's own tokenizer (drop --tokenizer_name) or a model "
                          "trained with this one")


def model_positions(model, tokenizer) -> int | None:
    """The longest input the model takes: its position embeddings (less the padding offset of RoBERTa-style
    positions), the config's max_position_embeddings, and the tokenizer's model_max_length, whichever is known and
    smallest."""
    from torch import nn

    config = getattr(model, "config", None)
    base = getattr(model, "base_model", model)
    table = getattr(getattr(base, "embeddings", None), "position_embeddings", None)
    limits = [getattr(config.get_text_config(), "max_position_embeddings", None) if config is not None else None,
              tokenizer.model_max_length if tokenizer.model_max_length < 10**9 else None]
    if isinstance(table, nn.Embedding):
        limits.append(table.num_embeddings - (table.padding_idx + 1 if table.padding_idx is not None else 0))
    limits = [limit for limit in limits if isinstance(limit, int) and limit > 0]
    return min(limits) if limits else None


def head_parameter_names(model) -> list[str]:
    prefix = model.base_model_prefix + "."
    return [name for name, _ in model.named_parameters() if not name.startswith(prefix)]


def load_model(model_args, kind: str, labels: list[str] | None = None, *, fresh_head: bool = True,
               pad_token_id: int | None = None):
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
    try:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, **config_kwargs, **hub_kwargs(model_args))
        if config.pad_token_id is None:
            config.pad_token_id = pad_token_id
        load_kwargs = {"ignore_mismatched_sizes": fresh_head}
        if is_deepspeed_zero3_enabled():
            load_kwargs = zero3_load_kwargs(model_args, kind, config, fresh_head, config_kwargs.get("num_labels"))
        model_class, path = auto_model_class(kind), model_args.model_name_or_path
        if "state_dict" in load_kwargs:  # weights given: the concrete class, no path
            model_class, path = model_class._model_mapping[type(config)], None
        model, info = model_class.from_pretrained(path, config=config, output_loading_info=True, **load_kwargs,
                                                  **hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise XtremeError(f"cannot load a {kind} model from {model_args.model_name_or_path}: "
                          f"{str(err).splitlines()[0]}")
    except RuntimeError as err:  # size mismatches (not a crashed peer's communication error)
        if not any(text in str(err) for text in ("size mismatch", "loading state_dict", "ignore_mismatched_sizes")):
            raise
        saved = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs(model_args)).num_labels
        if labels is not None and saved != len(labels):
            raise head_size_error(model_args, kind, saved, len(labels))
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


def head_size_error(model_args, kind: str, saved: int, wanted: int) -> XtremeError:
    return XtremeError(f"{model_args.model_name_or_path}: its {kind} head has {saved} labels, this task {wanted}; "
                       "drop --keep_head to start a fresh head")


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


def is_deepspeed_zero3_enabled() -> bool:
    from transformers.integrations import is_deepspeed_zero3_enabled as enabled

    return enabled()


def checkpoint_files(directory: Path) -> list[Path]:
    """The weight files of a local model dir (a sharded checkpoint's shards through its index)."""
    for name in WEIGHT_FILES:
        path = directory / name
        if path.is_file():
            if name.endswith(".index.json"):
                shards = load_json(path)["weight_map"].values()
                return [directory / shard for shard in sorted(set(shards))]
            return [path]
    return []


def zero3_load_kwargs(model_args, kind: str, config, fresh_head: bool, num_labels: int | None) -> dict:
    """`from_pretrained` arguments under ZeRO-3, whose loader ignores `ignore_mismatched_sizes` and raises on rank 0
    alone when a head's shape differs (the other ranks then wait for it).

    A local task checkpoint (its keys carry the base-model prefix, e.g. `roberta.`) is passed as a state dict
    WITHOUT its head tensors when the head is to be fresh (rank 0 reads the values, the other ranks only the
    shapes, as transformers does under ZeRO-3): nothing is loaded into the head, so nothing has to be
    re-initialised in partitioned parameters. A head kept with another number of labels is refused on every rank.
    A plain encoder (a phase-1 dir) or a Hub id holds no head of this kind and loads as usual.
    """
    import torch.distributed as dist
    from transformers import AutoConfig
    from transformers.modeling_utils import load_state_dict

    files = checkpoint_files(Path(model_args.model_name_or_path))
    if not files:
        return {}
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    state = {}
    for file in files:
        state.update(load_state_dict(str(file), map_location="cpu" if rank == 0 else "meta"))
    try:
        prefix = auto_model_class(kind)._model_mapping[type(config)].base_model_prefix + "."
    except (KeyError, AttributeError):  # remote code, or not an Auto class (ChoiceModel): load as usual
        return {}
    if not any(key.startswith(prefix) for key in state):
        return {}  # a plain encoder checkpoint: no head in it
    if not fresh_head:
        saved = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs(model_args)).num_labels
        if num_labels is not None and saved != num_labels:
            raise head_size_error(model_args, kind, saved, num_labels)
        return {"state_dict": state}
    head = sorted(key for key in state if not key.startswith(prefix))
    if head:
        logger.info("Head weights in %s are not loaded (fresh head; pass --keep_head to reuse them): %s",
                    model_args.model_name_or_path, ", ".join(head))
    return {"state_dict": {key: value for key, value in state.items() if key.startswith(prefix)}}


def reinitialise(model, parameter_names: list[str]) -> None:
    """Give the modules owning these parameters a fresh init (the model's own `_init_weights`)."""
    from contextlib import nullcontext

    modules = {name.rsplit(".", 1)[0] for name in parameter_names}
    for name, module in model.named_modules():
        if name in modules:
            tensors = list(module.parameters(recurse=False))
            if is_deepspeed_zero3_enabled():  # partitioned: init the whole tensors on rank 0, then re-partition
                import deepspeed

                gathered = deepspeed.zero.GatheredParameters(tensors, modifier_rank=0)
            else:
                gathered = nullcontext()
            with gathered:
                for tensor in tensors:  # loaded weights are flagged to skip init
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
    weights = [Path(output_dir) / "model.safetensors"]
    save_file({k: v.contiguous() for k, v in encoder_state.items()}, str(weights[0]), metadata={"format": "pt"})
    tokenizer.save_pretrained(output_dir)
    for name, (model, state) in heads.items():
        head_dir = Path(output_dir) / "heads" / name
        head_dir.mkdir(parents=True, exist_ok=True)
        weights.append(head_dir / "head.safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights[-1]), metadata={"format": "pt"})
        (head_dir / "head.json").write_text(json.dumps({"model_class": type(model).__name__,
                                                        "id2label": model.config.id2label}, indent=2) + "\n")
    honour_umask(weights)
