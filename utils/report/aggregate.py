"""The grid's results over seeds: a `Cell` per (backbone, intermediate setting, target), gains over the baseline
paired by seed, the best setting per target, and the aligned-vs-base comparison of backbone pairs."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..files import peek_json
from ..score import XTREME_TASKS, xtreme_scores
from ..tasks import RETRIEVAL, TASKS
from .collect import Result
from .formatting import MISSING

GRID_STATE = "grid_state.json"
GROUPS = ("base", "aligned")


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def stdev(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) >= 2 else None


def evaluated_once(task: str) -> bool:
    """A retrieval task runs phase 3 on the phase-1 model; for the baseline, on the pretrained model, once for all
    seeds."""
    return task in TASKS and TASKS[task].kind == RETRIEVAL


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
    """The results under a run dir, the grid's results (those with a backbone and setting) ordered as planned in
    `grid_state.json`, their cells, and the backbone pairs."""

    def __init__(self, results: list[Result], run_dir: Path, baseline: str = "none", broken: list[str] = ()):
        self.results, self.run_dir, self.baseline, self.broken = results, run_dir, baseline, list(broken)
        self.grid = [r for r in results if r.in_grid]
        state = peek_json(run_dir / GRID_STATE) or {}
        self.state = state if isinstance(state, dict) else {}
        self.backbones = self._order([r.backbone for r in self.grid],
                                     [b.get("name") for b in self.state.get("backbones") or []])
        planned = [x for x in self.state.get("intermediate") or [] if isinstance(x, str)]
        self.settings = self._order([r.intermediate for r in self.grid], planned, first=baseline)
        planned_targets = [t for t in self.state.get("targets") or [] if isinstance(t, dict)]
        self.targets = self._targets([r.target for r in self.grid], [t.get("name") for t in planned_targets])
        self.cells = self._cells()
        self.target_tasks = {t.get("name"): t.get("task") for t in planned_targets}
        self.target_tasks.update({r.target: r.task for r in self.grid})
        self.pairs, self.pair_notes = self._pairs()

    @classmethod
    def _targets(cls, found: list, planned: list) -> list:
        """XTREME's tasks in XTREME's order, then the other targets as planned."""
        return ([t for t in XTREME_TASKS if t in found or t in planned]
                + [t for t in cls._order(found, planned) if t not in XTREME_TASKS])

    def _cells(self) -> dict[tuple, Cell]:
        cells: dict[tuple, Cell] = {}
        per_lang: dict[tuple, dict[str, list]] = {}
        for r in self.grid:
            key = (r.backbone, r.intermediate, r.target)
            cell = cells.setdefault(key, Cell([], [], False, {}))
            cell.scores.append(r.score)
            cell.seeds.append(r.seed)
            cell.partial |= r.partial
            for lang, score in r.scores.items():
                per_lang.setdefault(key, {}).setdefault(lang, []).append(score)
        for key, cell in cells.items():
            cell.languages = {lang: mean(v) for lang, v in per_lang.get(key, {}).items()}
        return cells

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
            fixed = evaluated_once(self.target_tasks.get(target, target))
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

    def language_deltas(self, backbone, setting, target) -> dict:
        """Per language, the setting's mean score minus the baseline's."""
        base, cell = self.cell(backbone, self.baseline, target), self.cell(backbone, setting, target)
        if not base or not cell:
            return {}
        return {lang: v - base.languages[lang] for lang, v in cell.languages.items()
                if v is not None and base.languages.get(lang) is not None}
