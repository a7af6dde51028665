"""Scores as XTREME's `evaluate.py` computes them, once for the scripts, the report and prediction folders.

    python -m utils.score PREDICTIONS_DIR LABELS_DIR [--split test] [--json FILE]

Both folders are in XTREME's layout, `{task}/{split}-{lang}.tsv` (`.json` for the QA tasks): a submission and the
hidden labels, dev labels and this project's `predictions/` folder, a colleague's submission. Every task folder
present in both is scored language by language with XTREME's metrics (`metrics.xtreme.xtreme_metrics`, which the
scripts and the `evaluate` module `metrics/xtreme` use too), then averaged as XTREME does:

- a task's average of each metric is the plain mean over its languages, summed in XTREME's language order;
- its score is (EM + F1)/2 for the QA tasks, else F1 where there is one, else accuracy;
- a category's score is the mean of its tasks' scores, and the XTREME score the mean of the nine (each only when
  all of its tasks are scored).

A language whose labels file exists but whose predictions file does not is never scored 0: it is listed with the
path it expected, the task's average is over the other languages and marked partial, and the command exits with
status 2 after printing (and writing `--json`). A language without a labels file (udpos dev has 29 of the 33) is
listed as not scored; the averages are then over the languages labelled, marked partial too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from metrics.xtreme.xtreme_metrics import compute

from .errors import XtremeError, run_main
from .files import atomic_write_json, load_json
from .tasks import CATEGORIES as CATEGORY_NAMES
from .tasks import CLASSIFICATION, MINING, NEAREST, QA, TAGGING, TASKS

XTREME_TASKS = tuple(name for category in CATEGORY_NAMES for name, t in TASKS.items() if t.category == category)
CATEGORIES = {category: tuple(name for name in XTREME_TASKS if TASKS[name].category == category)
              for category in CATEGORY_NAMES}
QA_CATEGORY = "question answering"


# ------------------------------------------------------------------------------------------------ aggregation

def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def average(task: str, per_language: dict) -> dict:
    """The plain mean of each metric over the languages, added up in the task's language order as `evaluate.py`
    does (so the float is XTREME's to the last bit). Metrics missing from a language, non-numbers and counts
    (`num_*`) are left out."""
    order = TASKS[task].languages if task in TASKS else ()
    langs = sorted(per_language, key=lambda lang: order.index(lang) if lang in order else len(order))
    metrics = [m for m in (per_language[lang] for lang in langs) if isinstance(m, dict)]
    if not metrics:
        return {}
    keys = [k for k in metrics[0] if not k.startswith("num_") and all(_number(m.get(k)) for m in metrics)]
    return {k: sum(m[k] for m in metrics) / len(metrics) for k in keys}


def task_score(task: str, averages: dict) -> float | None:
    """XTREME's task score from the task's averages: (EM + F1)/2 for QA, else F1 if present, else accuracy. A task
    outside XTREME's nine is ranked by its own `score`."""
    category = TASKS[task].category if task in TASKS else None
    if category is None:
        return averages.get("score")
    if category == QA_CATEGORY:
        if "exact_match" in averages and "f1" in averages:
            return (averages["exact_match"] + averages["f1"]) / 2
        return None
    return averages.get("f1", averages.get("accuracy"))


def language_score(metrics: dict) -> float | None:
    """One language's score: its `score`, else (EM + F1)/2 for QA, else F1, else accuracy."""
    values = {k: float(v) for k, v in metrics.items() if _number(v)}
    if "score" in values:
        return values["score"]
    if "exact_match" in values and "f1" in values:
        return (values["exact_match"] + values["f1"]) / 2
    return values.get("f1", values.get("accuracy"))


def mean_all(values) -> float | None:
    """The mean only when no value is missing (an XTREME or category mean over an incomplete set is missing)."""
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def xtreme_scores(task_scores: dict) -> dict:
    """Category means and the overall XTREME score from {task: score}; missing when any of their tasks is."""
    out = {category: mean_all(task_scores.get(t) for t in tasks) for category, tasks in CATEGORIES.items()}
    out["XTREME"] = mean_all(task_scores.get(t) for t in XTREME_TASKS)
    return out


# ------------------------------------------------------------------------------------------- reading the files

def _lines(path: Path) -> list[str]:
    """`evaluate.py`'s `read_label`: every line, stripped."""
    from .lines import read_lines

    return [line.strip() for line in read_lines(path)]


def _sentences(path: Path) -> list[list[str]]:
    """`evaluate.py`'s `read_tag`: stripped lines, a blank line ends a sentence (two in a row: an empty one)."""
    sentences, sentence = [], []
    for line in _lines(path):
        if line:
            sentence.append(line)
        else:
            sentences.append(sentence)
            sentence = []
    return sentences + ([sentence] if sentence else [])


def _squad_references(path: Path) -> dict[str, list[str]]:
    """Question id -> gold answer texts of a SQuAD-format labels file, in file order."""
    doc = load_json(path)
    articles = doc.get("data", doc) if isinstance(doc, dict) else doc
    try:
        return {qa["id"]: [answer["text"] for answer in qa["answers"]]
                for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    except (KeyError, TypeError):
        raise XtremeError(f"{path}: expected SQuAD-format JSON (data -> paragraphs -> qas with id and answers)") \
            from None


def _same_length(predictions: list, labels: list, prediction_path: Path, label_path: Path, what: str) -> None:
    if len(predictions) != len(labels):
        raise XtremeError(f"{prediction_path}: {len(predictions)} {what} but {label_path} has {len(labels)}; "
                          "expected one per labelled example, in the same order")


def _read_qa(prediction_path: Path, label_path: Path) -> tuple[list, list]:
    """Per question of the labels file (in its order): the predicted answer (None: none) and the gold answers."""
    predictions, references = load_json(prediction_path), _squad_references(label_path)
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        raise XtremeError(f"{prediction_path}: expected a JSON object of question id -> answer text")
    return [predictions.get(qid) for qid in references], list(references.values())


def _read_pairs(path: Path) -> list[tuple[str, ...]]:
    """BUCC's `source id<TAB>English id` lines."""
    return [tuple(line.split("\t")) for line in _lines(path) if line]


def _read_sentences(prediction_path: Path, label_path: Path) -> tuple[list, list]:
    predictions, labels = _sentences(prediction_path), _sentences(label_path)
    _same_length(predictions, labels, prediction_path, label_path, "sentences")
    for number, (predicted, gold) in enumerate(zip(predictions, labels), 1):
        if len(predicted) != len(gold):
            raise XtremeError(f"{prediction_path}: sentence {number} has {len(predicted)} tags but "
                              f"{len(gold)} in {label_path}")
    return predictions, labels


def read_submission(task: str, prediction_path: Path, label_path: Path) -> tuple[list, list]:
    """One language's predictions and labels in XTREME's files, as `xtreme_metrics.compute` takes them."""
    from .bitext import read_indices

    kind, search = TASKS[task].kind, TASKS[task].search
    if kind == QA:
        return _read_qa(prediction_path, label_path)
    if search == MINING:  # BUCC: the mined pairs, as one set
        return [_read_pairs(prediction_path)], [_read_pairs(label_path)]
    if kind == TAGGING:
        return _read_sentences(prediction_path, label_path)
    if search == NEAREST:  # Tatoeba: an index per English sentence
        predictions, labels = read_indices(prediction_path), read_indices(label_path)
    elif kind == CLASSIFICATION:
        predictions, labels = _lines(prediction_path), _lines(label_path)
    else:
        raise XtremeError(f"task {task}: not one of XTREME's tasks")
    _same_length(predictions, labels, prediction_path, label_path, "lines")
    return predictions, labels


def score_file(task: str, lang: str, prediction_path: Path, label_path: Path) -> dict:
    """One language's metrics from a predictions file and a labels file in XTREME's formats, computed by XTREME's
    metric (`metrics.xtreme.xtreme_metrics`, the code of the `evaluate` module `metrics/xtreme`)."""
    predictions, labels = read_submission(task, prediction_path, label_path)
    try:
        return compute(task, predictions, labels, lang)
    except ValueError as err:
        raise XtremeError(f"{prediction_path} (labels {label_path}): {err}") from None


# --------------------------------------------------------------------------------------------- a whole folder

def score_folder(predictions_dir: str | Path, labels_dir: str | Path, split: str = "test") -> dict:
    """Every XTREME task with a folder in both dirs: per-language metrics, averages, task score, what is missing;
    then the category means and the XTREME score."""
    predictions_dir, labels_dir = Path(predictions_dir), Path(labels_dir)
    tasks = [t for t in XTREME_TASKS if (predictions_dir / t).is_dir() and (labels_dir / t).is_dir()]
    if not tasks:
        raise XtremeError(f"no XTREME task folder ({', '.join(XTREME_TASKS)}) in both {predictions_dir} and "
                          f"{labels_dir}; expected XTREME's layout, e.g. pawsx/{split}-de.tsv in both")
    out = {"predictions": str(predictions_dir), "labels": str(labels_dir), "split": split, "tasks": {}}
    for task in tasks:
        suffix = "json" if TASKS[task].kind == QA else "tsv"
        result = {"languages": {}, "missing_predictions": {}, "no_labels": []}
        for lang in TASKS[task].languages:
            name = f"{task}/{split}-{lang}.{suffix}"
            if not (labels_dir / name).is_file():
                result["no_labels"].append(lang)
            elif not (predictions_dir / name).is_file():
                result["missing_predictions"][lang] = str(predictions_dir / name)
            else:
                result["languages"][lang] = score_file(task, lang, predictions_dir / name, labels_dir / name)
        result["average"] = average(task, result["languages"])
        result["score"] = task_score(task, result["average"])
        result["partial"] = len(result["languages"]) < len(TASKS[task].languages)
        out["tasks"][task] = result
    scores = xtreme_scores({t: r["score"] for t, r in out["tasks"].items()})
    out["categories"] = {c: scores[c] for c in CATEGORIES}
    out["xtreme"] = scores["XTREME"]
    return out


def format_scores(scores: dict) -> str:
    """Per task a table of per-language scores with its average (exact values below it), then the XTREME score."""
    lines = []
    for task, result in scores["tasks"].items():
        keys = list(result["average"])
        n, total = len(result["languages"]), len(TASKS[task].languages)
        lines += ["", f"## {task}: {n} of {total} languages" + (" (partial)" if result["partial"] else ""), "",
                  "| language | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        rows = [*result["languages"].items(), ("average", result["average"])] if keys else []
        lines += [f"| {lang} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + " |" for lang, m in rows]
        lines.append("average: " + ", ".join(f"{k} {v!r}" for k, v in result["average"].items())
                     + f"; task score {result['score']!r}")
        if result["missing_predictions"]:
            lines.append("missing predictions (not scored): "
                         + ", ".join(f"{lang} ({path})" for lang, path in result["missing_predictions"].items()))
        if result["no_labels"]:
            lines.append(f"no labels (not scored): {', '.join(result['no_labels'])}")
    partial = [t for t, r in scores["tasks"].items() if r["partial"]]
    lines += ["", "## XTREME", ""]
    lines += [f"{c}: {scores['categories'][c]!r}" for c in CATEGORIES]
    lines.append(f"XTREME score: {scores['xtreme']!r}")
    if partial:
        lines.append(f"partial (fewer languages than XTREME's): {', '.join(partial)}")
    return "\n".join(lines).lstrip("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m utils.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions_dir", help="folder with {task}/{split}-{lang}.tsv|json predictions")
    parser.add_argument("labels_dir", help="folder with the labels in the same layout")
    parser.add_argument("--split", default="test", help="the file name prefix: test (XTREME's) or dev")
    parser.add_argument("--json", help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    scores = score_folder(args.predictions_dir, args.labels_dir, args.split)
    print(format_scores(scores))
    if args.json:
        atomic_write_json(args.json, scores)
    missing = [path for r in scores["tasks"].values() for path in r["missing_predictions"].values()]
    if missing:
        raise XtremeError(f"{len(missing)} predictions file(s) missing, their languages are left out of the "
                          f"averages above: {', '.join(missing)}")
    return scores


if __name__ == "__main__":
    run_main(main)
