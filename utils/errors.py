"""User-facing errors: one line naming the file/field/task and what was expected, never a deep traceback."""

import logging
import sys


class XtremeError(Exception):
    """An error in the user's input (arguments, files, model dirs). Its message is the whole report."""


class MissingDataError(XtremeError):
    """A data file (or Hub split) that does not exist: evaluation reports and skips that language."""


def run_main(main):
    """Run a script's `main()`; an `XtremeError` becomes a one-line message on stderr and exit status 2."""
    try:
        return main()
    except XtremeError as err:
        logging.getLogger(__name__).debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
