"""Finding and reading the results files under a run dir: one `Result` per file, with the grid step that made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import XtremeError
from ..files import peek_json
from ..results import METRIC_KEYS, SPLITS, read_results
from ..score import average, language_score, task_score
from ..tasks import TASKS


def xtreme_languages(task: str, split: str | None) -> tuple | None:
    """XTREME's languages of the task's split (udpos dev has 29); None for a task outside the registry."""
    return TASKS[task].languages_in(split or "test") if task in TASKS else None


@dataclass
class Result:
    path: Path
    run: str  # the results' output dir relative to RUN_DIR
    task: str
    target: str
    split: str
    languages: dict  # lang -> metrics
    skipped: dict
    data: dict
    step: dict | None = None
    backbone: str | None = None
    intermediate: str | None = None
    seed: int | None = None
    scores: dict = field(default_factory=dict)  # lang -> score

    @property
    def score(self) -> float | None:
        """XTREME's task score over the languages evaluated (`utils.score`)."""
        return task_score(self.task, average(self.task, {lang: self.languages[lang] for lang in self.scores}))

    @property
    def partial(self) -> bool:
        """Fewer languages than XTREME's list for the task (or languages skipped)."""
        expected = xtreme_languages(self.task, self.split)
        return bool(self.skipped) or (expected is not None and not set(expected) <= set(self.scores))

    @property
    def in_grid(self) -> bool:
        return self.backbone is not None and self.intermediate is not None




class BrokenResults(XtremeError):
    """Results files the report cannot use; `files` has a `PATH: what is wrong` line for each."""

    def __init__(self, run_dir: Path, files: list[str]):
        self.files = files
        super().__init__(f"{len(files)} results file(s) under {run_dir} cannot be used (listed above): fix or remove "
                         "them, or pass --skip-broken to report without them")


def read_result(path: Path, run_dir: Path) -> Result:
    """One results file as a `Result`; an `XtremeError` names the file and what is wrong with it."""
    data = read_results(path)
    for lang, metrics in data["languages"].items():  # a language with a metric has a score
        if language_score(metrics) is None and any(k in metrics for k in METRIC_KEYS):
            raise XtremeError(f"{path}: languages.{lang} has no score (expected score, accuracy, f1, or exact_match "
                              "and f1)")
    out_dir = path.parent.parent
    task = data["task"]
    result = Result(path=path, run=str(out_dir.relative_to(run_dir)), task=task, target=task, split=data["split"],
                    languages=data["languages"], skipped=data.get("skipped", {}), data=data)
    result.scores = {lang: s for lang, m in data["languages"].items() if (s := language_score(m)) is not None}
    _place_in_grid(result, out_dir, run_dir)
    return result


def _place_in_grid(result: Result, out_dir: Path, run_dir: Path) -> None:
    """Backbone, intermediate setting, seed and target from the step record beside the results, else from the grid's
    layout `{backbone}/{intermediate}/seed{s}/{target}/phase3`; a results dir outside the grid keeps none."""
    step = peek_json(out_dir / "step.json")
    if isinstance(step, dict) and step.get("phase") == 3 and isinstance(step.get("backbone"), dict):
        result.step = step
        result.backbone, result.intermediate = step["backbone"].get("name"), step.get("intermediate")
        result.seed, result.target = step.get("seed"), step.get("target") or result.task
        return
    parts = out_dir.relative_to(run_dir).parts
    if len(parts) >= 5 and parts[-1] == "phase3" and parts[-3].startswith("seed") and parts[-3][4:].isdigit():
        result.backbone, result.intermediate = parts[-5], parts[-4]
        result.seed, result.target = int(parts[-3][4:]), parts[-2]


def scan(run_dir: Path, split: str | None = None) -> tuple[list[Result], list[str]]:
    """The results files under RUN_DIR (when `split` is given, all but those named after the other split), and a
    `PATH: what is wrong` line for each one that cannot be used."""
    results, broken = [], []
    for path in sorted(run_dir.rglob("results/*.json")):
        named = path.stem.rpartition(".")[2]
        if split is not None and named in SPLITS and named != split:
            continue
        try:
            results.append(read_result(path, run_dir))
        except XtremeError as err:
            broken.append(str(err))
    return results, broken


def discover(run_dir: Path, split: str | None = None) -> list[Result]:
    """The results under RUN_DIR; `BrokenResults` when any file cannot be used."""
    results, broken = scan(run_dir, split)
    if broken:
        raise BrokenResults(run_dir, broken)
    return results


def check_one_split(results: list[Result], run_dir: Path) -> None:
    """Refuse results of both splits for one target (a run outside the grid: one results dir and task): its
    scores, means over seeds and gains would mix them."""
    splits: dict[tuple, dict[str, Path]] = {}
    for r in results:
        key = ("grid", r.target) if r.in_grid else (r.run, r.task)
        splits.setdefault(key, {}).setdefault(r.split, r.path)
    mixed = {key: paths for key, paths in splits.items() if len(paths) > 1}
    if mixed:
        (where, name), paths = next(iter(mixed.items()))
        raise XtremeError(f"{run_dir}: both dev and test results for {name}"
                          f"{'' if where == 'grid' else f' in {where}'} (e.g. {paths['dev']} and {paths['test']})"
                          f"{f' and {len(mixed) - 1} more' if len(mixed) > 1 else ''}: pass --split dev or --split "
                          "test to report one of them")
