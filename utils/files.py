"""Files on disk: atomic writes, JSON reading, and the permissions of what the project writes.

Every write goes to a temporary file beside its target and is renamed over it, so an interrupted run leaves the
old content or the new, never half. Private temporary files (`tempfile.mkstemp`, and safetensors, which saves
through one) are created 0600; renamed into place they would keep it, and colleagues sharing the storage could not
read the weights or results: they get the mode the user's umask gives any new file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import XtremeError, undecodable


def file_mode() -> int:
    """0666 minus the process umask (read from /proc where it can be, so the umask is never changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return 0o666 & ~next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def honour_umask(paths) -> None:
    """Give freshly written files the user's usual mode."""
    mode = file_mode()
    for path in paths:
        os.chmod(path, mode)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk: name the file in the error
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def load_json(path: str | Path):
    """The content of a JSON file; a file that is not UTF-8 or not JSON is an `XtremeError` naming it and the line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise XtremeError(undecodable(path)) from None
    except json.JSONDecodeError as err:
        raise XtremeError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def peek_json(path: str | Path):
    """The content of a JSON file, or None when it is missing or unreadable: for records that are recomputed or
    skipped when absent (grid steps, the report's step and state files)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
