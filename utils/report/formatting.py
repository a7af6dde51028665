"""How the report writes numbers: one decimal, signed gains, `—` for a missing value (never 0), `†` for partial."""

from __future__ import annotations

import math

MISSING = "—"
PARTIAL = "†"
SHORT = {"classification": "class.", "structured prediction": "struct.", "question answering": "QA",
         "retrieval": "retr."}  # category column headers


def fmt(value, signed: bool = False, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_cell(cell) -> str:
    """A `Cell`'s mean ± std over seeds, `†` when partial."""
    if cell is None or cell.mean is None:
        return MISSING
    text = fmt(cell.mean)
    if cell.std is not None:
        text += f" ± {cell.std:.1f}"
    return text + (PARTIAL if cell.partial else "")


def fmt_gain(gain) -> str:
    """A `Gain`'s mean ± std over seeds, or its number of seeds when it has no std."""
    if gain.mean is None:
        return MISSING
    text = fmt(gain.mean, signed=True)
    return text + (f" ± {gain.std:.1f}" if gain.std is not None else f" ({gain.n} seed{'s' * (gain.n != 1)})")


def fmt_diff(d) -> str:
    """A `GainDiff`: aligned − base ± the combined std."""
    if d.diff is None:
        return MISSING
    return fmt(d.diff, signed=True) + (f" ± {d.std:.1f}" if d.std is not None else "")


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows]
