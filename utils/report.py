"""Summarise a grid's results the way the paper does: XTREME scores, gains over no intermediate training, plots.

    python -m utils.report RUN_DIR [--out DIR] [--baseline none] [--split test] [--bars pawsx udpos]

Reads every `results/{task}.json` under RUN_DIR (what `run_xtreme_eval.py` writes). For the grid's layout
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

XTREME's rules (`evaluate.py`): a task's score is the plain mean over its languages of the per-language score
(accuracy for XNLI/PAWS-X/Tatoeba, F1 for UD-POS/PAN-X/BUCC, (EM + F1)/2 for the QA tasks); the overall score is
the mean of the nine task scores; the category means are over classification (pawsx, xnli), structured prediction
(udpos, panx), question answering (xquad, mlqa, tydiqa) and retrieval (bucc2018, tatoeba). A missing value is
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

XTREME_TASKS = ("pawsx", "xnli", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc2018", "tatoeba")
CATEGORIES = {
    "classification": ("pawsx", "xnli"),
    "structured prediction": ("udpos", "panx"),
    "question answering": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc2018", "tatoeba"),
}
SHORT = {"classification": "class.", "structured prediction": "struct.", "question answering": "QA",
         "retrieval": "retr."}
MISSING = "—"
PARTIAL = "†"
GRID_STATE = "grid_state.json"


# ----------------------------------------------------------------------------------------------------- reading

def language_score(metrics: dict) -> float | None:
    """XTREME's per-language score: the results' `score`, else (EM + F1)/2 for QA, else F1, else accuracy."""
    def num(key):
        value = metrics.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    if num("score") is not None:
        return num("score")
    if num("exact_match") is not None and num("f1") is not None:
        return (num("exact_match") + num("f1")) / 2
    return num("f1") if num("f1") is not None else num("accuracy")


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def mean_all(values) -> float | None:
    """The mean only when no value is missing (an XTREME or category mean over an incomplete set is missing)."""
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def stdev(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) >= 2 else None


def xtreme_scores(task_scores: dict) -> dict:
    """Category means and the overall XTREME score from {task: score}; missing when any of their tasks is."""
    out = {cat: mean_all(task_scores.get(t) for t in tasks) for cat, tasks in CATEGORIES.items()}
    out["XTREME"] = mean_all(task_scores.get(t) for t in XTREME_TASKS)
    return out


def xtreme_languages(task: str) -> tuple | None:
    try:
        from .tasks import TASKS
    except Exception:  # the registry is optional here: a report needs only the JSON files
        return None
    return tuple(TASKS[task].languages) if task in TASKS else None


@dataclass
class Result:
    path: Path
    run: str  # the results' output dir relative to RUN_DIR
    task: str
    target: str
    split: str | None
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
        return mean(self.scores.values())

    @property
    def partial(self) -> bool:
        """Fewer languages than XTREME's list for the task (or languages skipped)."""
        expected = xtreme_languages(self.task)
        return bool(self.skipped) or (expected is not None and not set(expected) <= set(self.scores))

    @property
    def in_grid(self) -> bool:
        return self.backbone is not None and self.intermediate is not None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def discover(run_dir: Path, split: str | None = None) -> list[Result]:
    results = []
    for path in sorted(run_dir.rglob("results/*.json")):
        data = _read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
            continue
        if split is not None and data.get("split") != split:
            continue
        out_dir = path.parent.parent
        task = str(data.get("task") or path.stem)
        result = Result(path=path, run=str(out_dir.relative_to(run_dir)), task=task, target=task,
                        split=data.get("split"), languages=data["languages"], skipped=data.get("skipped") or {},
                        data=data)
        result.scores = {lang: s for lang, m in data["languages"].items()
                         if isinstance(m, dict) and (s := language_score(m)) is not None}
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
        results.append(result)
    return results


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


class Summary:
    def __init__(self, results: list[Result], run_dir: Path, baseline: str = "none"):
        self.results, self.run_dir, self.baseline = results, run_dir, baseline
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
        by_split.setdefault(r.split or "?", set()).add(r.target)
    splits = "; ".join(f"{split}: {', '.join(t for t in s.targets if t in targets)}"
                       for split, targets in sorted(by_split.items())) if len(by_split) > 1 else (
        next(iter(by_split), MISSING))
    lines += [f"{len(s.results)} results file(s); {len(s.grid)} from the grid layout; baseline setting: "
              f"`{s.baseline}`; split {splits}.", "",
              f"Scores are XTREME's (task = mean over languages; QA = (EM + F1)/2), mean ± std over seeds "
              f"(std when 2 or more seeds ran). `{MISSING}`: missing (not run, failed or incomplete), never 0. "
              f"`{PARTIAL}`: over fewer languages than XTREME's list for the task.", ""]
    if not s.grid:
        lines += ["No results in the grid layout (`{backbone}/{intermediate}/seed{s}/{target}/phase3`): see "
                  "`runs.md` for the per-run tables.", ""]
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
            keys = [k for k in ("score", "accuracy", "f1", "exact_match", "precision", "recall")
                    if any(isinstance(m, dict) and k in m for m in r.languages.values())]
            rows = [[lang, *(fmt(m.get(k)) if isinstance(m, dict) else MISSING for k in keys)]
                    for lang, m in r.languages.items()]
            rows.append(["**avg**", *(fmt(mean(m.get(k) for m in r.languages.values() if isinstance(m, dict)))
                                      for k in keys)])
            rows += [[lang, f"skipped: {why}", *([""] * (len(keys) - 1))] for lang, why in r.skipped.items()]
            lines += [f"### {r.target} ({r.split or '?'}): `{r.path.relative_to(s.run_dir)}`", ""]
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
            m = m if isinstance(m, dict) else {}
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


def write_report(run_dir: Path, out: Path, baseline: str = "none", split: str | None = None,
                 bars: list[str] | None = None) -> dict:
    if not run_dir.is_dir():
        raise XtremeError(f"{run_dir}: not a directory")
    results = discover(run_dir, split)
    if not results:
        raise XtremeError(f"{run_dir}: no results/*.json files found" + (f" for split {split}" if split else ""))
    summary = Summary(results, run_dir, baseline)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(report_markdown(summary)) + "\n", encoding="utf-8")
    (out / "runs.md").write_text("\n".join(runs_markdown(summary)) + "\n", encoding="utf-8")
    write_csvs(summary, out)
    plots = []
    for bb in summary.backbones:
        plots.append(plot_heatmap(summary, bb, out / f"heatmap_{_safe(bb)}.png"))
        for t in bars or summary.targets:
            plots.append(plot_languages(summary, bb, t, out / f"languages_{_safe(bb)}_{_safe(t)}.png"))
    return {"summary": summary, "out": out, "plots": [p for p in plots if p]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a grid's output_dir (or any dir holding results/*.json files)")
    parser.add_argument("--out", help="where to write the report (default: RUN_DIR/report)")
    parser.add_argument("--baseline", default="none", help="the intermediate setting gains are measured against")
    parser.add_argument("--split", help="only results of this split (dev or test)")
    parser.add_argument("--bars", nargs="+", metavar="TARGET", help="per-language bar plots for these targets "
                        "(default: every target)")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    done = write_report(run_dir, Path(args.out) if args.out else run_dir / "report", args.baseline, args.split,
                        args.bars)
    summary = done["summary"]
    for bb in summary.backbones:
        best = summary.best_summary(bb)
        print(f"{bb}: best intermediate per target vs {args.baseline}: {fmt(best['mean_delta'], signed=True)} "
              f"over {best['n_targets']} target(s)")
    print(f"report: {done['out'] / 'report.md'} ({len(summary.results)} results file(s), "
          f"{len(done['plots'])} plot(s), CSV beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
