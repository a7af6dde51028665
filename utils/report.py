"""Summarise a grid's results the way the paper does: XTREME scores, gains over no intermediate training, plots.

    python -m utils.report RUN_DIR [--out DIR] [--baseline none] [--split test] [--bars pawsx udpos] [--skip-broken]

Reads every `results/{task}.{split}.json` under RUN_DIR (what `run_xtreme_eval.py` writes). A file that cannot be
read or does not hold numeric scores where scores belong stops the report: each one is named with what is wrong
(exit 2), unless `--skip-broken`, which leaves them out and lists them in `report.md`. Results of one split are
never mixed with another's: when a target (or a run outside the grid) has both dev and test results, `--split`
must say which to report. For the grid's layout
(`{backbone}/{intermediate}/seed{s}/{target}/phase3/`, described in `utils/grid.py`) the step record beside each
results file says which backbone, intermediate setting, seed and target produced it; any other results file is
reported per run only. Writes to `--out` (default RUN_DIR/report):

- `report.md`: per backbone, the XTREME table (a row per intermediate setting: the task scores, the four category
  means and the overall score, mean +- std over seeds), the gain of each setting over the baseline per target,
  the best intermediate setting per target and its average gain (the paper's "+5.4" view), per-language gains;
- `runs.md`: per run (backbone, intermediate setting, seed) its XTREME scores and per-language tables;
- CSV: `scores.csv` (a row per results file, with what produced it: model, commands, versions, git commit, wall
  time), `languages.csv`, `xtreme.csv`, `deltas.csv`, `best_per_target.csv`, `language_deltas.csv`;
- PNG: `heatmap_{backbone}.png` (gains, setting x target) and `languages_{backbone}_{target}.png` (per-language
  scores of the baseline and the intermediate settings).

When the plan grouped backbones into pairs (`group: base|aligned`, `pair: NAME`, recorded in `grid_state.json` and
each `step.json`), the report adds the aligned-vs-base comparison: per pair and target, the gain from intermediate
training of each backbone (per setting, and for each backbone's best setting per target) and the difference of the
gains, aligned minus base (`report.md`, `pairs.csv`, `pairs_{pair}.png`). A gain is taken per seed, paired by seed
(a retrieval target's baseline is the pretrained model, evaluated once, and serves every seed), then mean +- std
over seeds; the difference is the difference of the mean gains +- sqrt(std_base^2 + std_aligned^2), the spread of
the difference between one aligned and one base run (`pairs.csv` also has its standard error,
sqrt(std_base^2/n_base + std_aligned^2/n_aligned)). Without pairs, none of this is written.

XTREME's rules (`evaluate.py`, computed by `utils.score`): a task's score comes from the plain means over its
languages (accuracy for XNLI/PAWS-X/Tatoeba, F1 for UD-POS/PAN-X/BUCC, (EM + F1)/2 for the QA tasks); the overall
score is the mean of the nine task scores; the category means are over classification (pawsx, xnli), structured
prediction (udpos, panx), question answering (xquad, mlqa, tydiqa) and retrieval (bucc2018, tatoeba). A missing value is
shown as missing ("—" in markdown, an empty CSV cell), never as 0, and a mean that needs a missing value is missing.
A task score over fewer languages than XTREME's list is marked with a dagger.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import XtremeError, run_main
from .results import METRIC_KEYS, SPLITS, read_results
from .score import CATEGORIES, XTREME_TASKS, average, language_score, task_score, xtreme_scores
from .tasks import TASKS
SHORT = {"classification": "class.", "structured prediction": "struct.", "question answering": "QA",
         "retrieval": "retr."}
MISSING = "—"
PARTIAL = "†"
GRID_STATE = "grid_state.json"
RETRIEVAL_TASKS = ("bucc2018", "tatoeba")  # phase 3 on the phase-1 model; for the baseline, the pretrained model
GROUPS = ("base", "aligned")


# ----------------------------------------------------------------------------------------------------- reading

def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def stdev(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) >= 2 else None


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


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
    step = _read_json(out_dir / "step.json")
    if isinstance(step, dict) and step.get("phase") == 3 and isinstance(step.get("backbone"), dict):
        result.step = step
        result.backbone, result.intermediate = step["backbone"].get("name"), step.get("intermediate")
        result.seed, result.target = step.get("seed"), step.get("target") or task
    else:  # the grid's layout without its step record: {backbone}/{intermediate}/seed{s}/{target}/phase3
        parts = out_dir.relative_to(run_dir).parts
        if len(parts) >= 5 and parts[-1] == "phase3" and parts[-3].startswith("seed") and parts[-3][4:].isdigit():
            result.backbone, result.intermediate = parts[-5], parts[-4]
            result.seed, result.target = int(parts[-3][4:]), parts[-2]
    return result


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


# ----------------------------------------------------------------------------------------------- aggregation

@dataclass
class Cell:
    """One (backbone, intermediate setting, target) over seeds."""
    scores: list  # task score per seed
    seeds: list
    partial: bool
    languages: dict  # lang -> mean over seeds

    @property
    def mean(self):
        return mean(self.scores)

    @property
    def std(self):
        return stdev(self.scores)

    @property
    def n(self):
        return len([s for s in self.scores if s is not None])

    @property
    def by_seed(self) -> dict:
        return {seed: score for seed, score in zip(self.seeds, self.scores) if score is not None}


@dataclass
class Pair:
    """A base backbone and its aligned (instruction/RLHF-tuned) version, as the plan grouped them."""
    name: str
    base: str
    aligned: str


@dataclass
class Gain:
    """The gain of one intermediate setting over the baseline for one (backbone, target), per seed."""
    setting: str | None
    per_seed: dict  # seed -> setting's score - baseline's score (same seed)
    score: float | None = None  # the setting's mean score over its seeds
    baseline: float | None = None  # the baseline's mean score

    @property
    def mean(self):
        return mean(self.per_seed.values())

    @property
    def std(self):
        return stdev(self.per_seed.values())

    @property
    def n(self):
        return len(self.per_seed)


@dataclass
class GainDiff:
    """aligned gain - base gain: the difference of the mean gains, with a combined spread."""
    base: Gain
    aligned: Gain

    @property
    def diff(self):
        a, b = self.aligned.mean, self.base.mean
        return None if a is None or b is None else a - b

    @property
    def std(self):
        """sqrt(std_a^2 + std_b^2): the spread of (one aligned run's gain - one base run's gain) over seeds, for
        independent runs; missing unless both gains have a std (2+ seeds)."""
        a, b = self.aligned.std, self.base.std
        return None if self.diff is None or a is None or b is None else math.sqrt(a * a + b * b)

    @property
    def se(self):
        """The standard error of the difference of the means: sqrt(std_a^2/n_a + std_b^2/n_b)."""
        a, b = self.aligned, self.base
        if self.diff is None or a.std is None or b.std is None:
            return None
        return math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)


class Summary:
    def __init__(self, results: list[Result], run_dir: Path, baseline: str = "none", broken: list[str] = ()):
        self.results, self.run_dir, self.baseline, self.broken = results, run_dir, baseline, list(broken)
        self.grid = [r for r in results if r.in_grid]
        state = _read_json(run_dir / GRID_STATE) or {}
        self.state = state if isinstance(state, dict) else {}
        self.backbones = self._order([r.backbone for r in self.grid],
                                     [b.get("name") for b in self.state.get("backbones") or []])
        planned = [x for x in self.state.get("intermediate") or [] if isinstance(x, str)]
        self.settings = self._order([r.intermediate for r in self.grid], planned, first=baseline)
        planned_targets = [t.get("name") for t in self.state.get("targets") or [] if isinstance(t, dict)]
        found = [r.target for r in self.grid]
        self.targets = ([t for t in XTREME_TASKS if t in found or t in planned_targets]
                        + [t for t in self._order(found, planned_targets) if t not in XTREME_TASKS])
        self.cells: dict[tuple, Cell] = {}
        for r in self.grid:
            key = (r.backbone, r.intermediate, r.target)
            cell = self.cells.setdefault(key, Cell([], [], False, {}))
            cell.scores.append(r.score)
            cell.seeds.append(r.seed)
            cell.partial |= r.partial
        for key, cell in self.cells.items():
            per_lang: dict[str, list] = {}
            for r in self.grid:
                if (r.backbone, r.intermediate, r.target) == key:
                    for lang, score in r.scores.items():
                        per_lang.setdefault(lang, []).append(score)
            cell.languages = {lang: mean(v) for lang, v in per_lang.items()}
        self.target_tasks = {t.get("name"): t.get("task") for t in self.state.get("targets") or []
                             if isinstance(t, dict)}
        self.target_tasks.update({r.target: r.task for r in self.grid})
        self.pairs, self.pair_notes = self._pairs()

    def _pairs(self) -> tuple[list[Pair], list[str]]:
        """The plan's base/aligned pairs, from grid_state.json's backbones and the step records together."""
        records = [b for b in self.state.get("backbones") or [] if isinstance(b, dict)]
        records += [r.step["backbone"] for r in self.grid if r.step and isinstance(r.step.get("backbone"), dict)]
        members: dict[str, dict[str, list]] = {}
        for rec in records:
            name, group, pair = rec.get("name"), rec.get("group"), rec.get("pair")
            if name and pair is not None and group in GROUPS:
                names = members.setdefault(str(pair), {g: [] for g in GROUPS})[group]
                if name not in names:
                    names.append(name)
        pairs, notes = [], []
        for pair, groups in members.items():
            if len(groups["base"]) == 1 and len(groups["aligned"]) == 1:
                pairs.append(Pair(pair, groups["base"][0], groups["aligned"][0]))
            else:
                base, aligned = (", ".join(groups[g]) or MISSING for g in GROUPS)
                notes.append(f"pair `{pair}` left out: expected one base and one aligned backbone, found base "
                             f"{base}, aligned {aligned}")
        return pairs, notes

    @staticmethod
    def _order(found: list, planned: list, first: str | None = None) -> list:
        out = [x for x in planned if x]
        out += sorted({x for x in found if x and x not in out})
        if first in out:
            out.remove(first)
            out.insert(0, first)
        return out

    def cell(self, backbone, setting, target) -> Cell | None:
        return self.cells.get((backbone, setting, target))

    def value(self, backbone, setting, target) -> float | None:
        cell = self.cell(backbone, setting, target)
        return cell.mean if cell else None

    def delta(self, backbone, setting, target) -> float | None:
        value, base = self.value(backbone, setting, target), self.value(backbone, self.baseline, target)
        return None if value is None or base is None else value - base

    def xtreme_row(self, backbone, setting) -> dict:
        """Mean task scores over seeds, their category/overall means, and the std over seeds of the overall."""
        tasks = {t: self.value(backbone, setting, t) for t in self.targets}
        row = xtreme_scores(tasks)
        per_seed = {}
        for r in self.grid:
            if r.backbone == backbone and r.intermediate == setting:
                per_seed.setdefault(r.seed, {})[r.target] = r.score
        overall = [xtreme_scores(s)["XTREME"] for s in per_seed.values()]
        row["XTREME_std"] = stdev(overall) if all(v is not None for v in overall) else None
        return row

    def best(self, backbone, target) -> tuple[str | None, float | None]:
        candidates = [(self.value(backbone, s, target), s) for s in self.settings if s != self.baseline]
        candidates = [(v, s) for v, s in candidates if v is not None]
        if not candidates:
            return None, None
        value, setting = max(candidates, key=lambda x: x[0])
        return setting, value

    def gain(self, backbone, setting, target) -> Gain:
        """The setting's gain over the baseline per seed, paired by seed. A retrieval target's baseline is the
        pretrained model (seed-independent; the grid evaluates it for the first seed only): its mean serves every
        seed that has no baseline result of its own. A seed without both scores has no gain (missing, not 0)."""
        cell, base = self.cell(backbone, setting, target), self.cell(backbone, self.baseline, target)
        per_seed = {}
        if cell and base and setting is not None:
            baseline = base.by_seed
            fixed = self.target_tasks.get(target, target) in RETRIEVAL_TASKS
            for seed, score in cell.by_seed.items():
                b = baseline.get(seed, base.mean if fixed else None)
                if b is not None:
                    per_seed[seed] = score - b
        return Gain(setting, per_seed, cell.mean if cell else None, base.mean if base else None)

    def best_gain(self, backbone, target) -> Gain:
        """The gain of the backbone's own best setting for the target (chosen on mean score, as `best`)."""
        setting, _ = self.best(backbone, target)
        if setting is None:
            return Gain(None, {}, None, self.value(backbone, self.baseline, target))
        return self.gain(backbone, setting, target)

    def pair_gains(self, pair: Pair, setting: str | None, target) -> GainDiff:
        """Base and aligned gains for `setting` (None: each backbone's best setting for the target)."""
        if setting is None:
            return GainDiff(self.best_gain(pair.base, target), self.best_gain(pair.aligned, target))
        return GainDiff(self.gain(pair.base, setting, target), self.gain(pair.aligned, setting, target))

    def pair_average(self, pair: Pair, setting: str | None) -> dict:
        """Mean over the targets where both backbones have a gain: base, aligned and their difference."""
        both = {t: d for t in self.targets if (d := self.pair_gains(pair, setting, t)).diff is not None}
        return {"base": mean(d.base.mean for d in both.values()),
                "aligned": mean(d.aligned.mean for d in both.values()), "diff": mean(d.diff for d in both.values()),
                "n_targets": len(both), "targets": list(both)}

    def best_summary(self, backbone) -> dict:
        """The paper's view: the best intermediate setting per target against the baseline, averaged."""
        deltas, best_scores, base_scores = {}, {}, {}
        for t in self.targets:
            setting, value = self.best(backbone, t)
            best_scores[t] = value
            base_scores[t] = self.value(backbone, self.baseline, t)
            if value is not None and base_scores[t] is not None:
                deltas[t] = value - base_scores[t]
        return {"mean_delta": mean(deltas.values()), "n_targets": len(deltas),
                "n_xtreme_targets": len([t for t in deltas if t in XTREME_TASKS]),
                "best_xtreme": xtreme_scores(best_scores)["XTREME"],
                "baseline_xtreme": xtreme_scores(base_scores)["XTREME"], "deltas": deltas}


# ------------------------------------------------------------------------------------------------- formatting

def fmt(value, signed: bool = False, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_cell(cell: Cell | None) -> str:
    if cell is None or cell.mean is None:
        return MISSING
    text = fmt(cell.mean)
    if cell.std is not None:
        text += f" ± {cell.std:.1f}"
    return text + (PARTIAL if cell.partial else "")


def csv_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return round(value, 4) if isinstance(value, float) else value


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[csv_value(v) for v in row] for row in rows])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._+-" else "-" for c in str(name))


# ---------------------------------------------------------------------------------------------------- outputs

def report_markdown(s: Summary) -> list[str]:
    lines = [f"# XTREME report: {s.run_dir}", ""]
    by_split: dict[str, set] = {}
    for r in s.grid:
        by_split.setdefault(r.split, set()).add(r.target)
    splits = "; ".join(f"{split}: {', '.join(t for t in s.targets if t in targets)}"
                       for split, targets in sorted(by_split.items())) if len(by_split) > 1 else (
        next(iter(by_split), MISSING))
    lines += [f"{len(s.results)} results file(s); {len(s.grid)} from the grid layout; baseline setting: "
              f"`{s.baseline}`; split {splits}.", "",
              f"Scores are XTREME's (task = mean over languages; QA = (EM + F1)/2), mean ± std over seeds "
              f"(std when 2 or more seeds ran). `{MISSING}`: missing (not run, failed or incomplete), never 0. "
              f"`{PARTIAL}`: over fewer languages than XTREME's list for the task.", ""]
    if s.broken:
        lines += [f"**{len(s.broken)} results file(s) left out** (`--skip-broken`): they cannot be used; every score "
                  "below is computed without them.", ""] + [f"- {line}" for line in s.broken] + [""]
    if not s.grid:
        lines += ["No results in the grid layout (`{backbone}/{intermediate}/seed{s}/{target}/phase3`): see "
                  "`runs.md` for the per-run tables.", ""]
    lines += pairs_markdown(s)
    for bb in s.backbones:
        targets = s.targets
        lines += [f"## {bb}", "", "### XTREME scores per intermediate setting", ""]
        header = ["intermediate", "seeds", *targets, *(SHORT[c] for c in CATEGORIES), "XTREME"]
        rows = []
        for setting in s.settings:
            cells = [s.cell(bb, setting, t) for t in targets]
            seeds = sorted({seed for c in cells if c for seed in c.seeds if seed is not None})
            row = s.xtreme_row(bb, setting)
            overall = fmt(row["XTREME"]) + (f" ± {row['XTREME_std']:.1f}" if row["XTREME_std"] is not None else "")
            rows.append([setting, ",".join(map(str, seeds)) or MISSING, *(fmt_cell(c) for c in cells),
                         *(fmt(row[c]) for c in CATEGORIES), overall])
        lines += md_table(header, rows) + [""]

        lines += [f"### Gain over `{s.baseline}` (points)", ""]
        header = ["intermediate", *targets, "mean"]
        rows = []
        for setting in s.settings:
            if setting == s.baseline:
                continue
            deltas = [s.delta(bb, setting, t) for t in targets]
            rows.append([setting, *(fmt(d, signed=True) for d in deltas), fmt(mean(deltas), signed=True)])
        lines += (md_table(header, rows) if rows else ["(no intermediate settings besides the baseline)"]) + [""]
        if not any(s.cell(bb, s.baseline, t) for t in targets):
            lines += [f"No results for the baseline `{s.baseline}`: every gain is missing.", ""]

        lines += ["### Best intermediate setting per target", ""]
        rows = []
        for t in targets:
            setting, value = s.best(bb, t)
            base = s.value(bb, s.baseline, t)
            rows.append([t, setting or MISSING, fmt(value), fmt(base),
                         fmt(None if value is None or base is None else value - base, signed=True)])
        summary = s.best_summary(bb)
        rows.append(["**average**", "", fmt(summary["best_xtreme"]), fmt(summary["baseline_xtreme"]),
                     f"**{fmt(summary['mean_delta'], signed=True)}**"])
        lines += md_table(["target", "best setting", "score", s.baseline, "gain"], rows) + [""]
        lines += [f"Average gain of the best setting per target over `{s.baseline}`: "
                  f"**{fmt(summary['mean_delta'], signed=True)}** over {summary['n_targets']} target(s) "
                  f"({summary['n_xtreme_targets']} of the 9 XTREME tasks); XTREME score with the best setting per "
                  f"target {fmt(summary['best_xtreme'])} vs {fmt(summary['baseline_xtreme'])} (missing unless all "
                  "9 tasks have results). The best setting is chosen on the same scores it is reported on, as in "
                  "the paper's \"+5.4\".", ""]

        lines += ["### Per-language gains", ""]
        for t in targets:
            base = s.cell(bb, s.baseline, t)
            others = [x for x in s.settings if x != s.baseline and s.cell(bb, x, t)]
            if not base and not others:
                continue
            langs = sorted({lang for x in s.settings if s.cell(bb, x, t) for lang in s.cell(bb, x, t).languages})
            header = ["language", s.baseline, *(f"{x} Δ" for x in others)]
            rows = []
            for lang in langs:
                b = base.languages.get(lang) if base else None
                rows.append([lang, fmt(b), *(fmt(None if b is None or s.cell(bb, x, t).languages.get(lang) is None
                                                  else s.cell(bb, x, t).languages[lang] - b, signed=True)
                                              for x in others)])
            lines += [f"#### {t}", ""] + md_table(header, rows) + [""]
            best, _ = s.best(bb, t)
            if best and base:
                gains = language_deltas(s, bb, best, t)
                ranked = sorted(gains.items(), key=lambda x: -x[1])
                if len(ranked) > 5:
                    lines += [f"Largest gains with `{best}`: " + ", ".join(f"{l} {d:+.1f}" for l, d in ranked[:5])
                              + "; smallest: " + ", ".join(f"{l} {d:+.1f}" for l, d in ranked[::-1][:3]) + ".", ""]
                elif ranked:
                    lines += [f"Gains with `{best}`, largest first: "
                              + ", ".join(f"{l} {d:+.1f}" for l, d in ranked) + ".", ""]
    return lines


def fmt_gain(gain: Gain) -> str:
    if gain.mean is None:
        return MISSING
    text = fmt(gain.mean, signed=True)
    return text + (f" ± {gain.std:.1f}" if gain.std is not None else f" ({gain.n} seed{'s' * (gain.n != 1)})")


def fmt_diff(d: GainDiff) -> str:
    if d.diff is None:
        return MISSING
    return fmt(d.diff, signed=True) + (f" ± {d.std:.1f}" if d.std is not None else "")


def pairs_markdown(s: Summary) -> list[str]:
    """The aligned-vs-base comparison (issue 9); nothing when the run has no base/aligned pairs."""
    if not s.pairs and not s.pair_notes:
        return []
    lines = ["## Aligned vs base: the gain from intermediate training", "",
             f"Gain = score with the intermediate setting − score with `{s.baseline}`, per seed (paired by seed; a "
             f"retrieval target's `{s.baseline}` is the pretrained model, evaluated once, and serves every seed), "
             "then mean ± std over seeds (`(1 seed)`: no std). **aligned − base** = the difference of the mean "
             "gains ± sqrt(std_base² + std_aligned²), the spread of the difference between one aligned and one base "
             "run (shown only when both gains have a std; `pairs.csv` also gives the standard error of the difference, "
             "sqrt(std_base²/n_base + std_aligned²/n_aligned)). The best setting is each backbone's own, chosen on "
             f"the mean score it is reported on. `{MISSING}`: missing, never 0.", ""]
    lines += [f"Note: {note}." for note in s.pair_notes] + ([""] if s.pair_notes else [])
    settings = [x for x in s.settings if x != s.baseline]
    for pair in s.pairs:
        lines += [f"### Pair `{pair.name}`: base `{pair.base}` vs aligned `{pair.aligned}`", "",
                  "#### Best intermediate setting per target", ""]
        rows = []
        for t in s.targets:
            d = s.pair_gains(pair, None, t)
            rows.append([t, fmt_cell(s.cell(pair.base, s.baseline, t)), d.base.setting or MISSING, fmt_gain(d.base),
                         fmt_cell(s.cell(pair.aligned, s.baseline, t)), d.aligned.setting or MISSING,
                         fmt_gain(d.aligned), fmt_diff(d)])
        avg = s.pair_average(pair, None)
        rows.append([f"**average** ({avg['n_targets']} target{'s' * (avg['n_targets'] != 1)})", "", "",
                     fmt(avg["base"], signed=True), "", "", fmt(avg["aligned"], signed=True),
                     f"**{fmt(avg['diff'], signed=True)}**"])
        lines += md_table(["target", f"base: {s.baseline}", "base: best", "base gain", f"aligned: {s.baseline}",
                           "aligned: best", "aligned gain", "aligned − base"], rows) + [""]
        lines += [f"Averaged over the {avg['n_targets']} target(s) where both backbones have a gain "
                  f"({', '.join(avg['targets']) or MISSING}): base {fmt(avg['base'], signed=True)}, aligned "
                  f"{fmt(avg['aligned'], signed=True)}, aligned − base **{fmt(avg['diff'], signed=True)}** points.",
                  ""]
        lines += ["#### Gain per intermediate setting", ""]
        if not settings:
            lines += ["(no intermediate settings besides the baseline)", ""]
            continue
        rows = []
        for t in s.targets:
            for x in settings:
                d = s.pair_gains(pair, x, t)
                rows.append([t, x, fmt_gain(d.base), fmt_gain(d.aligned), fmt_diff(d)])
        for x in settings:
            avg = s.pair_average(pair, x)
            rows.append([f"**average** ({avg['n_targets']} target{'s' * (avg['n_targets'] != 1)})", x,
                         fmt(avg["base"], signed=True), fmt(avg["aligned"], signed=True),
                         f"**{fmt(avg['diff'], signed=True)}**"])
        lines += md_table(["target", "intermediate", "base gain", "aligned gain", "aligned − base"], rows) + [""]
    return lines


PAIR_COLUMNS = ["pair", "base_backbone", "aligned_backbone", "target", "intermediate", "base_setting",
                "base_baseline", "base_score", "base_gain", "base_gain_std", "base_n", "aligned_setting",
                "aligned_baseline", "aligned_score", "aligned_gain", "aligned_gain_std", "aligned_n", "diff",
                "diff_std", "diff_se", "n_targets"]


def _gain_columns(gain: Gain) -> list:
    return [gain.setting, gain.baseline, gain.score, gain.mean, gain.std, gain.n]


def write_pairs_csv(s: Summary, out: Path) -> Path | None:
    """`pairs.csv`: a row per (pair, target, setting) with `intermediate` = a setting or `best` (each backbone's
    best setting for the target: base_setting / aligned_setting), then per (pair, setting) a `target=average` row
    over the targets where both gains exist. Nothing without pairs."""
    if not s.pairs:
        return None
    rows = []
    views = [None] + [x for x in s.settings if x != s.baseline]
    for pair in s.pairs:
        for view in views:
            for t in s.targets:
                d = s.pair_gains(pair, view, t)
                rows.append([pair.name, pair.base, pair.aligned, t, view or "best", *_gain_columns(d.base),
                             *_gain_columns(d.aligned), d.diff, d.std, d.se, None])
            avg = s.pair_average(pair, view)
            rows.append([pair.name, pair.base, pair.aligned, "average", view or "best", None, None, None, avg["base"],
                         None, None, None, None, None, avg["aligned"], None, None, avg["diff"], None, None,
                         avg["n_targets"]])
    write_csv(out / "pairs.csv", PAIR_COLUMNS, rows)
    return out / "pairs.csv"


def language_deltas(s: Summary, bb, setting, target) -> dict:
    base, cell = s.cell(bb, s.baseline, target), s.cell(bb, setting, target)
    if not base or not cell:
        return {}
    return {lang: v - base.languages[lang] for lang, v in cell.languages.items()
            if v is not None and base.languages.get(lang) is not None}


def runs_markdown(s: Summary) -> list[str]:
    lines = [f"# Runs under {s.run_dir}", ""]
    runs: dict[tuple, list[Result]] = {}

    def order(r: Result):
        if not r.in_grid:
            return (1, 0, 0, 0, r.run)
        return (0, s.backbones.index(r.backbone), s.settings.index(r.intermediate), r.seed or 0, "")

    for r in sorted(s.results, key=order):
        key = (r.backbone, r.intermediate, r.seed) if r.in_grid else (r.run, None, None)
        runs.setdefault(key, []).append(r)
    for key, rs in runs.items():
        title = f"{key[0]} / {key[1]} / seed {key[2]}" if key[1] is not None else key[0]
        lines += [f"## {title}", ""]
        scores = {r.target: r.score for r in rs}
        xt = xtreme_scores(scores)
        targets = [t for t in XTREME_TASKS if t in scores] + sorted(t for t in scores if t not in XTREME_TASKS)
        lines += md_table([*targets, *(SHORT[c] for c in CATEGORIES), "XTREME"],
                          [[*(fmt(scores[t]) + (PARTIAL if any(r.partial for r in rs if r.target == t) else "")
                              for t in targets), *(fmt(xt[c]) for c in CATEGORIES), fmt(xt["XTREME"])]]) + [""]
        for r in sorted(rs, key=lambda r: (XTREME_TASKS.index(r.target) if r.target in XTREME_TASKS else 99,
                                           r.target)):
            keys = [k for k in METRIC_KEYS if any(k in m for m in r.languages.values())]
            rows = [[lang, *(fmt(m.get(k)) for k in keys)] for lang, m in r.languages.items()]
            rows.append(["**avg**", *(fmt(mean(m.get(k) for m in r.languages.values())) for k in keys)])
            rows += [[lang, f"skipped: {why}", *([""] * (len(keys) - 1))] for lang, why in r.skipped.items()]
            lines += [f"### {r.target} ({r.split}): `{r.path.relative_to(s.run_dir)}`", ""]
            lines += md_table(["language", *keys], rows) + [""]
    return lines


def write_csvs(s: Summary, out: Path) -> None:
    rows = []
    for r in s.results:
        step = r.step or {}
        env = r.data.get("environment") or {}
        chain = {u.get("phase"): u for u in step.get("upstream") or [] if isinstance(u, dict)}
        walls = [step.get("wall_s")] + [u.get("wall_s") for u in chain.values()]
        rows.append([r.backbone, r.intermediate, r.seed, r.target, r.task, r.split, r.score, len(r.scores),
                     ",".join(sorted(r.skipped)), r.partial, str(r.path.relative_to(s.run_dir)), r.data.get("model"),
                     (step.get("backbone") or {}).get("path"), env.get("git_commit"), env.get("torch"),
                     env.get("transformers"), (chain.get(1) or {}).get("command"),
                     (chain.get(2) or {}).get("command"), step.get("command_line"),
                     sum(w for w in walls if w) if any(walls) else None, r.data.get("updated")])
    write_csv(out / "scores.csv", ["backbone", "intermediate", "seed", "target", "task", "split", "score",
                                   "n_languages", "skipped_languages", "partial", "results", "model",
                                   "backbone_path", "git_commit", "torch", "transformers", "phase1_command",
                                   "phase2_command", "phase3_command", "wall_s", "updated"], rows)
    rows = []
    for r in s.results:
        for lang, m in r.languages.items():
            rows.append([r.backbone, r.intermediate, r.seed, r.target, r.run, lang, r.scores.get(lang),
                         m.get("accuracy"), m.get("f1"), m.get("exact_match"), m.get("num_examples")])
    write_csv(out / "languages.csv", ["backbone", "intermediate", "seed", "target", "run", "language", "score",
                                      "accuracy", "f1", "exact_match", "num_examples"], rows)

    rows, delta_rows, best_rows, lang_rows = [], [], [], []
    for bb in s.backbones:
        for setting in s.settings:
            row = s.xtreme_row(bb, setting)
            cells = [s.cell(bb, setting, t) for t in s.targets]
            rows.append([bb, setting, *(c.mean if c else None for c in cells),
                         *(row[c] for c in CATEGORIES), row["XTREME"], row["XTREME_std"],
                         *(c.std if c else None for c in cells), *(c.n if c else 0 for c in cells)])
            for t, c in zip(s.targets, cells):
                base = s.cell(bb, s.baseline, t)
                delta_rows.append([bb, setting, t, c.mean if c else None, c.std if c else None, c.n if c else 0,
                                   base.mean if base else None, s.delta(bb, setting, t),
                                   bool(c and c.partial) or bool(base and base.partial)])
                for lang, d in sorted(language_deltas(s, bb, setting, t).items()):
                    if setting != s.baseline:
                        lang_rows.append([bb, t, lang, setting, c.languages[lang], base.languages[lang], d])
        for t in s.targets:
            setting, value = s.best(bb, t)
            base = s.value(bb, s.baseline, t)
            best_rows.append([bb, t, setting, value, base, None if value is None or base is None else value - base])
        summary = s.best_summary(bb)
        best_rows.append([bb, "average", None, summary["best_xtreme"], summary["baseline_xtreme"],
                          summary["mean_delta"]])
    write_csv(out / "xtreme.csv", ["backbone", "intermediate", *s.targets, *CATEGORIES, "XTREME", "XTREME_std",
                                   *(f"{t}_std" for t in s.targets), *(f"{t}_n" for t in s.targets)], rows)
    write_csv(out / "deltas.csv", ["backbone", "intermediate", "target", "score", "std", "n_seeds", "baseline",
                                   "delta", "partial"], delta_rows)
    write_csv(out / "best_per_target.csv", ["backbone", "target", "best_intermediate", "score", "baseline",
                                            "delta"], best_rows)
    write_csv(out / "language_deltas.csv", ["backbone", "target", "language", "intermediate", "score",
                                            "baseline", "delta"], lang_rows)


def plot_heatmap(s: Summary, bb: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = [x for x in s.settings if x != s.baseline]
    if not settings or not s.targets:
        return None
    data = np.array([[np.nan if (d := s.delta(bb, x, t)) is None else d for t in s.targets] for x in settings])
    limit = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    limit = limit or 1.0
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")
    fig, ax = plt.subplots(figsize=(max(5.0, 2.8 + 0.8 * len(s.targets)), max(2.8, 1.6 + 0.45 * len(settings))))
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(s.targets)), s.targets, rotation=45, ha="right")
    ax.set_yticks(range(len(settings)), settings)
    for i in range(len(settings)):
        for j in range(len(s.targets)):
            value = data[i, j]
            ax.text(j, i, MISSING if np.isnan(value) else f"{value:+.1f}", ha="center", va="center", fontsize=8,
                    color="black" if np.isnan(value) or abs(value) < 0.6 * limit else "white")
    fig.colorbar(image, ax=ax, label="points")
    ax.set_title(f"{bb}: gain over {s.baseline}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_languages(s: Summary, bb: str, target: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = [x for x in s.settings if s.cell(bb, x, target)]
    if not settings:
        return None
    if len(settings) > 5:  # the baseline and the best setting only: 40 languages x 11 settings is unreadable
        best, _ = s.best(bb, target)
        settings = [x for x in (s.baseline, best) if x and s.cell(bb, x, target)]
    langs = sorted({lang for x in settings for lang in s.cell(bb, x, target).languages})
    width = 0.8 / len(settings)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(langs) * max(1, len(settings) / 2) + 1.5), 3.6))
    for k, x in enumerate(settings):
        values = [s.cell(bb, x, target).languages.get(lang) for lang in langs]
        ax.bar(np.arange(len(langs)) + (k - (len(settings) - 1) / 2) * width,
               [np.nan if v is None else v for v in values], width, label=x)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylabel("score")
    ax.set_title(f"{bb}: {target} per language")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pair(s: Summary, pair: Pair, path: Path) -> Path | None:
    """Per target, base gain vs aligned gain (bars, error bars = std over seeds): a panel for each backbone's best
    setting per target, then one per intermediate setting. A missing gain has no bar and is marked, never 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    views = [None] + [x for x in s.settings if x != s.baseline]
    targets = s.targets
    if not targets or len(views) == 1:
        return None
    width, x = 0.38, np.arange(len(targets))
    fig, axes = plt.subplots(len(views), 1, figsize=(max(5.0, 1.8 + 1.2 * len(targets)), 0.4 + 2.9 * len(views)),
                             squeeze=False)
    for ax, view in zip(axes[:, 0], views):
        gains = {t: s.pair_gains(pair, view, t) for t in targets}
        for k, (role, bb, color) in enumerate((("base", pair.base, "#4c72b0"), ("aligned", pair.aligned, "#dd8452"))):
            values = [getattr(gains[t], role) for t in targets]
            pos = x + (k - 0.5) * width
            ax.bar(pos, [np.nan if g.mean is None else g.mean for g in values], width, color=color,
                   label=f"{role}: {bb}")
            for i, g in enumerate(values):
                if g.mean is None:
                    ax.text(pos[i], 0, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
                elif g.std is not None:
                    ax.errorbar(pos[i], g.mean, yerr=g.std, fmt="none", ecolor="black", capsize=3, lw=1)
                else:  # one seed: no spread to show
                    ax.text(pos[i], g.mean, f"n={g.n}", ha="center", va="bottom" if g.mean >= 0 else "top",
                            fontsize=7)
        labels = []
        for t in targets:
            d = gains[t]
            label = t
            if view is None:
                label += f"\n{d.base.setting or MISSING} | {d.aligned.setting or MISSING}"
            labels.append(label + f"\nΔ {fmt(d.diff, signed=True)}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlim(-0.6, len(targets) - 0.4)  # targets with no bar at all keep their place
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("gain (points)")
        ax.set_title(f"best setting per target (base | aligned) vs {s.baseline}" if view is None else
                     f"{view} vs {s.baseline}", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{pair.name}: gain from intermediate training (Δ = aligned − base)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(run_dir: Path, out: Path, baseline: str = "none", split: str | None = None,
                 bars: list[str] | None = None, skip_broken: bool = False) -> dict:
    if not run_dir.is_dir():
        raise XtremeError(f"{run_dir}: not a directory")
    results, broken = scan(run_dir, split)
    if broken and not skip_broken:
        raise BrokenResults(run_dir, broken)
    if not results:
        raise XtremeError(f"{run_dir}: no results/*.json files found" + (f" for split {split}" if split else "")
                          + (f" ({len(broken)} left out as broken)" if broken else ""))
    if split is None:
        check_one_split(results, run_dir)
    summary = Summary(results, run_dir, baseline, broken)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(report_markdown(summary)) + "\n", encoding="utf-8")
    (out / "runs.md").write_text("\n".join(runs_markdown(summary)) + "\n", encoding="utf-8")
    write_csvs(summary, out)
    write_pairs_csv(summary, out)
    plots = [plot_pair(summary, pair, out / f"pairs_{_safe(pair.name)}.png") for pair in summary.pairs]
    for bb in summary.backbones:
        plots.append(plot_heatmap(summary, bb, out / f"heatmap_{_safe(bb)}.png"))
        for t in bars or summary.targets:
            plots.append(plot_languages(summary, bb, t, out / f"languages_{_safe(bb)}_{_safe(t)}.png"))
    return {"summary": summary, "out": out, "plots": [p for p in plots if p]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a grid's output_dir (or any dir holding results/{task}.{split}.json files)")
    parser.add_argument("--out", help="where to write the report (default: RUN_DIR/report)")
    parser.add_argument("--baseline", default="none", help="the intermediate setting gains are measured against")
    parser.add_argument("--split", choices=["dev", "test"], help="only results of this split (needed when a target "
                        "has results of both)")
    parser.add_argument("--bars", nargs="+", metavar="TARGET", help="per-language bar plots for these targets "
                        "(default: every target)")
    parser.add_argument("--skip-broken", action="store_true", help="report without the results files that cannot "
                        "be used (listed in report.md) instead of stopping")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    try:
        done = write_report(run_dir, Path(args.out) if args.out else run_dir / "report", args.baseline, args.split,
                            args.bars, args.skip_broken)
    except BrokenResults as err:
        print("\n".join(err.files), file=sys.stderr)
        raise
    summary = done["summary"]
    if summary.broken:
        print(f"left out {len(summary.broken)} results file(s) that cannot be used (listed in report.md):\n"
              + "\n".join(summary.broken))
    for bb in summary.backbones:
        best = summary.best_summary(bb)
        print(f"{bb}: best intermediate per target vs {args.baseline}: {fmt(best['mean_delta'], signed=True)} "
              f"over {best['n_targets']} target(s)")
    for pair in summary.pairs:
        avg = summary.pair_average(pair, None)
        print(f"pair {pair.name}: gain of the best intermediate setting per target, base {pair.base} "
              f"{fmt(avg['base'], signed=True)}, aligned {pair.aligned} {fmt(avg['aligned'], signed=True)}, "
              f"aligned - base {fmt(avg['diff'], signed=True)} over {avg['n_targets']} target(s)")
    print(f"report: {done['out'] / 'report.md'} ({len(summary.results)} results file(s), "
          f"{len(done['plots'])} plot(s), CSV beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
