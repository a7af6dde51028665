"""The report's CSV files: `scores.csv` (a row per results file, with what produced it), `languages.csv`,
`xtreme.csv`, `deltas.csv`, `best_per_target.csv`, `language_deltas.csv` and, with backbone pairs, `pairs.csv`.
A missing value is an empty cell, never 0."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..score import CATEGORIES
from .aggregate import Gain, Summary

SCORES_COLUMNS = ["backbone", "intermediate", "seed", "target", "task", "split", "score", "n_languages",
                  "skipped_languages", "partial", "results", "model", "backbone_path", "git_commit", "torch",
                  "transformers", "phase1_command", "phase2_command", "phase3_command", "wall_s", "updated"]
LANGUAGES_COLUMNS = ["backbone", "intermediate", "seed", "target", "run", "language", "score", "accuracy", "f1",
                     "exact_match", "num_examples"]
DELTAS_COLUMNS = ["backbone", "intermediate", "target", "score", "std", "n_seeds", "baseline", "delta", "partial"]
BEST_COLUMNS = ["backbone", "target", "best_intermediate", "score", "baseline", "delta"]
LANGUAGE_DELTAS_COLUMNS = ["backbone", "target", "language", "intermediate", "score", "baseline", "delta"]
PAIR_COLUMNS = ["pair", "base_backbone", "aligned_backbone", "target", "intermediate", "base_setting",
                "base_baseline", "base_score", "base_gain", "base_gain_std", "base_n", "aligned_setting",
                "aligned_baseline", "aligned_score", "aligned_gain", "aligned_gain_std", "aligned_n", "diff",
                "diff_std", "diff_se", "n_targets"]


def csv_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return round(value, 4) if isinstance(value, float) else value


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[csv_value(v) for v in row] for row in rows])


def write_csvs(s: Summary, out: Path) -> None:
    write_csv(out / "scores.csv", SCORES_COLUMNS, [_scores_row(s, r) for r in s.results])
    write_csv(out / "languages.csv", LANGUAGES_COLUMNS,
              [[r.backbone, r.intermediate, r.seed, r.target, r.run, lang, r.scores.get(lang), m.get("accuracy"),
                m.get("f1"), m.get("exact_match"), m.get("num_examples")]
               for r in s.results for lang, m in r.languages.items()])
    rows, delta_rows, lang_rows = [], [], []
    for bb in s.backbones:
        for setting in s.settings:
            rows.append(_xtreme_row(s, bb, setting))
            for t in s.targets:
                delta_rows.append(_delta_row(s, bb, setting, t))
                if setting != s.baseline:
                    lang_rows += _language_delta_rows(s, bb, setting, t)
    write_csv(out / "xtreme.csv", ["backbone", "intermediate", *s.targets, *CATEGORIES, "XTREME", "XTREME_std",
                                   *(f"{t}_std" for t in s.targets), *(f"{t}_n" for t in s.targets)], rows)
    write_csv(out / "deltas.csv", DELTAS_COLUMNS, delta_rows)
    write_csv(out / "best_per_target.csv", BEST_COLUMNS, [row for bb in s.backbones for row in _best_rows(s, bb)])
    write_csv(out / "language_deltas.csv", LANGUAGE_DELTAS_COLUMNS, lang_rows)


def _scores_row(s: Summary, r) -> list:
    """A results file with what produced it: model, phase commands, versions, git commit, wall time of its chain."""
    step = r.step or {}
    env = r.data.get("environment") or {}
    chain = {u.get("phase"): u for u in step.get("upstream") or [] if isinstance(u, dict)}
    walls = [step.get("wall_s")] + [u.get("wall_s") for u in chain.values()]
    return [r.backbone, r.intermediate, r.seed, r.target, r.task, r.split, r.score, len(r.scores),
            ",".join(sorted(r.skipped)), r.partial, str(r.path.relative_to(s.run_dir)), r.data.get("model"),
            (step.get("backbone") or {}).get("path"), env.get("git_commit"), env.get("torch"),
            env.get("transformers"), (chain.get(1) or {}).get("command"), (chain.get(2) or {}).get("command"),
            step.get("command_line"), sum(w for w in walls if w) if any(walls) else None, r.data.get("updated")]


def _xtreme_row(s: Summary, bb: str, setting: str) -> list:
    row = s.xtreme_row(bb, setting)
    cells = [s.cell(bb, setting, t) for t in s.targets]
    return [bb, setting, *(c.mean if c else None for c in cells), *(row[c] for c in CATEGORIES), row["XTREME"],
            row["XTREME_std"], *(c.std if c else None for c in cells), *(c.n if c else 0 for c in cells)]


def _delta_row(s: Summary, bb: str, setting: str, t: str) -> list:
    c, base = s.cell(bb, setting, t), s.cell(bb, s.baseline, t)
    return [bb, setting, t, c.mean if c else None, c.std if c else None, c.n if c else 0,
            base.mean if base else None, s.delta(bb, setting, t), bool(c and c.partial) or bool(base and base.partial)]


def _language_delta_rows(s: Summary, bb: str, setting: str, t: str) -> list[list]:
    c, base = s.cell(bb, setting, t), s.cell(bb, s.baseline, t)
    return [[bb, t, lang, setting, c.languages[lang], base.languages[lang], d]
            for lang, d in sorted(s.language_deltas(bb, setting, t).items())]


def _best_rows(s: Summary, bb: str) -> list[list]:
    rows = []
    for t in s.targets:
        setting, value = s.best(bb, t)
        base = s.value(bb, s.baseline, t)
        rows.append([bb, t, setting, value, base, None if value is None or base is None else value - base])
    summary = s.best_summary(bb)
    return rows + [[bb, "average", None, summary["best_xtreme"], summary["baseline_xtreme"], summary["mean_delta"]]]


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
