"""`report.md` (per backbone: XTREME table, gains, best setting per target, per-language gains; the backbone pairs)
and `runs.md` (per run: its XTREME scores and per-language tables), as lists of lines."""

from __future__ import annotations

from ..results import METRIC_KEYS
from ..score import CATEGORIES, XTREME_TASKS, xtreme_scores
from .aggregate import Pair, Summary, mean
from .collect import Result
from .formatting import MISSING, PARTIAL, SHORT, fmt, fmt_cell, fmt_diff, fmt_gain, md_table


def report_markdown(s: Summary) -> list[str]:
    lines = _overview(s)
    if s.broken:
        lines += [f"**{len(s.broken)} results file(s) left out** (`--skip-broken`): they cannot be used; every score "
                  "below is computed without them.", ""] + [f"- {line}" for line in s.broken] + [""]
    if not s.grid:
        lines += ["No results in the grid layout (`{backbone}/{intermediate}/seed{s}/{target}/phase3`): see "
                  "`runs.md` for the per-run tables.", ""]
    lines += pairs_markdown(s)
    for bb in s.backbones:
        lines += [f"## {bb}", ""]
        lines += _xtreme_table(s, bb) + _gain_table(s, bb) + _best_table(s, bb) + _language_gains(s, bb)
    return lines


def _overview(s: Summary) -> list[str]:
    by_split: dict[str, set] = {}
    for r in s.grid:
        by_split.setdefault(r.split, set()).add(r.target)
    splits = "; ".join(f"{split}: {', '.join(t for t in s.targets if t in targets)}"
                       for split, targets in sorted(by_split.items())) if len(by_split) > 1 else (
        next(iter(by_split), MISSING))
    return [f"# XTREME report: {s.run_dir}", "",
            f"{len(s.results)} results file(s); {len(s.grid)} from the grid layout; baseline setting: "
            f"`{s.baseline}`; split {splits}.", "",
            f"Scores are XTREME's (task = mean over languages; QA = (EM + F1)/2), mean ± std over seeds "
            f"(std when 2 or more seeds ran). `{MISSING}`: missing (not run, failed or incomplete), never 0. "
            f"`{PARTIAL}`: over fewer languages than XTREME's list for the task.", ""]


def _xtreme_table(s: Summary, bb: str) -> list[str]:
    header = ["intermediate", "seeds", *s.targets, *(SHORT[c] for c in CATEGORIES), "XTREME"]
    rows = []
    for setting in s.settings:
        cells = [s.cell(bb, setting, t) for t in s.targets]
        seeds = sorted({seed for c in cells if c for seed in c.seeds if seed is not None})
        row = s.xtreme_row(bb, setting)
        overall = fmt(row["XTREME"]) + (f" ± {row['XTREME_std']:.1f}" if row["XTREME_std"] is not None else "")
        rows.append([setting, ",".join(map(str, seeds)) or MISSING, *(fmt_cell(c) for c in cells),
                     *(fmt(row[c]) for c in CATEGORIES), overall])
    return ["### XTREME scores per intermediate setting", ""] + md_table(header, rows) + [""]


def _gain_table(s: Summary, bb: str) -> list[str]:
    rows = []
    for setting in s.settings:
        if setting != s.baseline:
            deltas = [s.delta(bb, setting, t) for t in s.targets]
            rows.append([setting, *(fmt(d, signed=True) for d in deltas), fmt(mean(deltas), signed=True)])
    lines = [f"### Gain over `{s.baseline}` (points)", ""]
    lines += (md_table(["intermediate", *s.targets, "mean"], rows) if rows
              else ["(no intermediate settings besides the baseline)"]) + [""]
    if not any(s.cell(bb, s.baseline, t) for t in s.targets):
        lines += [f"No results for the baseline `{s.baseline}`: every gain is missing.", ""]
    return lines


def _best_table(s: Summary, bb: str) -> list[str]:
    rows = []
    for t in s.targets:
        setting, value = s.best(bb, t)
        base = s.value(bb, s.baseline, t)
        rows.append([t, setting or MISSING, fmt(value), fmt(base),
                     fmt(None if value is None or base is None else value - base, signed=True)])
    summary = s.best_summary(bb)
    rows.append(["**average**", "", fmt(summary["best_xtreme"]), fmt(summary["baseline_xtreme"]),
                 f"**{fmt(summary['mean_delta'], signed=True)}**"])
    return (["### Best intermediate setting per target", ""]
            + md_table(["target", "best setting", "score", s.baseline, "gain"], rows) + [""]
            + [f"Average gain of the best setting per target over `{s.baseline}`: "
               f"**{fmt(summary['mean_delta'], signed=True)}** over {summary['n_targets']} target(s) "
               f"({summary['n_xtreme_targets']} of the 9 XTREME tasks); XTREME score with the best setting per "
               f"target {fmt(summary['best_xtreme'])} vs {fmt(summary['baseline_xtreme'])} (missing unless all "
               "9 tasks have results). The best setting is chosen on the same scores it is reported on, as in "
               "the paper's \"+5.4\".", ""])


def _language_gains(s: Summary, bb: str) -> list[str]:
    lines = ["### Per-language gains", ""]
    for t in s.targets:
        base = s.cell(bb, s.baseline, t)
        others = [x for x in s.settings if x != s.baseline and s.cell(bb, x, t)]
        if not base and not others:
            continue
        langs = sorted({lang for x in s.settings if s.cell(bb, x, t) for lang in s.cell(bb, x, t).languages})
        rows = []
        for lang in langs:
            b = base.languages.get(lang) if base else None
            rows.append([lang, fmt(b), *(fmt(None if b is None or s.cell(bb, x, t).languages.get(lang) is None
                                              else s.cell(bb, x, t).languages[lang] - b, signed=True)
                                          for x in others)])
        lines += [f"#### {t}", ""] + md_table(["language", s.baseline, *(f"{x} Δ" for x in others)], rows) + [""]
        lines += _largest_gains(s, bb, t) if base else []
    return lines


def _largest_gains(s: Summary, bb: str, target: str) -> list[str]:
    """The languages gaining most (and least) with the target's best setting."""
    best, _ = s.best(bb, target)
    if not best:
        return []
    ranked = sorted(s.language_deltas(bb, best, target).items(), key=lambda x: -x[1])
    if len(ranked) > 5:
        return [f"Largest gains with `{best}`: " + ", ".join(f"{l} {d:+.1f}" for l, d in ranked[:5])
                + "; smallest: " + ", ".join(f"{l} {d:+.1f}" for l, d in ranked[::-1][:3]) + ".", ""]
    if ranked:
        return [f"Gains with `{best}`, largest first: " + ", ".join(f"{l} {d:+.1f}" for l, d in ranked) + ".", ""]
    return []


# ------------------------------------------------------------------------------------------ aligned vs base

def pairs_markdown(s: Summary) -> list[str]:
    """The aligned-vs-base comparison; nothing when the run has no base/aligned pairs."""
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
    for pair in s.pairs:
        lines += [f"### Pair `{pair.name}`: base `{pair.base}` vs aligned `{pair.aligned}`", ""]
        lines += _pair_best(s, pair) + _pair_per_setting(s, pair)
    return lines


def _targets_label(n: int) -> str:
    return f"**average** ({n} target{'s' * (n != 1)})"


def _pair_best(s: Summary, pair: Pair) -> list[str]:
    rows = []
    for t in s.targets:
        d = s.pair_gains(pair, None, t)
        rows.append([t, fmt_cell(s.cell(pair.base, s.baseline, t)), d.base.setting or MISSING, fmt_gain(d.base),
                     fmt_cell(s.cell(pair.aligned, s.baseline, t)), d.aligned.setting or MISSING,
                     fmt_gain(d.aligned), fmt_diff(d)])
    avg = s.pair_average(pair, None)
    rows.append([_targets_label(avg["n_targets"]), "", "", fmt(avg["base"], signed=True), "", "",
                 fmt(avg["aligned"], signed=True), f"**{fmt(avg['diff'], signed=True)}**"])
    header = ["target", f"base: {s.baseline}", "base: best", "base gain", f"aligned: {s.baseline}", "aligned: best",
              "aligned gain", "aligned − base"]
    return (["#### Best intermediate setting per target", ""] + md_table(header, rows) + [""]
            + [f"Averaged over the {avg['n_targets']} target(s) where both backbones have a gain "
               f"({', '.join(avg['targets']) or MISSING}): base {fmt(avg['base'], signed=True)}, aligned "
               f"{fmt(avg['aligned'], signed=True)}, aligned − base **{fmt(avg['diff'], signed=True)}** points.", ""])


def _pair_per_setting(s: Summary, pair: Pair) -> list[str]:
    lines = ["#### Gain per intermediate setting", ""]
    settings = [x for x in s.settings if x != s.baseline]
    if not settings:
        return lines + ["(no intermediate settings besides the baseline)", ""]
    rows = []
    for t in s.targets:
        for x in settings:
            d = s.pair_gains(pair, x, t)
            rows.append([t, x, fmt_gain(d.base), fmt_gain(d.aligned), fmt_diff(d)])
    for x in settings:
        avg = s.pair_average(pair, x)
        rows.append([_targets_label(avg["n_targets"]), x, fmt(avg["base"], signed=True),
                     fmt(avg["aligned"], signed=True), f"**{fmt(avg['diff'], signed=True)}**"])
    return lines + md_table(["target", "intermediate", "base gain", "aligned gain", "aligned − base"], rows) + [""]


# ------------------------------------------------------------------------------------------------- runs.md

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
        lines += [f"## {title}", ""] + _run_scores(rs)
        for r in sorted(rs, key=lambda r: (XTREME_TASKS.index(r.target) if r.target in XTREME_TASKS else 99,
                                           r.target)):
            lines += _result_table(s, r)
    return lines


def _run_scores(rs: list[Result]) -> list[str]:
    """One run's task scores, category means and XTREME score."""
    scores = {r.target: r.score for r in rs}
    xt = xtreme_scores(scores)
    targets = [t for t in XTREME_TASKS if t in scores] + sorted(t for t in scores if t not in XTREME_TASKS)
    return md_table([*targets, *(SHORT[c] for c in CATEGORIES), "XTREME"],
                    [[*(fmt(scores[t]) + (PARTIAL if any(r.partial for r in rs if r.target == t) else "")
                        for t in targets), *(fmt(xt[c]) for c in CATEGORIES), fmt(xt["XTREME"])]]) + [""]


def _result_table(s: Summary, r: Result) -> list[str]:
    """One results file: its metrics per language, their means, the skipped languages."""
    keys = [k for k in METRIC_KEYS if any(k in m for m in r.languages.values())]
    rows = [[lang, *(fmt(m.get(k)) for k in keys)] for lang, m in r.languages.items()]
    rows.append(["**avg**", *(fmt(mean(m.get(k) for m in r.languages.values())) for k in keys)])
    rows += [[lang, f"skipped: {why}", *([""] * (len(keys) - 1))] for lang, why in r.skipped.items()]
    return [f"### {r.target} ({r.split}): `{r.path.relative_to(s.run_dir)}`", ""] + md_table(["language", *keys],
                                                                                               rows) + [""]
