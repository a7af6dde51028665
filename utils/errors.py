"""User-facing errors: one line naming the file/field/task and what was expected, never a deep traceback."""

import errno
import logging
import sys


class XtremeError(Exception):
    """An error in the user's input (arguments, files, model dirs). Its message is the whole report."""


class MissingDataError(XtremeError):
    """A data file (or Hub split) that does not exist: evaluation reports and skips that language."""


def run_main(main):
    """Run a script's `main()`. An `XtremeError`, a full disk or a data file that is not text becomes a one-line
    message on stderr and exit status 2. A multi-process run ends with every rank together (`end_distributed`)."""
    try:
        result = main()
    except XtremeError as err:
        fail(str(err), err)
    except UnicodeDecodeError as err:  # a binary or compressed file given as data
        path = file_being_read(err)
        fail(undecodable(path) if path else f"a data file is not UTF-8 text ({err.reason})", err)
    except Exception as err:
        if not disk_full(err):
            raise
        filename = next((e.filename for e in chain(err) if isinstance(e, OSError) and e.filename), None)
        fail(f"no space left on the device{f' while writing {filename}' if filename else ''}; free some space and "
             "run again (files written before are intact: training resumes from the last complete checkpoint, "
             "evaluation keeps its finished languages with --resume)", err)
    # exit at once only when main() is the running script's own (not when a test calls run_main in-process)
    end_distributed(exit_process=getattr(sys.modules.get("__main__"), "main", None) is main)
    return result


def fail(message: str, err: BaseException | None = None):
    logging.getLogger(__name__).debug("error", exc_info=err)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def chain(err: BaseException):
    """`err` and the errors it was raised from or while handling."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


# How libraries that do their own I/O report a full disk or quota: safetensors' SafetensorError ("I/O error: No
# space left on device (os error 28)"), Rust/C++ layers, plain OSError text.
DISK_FULL_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def disk_full(err: BaseException, directory=None) -> bool:
    """Whether `err` comes from a full disk (or quota). torch.save's error names no cause ("unexpected pos ..."):
    with `directory` given, any error while it has less than 16 MiB free counts too."""
    for e in chain(err):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(e) for text in DISK_FULL_TEXT):
            return True
    if directory is not None:
        import shutil

        try:
            return shutil.disk_usage(directory).free < 16 * 2**20
        except OSError:
            return False
    return False


COMPRESSED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
              b"\x28\xb5\x2f\xfd": "zstd"}  # magic bytes


def undecodable(path) -> str:
    """The message for a file that is not UTF-8 text: compressed (named by its magic bytes), or the line of its
    first byte that is not UTF-8."""
    with open(path, "rb") as f:
        data = f.read()
    kind = next((name for magic, name in COMPRESSED.items() if data.startswith(magic)), None)
    if kind:
        return f"{path}: {kind}-compressed data, not text; decompress it first"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start}); expected a UTF-8 text file"
    return f"{path}: not UTF-8 text; expected a UTF-8 text file"


def file_being_read(err: BaseException) -> str | None:
    """The file a decoding error came from: the innermost frame with a `path` (or `file`) variable naming one."""
    import os

    frames, tb = [], err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in ("path", "file", "filename"):
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
                return str(value)
    return None


# Called before the ranks of a multi-process run meet for the last time (training registers its DeepSpeed engine
# release), so that this module depends on no other of the project's.
BEFORE_DISTRIBUTED_END = []


def end_distributed(exit_process: bool = False) -> None:
    """End a multi-process run cleanly: run `BEFORE_DISTRIBUTED_END` (release DeepSpeed engines), wait for every rank
    (none leaves while another still writes), close the process group and, in the script's own process
    (`exit_process`), end it at once.

    Gloo's worker threads can still be releasing finished collectives (ZeRO-3's all-gathers) when the interpreter
    finalizes; a release that needs the GIL then aborts the process ("terminate called without an active
    exception", about one 2-rank ZeRO-3 exit in five on CPU). Every file is written and closed by then, so the
    process ends with `os._exit(0)` instead of going through finalization.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    for hook in BEFORE_DISTRIBUTED_END:
        hook()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    if exit_process:
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
