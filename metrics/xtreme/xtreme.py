"""XTREME's nine task metrics as an `evaluate` module, loaded from this folder (offline):

    import evaluate

    xnli = evaluate.load("metrics/xtreme", "xnli")  # the folder's path, then the task
    xnli.compute(predictions=["entailment", "neutral"], references=["entailment", "contradiction"])
    # {'accuracy': 50.0}
    evaluate.load("metrics/xtreme", "mlqa").compute(predictions=["der Vertrag"], references=[["Vertrag"]],
                                                    language="de")

The numbers are those of XTREME's `evaluate.py` for one language; the computation is `xtreme_metrics.compute`, the
same code the project's scripts and `python -m utils.score` use.
"""

import datasets
import evaluate

from .xtreme_metrics import TASK_METRICS, compute

_CITATION = """\
@inproceedings{hu2020xtreme,
  title = {{XTREME}: A Massively Multilingual Multi-task Benchmark for Evaluating Cross-lingual Generalisation},
  author = {Hu, Junjie and Ruder, Sebastian and Siddhant, Aditya and Neubig, Graham and Firat, Orhan and
            Johnson, Melvin},
  booktitle = {Proceedings of the 37th International Conference on Machine Learning},
  year = {2020}
}
"""

_DESCRIPTION = """\
XTREME's metric of one task (the configuration: pawsx, xnli, udpos, panx, xquad, mlqa, tydiqa, bucc2018, tatoeba),
x100, exactly as XTREME's evaluate.py computes it for one language: accuracy (pawsx, xnli, tatoeba), span F1 as
seqeval 0.0.12 computes it with word accuracy beside it (udpos, panx), SQuAD v1.1 EM/F1 (xquad, tydiqa), MLQA's
EM/F1 with the context language's normalisation (mlqa), F1 over (source id, English id) pairs (bucc2018).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one per example: a label (pawsx, xnli: str or int), a retrieved index (tatoeba), a list of tags
        per sentence (udpos, panx), an answer text per question (xquad, mlqa, tydiqa), or a list of
        [source id, English id] pairs (bucc2018: the pairs of all rows are pooled; one row per language).
    references: in the same form, one per example; QA: a list of gold answer texts per question.
    language: mlqa only, the context language (en, es, de, ar, hi, vi, zh).
Returns:
    pawsx, xnli, tatoeba: accuracy; udpos, panx: f1, precision, recall, accuracy; xquad, mlqa, tydiqa:
    exact_match, f1; bucc2018: f1, precision, recall.
"""

_LABEL = (datasets.Value("string"), datasets.Value("int64"))
_TAGS = datasets.Sequence(datasets.Value("string"))
_PAIRS = datasets.Sequence(datasets.Sequence(datasets.Value("string")))
FEATURES = {
    "accuracy": [datasets.Features({"predictions": label, "references": label}) for label in _LABEL],
    "span_f1": datasets.Features({"predictions": _TAGS, "references": _TAGS}),
    "squad": datasets.Features({"predictions": datasets.Value("string"), "references": _TAGS}),
    "bucc_f1": datasets.Features({"predictions": _PAIRS, "references": _PAIRS}),
}
FEATURES["mlqa"] = FEATURES["squad"]


class Xtreme(evaluate.Metric):
    def _info(self):
        if self.config_name not in TASK_METRICS:
            given = "no task given" if self.config_name == "default" else f"unknown task {self.config_name!r}"
            raise ValueError(f"XTREME metric: {given}; pass one of {', '.join(TASK_METRICS)} after the path, e.g. "
                             "evaluate.load(\"metrics/xtreme\", \"xnli\")")
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=FEATURES[TASK_METRICS[self.config_name]],
            codebase_urls=["https://github.com/google-research/xtreme"])

    def _compute(self, predictions, references, language=None):
        return compute(self.config_name, predictions, references, language)
