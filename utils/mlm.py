"""Masked-language modelling on multilingual text, as a task of multi-task intermediate training.

The paper's control: keep training the pretrained MLM objective (with the model's own MLM head, for XLM-R the
pretrained `lm_head`) on text in the XTREME languages alongside the English task; `--tasks mlm` alone is the
"continue MLM" baseline. Text is plain files, one sentence or paragraph per line. Masks are drawn at each training step from a generator
seeded by (seed, step), not in the collator: a resumed run then masks exactly as the uninterrupted one would
(collators run ahead of training, so their random state at a checkpoint is not the step's).
"""

from __future__ import annotations

from pathlib import Path

from .errors import MissingDataError, XtremeError

MLM_TASK = "mlm"  # the name of masked-LM training among multi-task phase 1's --tasks


def read_text(paths: list[str], max_lines: int | None = None):
    """Non-empty lines of the files as a Dataset with a `text` column."""
    from datasets import Dataset

    if not paths:
        raise XtremeError("task mlm needs text: pass --mlm_files a.txt,b.txt (one sentence or paragraph per line)")
    lines = []
    for path in paths:
        if not Path(path).is_file():
            raise MissingDataError(f"{path}: file not found (expected plain text, one sentence per line)")
        lines += [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise XtremeError(f"{', '.join(paths)}: no text (expected one sentence or paragraph per line)")
    return Dataset.from_dict({"text": lines[:max_lines]})


def mlm_features(examples: dict, tokenizer, max_seq_length: int) -> dict:
    features = tokenizer(examples["text"], truncation=True, max_length=max_seq_length,
                         return_special_tokens_mask=True)
    features["length"] = [len(ids) for ids in features["input_ids"]]
    return features


def load_mlm_model(model_args):
    """The model's masked-LM head; causal models are refused (continue causal-LM training instead)."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    from .modeling import hub_kwargs

    config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs(model_args))
    if getattr(config, "is_decoder", False) or type(config) not in AutoModelForMaskedLM._model_mapping:
        raise XtremeError(f"{model_args.model_name_or_path}: a {config.model_type} model has no masked-LM head; MLM "
                          "needs an encoder (XLM-R, mBERT, ...). For decoder models continue causal-LM training "
                          "instead (e.g. transformers' run_clm.py on the same text)")
    return AutoModelForMaskedLM.from_pretrained(model_args.model_name_or_path, config=config, **hub_kwargs(model_args))


def mask_tokens(input_ids, special_tokens_mask, tokenizer, probability: float, generator):
    """BERT masking: `probability` of the (non-special, non-pad) tokens become targets; of those 80% are replaced
    by the mask token, 10% by a random token, 10% kept. Returns (inputs, labels with -100 off-target)."""
    import torch

    labels = input_ids.clone()
    candidates = ~special_tokens_mask.bool() & (input_ids != tokenizer.pad_token_id)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & candidates
    labels[~chosen] = -100
    roll = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    randomised = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[randomised] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[randomised]
    return inputs, labels
