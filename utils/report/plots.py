"""The report's PNG plots: gains as a heatmap (setting x target), per-language scores per target, and per backbone
pair the base and aligned gains side by side. A missing value has no bar or cell colour, never 0."""

from __future__ import annotations

from pathlib import Path

from .aggregate import Pair, Summary
from .formatting import MISSING, fmt

PAIR_COLORS = (("base", "#4c72b0"), ("aligned", "#dd8452"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_heatmap(s: Summary, bb: str, path: Path) -> Path | None:
    import numpy as np

    plt = _pyplot()
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
    return _save(fig, path)


def plot_languages(s: Summary, bb: str, target: str, path: Path) -> Path | None:
    import numpy as np

    plt = _pyplot()
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
    return _save(fig, path)


def plot_pair(s: Summary, pair: Pair, path: Path) -> Path | None:
    """Per target, base gain vs aligned gain (bars, error bars = std over seeds): a panel for each backbone's best
    setting per target, then one per intermediate setting. A missing gain has no bar and is marked, never 0."""
    plt = _pyplot()
    views = [None] + [x for x in s.settings if x != s.baseline]
    if not s.targets or len(views) == 1:
        return None
    fig, axes = plt.subplots(len(views), 1, figsize=(max(5.0, 1.8 + 1.2 * len(s.targets)), 0.4 + 2.9 * len(views)),
                             squeeze=False)
    for ax, view in zip(axes[:, 0], views):
        _pair_panel(ax, s, pair, view)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{pair.name}: gain from intermediate training (Δ = aligned − base)", fontsize=11)
    return _save(fig, path)


def _pair_panel(ax, s: Summary, pair: Pair, view: str | None) -> None:
    """One panel of `plot_pair`: the gains of `view` (a setting, or None: each backbone's best per target)."""
    import numpy as np

    targets, width = s.targets, 0.38
    x = np.arange(len(targets))
    gains = {t: s.pair_gains(pair, view, t) for t in targets}
    for k, (role, color) in enumerate(PAIR_COLORS):
        values = [getattr(gains[t], role) for t in targets]
        pos = x + (k - 0.5) * width
        ax.bar(pos, [np.nan if g.mean is None else g.mean for g in values], width, color=color,
               label=f"{role}: {getattr(pair, role)}")
        for i, g in enumerate(values):
            if g.mean is None:
                ax.text(pos[i], 0, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
            elif g.std is not None:
                ax.errorbar(pos[i], g.mean, yerr=g.std, fmt="none", ecolor="black", capsize=3, lw=1)
            else:  # one seed: no spread to show
                ax.text(pos[i], g.mean, f"n={g.n}", ha="center", va="bottom" if g.mean >= 0 else "top", fontsize=7)
    labels = []
    for t in targets:
        d = gains[t]
        label = t + (f"\n{d.base.setting or MISSING} | {d.aligned.setting or MISSING}" if view is None else "")
        labels.append(label + f"\nΔ {fmt(d.diff, signed=True)}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlim(-0.6, len(targets) - 0.4)  # targets with no bar at all keep their place
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("gain (points)")
    ax.set_title(f"best setting per target (base | aligned) vs {s.baseline}" if view is None else
                 f"{view} vs {s.baseline}", fontsize=10)
