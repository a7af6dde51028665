"""Step processes and locks: a step's command runs in a process group of its own with its output in the step's
log, and holds its step dir's lock for as long as it runs, even after the driver that started it is gone."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import XtremeError

STEP_LOCK = ".step.lock"
ERROR_LINE = re.compile(r"^([\w.-]+: )?error: |^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b")
# Ctrl-C first (the scripts stop as after a crash: training resumes from its last checkpoint), then harder.
STOP_SIGNALS = ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5))


class Lock:
    """An exclusive `flock` on a file. Given to a child process (`fd`), it stays held while the child runs."""

    def __init__(self, path: Path):
        self.path, self.fd = Path(path), None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def held_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock on `path` (probed with a shared lock, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def step_lock(step_dir: Path) -> Lock:
    return Lock(Path(step_dir) / STEP_LOCK)


def output_lock(output_dir: Path, name: str) -> Lock:
    """The driver's lock on a grid's output dir: one driver at a time (a `--status` probe may hold it briefly)."""
    lock = Lock(Path(output_dir) / name)
    for _ in range(10):
        if lock.acquire():
            return lock
        time.sleep(0.2)
    raise XtremeError(f"another utils.grid is running on {output_dir} (lock {name}); see its progress with --status")


def free_port(taken: set | frozenset = frozenset()) -> int:
    """A TCP port free on this machine now (and not in `taken`), for a launcher's rendezvous."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            return port


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, which an init that does not reap may leave, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def last_error(log: Path, offset: int) -> str:
    """The line of a step's log (from `offset`: this attempt) that says why it failed: the script's one-line
    `error: ...`, else the exception, else the last line."""
    try:
        with open(log, "rb") as f:
            f.seek(max(offset, f.seek(0, os.SEEK_END) - 65536))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "no log"
    lines = [part.strip() for part in text.replace("\r", "\n").splitlines() if part.strip()]
    for line in reversed(lines):
        if ERROR_LINE.match(line):
            return line
    return lines[-1] if lines else "no output"


class StepProcess:
    """`argv` in its own session (Ctrl-C of the driver does not reach it; stopping it stops its launcher's
    workers too), stdout and stderr appended to `log`. A driver that dies leaves it running with its lock."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None, pass_fds: tuple = ()):
        self.log, self.proc, self.failure = Path(log), None, None
        with open(self.log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
            out.flush()
            self.offset = out.tell()
            try:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=env, pass_fds=pass_fds, start_new_session=True)
            except OSError as err:
                out.write(f"cannot start: {err}\n".encode())
                self.failure = (127, f"cannot start {argv[0]}: {err.strerror or err}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def result(self) -> tuple[int, str] | None:
        """(exit status, the log line that explains a failure) once it ended, else None."""
        if self.proc is None:
            return self.failure
        code = self.proc.poll()
        return None if code is None else (code, last_error(self.log, self.offset))

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass


def honour_sigint() -> None:
    """Take SIGINT again when started with it ignored (a shell does that to a command it starts in the
    background): a step would inherit the ignored SIGINT and `stop_all` could only stop it after its grace period,
    and the driver could not be interrupted cleanly."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_all(processes: list[StepProcess], signals=STOP_SIGNALS) -> None:
    """Stop every process (and its group): SIGINT, then SIGTERM, then SIGKILL, each after a grace period."""
    for sig, grace in signals:
        alive = [p for p in processes if p.running()]
        if not alive:
            return
        for p in alive:
            p.signal(sig)
        deadline = time.time() + grace
        while time.time() < deadline and any(p.running() for p in alive):
            time.sleep(0.1)
