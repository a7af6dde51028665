"""Summarise a grid's results the way the paper does: XTREME scores, gains over no intermediate training, plots.

    python -m utils.report RUN_DIR [--out DIR] [--baseline none] [--split test] [--bars pawsx udpos] [--skip-broken]

Reads every `results/{task}.{split}.json` under RUN_DIR (what `run_xtreme_eval.py` writes). A file that cannot be
read or does not hold numeric scores where scores belong stops the report: each one is named with what is wrong
(exit 2), unless `--skip-broken`, which leaves them out and lists them in `report.md`. Results of one split are
never mixed with another's: when a target (or a run outside the grid) has both dev and test results, `--split`
must say which to report. For the grid's layout
(`{backbone}/{intermediate}/seed{s}/{target}/phase3/`, described in `utils/grid`) the step record beside each
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
import sys
from pathlib import Path

from ..errors import XtremeError
from .aggregate import Summary
from .collect import BrokenResults, check_one_split, scan
from .formatting import fmt
from .markdown import report_markdown, runs_markdown
from .plots import plot_heatmap, plot_languages, plot_pair
from .tables import write_csvs, write_pairs_csv


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._+-" else "-" for c in str(name))


def summarise(run_dir: Path, baseline: str = "none", split: str | None = None,
              skip_broken: bool = False) -> Summary:
    """The results under RUN_DIR, checked (broken files, both splits of a target), as a `Summary`."""
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
    return Summary(results, run_dir, baseline, broken)


def write_report(run_dir: Path, out: Path, baseline: str = "none", split: str | None = None,
                 bars: list[str] | None = None, skip_broken: bool = False) -> dict:
    """Every file of the report under `out`: {"summary", "out", "plots" (the PNGs written)}."""
    summary = summarise(run_dir, baseline, split, skip_broken)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(args.run_dir)
    try:
        done = write_report(run_dir, Path(args.out) if args.out else run_dir / "report", args.baseline, args.split,
                            args.bars, args.skip_broken)
    except BrokenResults as err:
        print("\n".join(err.files), file=sys.stderr)
        raise
    print_summary(done, args.baseline)
    return 0


def print_summary(done: dict, baseline: str) -> None:
    """What the report found, in a few lines: files left out, the average gains, where the report is."""
    summary = done["summary"]
    if summary.broken:
        print(f"left out {len(summary.broken)} results file(s) that cannot be used (listed in report.md):\n"
              + "\n".join(summary.broken))
    for bb in summary.backbones:
        best = summary.best_summary(bb)
        print(f"{bb}: best intermediate per target vs {baseline}: {fmt(best['mean_delta'], signed=True)} "
              f"over {best['n_targets']} target(s)")
    for pair in summary.pairs:
        avg = summary.pair_average(pair, None)
        print(f"pair {pair.name}: gain of the best intermediate setting per target, base {pair.base} "
              f"{fmt(avg['base'], signed=True)}, aligned {pair.aligned} {fmt(avg['aligned'], signed=True)}, "
              f"aligned - base {fmt(avg['diff'], signed=True)} over {avg['n_targets']} target(s)")
    print(f"report: {done['out'] / 'report.md'} ({len(summary.results)} results file(s), "
          f"{len(done['plots'])} plot(s), CSV beside it)")
