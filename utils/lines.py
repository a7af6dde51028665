"""Line-based text files: their UTF-8 lines, and lines of one or two tab-separated fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .errors import XtremeError, undecodable


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file without their line ends (a final newline does not add an empty line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise XtremeError(undecodable(path)) from err
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def tab_fields(path: Path, expected: str) -> Iterator[tuple[int, list[str] | None]]:
    """(line number, its tab-separated fields) of every line, None for a blank one. Every line has as many fields as
    the first, one or two (a second field: the labels); else an error naming the line and the `expected` line."""
    width = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                yield number, None
                continue
            parts = line.split("\t")
            width = width or len(parts)
            if len(parts) != width or width > 2:
                raise XtremeError(f"{path}:{number}: expected {expected} like the lines before, found {len(parts)} "
                                  "tab-separated columns")
            yield number, parts
