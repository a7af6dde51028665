"""Multiple choice for any backbone: score every (context, choice) pair with one linear scorer, softmax over choices.

transformers has `*ForMultipleChoice` for encoders only. `ChoiceModel` runs any `AutoModel` backbone on the
flattened pairs and pools each pair as the backbone's own pooler does when it has one (XLM-R/BERT: dense + tanh on
the first token), else with the first token (encoders) or the last non-pad token (decoders). With an encoder it
computes exactly what `AutoModelForMultipleChoice` computes from the same weights (backbone incl. pooler,
`classifier`), so both paths give identical results.

The backbone sits under its own `base_model_prefix` (XLM-R: `roberta.`), so a trained `ChoiceModel` saves (Trainer
writes its state dict to `model.safetensors`, `XtremeTrainer` the config beside it) in the layout of transformers'
task models: `AutoModel` reads its backbone back, and `from_pretrained` its scorer too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import MultipleChoiceModelOutput


def is_encoder(config) -> bool:
    """Encoders have a masked-LM class; decoder-only models (Llama, Qwen2, ...) do not."""
    from transformers import AutoModelForMaskedLM

    return type(config) in AutoModelForMaskedLM._model_mapping


def saved_scorer(path) -> dict:
    """The `classifier.*` tensors of a saved `ChoiceModel` (its `model.safetensors`), {} when there are none."""
    file = Path(str(path)) / "model.safetensors"
    if not file.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(file), "pt") as weights:
        return {k.split(".", 1)[1]: weights.get_tensor(k) for k in weights.keys() if k.startswith("classifier.")}


class ChoiceModel(nn.Module):
    _keys_to_ignore_on_save = None  # read by Trainer when saving a model that is not a `PreTrainedModel`

    def __init__(self, backbone, config):
        super().__init__()
        self.base_model_prefix = backbone.base_model_prefix
        self.add_module(self.base_model_prefix, backbone)
        self.config = config
        text = config.get_text_config()
        self.encoder = is_encoder(config)
        dropout = getattr(text, "classifier_dropout", None) or getattr(text, "hidden_dropout_prob", 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(text.hidden_size, 1)
        self._init_weights(self.classifier)

    @property
    def base_model(self):
        return getattr(self, self.base_model_prefix)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=getattr(self.config, "initializer_range", 0.02))
            module.bias.data.zero_()

    @classmethod
    def from_pretrained(cls, path, config=None, output_loading_info=False, ignore_mismatched_sizes=False, **kwargs):
        """The backbone's weights from `path` (an `AutoModel` checkpoint or any head model's); the scorer too when
        `path` is a saved `ChoiceModel` of the same width (else it is new and listed as missing)."""
        from transformers import AutoModel

        backbone, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True, **kwargs)
        model = cls(backbone, backbone.config)
        scorer = saved_scorer(path)
        fits = {k: v.shape for k, v in scorer.items()} == {k: v.shape for k, v in model.classifier.state_dict().items()}
        if fits:
            model.classifier.load_state_dict(scorer)
        missing = [] if fits else ["classifier.weight", "classifier.bias"]
        info = {**info, "missing_keys": list(info.get("missing_keys", [])) + missing}
        return (model, info) if output_loading_info else model

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        num_choices = input_ids.shape[1]
        flat = {"input_ids": input_ids.view(-1, input_ids.size(-1))}
        if attention_mask is not None:
            flat["attention_mask"] = attention_mask.view(-1, attention_mask.size(-1))
        if token_type_ids is not None:
            flat["token_type_ids"] = token_type_ids.view(-1, token_type_ids.size(-1))
        outputs = self.base_model(**flat)
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            hidden = outputs.last_hidden_state
            if self.encoder:
                pooled = hidden[:, 0]
            else:  # the last non-pad token, with right or left padding
                mask = flat.get("attention_mask", torch.ones_like(flat["input_ids"]))
                positions = torch.arange(mask.size(1), device=mask.device)
                last = (mask * positions).argmax(dim=-1)
                pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        logits = self.classifier(self.dropout(pooled)).view(-1, num_choices)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits)
