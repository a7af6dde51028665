"""File permissions: every file the project writes gets the mode the user's umask gives any new file.

Private temporary files (`tempfile.mkstemp`, and safetensors, which saves through one) are created 0600; renamed
into place they would keep it, and colleagues sharing the storage could not read the weights or results.
"""

import os


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
