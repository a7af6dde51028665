import os
import sys

from ..errors import run_main
from .cli import main

try:
    sys.exit(run_main(main))
except BrokenPipeError:  # `--dry-run | head`
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
