"""Multiple choice for any backbone: score every (context, choice) pair with one linear scorer, softmax over choices.

transformers has `*ForMultipleChoice` for encoders only. `ChoiceModel` runs any `AutoModel` backbone on the
flattened pairs and pools each pair as the backbone's own pooler does when it has one (XLM-R/BERT: dense + tanh on
the first token), else with the first token (encoders) or the last non-pad token (decoders). With an encoder it
computes exactly what `AutoModelForMultipleChoice` computes from the same weights (backbone incl. pooler,
`classifier`), so both paths give identical results.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import MultipleChoiceModelOutput


def is_encoder(config) -> bool:
    """Encoders have a masked-LM class; decoder-only models (Llama, Qwen2, ...) do not."""
    from transformers import AutoModelForMaskedLM

    return type(config) in AutoModelForMaskedLM._model_mapping


class ChoiceModel(nn.Module):
    base_model_prefix = "backbone"
    _keys_to_ignore_on_save = None  # read by Trainer when saving a model that is not a `PreTrainedModel`

    def __init__(self, backbone, config):
        super().__init__()
        self.backbone, self.config = backbone, config
        text = config.get_text_config()
        self.encoder = is_encoder(config)
        dropout = getattr(text, "classifier_dropout", None) or getattr(text, "hidden_dropout_prob", 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(text.hidden_size, 1)
        self._init_weights(self.classifier)

    @property
    def base_model(self):
        return self.backbone

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=getattr(self.config, "initializer_range", 0.02))
            module.bias.data.zero_()

    @classmethod
    def from_pretrained(cls, path, config=None, output_loading_info=False, ignore_mismatched_sizes=False, **kwargs):
        """The backbone's weights from `path` (an `AutoModel` checkpoint or any head model's); the scorer is new."""
        from transformers import AutoModel

        backbone, info = AutoModel.from_pretrained(path, config=config, output_loading_info=True, **kwargs)
        model = cls(backbone, backbone.config)
        info = {**info, "missing_keys": list(info.get("missing_keys", [])) + ["classifier.weight", "classifier.bias"]}
        return (model, info) if output_loading_info else model

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        num_choices = input_ids.shape[1]
        flat = {"input_ids": input_ids.view(-1, input_ids.size(-1))}
        if attention_mask is not None:
            flat["attention_mask"] = attention_mask.view(-1, attention_mask.size(-1))
        if token_type_ids is not None:
            flat["token_type_ids"] = token_type_ids.view(-1, token_type_ids.size(-1))
        outputs = self.backbone(**flat)
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
